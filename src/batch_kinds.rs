//! A wave of a batch sorted by kind, for the backends that combine the requests of one kind into
//! one statement or command (PostgreSQL, MySQL and MongoDB; Redis pipelines a wave as it comes).
//! The rules live here once, and each backend supplies only its statements (`ByKind`):
//! - a wave names each sid at most once (`sid_order::waves`), so its kinds do not depend on each
//!   other and run at the same time (or the sets first, where a backend measured that faster);
//! - a kind is combined only when it has two or more requests the backend can combine (a lone
//!   one gains nothing); the rest (input the backend refuses, a set or touch of a session that
//!   never expires: every row these backends keep has an expiry) run alone, as if JS had made them
//!   alone (`Backend::run_one`);
//! - a combined statement that fails as a whole because the server refused it
//!   (`ErrorKind::Backend`: a value one of them cannot store, say) or because it is too large to
//!   send as one (`TooLarge`) runs again request by request, so only what is wrong fails; an
//!   outage or a timeout fails the kind's requests at once instead of being tried once per
//!   request. (MongoDB's commands answer each statement on its own, failures included, so they
//!   never fail as a whole.)
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
  pub expires_at_ms: f64,
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
  /// The earliest clock of the group's requests, which the statement reads liveness by: they
  /// were made within one turn of the event loop, and JS checks every cookie's expiry again to
  /// the millisecond.
  pub earliest_ms: f64,
}

impl<T> Default for Group<T> {
  fn default() -> Self {
    Group {
      at: Vec::new(),
      items: Vec::new(),
      earliest_ms: f64::INFINITY,
    }
  }
}

