//! One error type for every backend. Backends classify what went wrong (`ErrorKind`); the
//! dispatcher adds which backend and which operation, so every JS `Error` says all three.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
  /// The server could not be reached (refused, reset, closed, timed out while connecting, TLS
  /// handshake failed): the only kind that is an outage, so the only one that emits `disconnect`.
  Unavailable,
  /// One node of a cluster could not be reached (the requests for its slots fail until its replica
  /// takes over); the rest of the cluster serves, so this is not an outage of the store.
  NodeDown,
  /// No answer within `commandTimeout` (or no pooled connection within it). Fails that request
  /// alone: the connection it used is discarded, and the next request opens a new one.
  Timeout,
  /// The server answered with an error (bad SQL, wrong type, permissions, ...).
  Backend,
  /// The caller handed us something we refuse before touching storage.
  Invalid,
  /// The request is larger than the server accepts (MySQL's `max_allowed_packet`, Redis's
  /// `proto-max-bulk-len`): refused before it is sent, so it fails alone and is never an outage.
  TooLarge,
  /// A Rust panic, caught before it could cross the N-API boundary.
  Panic,
  /// The store was closed.
  Closed,
  /// The stored value is not text the serializer could ever read (e.g. not UTF-8). The JS side
  /// treats the session as absent and reports it once through `errorLog`; nothing is deleted.
  Unparsable,
}

impl ErrorKind {
  /// The `err.code` JS sees. Never `ENOENT`: express-session treats that as "no session".
  pub fn code(self) -> &'static str {
    match self {
      ErrorKind::Unavailable | ErrorKind::NodeDown => "ESESSION_UNAVAILABLE",
      ErrorKind::Timeout => "ESESSION_TIMEOUT",
      ErrorKind::Backend => "ESESSION_BACKEND",
      ErrorKind::Invalid => "ESESSION_INVALID",
      ErrorKind::TooLarge => "ESESSION_TOO_LARGE",
      ErrorKind::Panic => "ESESSION_PANIC",
      ErrorKind::Closed => "ESESSION_CLOSED",
      ErrorKind::Unparsable => "ESESSION_UNPARSABLE",
    }
  }

  /// Whether this error says the server cannot be reached, which flips the store to
  /// "disconnected". A `disconnect` switches sessions off for every user of the app, so bad data,
  /// a wrong schema, a busy file or one slow request never count (docs/design.md, "Outages").
  pub fn is_outage(self) -> bool {
    matches!(self, ErrorKind::Unavailable)
  }
}

#[derive(Debug, Clone)]
pub struct BackendError {
  pub kind: ErrorKind,
  pub detail: String,
}

impl BackendError {
  pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
    Self {
      kind,
      detail: detail.into(),
    }
  }
  pub fn unavailable(detail: impl fmt::Display) -> Self {
    Self::new(ErrorKind::Unavailable, detail.to_string())
  }
  pub fn backend(detail: impl fmt::Display) -> Self {
    Self::new(ErrorKind::Backend, detail.to_string())
  }
  pub fn invalid(detail: impl Into<String>) -> Self {
    Self::new(ErrorKind::Invalid, detail)
  }
  pub fn timeout(detail: impl Into<String>) -> Self {
    Self::new(ErrorKind::Timeout, detail)
  }
  /// A request of `size` bytes for a server that accepts at most `limit`, and how to raise it.
  pub fn too_large(size: usize, limit: u64, raise: &str) -> Self {
    Self::new(
      ErrorKind::TooLarge,
      format!("the session is {size} bytes, more than the server accepts ({limit} bytes); {raise}"),
    )
  }
  pub fn closed() -> Self {
    Self::new(ErrorKind::Closed, "the store was closed")
  }
  pub fn unparsable(detail: impl Into<String>) -> Self {
    Self::new(ErrorKind::Unparsable, detail)
  }

  /// The message JS shows: `ferrosession redis get: connection refused (os error 111)`.
  pub fn message(&self, backend: &str, op: &str) -> String {
    format!("ferrosession {backend} {op}: {}", self.detail)
  }
}

impl fmt::Display for BackendError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{} ({})", self.detail, self.kind.code())
  }
}

impl std::error::Error for BackendError {}

pub type BackendResult<T> = Result<T, BackendError>;

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn message_names_backend_operation_and_reason() {
    let e = BackendError::unavailable("connection refused");
    assert_eq!(e.message("redis", "get"), "ferrosession redis get: connection refused");
    assert_eq!(e.kind.code(), "ESESSION_UNAVAILABLE");
    assert!(e.kind.is_outage());
    assert!(!BackendError::backend("syntax").kind.is_outage());
    assert!(!BackendError::timeout("slow").kind.is_outage());
    assert!(!BackendError::unparsable("not UTF-8").kind.is_outage());
  }
}
