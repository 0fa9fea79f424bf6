//! What every SQL backend shares: identifier quoting (any name works, none injects) and the
//! set of statements, one per store operation, each backend writes in its own dialect.

use crate::error::{BackendError, BackendResult};

/// One statement per store operation, built once per store from its quoted table name.
pub struct Statements {
  pub get: String,
  pub set: String,
  /// A merged save's conditional write: the new text and expiry, only while the stored text is
  /// still what the merge read (compared as text, byte for byte).
  pub set_if_unchanged: String,
  pub touch: String,
  pub destroy: String,
  pub ids: String,
  pub all: String,
  pub length: String,
  pub clear: String,
  pub prune: String,
}

/// Where a name is quoted: PostgreSQL and SQLite double-quote and count bytes; MySQL and MariaDB
/// backtick-quote and count characters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dialect {
  Postgres,
  MySql,
}

impl Dialect {
  /// The longest identifier the server keeps as given (PostgreSQL truncates at 63 bytes, MySQL
  /// refuses more than 64 characters).
  fn limit(self) -> usize {
    match self {
      Dialect::Postgres => 63,
      Dialect::MySql => 64,
    }
  }

  fn length(self, name: &str) -> usize {
    match self {
      Dialect::Postgres => name.len(),
      Dialect::MySql => name.chars().count(),
    }
  }

  fn unit(self) -> &'static str {
    match self {
      Dialect::Postgres => "bytes",
      Dialect::MySql => "characters",
    }
  }
}

/// `"name"` with inner quotes doubled. NUL and empty names are refused: the server would either
/// reject or truncate them, and we would rather say so before touching anything.
pub fn quote(name: &str) -> BackendResult<String> {
  quote_in(Dialect::Postgres, name)
}

/// `name` quoted for `dialect`, inner quote characters doubled; refused (with the reason) when the
/// server would reject, truncate or alter it.
pub fn quote_in(dialect: Dialect, name: &str) -> BackendResult<String> {
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
  let limit = dialect.limit();
  if dialect.length(name) > limit {
    return Err(BackendError::invalid(format!(
      "identifier {name:?} is longer than {limit} {} and would be truncated or refused by the server",
      dialect.unit()
    )));
  }
  if dialect == Dialect::MySql {
    // MySQL refuses names ending in a space and characters outside the BMP (utf8mb3 identifiers).
    if name.ends_with(' ') {
      return Err(BackendError::invalid(format!(
        "identifier {name:?} ends with a space, which MySQL does not allow"
      )));
    }
    if name.chars().any(|c| c as u32 > 0xFFFF) {
      return Err(BackendError::invalid(format!(
        "identifier {name:?} has a character MySQL identifiers cannot hold (outside the Basic Multilingual Plane)"
      )));
    }
    return Ok(format!("`{}`", name.replace('`', "``")));
  }
  Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A name derived from a table name (`<table>_pkey`), cut to the identifier limit on a character
/// boundary so two derived names never silently collide after server-side truncation.
pub fn derived(table: &str, suffix: &str, prefix: &str) -> String {
  derived_in(Dialect::Postgres, table, suffix, prefix)
}

pub fn derived_in(dialect: Dialect, table: &str, suffix: &str, prefix: &str) -> String {
  let budget = dialect.limit().saturating_sub(suffix.len() + prefix.len());
  let mut cut = String::new();
  for c in table.chars() {
    let mut next = cut.clone();
    next.push(c);
    if dialect.length(&next) > budget {
      break;
    }
    cut = next;
  }
  format!("{prefix}{cut}{suffix}")
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
  fn mysql_names_are_backticked_and_counted_in_characters() {
    assert_eq!(
      quote_in(Dialect::MySql, "we`ird \"x").ok().as_deref(),
      Some("`we``ird \"x`")
    );
    assert!(quote_in(Dialect::MySql, &"é".repeat(64)).is_ok());
    assert!(quote_in(Dialect::MySql, &"é".repeat(65)).is_err());
    assert!(quote_in(Dialect::MySql, "trailing ").is_err());
    assert!(quote_in(Dialect::MySql, "emoji😀").is_err());
    assert!(quote_in(Dialect::MySql, "").is_err());
    let name = derived_in(Dialect::MySql, &"é".repeat(64), "_expired_index", "");
    assert_eq!(name.chars().count(), 64);
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
