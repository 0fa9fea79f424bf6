//! SQLite, compiled in, in connect-session-knex's layout: table `sessions` with `sid`
//! varchar(255) primary key, `sess` JSON text and `expired` as `Date#toISOString` text, so a knex
//! SQLite file keeps working. WAL and a busy timeout let several processes share one file.
//! Statements run on the file's connection threads (`sqlite_pool`), never on the event loop.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::backend::{Backend, Reply, Request, Stored, run_one_plainly};
use crate::clock::{iso_from_ms, ms_from_iso};
use crate::error::{BackendError, BackendResult, ErrorKind};
use crate::sql::{self, Statements};
use crate::sqlite_pool::{Database, retry_while_busy};

/// What a SQLite store is built from (its deadline is the shared `commandTimeout`).
pub struct SqliteConfig {
  /// A file path, or `:memory:`.
  pub path: String,
  pub table_name: String,
  pub sid_field_name: String,
  pub create_table: bool,
  /// How long a writer waits for another process's lock before giving up (ms).
  pub busy_timeout_ms: Option<u32>,
}

/// What every statement of this store needs on whichever connection runs it.
struct Table {
  sql: Statements,
  /// Creates the table and index if missing (`createTable`), once per store.
  create: Option<String>,
  created: AtomicBool,
  busy_timeout: Duration,
}

pub struct SqliteBackend {
  table: Arc<Table>,
  /// `None` once this store is closed: nothing is reopened afterwards.
  db: Mutex<Option<Arc<Database>>>,
}

impl SqliteBackend {
  pub fn new(o: SqliteConfig) -> BackendResult<Self> {
    if o.path.is_empty() {
      return Err(BackendError::invalid(
        "path cannot be empty (use \":memory:\" for a private in-memory database)",
      ));
    }
    let busy_timeout = Duration::from_millis(u64::from(o.busy_timeout_ms.unwrap_or(5000)));
    let create = if o.create_table {
      Some(create_statement(&o.table_name, &o.sid_field_name)?)
    } else {
      None
    };
    Ok(Self {
      table: Arc::new(Table {
        sql: statements(&o.table_name, &o.sid_field_name)?,
        create,
        created: AtomicBool::new(false),
        busy_timeout,
      }),
      db: Mutex::new(Some(Database::of(&o.path, busy_timeout))),
    })
  }

  /// Runs `work` on one of the file's connection threads and waits for its answer.
  async fn with_conn<T, F>(&self, work: F) -> BackendResult<T>
  where
    T: Send + 'static,
    F: FnOnce(&Connection, &Statements) -> rusqlite::Result<T> + Send + 'static,
  {
    let db = self
      .db
      .lock()
      .unwrap_or_else(|p| p.into_inner())
      .clone()
      .ok_or_else(BackendError::closed)?;
    let (answer, answered) = oneshot::channel::<BackendResult<T>>();
    let table = self.table.clone();
    db.submit(Box::new(move |conn| {
      if answer.is_closed() {
        return; // the request already timed out: do not run it late
      }
      let result = match conn {
        Ok(conn) => match std::panic::catch_unwind(AssertUnwindSafe(|| run(conn, &table, work))) {
          Ok(r) => r.map_err(classify),
          Err(_) => Err(BackendError::new(
            ErrorKind::Panic,
            "native panic in a SQLite statement",
          )),
        },
        Err(e) => Err(classify_open(e)),
      };
      let _ = answer.send(result);
    }))?;
    answered.await.map_err(|_| BackendError::closed())?
  }
}

/// One statement of `table`'s, on a connection shared with the other stores on the file: with
/// this store's busy timeout, after creating its table if that is still to be done.
fn run<T>(
  conn: &Connection,
  table: &Table,
  work: impl FnOnce(&Connection, &Statements) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
  conn.busy_timeout(table.busy_timeout)?;
  if let Some(create) = table.create.as_deref()
    && !table.created.load(Ordering::Acquire)
  {
    // IMMEDIATE takes the write lock up front, so the busy timeout applies (a deferred
    // transaction that upgrades from reading to writing fails with SQLITE_BUSY at once instead).
    retry_while_busy(table.busy_timeout, || in_write_transaction(conn, create))?;
    table.created.store(true, Ordering::Release);
  }
  work(conn, &table.sql)
}

