//! An in-process store that is safe in production: bounded by entries (least recently used
//! evicted first, sessions never changed since they were created before any other) and
//! optionally by bytes, with expiry from the cookie. No I/O, so it runs inline
//! on the calling thread instead of hopping to the runtime.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::backend::{Backend, Stored};
use crate::error::{BackendError, BackendResult};

/// How much a memory store keeps.
pub struct MemoryConfig {
  /// Most sessions kept; the least recently used go first. Absent: no entry limit.
  pub max: Option<u32>,
  /// Most bytes of session ids plus serialised sessions kept. Absent: no byte limit.
  pub max_bytes: Option<f64>,
}

struct Entry {
  value: String,
  expires_at_ms: f64,
  last_use: u64,
  /// Written again with another value after it was created (a login, a cart): such sessions are
  /// evicted only once no untouched one is left, so a flood of fresh anonymous sessions
  /// (`saveUninitialized: true`) cannot push logged-in users out.
  changed: bool,
}

#[derive(Default)]
struct Lru {
  entries: HashMap<String, Entry>,
  /// last_use tick -> sid, the oldest first: sessions never changed since their creation, and
  /// the changed ones.
  fresh: BTreeMap<u64, String>,
  order: BTreeMap<u64, String>,
  tick: u64,
  bytes: usize,
}

impl Lru {
  fn bump(&mut self, sid: &str) {
    self.tick += 1;
    let tick = self.tick;
    if let Some(e) = self.entries.get_mut(sid) {
      // Move the sid to its new place in the order, reusing its string: no allocation per read.
      let order = if e.changed { &mut self.order } else { &mut self.fresh };
      let key = order.remove(&e.last_use).unwrap_or_else(|| sid.to_string());
      e.last_use = tick;
      order.insert(tick, key);
    }
  }

  fn remove(&mut self, sid: &str) -> Option<Entry> {
    let e = self.entries.remove(sid)?;
    let order = if e.changed { &mut self.order } else { &mut self.fresh };
    order.remove(&e.last_use);
    self.bytes -= sid.len() + e.value.len();
    Some(e)
  }

  fn insert(&mut self, sid: String, value: String, expires_at_ms: f64) {
    let changed = self.remove(&sid).is_some_and(|old| old.changed || old.value != value);
    self.tick += 1;
    self.bytes += sid.len() + value.len();
    let order = if changed { &mut self.order } else { &mut self.fresh };
    order.insert(self.tick, sid.clone());
    self.entries.insert(
      sid,
      Entry {
        value,
        expires_at_ms,
        last_use: self.tick,
        changed,
      },
    );
  }

  /// The least recently used session that was never changed, else the least recently used;
  /// never `keep`, the one just written (a new login's session must not vanish at once when
  /// every other slot holds a changed session).
  fn evict_oldest(&mut self, keep: &str) -> bool {
    let from_fresh = self.fresh.first_key_value().is_some_and(|(_, sid)| sid != keep);
    let popped = if from_fresh {
      self.fresh.pop_first()
    } else {
      self.order.pop_first()
    };
    let Some((_, sid)) = popped else {
      return false;
    };
    if let Some(e) = self.entries.remove(&sid) {
      self.bytes -= sid.len() + e.value.len();
    }
    true
  }

  fn live(&self, now: f64) -> impl Iterator<Item = (&String, &Entry)> {
    self.entries.iter().filter(move |(_, e)| e.expires_at_ms > now)
  }
}

pub struct MemoryBackend {
  lru: Mutex<Lru>,
  max: Option<usize>,
  max_bytes: Option<usize>,
}

impl MemoryBackend {
  pub fn new(o: MemoryConfig) -> BackendResult<Self> {
    let max_bytes = match o.max_bytes {
      Some(b) if !(b.is_finite() && b >= 1.0) => {
        return Err(BackendError::invalid("maxBytes must be a positive number"));
      }
      Some(b) => Some(b as usize),
      None => None,
    };
    Ok(Self {
      lru: Mutex::new(Lru::default()),
      max: o.max.map(|m| m.max(1) as usize),
      max_bytes,
    })
  }

