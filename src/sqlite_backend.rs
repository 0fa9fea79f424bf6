//! SQLite, compiled in, in connect-session-knex's layout: table `sessions` with `sid`
//! varchar(255) primary key, `sess` JSON text and `expired` as `Date#toISOString` text, so a knex
//! SQLite file keeps working. WAL and a busy timeout let several processes share one file. Every
//! statement runs on tokio's blocking pool, never on the event loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use napi_derive::napi;
use rusqlite::{Connection, OptionalExtension, params};

use crate::backend::{Backend, Expiry};
use crate::clock::{iso_from_ms, now_iso};
use crate::error::{BackendError, BackendResult, ErrorKind};
use crate::sql::{self, Statements};

#[napi(object)]
pub struct SqliteOptions {
  /// A file path, or `:memory:`.
  pub path: String,
  pub table_name: String,
  pub sid_field_name: String,
  pub create_table: bool,
  /// How long a writer waits for another process's lock before giving up (ms).
  pub busy_timeout_ms: Option<u32>,
  pub command_timeout_ms: Option<u32>,
}

type Slot = Arc<Mutex<Option<Connection>>>;

pub struct SqliteBackend {
  path: String,
  busy_timeout: Duration,
  create_table: bool,
  sql: Arc<Statements>,
  /// Creates the table and index if missing (run on each new connection when `create_table`).
  create_sql: String,
  /// A few connections, opened on first use. WAL lets readers run beside the one writer.
  slots: Vec<Slot>,
  next: AtomicUsize,
}

impl SqliteBackend {
  pub fn new(o: SqliteOptions) -> BackendResult<Self> {
    if o.path.is_empty() {
      return Err(BackendError::invalid("path cannot be empty (use \":memory:\" for a private in-memory database)"));
    }
    let in_memory = o.path == ":memory:";
    Ok(Self {
      // One connection for :memory:, where every connection would be a separate database.
      slots: (0..if in_memory { 1 } else { 2 }).map(|_| Arc::new(Mutex::new(None))).collect(),
      path: o.path,
      busy_timeout: Duration::from_millis(u64::from(o.busy_timeout_ms.unwrap_or(5000))),
      create_table: o.create_table,
      create_sql: create_statement(&o.table_name, &o.sid_field_name)?,
      sql: Arc::new(statements(&o.table_name, &o.sid_field_name)?),
      next: AtomicUsize::new(0),
    })
  }

  /// Runs `work` on a pooled connection on the blocking thread pool.
  async fn with_conn<T, F>(&self, work: F) -> BackendResult<T>
  where
    T: Send + 'static,
    F: FnOnce(&Connection, &Statements) -> rusqlite::Result<T> + Send + 'static,
  {
    let slot = self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()].clone();
    let sql = self.sql.clone();
    let (path, busy) = (self.path.clone(), self.busy_timeout);
    let create = self.create_table.then(|| self.create_sql.clone());
    let joined = tokio::task::spawn_blocking(move || {
      let mut guard = lock(&slot);
      if guard.is_none() {
        *guard = Some(open(&path, busy, create.as_deref())?);
      }
      match guard.as_ref() {
        Some(conn) => work(conn, &sql),
        None => Err(rusqlite::Error::InvalidQuery), // invariant: set just above
      }
    })
    .await;
    match joined {
      Ok(result) => result.map_err(classify),
      Err(e) if e.is_panic() => Err(BackendError::new(ErrorKind::Panic, "native panic in a SQLite statement")),
      Err(e) => Err(BackendError::unavailable(e)),
    }
  }
}

/// A poisoned lock only means a statement panicked; the connection itself is still usable.
fn lock(slot: &Slot) -> MutexGuard<'_, Option<Connection>> {
  slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open(path: &str, busy: Duration, create: Option<&str>) -> rusqlite::Result<Connection> {
  let conn = Connection::open(path)?;
  conn.busy_timeout(busy)?;
  if path != ":memory:" {
    // WAL: readers never block the writer, and several processes can share the file.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL")?;
  }
  if let Some(create) = create {
    conn.execute_batch(create)?;
  }
  Ok(conn)
}

/// knex's layout and index name for this table, so an existing knex file is recognised as is.
fn create_statement(table: &str, sid: &str) -> BackendResult<String> {
  let (t, s) = (sql::quote(table)?, sql::quote(sid)?);
  let index = sql::quote(&sql::derived(table, "_expired_index", ""))?;
  Ok(format!(
    "CREATE TABLE IF NOT EXISTS {t} ({s} varchar(255) NOT NULL, \"sess\" json NOT NULL, \
     \"expired\" datetime NOT NULL, PRIMARY KEY ({s})); \
     CREATE INDEX IF NOT EXISTS {index} ON {t} (\"expired\");"
  ))
}

