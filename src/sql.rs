//! What every SQL backend shares: identifier quoting (any name works, none injects) and the
//! set of statements, one per store operation, each backend writes in its own dialect.

use crate::error::{BackendError, BackendResult};

/// One statement per store operation, built once per store from its quoted table name.
pub struct Statements {
  pub get: String,
  pub set: String,
  pub touch: String,
  pub destroy: String,
  pub ids: String,
  pub all: String,
  pub length: String,
  pub clear: String,
  pub prune: String,
}

/// PostgreSQL's (and SQLite's) limit on identifier length, in bytes.
const MAX_IDENT_BYTES: usize = 63;

/// `"name"` with inner quotes doubled. NUL and empty names are refused: the server would either
/// reject or truncate them, and we would rather say so before touching anything.
pub fn quote(name: &str) -> BackendResult<String> {
  if name.is_empty() {
    return Err(BackendError::invalid(
      "an identifier (schema or table name) cannot be empty",
    ));
  }
  if name.contains('\0') {
    return Err(BackendError::invalid(format!(
      "identifier {name:?} contains a NUL character"
    )));
  }
  if name.len() > MAX_IDENT_BYTES {
    return Err(BackendError::invalid(format!(
      "identifier {name:?} is longer than {MAX_IDENT_BYTES} bytes and would be truncated by the server"
    )));
  }
  Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A name derived from a table name (`<table>_pkey`), cut to the identifier limit on a character
/// boundary so two derived names never silently collide after server-side truncation.
pub fn derived(table: &str, suffix: &str, prefix: &str) -> String {
  let budget = MAX_IDENT_BYTES.saturating_sub(suffix.len() + prefix.len());
  let mut cut = table.len().min(budget);
  while !table.is_char_boundary(cut) {
    cut -= 1;
  }
  format!("{prefix}{}{suffix}", &table[..cut])
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn quotes_and_doubles_inner_quotes() {
    assert_eq!(quote("session").ok().as_deref(), Some("\"session\""));
    assert_eq!(
      quote("a\"; DROP TABLE x; --").ok().as_deref(),
      Some("\"a\"\"; DROP TABLE x; --\"")
    );
  }

  #[test]
  fn refuses_empty_nul_and_overlong_names() {
    assert!(quote("").is_err());
    assert!(quote("a\0b").is_err());
    assert!(quote(&"x".repeat(64)).is_err());
    assert!(quote(&"x".repeat(63)).is_ok());
  }

  #[test]
  fn derived_names_fit_the_limit_on_char_boundaries() {
    assert_eq!(derived("session", "_pkey", ""), "session_pkey");
    assert_eq!(derived("session", "_expire", "IDX_"), "IDX_session_expire");
    let long = "é".repeat(40);
    let name = derived(&long, "_pkey", "");
    assert!(name.len() <= 63);
    assert!(name.ends_with("_pkey"));
  }
}
