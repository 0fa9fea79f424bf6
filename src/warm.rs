//! Staying awake between requests that follow their answers closely.
//!
//! Waking a sleeping thread costs 20-35 µs on a small virtual machine (an idle virtual CPU halts,
//! and waking it goes through the host), and a request to a server backend wakes the runtime's
//! worker twice (JS hands it the request; the server's answer arrives) where a pure-JS client
//! wakes only the event loop: an app that makes one request at a time paid that on every request
//! (Redis 0.66-0.77x of ioredis one at a time). So once requests sent alone (nothing else in
//! flight) have followed their answers within the spin time (e.g. 200 µs) several times in a row, and
//! the event loop took each answer as soon as it came, the worker stays awake while they keep
//! coming that close, polling for work instead of sleeping, and sleeps again the spin time after
//! the last answer or request. This is KVM's halt polling in small: bounded, and only where it
//! has been paying (an app whose requests arrive far apart never spins).
//!
//! What turns it off: a request that comes later than the spin time, a batch, or an answer the
//! event loop took late (it was busy with other work). The last two mean the app is under load,
//! where a spinning worker takes CPU from the app and the server. A machine with one core never
//! spins: the worker would take it from the event loop it waits for.
//!
//! Off unless `FERROSESSION_STAY_AWAKE_US` sets the spin time: with 200 on by default, HTTP load
//! on 2 cores still lost throughput where express-session saves through RedisStore (write-heavy
//! 0.86x of connect-redis against 1.09x without, same build, 3 rounds), although the busy-loop
//! check kept `session()` + RedisStore whole; one request at a time gained (Redis get 200 B 1.03x
//! of ioredis in a full run, 0.84x without).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// The longest stay `FERROSESSION_STAY_AWAKE_US` may ask for.
const SPIN_NS_MAX: u64 = 10_000_000;
/// Requests in a row that must come within the spin time of their answer before the worker
/// stays awake.
const CLOSE_IN_A_ROW: u32 = 8;
/// An event loop that takes an answer later than this after it was woken was busy, not waiting:
/// an idle one wakes in 20-35 µs here, and one HTTP request keeps it busy for 100 µs or more.
const BUSY_PICKUP_NS: u64 = 100_000;

/// The rhythm of requests and answers, in ns on one monotonic clock (0: none pending).
struct Rhythm {
  /// How long the worker stays awake after the last answer or request; 0: never.
  spin_ns: u64,
  /// When the last answer went to an idle event loop, until the next request comes.
  answered_at: AtomicU64,
  /// The last answer or request.
  active_at: AtomicU64,
  /// Requests in a row that followed their answer within the spin time.
  close: AtomicU32,
}

impl Rhythm {
  const fn new(spin_ns: u64) -> Self {
    Rhythm {
      spin_ns,
      answered_at: AtomicU64::new(0),
      active_at: AtomicU64::new(0),
      close: AtomicU32::new(0),
    }
  }

