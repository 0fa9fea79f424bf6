//! A wave of a batch sorted by kind, for the backends that combine the requests of one kind into
//! one statement or command (PostgreSQL, MySQL and MongoDB; Redis pipelines a wave as it comes).
//! The rules live here once, and each backend supplies only its statements:
//! - a wave names each sid at most once (`sid_order::waves`), so its kinds do not depend on each
//!   other and run at the same time;
//! - a kind is combined only when it has two or more requests the backend can combine (a lone
//!   one gains nothing); the rest (a patch, input the backend refuses, a touch of a session that
//!   never expires) run alone, as if JS had made them alone (`Backend::run_one`);
//! - a combined statement the server refuses (`ErrorKind::Backend`: a value one of them cannot
//!   store, say) or that is too large to send as one (`TooLarge`) runs again request by request,
//!   so only what is wrong fails; an outage or a timeout fails the kind's requests at once
//!   instead of being tried once per request;
//! - every request gets exactly one answer.

use std::future::Future;

use async_trait::async_trait;

use crate::backend::{Backend, Reply, Request};
use crate::error::{BackendError, BackendResult, ErrorKind};

pub struct Get<'a> {
  pub sid: &'a str,
  pub now_ms: f64,
}

pub struct Set<'a> {
  pub sid: &'a str,
  pub value: &'a str,
  pub expires_at_ms: Option<f64>,
  pub now_ms: f64,
}

pub struct Touch<'a> {
  pub sid: &'a str,
  pub expires_at_ms: f64,
  pub now_ms: f64,
}

pub struct Destroy<'a> {
  pub sid: &'a str,
}

/// The requests of one kind that go as one statement: each with its place in the wave.
pub struct Group<T> {
  pub at: Vec<usize>,
  pub items: Vec<T>,
}

impl<T> Default for Group<T> {
  fn default() -> Self {
    Group {
      at: Vec::new(),
      items: Vec::new(),
    }
  }
}

impl<T> Group<T> {
  fn push(&mut self, at: usize, item: T) {
    self.at.push(at);
    self.items.push(item);
  }

  pub fn sids<'a>(&self) -> Vec<&'a str>
  where
    T: HasSid<'a>,
  {
    self.items.iter().map(HasSid::sid).collect()
  }
}

/// The sid of a request of any kind (for the statements that list them).
pub trait HasSid<'a> {
  fn sid(&self) -> &'a str;
}

macro_rules! has_sid {
  ($($kind:ident),*) => {
    $(impl<'a> HasSid<'a> for $kind<'a> {
      fn sid(&self) -> &'a str {
        self.sid
      }
    })*
  };
}
has_sid!(Get, Set, Touch, Destroy);

/// The earliest clock of a group: its requests were made within one turn of the event loop, and
/// JS checks every cookie's expiry again to the millisecond.
pub fn earliest(nows: impl Iterator<Item = f64>) -> f64 {
  nows.fold(f64::INFINITY, f64::min)
}

/// A wave sorted by kind.
#[derive(Default)]
pub(crate) struct Kinds<'a> {
  pub gets: Group<Get<'a>>,
  pub sets: Group<Set<'a>>,
  pub touches: Group<Touch<'a>>,
  pub destroys: Group<Destroy<'a>>,
}

impl<'a> Kinds<'a> {
  /// The wave's requests that `combinable` accepts, by kind; `None` when no kind has two.
  pub fn of(wave: &'a [Request], combinable: impl Fn(&Request) -> bool) -> Option<Self> {
    let mut k = Kinds::default();
    for (at, request) in wave.iter().enumerate().filter(|(_, r)| combinable(r)) {
      match request {
        Request::Get { sid, now_ms } => k.gets.push(at, Get { sid, now_ms: *now_ms }),
        Request::Set {
          sid,
          value,
          expires_at_ms,
          now_ms,
        } => k.sets.push(
          at,
          Set {
            sid,
            value,
            expires_at_ms: *expires_at_ms,
            now_ms: *now_ms,
          },
        ),
        Request::Touch {
          sid,
          expires_at_ms: Some(at_ms),
          now_ms,
        } => k.touches.push(
          at,
          Touch {
            sid,
            expires_at_ms: *at_ms,
            now_ms: *now_ms,
          },
        ),
        Request::Destroy { sid } => k.destroys.push(at, Destroy { sid }),
        Request::Touch { .. } | Request::Patch { .. } => {}
      }
    }
    fn at_least_two<T>(group: &mut Group<T>) {
      if group.at.len() < 2 {
        *group = Group::default();
      }
    }
    at_least_two(&mut k.gets);
    at_least_two(&mut k.sets);
    at_least_two(&mut k.touches);
    at_least_two(&mut k.destroys);
    (k.places().iter().any(|p| !p.is_empty())).then_some(k)
  }

  fn places(&self) -> [&[usize]; 4] {
    [&self.gets.at, &self.sets.at, &self.touches.at, &self.destroys.at]
  }
}

