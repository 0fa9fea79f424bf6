//! Staying awake between requests that follow their answers closely.
//!
//! Waking a sleeping thread costs 20-35 µs on a small virtual machine (an idle virtual CPU halts,
//! and waking it goes through the host), and a request to a server backend wakes the runtime's
//! worker twice (JS hands it the request; the server's answer arrives) where a pure-JS client wakes
//! only the event loop: an app that makes one request at a time paid that on every request (Redis
//! 0.69-0.86x of ioredis one at a time). So once requests have followed their answers within
//! `SPIN` several times in a row, the worker stays awake while requests keep coming that close,
//! polling for work instead of sleeping, and goes to sleep `SPIN` after the last answer or request;
//! the first request that comes later than that turns it off. This is KVM's halt polling in small:
//! bounded, and only where it has been paying (an app whose requests arrive far apart never spins).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// How long (ns) the worker stays awake after the last answer or request: a sequential client's
/// next request came 40-120 µs after its answer here (JS wakes, runs the callback, sends again).
const SPIN_NS: u64 = 200_000;
/// Requests in a row that must come within `SPIN_NS` of an answer before the worker stays awake.
const CLOSE_IN_A_ROW: u32 = 8;

/// The rhythm of requests and answers, in ns on one monotonic clock (0: none pending).
struct Rhythm {
  /// When the last answer went to an idle event loop, until the next request comes.
  answered_at: AtomicU64,
  /// The last answer or request.
  active_at: AtomicU64,
  /// Requests in a row that followed their answer within `SPIN_NS`.
  close: AtomicU32,
}

impl Rhythm {
  const fn new() -> Self {
    Rhythm {
      answered_at: AtomicU64::new(0),
      active_at: AtomicU64::new(0),
      close: AtomicU32::new(0),
    }
  }

  fn request(&self, now: u64) {
    self.active_at.store(now, Ordering::Release);
    let answered = self.answered_at.swap(0, Ordering::AcqRel);
    if answered == 0 {
      return; // requests already flowing, or the first one
    }
    if now.saturating_sub(answered) <= SPIN_NS {
      let _ = self
        .close
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_add(1)));
    } else {
      self.close.store(0, Ordering::Release);
    }
  }

  /// Records an answer; true when the worker should stay awake for the next request.
  fn answer(&self, now: u64) -> bool {
    self.answered_at.store(now, Ordering::Release);
    self.active_at.store(now, Ordering::Release);
    self.paying()
  }

  fn paying(&self) -> bool {
    self.close.load(Ordering::Acquire) >= CLOSE_IN_A_ROW
  }

  /// Whether a worker that stays awake should go on doing so.
  fn stay(&self, now: u64) -> bool {
    self.paying() && now.saturating_sub(self.active_at.load(Ordering::Acquire)) <= SPIN_NS
  }
}

static RHYTHM: Rhythm = Rhythm::new();
static AWAKE: AtomicBool = AtomicBool::new(false);

fn now_ns() -> u64 {
  static START: OnceLock<Instant> = OnceLock::new();
  // +1: 0 means "nothing pending".
  u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

/// A request has arrived from JS.
pub fn request_arrived() {
  RHYTHM.request(now_ns());
}

/// An answer has gone to an event loop that was idle: stay awake for the next request if they
/// have been coming close.
pub fn answered() {
  if !RHYTHM.answer(now_ns()) || AWAKE.swap(true, Ordering::AcqRel) {
    return;
  }
  let started = crate::runtime::spawn(async {
    // Each yield lets the worker poll its I/O and queue without sleeping, then resumes here.
    while RHYTHM.stay(now_ns()) {
      tokio::task::yield_now().await;
    }
    AWAKE.store(false, Ordering::Release);
  });
  if !started {
    AWAKE.store(false, Ordering::Release);
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  const US: u64 = 1_000;

  #[test]
  fn stays_awake_only_after_requests_came_close_to_their_answers_in_a_row() {
    let r = Rhythm::new();
    let mut now = 1_000 * US;
    for n in 0..CLOSE_IN_A_ROW {
      assert!(!r.answer(now), "awake after {n} close requests");
      now += 80 * US;
      r.request(now);
      now += 50 * US;
    }
    assert!(r.answer(now));
    assert!(r.stay(now + 150 * US), "within SPIN of the answer");
    assert!(!r.stay(now + 250 * US), "asleep SPIN after the last answer");
  }

  #[test]
  fn one_request_that_comes_late_turns_it_off() {
    let r = Rhythm::new();
    let mut now = 1_000 * US;
    for _ in 0..20 {
      r.answer(now);
      now += 60 * US;
      r.request(now);
      now += 50 * US;
    }
    assert!(r.answer(now));
    now += 5_000 * US;
    r.request(now);
    assert!(!r.answer(now + 50 * US));
    assert!(!r.stay(now + 60 * US));
  }

  #[test]
  fn a_slow_request_in_flight_does_not_keep_it_spinning() {
    let r = Rhythm::new();
    let mut now = 1_000 * US;
    for _ in 0..20 {
      r.answer(now);
      now += 60 * US;
      r.request(now);
      now += 50 * US;
    }
    // The last request is still in flight (no answer yet) 300 µs later: sleep.
    assert!(r.stay(now));
    assert!(!r.stay(now + 300 * US));
  }

  #[test]
  fn requests_already_flowing_count_neither_way() {
    let r = Rhythm::new();
    let mut now = 1_000 * US;
    for _ in 0..CLOSE_IN_A_ROW {
      r.answer(now);
      now += 60 * US;
      r.request(now);
    }
    // More requests without an answer in between (a burst) leave the run as it was.
    r.request(now + 10_000 * US);
    assert!(r.answer(now + 10_050 * US));
  }
}
