//! Call order per session id: requests for one sid take effect in the order JS made them, whether
//! they travel alone or in a batch; requests for different sids run together (docs/design.md,
//! "Call order per session id").
//!
//! Each request takes its place in its sid's line synchronously, at the native call (so the order
//! is the JS call order, not the order in which tasks happen to be polled), and waits for the one
//! before it to finish before it touches storage. A batch is cut into waves in which no sid
//! appears twice (`waves`), so no backend ever sees two requests for one sid at once and none of
//! them needs an ordering rule of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::Shared;
use tokio::sync::oneshot;

/// The line of every sid with a request in flight: the last request's "finished" signal.
#[derive(Default)]
pub struct SidOrder {
  /// Keyed by the same `Arc<str>` the places hold: one allocation per request for its sid.
  tails: Mutex<HashMap<Arc<str>, Tail>>,
}

struct Tail {
  ticket: u64,
  finished: Shared<oneshot::Receiver<()>>,
}

/// A request's place in its sid's line. Dropping it (the request finished, failed, timed out or
/// panicked) lets the next request for the sid go.
pub struct Place {
  order: Arc<SidOrder>,
  sid: Arc<str>,
  ticket: u64,
  before: Option<Shared<oneshot::Receiver<()>>>,
  _finished: oneshot::Sender<()>,
}

impl SidOrder {
  /// Takes the next place in `sid`'s line. Call it synchronously, in JS call order.
  pub fn enter(self: &Arc<Self>, sid: &str) -> Place {
    let (finished, signal) = oneshot::channel();
    let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
    let ticket = next_ticket();
    let tail = Tail {
      ticket,
      finished: signal.shared(),
    };
    let (sid, before) = match tails.get_key_value(sid).map(|(key, _)| key.clone()) {
      Some(key) => {
        let before = tails.insert(key.clone(), tail).map(|t| t.finished);
        (key, before)
      }
      None => {
        let key: Arc<str> = Arc::from(sid);
        tails.insert(key.clone(), tail);
        (key, None)
      }
    };
    Place {
      order: self.clone(),
      sid,
      ticket,
      before,
      _finished: finished,
    }
  }

  #[cfg(test)]
  fn in_flight(&self) -> usize {
    self.tails.lock().unwrap_or_else(|p| p.into_inner()).len()
  }
}

impl Place {
  /// Resolves once the request before this one for the same sid has finished (at once if none).
  pub async fn wait(&mut self) {
    if let Some(before) = &self.before {
      let _ = before.clone().await; // a dropped sender is "finished" too
      self.before = None;
    }
  }
}

impl Drop for Place {
  fn drop(&mut self) {
    let mut tails = self.order.tails.lock().unwrap_or_else(|p| p.into_inner());
    // Forget the line once its last request is done; a later request already replaced the tail.
    if tails.get(&*self.sid).is_some_and(|t| t.ticket == self.ticket) {
      tails.remove(&*self.sid);
    }
  }
}

fn next_ticket() -> u64 {
  use std::sync::atomic::{AtomicU64, Ordering};
  static NEXT: AtomicU64 = AtomicU64::new(0);
  NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The batch's requests (by index) in waves: the n-th request for a sid goes in wave n, so each
/// wave names every sid at most once and keeps the batch's order within a sid.
pub fn waves<'a>(sids: impl Iterator<Item = &'a str>) -> Vec<Vec<usize>> {
  let mut seen: HashMap<&str, usize> = HashMap::new();
  let mut waves: Vec<Vec<usize>> = Vec::new();
  for (i, sid) in sids.enumerate() {
    let n = seen.entry(sid).or_insert(0);
    if waves.len() <= *n {
      waves.push(Vec::new());
    }
    waves[*n].push(i);
    *n += 1;
  }
  waves
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_sid_named_again_goes_in_the_next_wave() {
    let sids = ["a", "b", "a", "c", "a", "b"];
    assert_eq!(waves(sids.iter().copied()), vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
    assert!(waves(std::iter::empty()).is_empty());
  }

  #[test]
  fn each_request_waits_for_the_one_before_it_on_its_sid_only() {
    let order = Arc::new(SidOrder::default());
    let first = order.enter("a");
    let mut second = order.enter("a");
    let mut other = order.enter("b");
    assert!(other.wait().now_or_never().is_some(), "another sid does not wait");
    assert!(second.wait().now_or_never().is_none(), "the same sid waits");
    drop(first);
    let mut second = order.enter("a"); // a third request: waits for the second
    assert!(second.wait().now_or_never().is_none());
    drop(other);
    assert_eq!(order.in_flight(), 1);
  }

  #[test]
  fn the_line_is_forgotten_when_its_last_request_is_done() {
    let order = Arc::new(SidOrder::default());
    let a = order.enter("a");
    let b = order.enter("a");
    drop(a);
    assert_eq!(order.in_flight(), 1);
    drop(b);
    assert_eq!(order.in_flight(), 0);
  }
}