/// What one kind's statement answered: each request's own answer, in the group's order, or the
/// error that failed the whole statement.
pub type Answers = BackendResult<Vec<BackendResult<Reply>>>;

/// A backend that runs each kind of a wave as one statement: all it supplies are the statements.
/// A group is never empty when its statement is called.
#[async_trait]
pub trait ByKind: Backend {
  /// Whether `request` can go in its kind's statement; the rest run alone (`Backend::run_one`).
  fn combinable(&self, _request: &Request) -> bool {
    true
  }
  /// Whether the sets' statement goes before the other kinds' instead of beside them: for a
  /// server whose insert beside an update of the same table costs more than it saves.
  fn sets_first(&self) -> bool {
    false
  }
  async fn get_many(&self, gets: &Group<Get<'_>>) -> Answers;
  async fn set_many(&self, sets: &Group<Set<'_>>) -> Answers;
  async fn touch_many(&self, touches: &Group<Touch<'_>>) -> Answers;
  async fn destroy_many(&self, destroys: &Group<Destroy<'_>>) -> Answers;
}

/// A wave through `backend`'s statements (`Backend::run_batch` of a `ByKind` backend); `None`
/// when no kind has two requests to combine, so the caller runs them one by one.
pub async fn run<B: ByKind>(backend: &B, wave: &[Request]) -> Option<Vec<BackendResult<Reply>>> {
  let kinds = Kinds::of(wave, |r| backend.combinable(r))?;
  Some(answer(backend, wave, &kinds).await)
}

/// The wave answered: each kind's statement, and every request no kind took on its own, all at
/// the same time.
async fn answer<B: ByKind>(backend: &B, wave: &[Request], kinds: &Kinds<'_>) -> Vec<BackendResult<Reply>> {
  let places = kinds.places();
  let sets = each_or_one(backend, wave, places[1], backend.set_many(&kinds.sets));
  let others = futures_util::future::join3(
    each_or_one(backend, wave, places[0], backend.get_many(&kinds.gets)),
    each_or_one(backend, wave, places[2], backend.touch_many(&kinds.touches)),
    each_or_one(backend, wave, places[3], backend.destroy_many(&kinds.destroys)),
  );
  let combined = async {
    let (sets, (gets, touches, destroys)) = match backend.sets_first() {
      true => (sets.await, others.await),
      false => futures_util::future::join(sets, others).await,
    };
    (gets, sets, touches, destroys)
  };
  let alone = wave.iter().enumerate().map(|(i, request)| async move {
    match places.iter().any(|at| at.contains(&i)) {
      true => None,
      false => Some(backend.run_one(request).await),
    }
  });
  let ((gets, sets, touches, destroys), mut answers) =
    futures_util::future::join(combined, futures_util::future::join_all(alone)).await;
  for (at, results) in places.into_iter().zip([gets, sets, touches, destroys]) {
    for (&i, result) in at.iter().zip(results) {
      if let Some(slot) = answers.get_mut(i) {
        *slot = Some(result);
      }
    }
  }
  answers
    .into_iter()
    .map(|a| a.unwrap_or_else(|| Err(unanswered())))
    .collect()
}

/// One kind's answers, one per request of `at`: the statement's; if the server refused it or it
/// was too large to send, each request again on its own.
async fn each_or_one<B: Backend + ?Sized>(
  backend: &B,
  wave: &[Request],
  at: &[usize],
  statement: impl Future<Output = Answers>,
) -> Vec<BackendResult<Reply>> {
  if at.is_empty() {
    return Vec::new();
  }
  match statement.await {
    Ok(mut answers) => {
      // A statement that answered fewer requests than it was given never reports success for
      // the rest unseen.
      answers.resize_with(at.len(), || Err(unanswered()));
      answers
    }
    Err(e) if !matches!(e.kind, ErrorKind::Backend | ErrorKind::TooLarge) => {
      at.iter().map(|_| Err(e.clone())).collect()
    }
    Err(_) => {
      let alone = at.iter().filter_map(|&i| wave.get(i)).map(|r| backend.run_one(r));
      futures_util::future::join_all(alone).await
    }
  }
}

/// The answer of a request its statement did not answer: never a success unseen.
pub fn unanswered() -> BackendError {
  BackendError::backend("the batch gave no answer to this request")
}

/// Every request of a group answered `Done` (a statement that succeeded for all of them).
pub fn all_done<T>(group: &Group<T>) -> Answers {
  Ok(group.at.iter().map(|_| Ok(Reply::Done)).collect())
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::backend::Stored;
  use futures_util::FutureExt;

  fn get(sid: &str) -> Request {
    Request::Get {
      sid: sid.into(),
      now_ms: 5.0,
    }
  }

  fn touch(sid: &str, at: Option<f64>) -> Request {
    Request::Touch {
      sid: sid.into(),
      expires_at_ms: at,
      now_ms: 1.0,
    }
  }

  #[test]
  fn a_kind_is_combined_from_two_requests_it_accepts() {
    let wave = [get("a"), touch("b", Some(9.0)), get("c"), touch("d", None), get("x")];
    let kinds = Kinds::of(&wave, |r| r.sid() != "x");
    let kinds = kinds.unwrap_or_default();
    assert_eq!(kinds.gets.at, [0, 2]);
    assert_eq!(kinds.gets.sids(), ["a", "c"]);
    assert!(
      kinds.touches.at.is_empty(),
      "one touch that expires is not worth a statement"
    );
    assert!(Kinds::of(&[get("a"), touch("b", Some(1.0))], |_| true).is_none());
  }

  /// Answers a get run alone with the sid as its text and counts those; its gets' statement
  /// answers what the test gave it.
  struct Echo {
    alone: std::sync::atomic::AtomicUsize,
    gets: std::sync::Mutex<Option<Answers>>,
  }

  #[async_trait]
  impl ByKind for Echo {
    async fn get_many(&self, _: &Group<Get<'_>>) -> Answers {
      let given = self.gets.lock().map(|mut g| g.take());
      given
        .ok()
        .flatten()
        .unwrap_or_else(|| Err(BackendError::backend("asked twice")))
    }
    async fn set_many(&self, _: &Group<Set<'_>>) -> Answers {
      Err(BackendError::backend("not in this wave"))
    }
    async fn touch_many(&self, _: &Group<Touch<'_>>) -> Answers {
      Err(BackendError::backend("not in this wave"))
    }
    async fn destroy_many(&self, _: &Group<Destroy<'_>>) -> Answers {
      Err(BackendError::backend("not in this wave"))
    }
  }

  #[async_trait]
  impl Backend for Echo {
    fn name(&self) -> &'static str {
      "echo"
    }
    async fn get(&self, sid: &str, _now_ms: f64) -> BackendResult<Option<Stored>> {
      self.alone.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
      Ok(Some(Stored {
        value: format!("alone:{sid}"),
        expires_at_ms: None,
      }))
    }
    async fn set(&self, _: &str, _: &str, _: Option<f64>, _: f64) -> BackendResult<()> {
      Ok(())
    }
    async fn touch(&self, _: &str, _: Option<f64>, _: f64) -> BackendResult<()> {
      Ok(())
    }
    async fn destroy(&self, _: &str) -> BackendResult<()> {
      Ok(())
    }
    async fn ids(&self, _: f64) -> BackendResult<Vec<String>> {
      Ok(Vec::new())
    }
    async fn all(&self, _: f64) -> BackendResult<Vec<(String, Option<String>)>> {
      Ok(Vec::new())
    }
    async fn length(&self, _: f64) -> BackendResult<u64> {
      Ok(0)
    }
    async fn clear(&self) -> BackendResult<u64> {
      Ok(0)
    }
    async fn ping(&self) -> BackendResult<()> {
      Ok(())
    }
    async fn close(&self) {}
  }

  fn texts(answers: Vec<BackendResult<Reply>>) -> Vec<String> {
    answers
      .into_iter()
      .map(|a| match a {
        Ok(Reply::Got(Some(s))) => s.value,
        Ok(_) => "done".into(),
        Err(e) => format!("{:?}", e.kind),
      })
      .collect()
  }

  fn run(wave: &[Request], gets: Answers) -> (Vec<String>, usize) {
    let echo = Echo {
      alone: Default::default(),
      gets: std::sync::Mutex::new(Some(gets)),
    };
    let answers = super::run(&echo, wave).now_or_never().flatten();
    let alone = echo.alone.load(std::sync::atomic::Ordering::Relaxed);
    (texts(answers.unwrap_or_default()), alone)
  }

  #[test]
  fn each_request_gets_its_statements_answer_and_the_rest_run_alone() {
    let wave = [get("a"), touch("t", None), get("b")];
    let got = |v: &str| {
      Ok(Reply::Got(Some(Stored {
        value: v.into(),
        expires_at_ms: None,
      })))
    };
    let (answers, alone) = run(&wave, Ok(vec![got("A"), got("B")]));
    assert_eq!((answers, alone), (vec!["A".into(), "done".into(), "B".into()], 0));
  }

  #[test]
  fn a_refused_statement_runs_again_request_by_request() {
    let (answers, alone) = run(&[get("a"), get("b")], Err(BackendError::backend("refused")));
    assert_eq!((answers, alone), (vec!["alone:a".into(), "alone:b".into()], 2));
  }

  #[test]
  fn an_outage_fails_the_kind_at_once_and_a_missing_answer_is_an_error() {
    let (answers, alone) = run(&[get("a"), get("b")], Err(BackendError::unavailable("down")));
    assert_eq!((answers, alone), (vec!["Unavailable".into(), "Unavailable".into()], 0));
    let (answers, _) = run(&[get("a"), get("b")], Ok(vec![Ok(Reply::Done)]));
    assert_eq!(answers, ["done", "Backend"]);
  }
}
