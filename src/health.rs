//! Connection state and the `connect`/`disconnect` events express-session's readiness switch
//! listens to. Rules (docs/design.md, "Outages"): `disconnect` only when the server cannot be
//! reached (an `Unavailable` error, never bad data or a slow request); `connect`
//! only after a `disconnect` this store emitted, never for the first connection. After a
//! `disconnect` a probe loop pings the backend until it answers, so the store comes back by
//! itself even when express-session has stopped sending it requests. Only the probe announces
//! `connect`: during an outage some requests can still succeed (a killed PostgreSQL leaves
//! orphaned backends answering on open connections), and letting those flip the state makes the
//! readiness switch flap. For the same reason a request that started before the last `connect`
//! and failed after it (it waited out the outage) does not announce a new one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::backend::Backend;
use crate::dispatch::Sender;

const PROBE_EVERY: Duration = Duration::from_millis(250);

pub struct Health {
  store_id: u32,
  sender: Sender,
  down: AtomicBool,
  closed: AtomicBool,
  /// How many recoveries this store has announced: a request notes it when it starts.
  recoveries: AtomicU64,
}

impl Health {
  pub fn new(store_id: u32, sender: Sender) -> Arc<Self> {
    Arc::new(Self {
      store_id,
      sender,
      down: AtomicBool::new(false),
      closed: AtomicBool::new(false),
      recoveries: AtomicU64::new(0),
    })
  }

  pub fn is_closed(&self) -> bool {
    self.closed.load(Ordering::Acquire)
  }

  pub fn close(&self) {
    self.closed.store(true, Ordering::Release);
  }

  /// The epoch a request starts in; see `saw_outage`.
  pub fn epoch(&self) -> u64 {
    self.recoveries.load(Ordering::Acquire)
  }

  /// The probe reached the backend: announce the recovery of an outage we had announced.
  fn recovered(&self) {
    self.recoveries.fetch_add(1, Ordering::AcqRel);
    if self.down.swap(false, Ordering::AcqRel) && !self.is_closed() {
      self.sender.event(self.store_id, "connect", String::new());
    }
  }

  /// A request met an outage: announce it once and start probing until the backend is back.
  /// Each probe gets `probe_deadline` (the store's connectTimeout): a black-holed connection must
  /// not hang the probe, or no `connect` would ever follow.
  /// `started_in`: the epoch the failed request started in; one that began before the last
  /// recovery failed of the outage already over, and announces nothing.
  pub fn saw_outage(
    self: &Arc<Self>,
    backend: &Arc<dyn Backend>,
    reason: String,
    probe_deadline: Duration,
    started_in: u64,
  ) {
    if self.is_closed() || started_in != self.epoch() || self.down.swap(true, Ordering::AcqRel) {
      return;
    }
    self.sender.event(self.store_id, "disconnect", reason);
    let health: Weak<Self> = Arc::downgrade(self);
    let backend: Weak<dyn Backend> = Arc::downgrade(backend);
    crate::runtime::spawn(async move {
      loop {
        tokio::time::sleep(PROBE_EVERY).await;
        // Stop when the store is gone or closed: the probe must not keep anything alive.
        let (Some(health), Some(backend)) = (health.upgrade(), backend.upgrade()) else {
          return;
        };
        if health.is_closed() || !health.down.load(Ordering::Acquire) {
          return;
        }
        if matches!(tokio::time::timeout(probe_deadline, backend.ping()).await, Ok(Ok(()))) {
          health.recovered();
          return;
        }
      }
    });
  }
}
