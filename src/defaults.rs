//! What every store shares — its timeouts and when idle connections are released — and every
//! default, defined once. The N-API layer (`napi_stores.rs`) exports the defaults to JS, which
//! reads them instead of writing the numbers again.

use std::time::Duration;

/// Every callback fires within this many ms unless the store says otherwise (`commandTimeout`).
pub const COMMAND_TIMEOUT_MS: u32 = 3000;
/// Opening a connection gives up after this many ms unless the store says otherwise.
pub const CONNECT_TIMEOUT_MS: u32 = 5000;
/// Connections unused this long are closed (node-pg's `idleTimeoutMillis` default); they reopen
/// on the next request.
pub const IDLE_TIMEOUT_MS: u32 = 10000;
/// Most connections a PostgreSQL or MySQL store's pool opens.
pub const POOL_SIZE: u32 = 10;

/// The settings every backend takes, resolved: defaults applied, never zero where zero would
/// mean "fail at once".
#[derive(Clone, Debug, PartialEq)]
pub struct Common {
  /// A request's deadline, counted from the JS call.
  pub command_timeout: Duration,
  /// Opening a connection (TCP, TLS, handshake) gives up after this.
  pub connect_timeout: Duration,
  /// Idle connections are released after this; `None` keeps them.
  pub idle_timeout: Option<Duration>,
}

impl Common {
  /// From the ms JS passed (absent: the default; an idle timeout of 0 keeps connections).
  pub fn from_ms(command_ms: Option<u32>, connect_ms: Option<u32>, idle_ms: Option<u32>) -> Self {
    let ms = |v: Option<u32>, default: u32| Duration::from_millis(u64::from(v.unwrap_or(default).max(1)));
    Self {
      command_timeout: ms(command_ms, COMMAND_TIMEOUT_MS),
      connect_timeout: ms(connect_ms, CONNECT_TIMEOUT_MS),
      idle_timeout: Some(idle_ms.unwrap_or(IDLE_TIMEOUT_MS))
        .filter(|ms| *ms > 0)
        .map(|ms| Duration::from_millis(u64::from(ms))),
    }
  }
}

impl Default for Common {
  fn default() -> Self {
    Self::from_ms(None, None, None)
  }
}