/// Runs `statements` in `BEGIN IMMEDIATE ... COMMIT`, and rolls back when any of them fails. The
/// connection is shared by every store on the file: a transaction left open after a failed
/// CREATE (a name that clashes with an index or a view) would swallow the other stores' writes,
/// acknowledged and never committed, and hold the write lock against every other process.
fn in_write_transaction(conn: &Connection, statements: &str) -> rusqlite::Result<()> {
  conn.execute_batch("BEGIN IMMEDIATE")?;
  match conn.execute_batch(statements) {
    Ok(()) => conn.execute_batch("COMMIT").inspect_err(|_| end_transaction(conn)),
    Err(e) => {
      end_transaction(conn);
      Err(e)
    }
  }
}

/// Rolls back whatever transaction `conn` is still inside (none: nothing to do). Called after a
/// failed statement and, as a safety net, after every job on a shared connection.
pub(crate) fn end_transaction(conn: &Connection) {
  if !conn.is_autocommit() {
    let _ = conn.execute_batch("ROLLBACK");
  }
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
    get: format!("SELECT CAST(sess AS TEXT), expired FROM {t} WHERE {s} = ?1 AND expired > ?2"),
    set: format!(
      "INSERT INTO {t} ({s}, sess, expired) VALUES (?1, ?2, ?3) \
       ON CONFLICT({s}) DO UPDATE SET sess = excluded.sess, expired = excluded.expired"
    ),
    set_if_unchanged: format!("UPDATE {t} SET sess = ?2, expired = ?3 WHERE {s} = ?1 AND CAST(sess AS TEXT) = ?4"),
    // The expiry only (the text keeps its cookie), and only for a live row.
    touch: format!("UPDATE {t} SET expired = ?2 WHERE {s} = ?1 AND expired > ?3"),
    destroy: format!("DELETE FROM {t} WHERE {s} = ?1"),
    ids: format!("SELECT {s} FROM {t} WHERE expired > ?1"),
    all: format!("SELECT {s}, CAST(sess AS TEXT) FROM {t} WHERE expired > ?1"),
    length: format!("SELECT count(*) FROM {t} WHERE expired > ?1"),
    clear: format!("DELETE FROM {t}"),
    prune: format!("DELETE FROM {t} WHERE expired <= ?1"),
  })
}

/// A busy or read-only file fails that request only; none of it is an outage (docs/design.md).
fn classify(e: rusqlite::Error) -> BackendError {
  classify_ref(&e)
}

fn classify_ref(e: &rusqlite::Error) -> BackendError {
  use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, NotADatabase, ReadOnly};
  match e.sqlite_error_code() {
    Some(DatabaseBusy | DatabaseLocked) => {
      BackendError::timeout(format!("{e} (the database stayed locked by another writer)"))
    }
    Some(ReadOnly) => BackendError::backend(format!(
      "{e}: the database file or its directory is read-only for this process"
    )),
    Some(NotADatabase) => BackendError::backend(format!("{e}: the file is not a SQLite database")),
    _ => BackendError::backend(e.to_string()),
  }
}

/// Failing to open the file is this backend's "server unreachable" (a missing directory, a
/// file that cannot be opened): it is reported as an outage, and tried again on the next request.
fn classify_open(e: &rusqlite::Error) -> BackendError {
  match e.sqlite_error_code() {
    Some(rusqlite::ErrorCode::CannotOpen) => BackendError::unavailable(format!("cannot open the database file: {e}")),
    _ => classify_ref(e),
  }
}

/// Text SQLite's NUMERIC affinity may turn into a number: it starts like one.
fn looks_numeric(value: &str) -> bool {
  value
    .trim_start()
    .starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '.')
}

