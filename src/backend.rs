//! The one trait every storage backend implements. Backends store opaque strings (the session as
//! JS serialised it) and never parse them; expiry arrives already computed by the JS side.

use async_trait::async_trait;

use crate::error::BackendResult;

/// When a session expires, computed once in JS from `cookie.expires` or the store's `ttl`.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
  /// Absolute expiry, epoch milliseconds (SQL backends store `ceil(at_ms / 1000)` seconds).
  pub at_ms: f64,
  /// Whole seconds from now, rounded up, as connect-redis computes them for `SET ... EX`.
  pub ttl_secs: i64,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
  /// Short name used in every error message: `redis`, `postgres`, `sqlite`, `memory`.
  fn name(&self) -> &'static str;

  /// True for backends that never wait (no I/O): their requests run on the calling thread,
  /// skipping the hop to the runtime. Their answers still go through the dispatcher.
  fn runs_inline(&self) -> bool {
    false
  }

  /// The stored value of an unexpired session, or `None`.
  async fn get(&self, sid: &str) -> BackendResult<Option<String>>;

  /// Insert or replace. `expiry: None` means "never expires" (connect-redis's `disableTTL`).
  async fn set(&self, sid: &str, value: &str, expiry: Option<Expiry>) -> BackendResult<()>;

  /// Rewrite value and expiry only if the session still exists: never recreates a destroyed one.
  async fn touch(&self, sid: &str, value: &str, expiry: Option<Expiry>) -> BackendResult<()>;

  /// Remove; an unknown sid is not an error.
  async fn destroy(&self, sid: &str) -> BackendResult<()>;

  /// Every stored sid of this store (its prefix or table).
  async fn ids(&self) -> BackendResult<Vec<String>>;

  /// Every stored session as `(sid, value)` pairs.
  async fn all(&self) -> BackendResult<Vec<(String, String)>>;

  /// How many sessions are stored.
  async fn length(&self) -> BackendResult<u64>;

  /// Remove every session of this store; returns how many were removed.
  async fn clear(&self) -> BackendResult<u64>;

  /// Remove expired sessions where the backend does not do it itself. `Ok(None)` means another
  /// process is pruning right now and this call left it to them.
  async fn prune(&self) -> BackendResult<Option<u64>> {
    Ok(Some(0))
  }

  /// A cheap round trip that proves the server accepts work again, used to notice that an
  /// unavailable backend is back: it must not succeed on a connection left over from before.
  async fn ping(&self) -> BackendResult<()>;

  /// Release connections. Later calls may reconnect; the JS side stops calling after close().
  async fn close(&self);
}