fn statements(table: &str, sid: &str) -> BackendResult<Statements> {
  let (t, s) = (sql::quote(table)?, sql::quote(sid)?);
  Ok(Statements {
    // knex declares `sess json`, which SQLite gives NUMERIC affinity: text that looks like a
    // number is stored as one. CAST reads any stored value back as text.
    get: format!("SELECT CAST(sess AS TEXT) FROM {t} WHERE {s} = ?1 AND expired > ?2"),
    set: format!(
      "INSERT INTO {t} ({s}, sess, expired) VALUES (?1, ?2, ?3) \
       ON CONFLICT({s}) DO UPDATE SET sess = excluded.sess, expired = excluded.expired"
    ),
    touch: format!("UPDATE {t} SET sess = ?2, expired = ?3 WHERE {s} = ?1 AND expired > ?4"),
    destroy: format!("DELETE FROM {t} WHERE {s} = ?1"),
    ids: format!("SELECT {s} FROM {t} WHERE expired > ?1"),
    all: format!("SELECT {s}, CAST(sess AS TEXT) FROM {t} WHERE expired > ?1"),
    length: format!("SELECT count(*) FROM {t} WHERE expired > ?1"),
    clear: format!("DELETE FROM {t}"),
    prune: format!("DELETE FROM {t} WHERE expired <= ?1"),
  })
}

fn classify(e: rusqlite::Error) -> BackendError {
  use rusqlite::ErrorCode::{CannotOpen, DatabaseBusy, DatabaseLocked, NotADatabase, ReadOnly};
  match e.sqlite_error_code() {
    Some(DatabaseBusy | DatabaseLocked) => BackendError::new(ErrorKind::Timeout, format!("{e} (the database stayed locked by another writer)")),
    Some(CannotOpen | NotADatabase | ReadOnly) => BackendError::unavailable(e),
    _ => BackendError::backend(e),
  }
}

/// SQLite sessions always expire: "never" is stored as the latest instant ISO text can name.
fn expired_text(expiry: Option<Expiry>) -> String {
  iso_from_ms(expiry.map_or(f64::MAX, |e| e.at_ms))
}

#[async_trait]
impl Backend for SqliteBackend {
  fn name(&self) -> &'static str {
    "sqlite"
  }

  async fn get(&self, sid: &str) -> BackendResult<Option<String>> {
    let sid = sid.to_string();
    self
      .with_conn(move |c, q| {
        c.prepare_cached(&q.get)?.query_row(params![sid, now_iso()], |r| r.get(0)).optional()
      })
      .await
  }

  async fn set(&self, sid: &str, value: &str, expiry: Option<Expiry>) -> BackendResult<()> {
    let (sid, value, expired) = (sid.to_string(), value.to_string(), expired_text(expiry));
    self.with_conn(move |c, q| c.prepare_cached(&q.set)?.execute(params![sid, value, expired]).map(drop)).await
  }

  async fn touch(&self, sid: &str, value: &str, expiry: Option<Expiry>) -> BackendResult<()> {
    let (sid, value, expired) = (sid.to_string(), value.to_string(), expired_text(expiry));
    self
      .with_conn(move |c, q| c.prepare_cached(&q.touch)?.execute(params![sid, value, expired, now_iso()]).map(drop))
      .await
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    let sid = sid.to_string();
    self.with_conn(move |c, q| c.prepare_cached(&q.destroy)?.execute(params![sid]).map(drop)).await
  }

  async fn ids(&self) -> BackendResult<Vec<String>> {
    self
      .with_conn(|c, q| {
        let mut stmt = c.prepare_cached(&q.ids)?;
        let rows = stmt.query_map(params![now_iso()], |r| r.get(0))?;
        rows.collect()
      })
      .await
  }

  async fn all(&self) -> BackendResult<Vec<(String, String)>> {
    self
      .with_conn(|c, q| {
        let mut stmt = c.prepare_cached(&q.all)?;
        let rows = stmt.query_map(params![now_iso()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
      })
      .await
  }

  async fn length(&self) -> BackendResult<u64> {
    self
      .with_conn(|c, q| c.prepare_cached(&q.length)?.query_row(params![now_iso()], |r| r.get::<_, i64>(0)))
      .await
      .map(|n| n.max(0) as u64)
  }

  async fn clear(&self) -> BackendResult<u64> {
    self.with_conn(|c, q| c.prepare_cached(&q.clear)?.execute([]).map(|n| n as u64)).await
  }

  async fn prune(&self) -> BackendResult<Option<u64>> {
    self
      .with_conn(|c, q| c.prepare_cached(&q.prune)?.execute(params![now_iso()]).map(|n| Some(n as u64)))
      .await
  }

  async fn ping(&self) -> BackendResult<()> {
    self.with_conn(|c, _| c.query_row("SELECT 1", [], |_| Ok(()))).await
  }

  async fn close(&self) {
    for slot in &self.slots {
      // Dropping the connection closes the file (and checkpoints the WAL when it is the last).
      lock(slot).take();
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn default_table_matches_connect_session_knex() {
    let create = create_statement("sessions", "sid").map_err(|e| e.detail).unwrap_or_else(|e| panic!("{e}"));
    assert!(create.contains("CREATE TABLE IF NOT EXISTS \"sessions\" (\"sid\" varchar(255) NOT NULL"));
    assert!(create.contains("\"sessions_expired_index\""));
  }

  #[test]
  fn never_expiring_sessions_sort_after_any_real_instant() {
    assert_eq!(expired_text(None), "9999-12-31T23:59:59.999Z");
    assert!(expired_text(None) > now_iso());
  }
}
