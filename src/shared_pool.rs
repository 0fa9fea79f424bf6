//! Connection pools shared by every store of this process with the same connection settings.
//!
//! Why: an app (or a test suite, or a framework that builds a store per request) may create
//! thousands of stores and drop them without `close()`. Each kept its own pool, whose idle
//! connections lived until the store was garbage-collected or the idle timeout passed: 5,000 such
//! stores exhausted PostgreSQL ("too many clients") and MySQL. Stores that differ only in their
//! table now share one pool, so the server sees at most `poolSize` connections from them all.
//! The registry holds pools weakly: the last store that lets go of a pool closes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::error::BackendResult;

/// The pools of one backend, by their connection settings.
pub struct SharedPools<T> {
  pools: Mutex<HashMap<String, Weak<T>>>,
}

impl<T> Default for SharedPools<T> {
  fn default() -> Self {
    Self {
      pools: Mutex::new(HashMap::new()),
    }
  }
}

impl<T> SharedPools<T> {
  /// The live pool for `settings` that `usable` accepts (one that was closed is not), or a new
  /// one from `build`, registered for the next store with the same settings.
  pub fn get_or_build(
    &self,
    settings: String,
    usable: impl Fn(&T) -> bool,
    build: impl FnOnce() -> BackendResult<T>,
  ) -> BackendResult<Arc<T>> {
    let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
    pools.retain(|_, pool| pool.strong_count() > 0);
    if let Some(pool) = pools.get(&settings).and_then(Weak::upgrade).filter(|p| usable(p)) {
      return Ok(pool);
    }
    let pool = Arc::new(build()?);
    pools.insert(settings, Arc::downgrade(&pool));
    Ok(pool)
  }
}

/// Whether `pool` is held by this store alone, so that closing the store may close it.
pub fn only_user<T>(pool: &Arc<T>) -> bool {
  Arc::strong_count(pool) == 1
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::{AtomicBool, Ordering};

  #[test]
  fn the_same_settings_share_one_pool_until_it_is_dropped_or_closed() {
    let pools: SharedPools<AtomicBool> = SharedPools::default();
    let open = |p: &AtomicBool| !p.load(Ordering::Relaxed);
    let build = || Ok(AtomicBool::new(false));
    let a = pools
      .get_or_build("x".into(), open, build)
      .unwrap_or_else(|_| panic!("built"));
    let b = pools
      .get_or_build("x".into(), open, build)
      .unwrap_or_else(|_| panic!("built"));
    let c = pools
      .get_or_build("y".into(), open, build)
      .unwrap_or_else(|_| panic!("built"));
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &c));
    assert!(!only_user(&a));
    drop(b);
    assert!(only_user(&a));
    a.store(true, Ordering::Relaxed); // closed: the next store gets a new pool
    let d = pools
      .get_or_build("x".into(), open, build)
      .unwrap_or_else(|_| panic!("built"));
    assert!(!Arc::ptr_eq(&a, &d));
  }
}