  /// A panic while holding the lock leaves the map consistent (each step is complete), so a
  /// poisoned lock is taken over rather than failing every later request.
  fn lock(&self) -> MutexGuard<'_, Lru> {
    self.lru.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
  }

  fn write(&self, sid: &str, value: &str, expires_at_ms: Option<f64>) -> BackendResult<()> {
    let size = sid.len() + value.len();
    if self.max_bytes.is_some_and(|limit| size > limit) {
      return Err(BackendError::invalid(format!(
        "the session is {size} bytes, more than maxBytes allows in total"
      )));
    }
    let mut lru = self.lock();
    lru.insert(
      sid.to_string(),
      value.to_string(),
      expires_at_ms.unwrap_or(f64::INFINITY),
    );
    while self.max.is_some_and(|m| lru.entries.len() > m) || self.max_bytes.is_some_and(|m| lru.bytes > m) {
      if !lru.evict_oldest(sid) {
        break;
      }
    }
    Ok(())
  }
}

#[async_trait]
impl Backend for MemoryBackend {
  fn name(&self) -> &'static str {
    "memory"
  }

  fn runs_inline(&self) -> bool {
    true
  }

  async fn get(&self, sid: &str, now: f64) -> BackendResult<Option<Stored>> {
    let mut lru = self.lock();
    let value = match lru.entries.get(sid) {
      Some(e) if e.expires_at_ms > now => {
        let expires_at_ms = e.expires_at_ms.is_finite().then_some(e.expires_at_ms);
        Some(Stored {
          value: e.value.clone(),
          expires_at_ms,
        })
      }
      Some(_) => {
        lru.remove(sid); // expired: removed on access
        return Ok(None);
      }
      None => None,
    };
    if value.is_some() {
      lru.bump(sid);
    }
    Ok(value)
  }

  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, _now: f64) -> BackendResult<()> {
    self.write(sid, value, expires_at_ms)
  }

  async fn touch(&self, sid: &str, expires_at_ms: Option<f64>, now: f64) -> BackendResult<()> {
    let mut lru = self.lock();
    if let Some(e) = lru.entries.get_mut(sid)
      && e.expires_at_ms > now
    {
      e.expires_at_ms = expires_at_ms.unwrap_or(f64::INFINITY);
      lru.bump(sid);
    }
    Ok(())
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    self.lock().remove(sid);
    Ok(())
  }

  async fn ids(&self, now: f64) -> BackendResult<Vec<String>> {
    Ok(self.lock().live(now).map(|(sid, _)| sid.clone()).collect())
  }

  async fn all(&self, now: f64) -> BackendResult<Vec<(String, Option<String>)>> {
    Ok(
      self
        .lock()
        .live(now)
        .map(|(sid, e)| (sid.clone(), Some(e.value.clone())))
        .collect(),
    )
  }

  async fn length(&self, now: f64) -> BackendResult<u64> {
    Ok(self.lock().live(now).count() as u64)
  }

  async fn clear(&self) -> BackendResult<u64> {
    let mut lru = self.lock();
    let n = lru.entries.len() as u64;
    *lru = Lru::default();
    Ok(n)
  }

  async fn prune(&self, now: f64) -> BackendResult<Option<u64>> {
    let mut lru = self.lock();
    let dead: Vec<String> = lru
      .entries
      .iter()
      .filter(|(_, e)| e.expires_at_ms <= now)
      .map(|(s, _)| s.clone())
      .collect();
    for sid in &dead {
      lru.remove(sid);
    }
    Ok(Some(dead.len() as u64))
  }

  async fn ping(&self) -> BackendResult<()> {
    Ok(())
  }

  async fn close(&self) {
    // Later requests are refused before they get here (the store is marked closed first).
    *self.lock() = Lru::default();
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use futures_util::FutureExt;

  const NOW: f64 = 1_000_000.0;

  fn store(max: Option<u32>, max_bytes: Option<f64>) -> MemoryBackend {
    MemoryBackend::new(MemoryConfig { max, max_bytes }).unwrap_or_else(|e| panic!("{}", e.detail))
  }
  fn later() -> Option<f64> {
    Some(NOW + 60_000.0)
  }
  /// Runs an inline future, failing the test if it errs or does not finish at once.
  fn ok<T>(f: impl std::future::Future<Output = BackendResult<T>>) -> T {
    match f.now_or_never() {
      Some(Ok(v)) => v,
      Some(Err(e)) => panic!("{}", e.detail),
      None => panic!("an inline backend must not wait"),
    }
  }

  #[test]
  fn a_flood_of_new_sessions_evicts_untouched_ones_before_a_changed_one() {
    let m = store(Some(3), None);
    ok(m.set("user", r#"{"n":0}"#, later(), NOW));
    ok(m.set("user", r#"{"n":0,"login":"zoe"}"#, later(), NOW)); // changed: a login
    ok(m.set("same", "{}", later(), NOW));
    ok(m.set("same", "{}", later(), NOW)); // written again unchanged: still untouched
    for i in 0..1000 {
      ok(m.set(&format!("anon{i}"), "{}", later(), NOW));
    }
    let mut ids = ok(m.ids(NOW));
    ids.sort();
    assert_eq!(ids, ["anon998", "anon999", "user"]);
    // Once only changed sessions are left, the least recently used of them goes.
    ok(m.set("anon998", "{\"x\":1}", later(), NOW));
    ok(m.set("anon999", "{\"x\":1}", later(), NOW));
    ok(m.set("last", "{}", later(), NOW));
    ok(m.set("last2", "{}", later(), NOW));
    let mut ids = ok(m.ids(NOW));
    ids.sort();
    assert_eq!(ids, ["anon998", "anon999", "last2"]);
  }

  #[test]
  fn evicts_the_least_recently_used_beyond_max() {
    let m = store(Some(2), None);
    for sid in ["a", "b"] {
      ok(m.set(sid, "{}", later(), NOW));
    }
    assert_eq!(ok(m.get("a", NOW)).map(|s| s.value).as_deref(), Some("{}")); // a is now recent
    ok(m.set("c", "{}", later(), NOW));
    let mut ids = ok(m.ids(NOW));
    ids.sort();
    assert_eq!(ids, ["a", "c"]);
  }

  #[test]
  fn stays_within_max_bytes_and_refuses_a_session_larger_than_it() {
    let m = store(None, Some(100.0));
    for i in 0..50 {
      ok(m.set(&format!("s{i}"), &"x".repeat(20), later(), NOW));
    }
    assert!(m.lock().bytes <= 100);
    assert!(
      m.set("big", &"x".repeat(200), later(), NOW)
        .now_or_never()
        .is_some_and(|r| r.is_err())
    );
  }

  #[test]
  fn touch_never_recreates_and_expired_entries_are_gone() {
    let m = store(None, None);
    ok(m.touch("ghost", later(), NOW));
    assert_eq!(m.lock().entries.len(), 0);
    ok(m.set("old", "{}", Some(NOW - 1.0), NOW));
    assert!(ok(m.get("old", NOW)).is_none());
    assert_eq!(m.lock().entries.len(), 0);
  }

  #[test]
  fn expiry_follows_the_clock_it_is_given() {
    let m = store(None, None);
    ok(m.set("s", "{}", Some(NOW + 1000.0), NOW));
    assert_eq!(
      ok(m.get("s", NOW + 999.0)).and_then(|s| s.expires_at_ms),
      Some(NOW + 1000.0)
    );
    ok(m.touch("s", Some(NOW + 5000.0), NOW + 999.0)); // moves the expiry, keeps the text
    assert_eq!(
      ok(m.get("s", NOW + 1000.0)).and_then(|s| s.expires_at_ms),
      Some(NOW + 5000.0)
    );
    ok(m.set("s", "{}", Some(NOW + 1000.0), NOW));
    assert_eq!(ok(m.length(NOW + 1000.0)), 0);
    assert_eq!(ok(m.prune(NOW + 1000.0)), Some(1));
  }
}