impl<T> Group<T> {
  fn push(&mut self, at: usize, item: T, now_ms: f64) {
    self.at.push(at);
    self.items.push(item);
    self.earliest_ms = self.earliest_ms.min(now_ms);
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

/// A wave sorted by kind.
#[derive(Default)]
struct Kinds<'a> {
  pub gets: Group<Get<'a>>,
  pub sets: Group<Set<'a>>,
  pub touches: Group<Touch<'a>>,
  pub destroys: Group<Destroy<'a>>,
}

impl<'a> Kinds<'a> {
  /// The wave's requests that `combinable` accepts, by kind; `None` when no kind has two. A sid
  /// named again (waves never do) runs alone: a statement names each row once.
  fn of(wave: &'a [Request], combinable: impl Fn(&Request) -> bool) -> Option<Self> {
    let mut k = Kinds::default();
    let named_before = |at: usize, sid: &str| wave.iter().take(at).any(|r| r.sid() == sid);
    for (at, request) in wave.iter().enumerate() {
      if !combinable(request) || named_before(at, request.sid()) {
        continue;
      }
      match request {
        Request::Get { sid, now_ms } => k.gets.push(at, Get { sid, now_ms: *now_ms }, *now_ms),
        Request::Set {
          sid,
          value,
          expires_at_ms: Some(at_ms),
          now_ms,
        } => {
          let set = Set {
            sid,
            value,
            expires_at_ms: *at_ms,
            now_ms: *now_ms,
          };
          k.sets.push(at, set, *now_ms)
        }
        Request::Touch {
          sid,
          expires_at_ms: Some(at_ms),
          now_ms,
        } => {
          let touch = Touch {
            sid,
            expires_at_ms: *at_ms,
            now_ms: *now_ms,
          };
          k.touches.push(at, touch, *now_ms)
        }
        Request::Destroy { sid } => k.destroys.push(at, Destroy { sid }, f64::INFINITY),
        Request::Set { .. } | Request::Touch { .. } | Request::Patch { .. } => {}
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

/// The wave answered: each kind's statement, and every request no kind took on its own, at the
/// same time (after the sets' statement, where the backend runs that first).
async fn answer<B: ByKind>(backend: &B, wave: &[Request], kinds: &Kinds<'_>) -> Vec<BackendResult<Reply>> {
  let places = kinds.places();
  let sets = each_or_one(backend, wave, places[1], backend.set_many(&kinds.sets));
  let alone = wave.iter().enumerate().map(|(i, request)| async move {
    match places.iter().any(|at| at.contains(&i)) {
      true => None,
      false => Some(backend.run_one(request).await),
    }
  });
  let rest = futures_util::future::join4(
    each_or_one(backend, wave, places[0], backend.get_many(&kinds.gets)),
    each_or_one(backend, wave, places[2], backend.touch_many(&kinds.touches)),
    each_or_one(backend, wave, places[3], backend.destroy_many(&kinds.destroys)),
    futures_util::future::join_all(alone),
  );
  let (sets, (gets, touches, destroys, mut answers)) = match backend.sets_first() {
    true => (sets.await, rest.await),
    false => futures_util::future::join(sets, rest).await,
  };
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
  use std::sync::Mutex;

  fn get(sid: &str) -> Request {
    Request::Get {
      sid: sid.into(),
      now_ms: 5.0,
    }
  }

  fn set(sid: &str) -> Request {
    Request::Set {
      sid: sid.into(),
      value: "{}".into(),
      expires_at_ms: Some(9.0),
      now_ms: 1.0,
    }
  }

  fn touch(sid: &str, at: Option<f64>) -> Request {
    Request::Touch {
      sid: sid.into(),
      expires_at_ms: at,
      now_ms: 1.0,
    }
  }

  fn destroy(sid: &str) -> Request {
    Request::Destroy { sid: sid.into() }
  }

  #[test]
  fn a_kind_is_combined_from_two_requests_it_accepts_each_sid_once() {
    let wave = [
      get("x"),
      get("a"),
      touch("b", Some(9.0)),
      get("c"),
      touch("d", None),
      get("a"),
    ];
    let kinds = Kinds::of(&wave, |r| r.sid() != "x").unwrap_or_default();
    assert_eq!(kinds.gets.at, [1, 3], "x is refused, d never expires, a is named twice");
    assert_eq!(kinds.gets.sids(), ["a", "c"]);
    assert!(kinds.touches.at.is_empty(), "one touch is not worth a statement");
    assert!(Kinds::of(&[get("a"), touch("b", Some(1.0))], |_| true).is_none());
  }

  /// A backend whose statements answer, per request, the kind and sid (or what a test gave for
  /// a kind), and log when they start and end; a request run alone answers `alone:<sid>`.
  #[derive(Default)]
  struct Echo {
    given: Mutex<Vec<(&'static str, Answers)>>,
    log: Mutex<Vec<String>>,
    sets_first: bool,
  }

  impl Echo {
    fn giving(kind: &'static str, answers: Answers) -> Self {
      Echo {
        given: Mutex::new(vec![(kind, answers)]),
        ..Echo::default()
      }
    }

    fn note(&self, line: String) {
      if let Ok(mut log) = self.log.lock() {
        log.push(line);
      }
    }

    async fn statement(&self, kind: &'static str, sids: Vec<&str>) -> Answers {
      self.note(format!("{kind} start"));
      tokio::task::yield_now().await; // another statement may start meanwhile
      self.note(format!("{kind} end"));
      let given = self.given.lock().ok().and_then(|mut g| {
        let at = g.iter().position(|(k, _)| *k == kind)?;
        Some(g.remove(at).1)
      });
      let text = |sid: &str| Stored {
        value: format!("{kind}:{sid}"),
        expires_at_ms: None,
      };
      given.unwrap_or_else(|| Ok(sids.iter().map(|s| Ok(Reply::Got(Some(text(s))))).collect()))
    }
  }

  #[async_trait]
  impl ByKind for Echo {
    fn sets_first(&self) -> bool {
      self.sets_first
    }
    async fn get_many(&self, gets: &Group<Get<'_>>) -> Answers {
      self.statement("get", gets.sids()).await
    }
    async fn set_many(&self, sets: &Group<Set<'_>>) -> Answers {
      self.statement("set", sets.sids()).await
    }
    async fn touch_many(&self, touches: &Group<Touch<'_>>) -> Answers {
      self.statement("touch", touches.sids()).await
    }
    async fn destroy_many(&self, destroys: &Group<Destroy<'_>>) -> Answers {
      self.statement("destroy", destroys.sids()).await
    }
  }

  #[async_trait]
  impl Backend for Echo {
    fn name(&self) -> &'static str {
      "echo"
    }
    async fn get(&self, sid: &str, _now_ms: f64) -> BackendResult<Option<Stored>> {
      self.note(format!("alone {sid}"));
      Ok(Some(Stored {
        value: format!("alone:{sid}"),
        expires_at_ms: None,
      }))
    }
    async fn set(&self, _: &str, _: &str, _: Option<f64>, _: f64) -> BackendResult<()> {
      Ok(())
    }
    async fn touch(&self, sid: &str, _: Option<f64>, _: f64) -> BackendResult<()> {
      self.note(format!("alone {sid}"));
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

  /// The wave through `echo`: each answer as text, and the log.
  fn run(echo: &Echo, wave: &[Request]) -> (Vec<String>, Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    let answers = runtime.ok().and_then(|r| r.block_on(super::run(echo, wave)));
    let texts = answers
      .unwrap_or_default()
      .into_iter()
      .map(|a| match a {
        Ok(Reply::Got(Some(s))) => s.value,
        Ok(_) => "done".into(),
        Err(e) => format!("{:?}", e.kind),
      })
      .collect();
    (texts, echo.log.lock().map(|l| l.clone()).unwrap_or_default())
  }

  #[test]
  fn each_request_gets_its_own_kinds_answer_and_the_rest_run_alone() {
    let wave = [
      destroy("d1"),
      get("g1"),
      set("s1"),
      touch("t1", Some(9.0)),
      touch("never", None),
      get("g2"),
      destroy("d2"),
      set("s2"),
      touch("t2", Some(9.0)),
    ];
    let (answers, _) = run(&Echo::default(), &wave);
    let expected = [
      "destroy:d1",
      "get:g1",
      "set:s1",
      "touch:t1",
      "done",
      "get:g2",
      "destroy:d2",
      "set:s2",
      "touch:t2",
    ];
    assert_eq!(answers, expected);
  }

  #[test]
  fn a_refused_or_too_large_statement_runs_again_request_by_request() {
    let wave = [get("a"), touch("t", None), get("b")];
    for kind in [ErrorKind::Backend, ErrorKind::TooLarge] {
      let refused = BackendError {
        kind,
        detail: "refused".into(),
      };
      let (answers, log) = run(&Echo::giving("get", Err(refused)), &wave);
      assert_eq!(answers, ["alone:a", "done", "alone:b"]);
      assert_eq!(log.iter().filter(|l| l.starts_with("alone")).count(), 3, "{log:?}");
    }
  }

  #[test]
  fn an_outage_or_a_timeout_fails_the_kind_at_once_and_a_missing_answer_is_an_error() {
    let (answers, log) = run(
      &Echo::giving("get", Err(BackendError::unavailable("down"))),
      &[get("a"), get("b")],
    );
    assert_eq!(
      (answers, log.len()),
      (vec!["Unavailable".into(), "Unavailable".into()], 2)
    );
    let (answers, _) = run(
      &Echo::giving("get", Err(BackendError::timeout("slow"))),
      &[get("a"), get("b")],
    );
    assert_eq!(answers, ["Timeout", "Timeout"]);
    let (answers, _) = run(&Echo::giving("get", Ok(vec![Ok(Reply::Done)])), &[get("a"), get("b")]);
    assert_eq!(answers, ["done", "Backend"]);
  }

  #[test]
  fn the_sets_go_first_where_the_backend_asks_and_beside_the_rest_elsewhere() {
    let wave = [set("s1"), get("g1"), set("s2"), get("g2"), touch("alone", Some(9.0))];
    let first = Echo {
      sets_first: true,
      ..Echo::default()
    };
    let (_, log) = run(&first, &wave);
    assert_eq!(&log[..2], ["set start", "set end"], "{log:?}");
    let (_, log) = run(&Echo::default(), &wave);
    assert_ne!(log.get(1).map(String::as_str), Some("set end"), "{log:?}");
  }
}