/// The stored bytes of a text column, whatever they are: text that is not UTF-8 makes the session
/// unparsable (absent for the app), not an error of the whole request.
fn raw_text(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Vec<u8>> {
  use rusqlite::types::ValueRef;
  Ok(match row.get_ref(index)? {
    ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
    _ => Vec::new(),
  })
}

/// SQLite sessions always expire: "never" is stored as the latest instant ISO text can name.
fn expired_text(expires_at_ms: Option<f64>) -> String {
  iso_from_ms(expires_at_ms.unwrap_or(f64::MAX))
}

#[async_trait]
impl Backend for SqliteBackend {
  fn name(&self) -> &'static str {
    "sqlite"
  }

  /// Statements run on the file's connection threads, which continue the requests they answer.
  fn works_on_own_threads(&self) -> bool {
    true
  }

  /// connect-session-knex computes `expired` from the cookie's maxAge a moment after JS did.
  fn expiry_precision_ms(&self) -> f64 {
    10.0
  }

  /// A patch in one write transaction on the file: read, merge, write, commit. SQLite's write
  /// lock makes it atomic against every other process on the file too.
  async fn run_one(&self, request: &Request) -> BackendResult<Reply> {
    let Request::Patch {
      sid,
      patch,
      expires_at_ms,
      now_ms,
    } = request
    else {
      return run_one_plainly(self, request).await;
    };
    let (sid, patch) = (sid.clone(), patch.clone());
    let (expired, now) = (expired_text(*expires_at_ms), iso_from_ms(*now_ms));
    self
      .with_conn(move |c, q| {
        c.execute_batch("BEGIN IMMEDIATE")?;
        let outcome = (|| {
          let stored: Option<Vec<u8>> = c
            .prepare_cached(&q.get)?
            .query_row(params![sid, now], |r| raw_text(r, 0))
            .optional()?;
          // Gone: nothing is written. Unreadable or not mergeable: left alone, as for get.
          let merged = stored.map(|raw| crate::merge_patch::merge_or_absent(raw, &patch));
          if let Some(Ok(Some(merged))) = &merged {
            c.prepare_cached(&q.set)?.execute(params![sid, merged, expired])?;
          }
          c.execute_batch("COMMIT")?;
          Ok(merged.transpose().map(drop))
        })();
        if outcome.is_err() {
          end_transaction(c);
        }
        outcome
      })
      .await?
      .map(|()| Reply::Done)
  }

  /// Only reached with encryption at rest (a plain patch is one transaction, above): the sealed
  /// text is replaced only while it is still the one the merge opened.
  async fn set_if_unchanged(
    &self,
    sid: &str,
    expected: &str,
    value: &str,
    expires_at_ms: Option<f64>,
    _now_ms: f64,
  ) -> Option<BackendResult<bool>> {
    let (sid, expected, value) = (sid.to_string(), expected.to_string(), value.to_string());
    let expired = expired_text(expires_at_ms);
    Some(
      self
        .with_conn(move |c, q| {
          c.prepare_cached(&q.set_if_unchanged)?
            .execute(params![sid, value, expired, expected])
            .map(|n| n == 1)
        })
        .await,
    )
  }

  async fn get(&self, sid: &str, now_ms: f64) -> BackendResult<Option<Stored>> {
    let (sid, now) = (sid.to_string(), iso_from_ms(now_ms));
    let row: Option<(Vec<u8>, Option<String>)> = self
      .with_conn(move |c, q| {
        c.prepare_cached(&q.get)?
          .query_row(params![sid, now], |r| Ok((raw_text(r, 0)?, r.get(1).ok())))
          .optional()
      })
      .await?;
    let Some((raw, expired)) = row else { return Ok(None) };
    let value = crate::backend::stored_text(raw)?;
    Ok(Some(Stored {
      value,
      expires_at_ms: expired.as_deref().and_then(ms_from_iso),
    }))
  }

  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, _now_ms: f64) -> BackendResult<()> {
    if looks_numeric(value) {
      // knex's `sess json` column has NUMERIC affinity: SQLite stores numeric-looking text as a
      // number, and "+0" or "1.50" would come back as "0" or "1.5". Refuse what would change.
      let text = value.to_string();
      let kept: String = self
        .with_conn(move |c, _| c.query_row("SELECT CAST(CAST(?1 AS NUMERIC) AS TEXT)", [text], |r| r.get(0)))
        .await?;
      if kept != value {
        return Err(BackendError::invalid(format!(
          "the serialised session {value:?} would be stored by SQLite as the number {kept} (the sess column has NUMERIC affinity)"
        )));
      }
    }
    let (sid, value, expired) = (sid.to_string(), value.to_string(), expired_text(expires_at_ms));
    self
      .with_conn(move |c, q| {
        c.prepare_cached(&q.set)?
          .execute(params![sid, value, expired])
          .map(drop)
      })
      .await
  }

  async fn touch(&self, sid: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    let (sid, expired, now) = (sid.to_string(), expired_text(expires_at_ms), iso_from_ms(now_ms));
    self
      .with_conn(move |c, q| {
        c.prepare_cached(&q.touch)?
          .execute(params![sid, expired, now])
          .map(drop)
      })
      .await
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    let sid = sid.to_string();
    self
      .with_conn(move |c, q| c.prepare_cached(&q.destroy)?.execute(params![sid]).map(drop))
      .await
  }

  async fn ids(&self, now_ms: f64) -> BackendResult<Vec<String>> {
    let now = iso_from_ms(now_ms);
    self
      .with_conn(move |c, q| {
        let mut stmt = c.prepare_cached(&q.ids)?;
        let rows = stmt.query_map(params![now], |r| r.get(0))?;
        rows.collect()
      })
      .await
  }

  async fn all(&self, now_ms: f64) -> BackendResult<Vec<(String, Option<String>)>> {
    let now = iso_from_ms(now_ms);
    let rows: Vec<(String, Vec<u8>)> = self
      .with_conn(move |c, q| {
        let mut stmt = c.prepare_cached(&q.all)?;
        let rows = stmt.query_map(params![now], |r| Ok((r.get(0)?, raw_text(r, 1)?)))?;
        rows.collect()
      })
      .await?;
    Ok(
      rows
        .into_iter()
        .map(|(sid, raw)| (sid, String::from_utf8(raw).ok()))
        .collect(),
    )
  }

  async fn length(&self, now_ms: f64) -> BackendResult<u64> {
    let now = iso_from_ms(now_ms);
    self
      .with_conn(move |c, q| {
        c.prepare_cached(&q.length)?
          .query_row(params![now], |r| r.get::<_, i64>(0))
      })
      .await
      .map(|n| n.max(0) as u64)
  }

  async fn clear(&self) -> BackendResult<u64> {
    self
      .with_conn(|c, q| c.prepare_cached(&q.clear)?.execute([]).map(|n| n as u64))
      .await
  }

  async fn prune(&self, now_ms: f64) -> BackendResult<Option<u64>> {
    let now = iso_from_ms(now_ms);
    self
      .with_conn(move |c, q| {
        c.prepare_cached(&q.prune)?
          .execute(params![now])
          .map(|n| Some(n as u64))
      })
      .await
  }

  async fn ping(&self) -> BackendResult<()> {
    self.with_conn(|c, _| c.query_row("SELECT 1", [], |_| Ok(()))).await
  }

  /// Gives up this store's share of the file. The last store on the file lets the connection
  /// threads finish what was queued and close their connections, and answers once they have.
  /// Nothing is reopened afterwards: later requests fail with ESESSION_CLOSED.
  async fn close(&self) {
    let db = self.db.lock().unwrap_or_else(|p| p.into_inner()).take();
    // Another store opening the file right now would find the threads gone and start new ones.
    if let Some(db) = db
      && Arc::strong_count(&db) == 1
    {
      db.shut_down().await;
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn default_table_matches_connect_session_knex() {
    let create = create_statement("sessions", "sid")
      .map_err(|e| e.detail)
      .unwrap_or_else(|e| panic!("{e}"));
    assert!(create.contains("CREATE TABLE IF NOT EXISTS \"sessions\" (\"sid\" varchar(255) NOT NULL"));
    assert!(create.contains("\"sessions_expired_index\""));
  }

  #[test]
  fn never_expiring_sessions_sort_after_any_real_instant() {
    assert_eq!(expired_text(None), "9999-12-31T23:59:59.999Z");
    assert!(expired_text(None).as_str() > "2999-01-01T00:00:00.000Z");
  }
}
