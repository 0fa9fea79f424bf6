//! Timeout defaults, defined once: every backend uses these, and JS reads the exported constants
//! instead of writing the numbers again.

use std::time::Duration;

use napi_derive::napi;

/// Every callback fires within this many ms unless the store says otherwise (`commandTimeout`).
#[napi]
pub const DEFAULT_COMMAND_TIMEOUT_MS: u32 = 3000;
/// Opening a connection gives up after this many ms unless the store says otherwise.
#[napi]
pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 5000;

/// `commandTimeout` as given, or the default; never zero.
pub fn command_timeout(ms: Option<u32>) -> Duration {
  Duration::from_millis(u64::from(ms.unwrap_or(DEFAULT_COMMAND_TIMEOUT_MS).max(1)))
}

/// `connectTimeout` as given, or the default; never zero.
pub fn connect_timeout(ms: Option<u32>) -> Duration {
  Duration::from_millis(u64::from(ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS).max(1)))
}