  /// A request arrived: `alone` when nothing else was in flight (JS sends such a request at once;
  /// under load it groups a turn's requests into a batch, and a busy worker needs no help).
  fn request(&self, now: u64, alone: bool) {
    self.active_at.store(now, Ordering::Release);
    let answered = self.answered_at.swap(0, Ordering::AcqRel);
    if !alone {
      self.close.store(0, Ordering::Release);
      return;
    }
    if answered == 0 {
      return; // the first one, or another before the answer to the last
    }
    if now.saturating_sub(answered) <= self.spin_ns {
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

  /// The event loop took an answer `delay_ns` after it was woken; later than `BUSY_PICKUP_NS`
  /// (it was busy) ends the run of close requests.
  fn picked_up(&self, delay_ns: u64) {
    if delay_ns > BUSY_PICKUP_NS {
      self.close.store(0, Ordering::Release);
    }
  }

  fn paying(&self) -> bool {
    self.spin_ns > 0 && self.close.load(Ordering::Acquire) >= CLOSE_IN_A_ROW
  }

  /// Whether a worker that stays awake should go on doing so.
  fn stay(&self, now: u64) -> bool {
    self.paying() && now.saturating_sub(self.active_at.load(Ordering::Acquire)) <= self.spin_ns
  }
}

/// How long the worker stays awake after the last answer or request: `FERROSESSION_STAY_AWAKE_US`
/// µs (unset or 0: never; 200 suits a sequential client, whose next request came 40-120 µs after
/// its answer here); never on a machine with one core.
fn rhythm() -> &'static Rhythm {
  static RHYTHM: OnceLock<Rhythm> = OnceLock::new();
  RHYTHM.get_or_init(|| {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let asked = std::env::var("FERROSESSION_STAY_AWAKE_US")
      .ok()
      .and_then(|v| v.trim().parse::<u64>().ok())
      .map(|us| us.saturating_mul(1_000).min(SPIN_NS_MAX));
    Rhythm::new(spin_ns(asked, cores))
  })
}

fn spin_ns(asked: Option<u64>, cores: usize) -> u64 {
  if cores < 2 { 0 } else { asked.unwrap_or(0) }
}

/// Whether staying awake is on at all: callers skip their clock reads when it is not.
pub fn enabled() -> bool {
  rhythm().spin_ns > 0
}
static AWAKE: AtomicBool = AtomicBool::new(false);

fn now_ns() -> u64 {
  static START: OnceLock<Instant> = OnceLock::new();
  // +1: 0 means "nothing pending".
  u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

/// A request has arrived from JS: alone (nothing else in flight), or in a batch.
pub fn request_arrived(alone: bool) {
  let r = rhythm();
  if r.spin_ns > 0 {
    r.request(now_ns(), alone);
  }
}

/// The event loop took answers `delay_ns` after it was woken for them.
pub fn picked_up(delay_ns: u64) {
  let r = rhythm();
  if r.spin_ns > 0 {
    r.picked_up(delay_ns);
  }
}

/// An answer has gone to an event loop that was idle: stay awake for the next request if they
/// have been coming close.
pub fn answered() {
  let r = rhythm();
  if r.spin_ns == 0 || !r.answer(now_ns()) || AWAKE.swap(true, Ordering::AcqRel) {
    return;
  }
  let started = crate::runtime::spawn(async {
    // Each yield lets the worker poll its I/O and queue without sleeping, then resumes here.
    while rhythm().stay(now_ns()) {
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
  const SPIN_NS: u64 = 200 * US;

  /// A rhythm after 20 requests that each came 60 µs after its answer (the last answer not yet
  /// given), and the time of the last of them plus 50 µs.
  fn after_twenty_close_requests() -> (Rhythm, u64) {
    let r = Rhythm::new(SPIN_NS);
    let mut now = 1_000 * US;
    for _ in 0..20 {
      r.answer(now);
      now += 60 * US;
      r.request(now, true);
      now += 50 * US;
    }
    (r, now)
  }

  #[test]
  fn stays_awake_only_after_requests_came_close_to_their_answers_in_a_row() {
    let r = Rhythm::new(SPIN_NS);
    let mut now = 1_000 * US;
    for n in 0..CLOSE_IN_A_ROW {
      assert!(!r.answer(now), "awake after {n} close requests");
      now += 80 * US;
      r.request(now, true);
      now += 50 * US;
    }
    assert!(r.answer(now));
    assert!(r.stay(now + 150 * US), "within SPIN of the answer");
    assert!(!r.stay(now + 250 * US), "asleep SPIN after the last answer");
  }

  #[test]
  fn one_request_that_comes_late_turns_it_off() {
    let (r, now) = after_twenty_close_requests();
    assert!(r.answer(now));
    let late = now + 5_000 * US;
    r.request(late, true);
    assert!(!r.answer(late + 50 * US));
    assert!(!r.stay(late + 60 * US));
  }

  #[test]
  fn a_slow_request_in_flight_does_not_keep_it_spinning() {
    let (r, now) = after_twenty_close_requests();
    // The last request is still in flight (no answer yet) 300 µs later: sleep.
    assert!(r.stay(now));
    assert!(!r.stay(now + 300 * US));
  }

  #[test]
  fn a_batch_means_load_and_turns_it_off() {
    let (r, now) = after_twenty_close_requests();
    assert!(r.answer(now));
    r.request(now + 20 * US, false);
    assert!(!r.answer(now + 70 * US));
  }

  #[test]
  fn never_with_staying_awake_turned_off() {
    let r = Rhythm::new(0);
    let mut now = 1_000 * US;
    for _ in 0..20 {
      assert!(!r.answer(now));
      now += US;
      r.request(now, true);
    }
    assert!(!r.stay(now));
  }

  #[test]
  fn requests_already_flowing_count_neither_way() {
    let r = Rhythm::new(SPIN_NS);
    let mut now = 1_000 * US;
    for _ in 0..CLOSE_IN_A_ROW {
      r.answer(now);
      now += 60 * US;
      r.request(now, true);
    }
    // More requests without an answer in between (a burst) leave the run as it was.
    r.request(now + 10_000 * US, true);
    assert!(r.answer(now + 10_050 * US));
  }

  #[test]
  fn an_answer_the_event_loop_took_late_turns_it_off() {
    let (r, now) = after_twenty_close_requests();
    r.picked_up(40 * US); // an idle event loop waking
    assert!(r.answer(now));
    r.picked_up(BUSY_PICKUP_NS + US); // a busy one
    assert!(!r.stay(now + US));
    r.request(now + 60 * US, true);
    assert!(!r.answer(now + 120 * US), "runs of close requests count again from 0");
  }

  #[test]
  fn off_unless_asked_and_never_on_one_core() {
    assert_eq!(spin_ns(None, 2), 0);
    assert_eq!(spin_ns(Some(200_000), 2), 200_000);
    assert_eq!(spin_ns(Some(0), 8), 0);
    assert_eq!(spin_ns(Some(50_000), 2), 50_000);
    assert_eq!(spin_ns(None, 1), 0);
    assert_eq!(spin_ns(Some(50_000), 1), 0);
  }
}
