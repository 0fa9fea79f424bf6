//! PostgreSQL, in connect-pg-simple's table and statements: `sid varchar` primary key,
//! `sess json`, `expire timestamp(6)` with `to_timestamp(ceil(seconds))`. Statements are
//! prepared once per pooled connection. The connection's TimeZone is left as the server sets it,
//! exactly as node-pg leaves it, so both stores convert expiry instants to the same wall clock.

use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use napi_derive::napi;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Config, NoTls};

use crate::backend::{Backend, Expiry};
use crate::clock;
use crate::error::{BackendError, BackendResult, ErrorKind};
use crate::sql::{self, Statements};

#[napi(object)]
pub struct PostgresOptions {
  /// A libpq connection string or `postgres://` URL; fields below override its parts.
  pub connection_string: Option<String>,
  pub host: Option<String>,
  pub port: Option<u16>,
  pub user: Option<String>,
  pub password: Option<String>,
  pub database: Option<String>,
  pub schema_name: Option<String>,
  pub table_name: String,
  pub create_table_if_missing: bool,
  pub pool_size: Option<u32>,
  pub connect_timeout_ms: Option<u32>,
  pub command_timeout_ms: Option<u32>,
  /// Server-side `statement_timeout` in ms; 0 or absent leaves the server's setting.
  pub statement_timeout_ms: Option<u32>,
}

/// The table's statements plus what PostgreSQL needs besides them.
struct TableSql {
  ops: Statements,
  create: Vec<String>,
  /// Key of the advisory locks that serialise schema creation and pruning across processes.
  lock_key: String,
}

pub struct PostgresBackend {
  pool: Pool,
  /// For the recovery probe's own fresh connection.
  config: Config,
  sql: TableSql,
  create_table_if_missing: bool,
  table_ready: tokio::sync::OnceCell<()>,
}

impl PostgresBackend {
  pub fn new(o: PostgresOptions) -> BackendResult<Self> {
    let mut config = match &o.connection_string {
      Some(s) if !s.is_empty() => s
        .parse::<Config>()
        .map_err(|e| BackendError::invalid(format!("bad connection string: {e}")))?,
      _ => Config::new(),
    };
    if let Some(h) = &o.host {
      config.host(h);
    }
    if config.get_hosts().is_empty() {
      config.host("localhost");
    }
    if let Some(p) = o.port {
      config.port(p);
    }
    if let Some(u) = &o.user {
      config.user(u);
    }
    if let Some(p) = &o.password {
      config.password(p);
    }
    if let Some(d) = &o.database {
      config.dbname(d);
    }
    let connect_timeout = Duration::from_millis(u64::from(o.connect_timeout_ms.unwrap_or(5000)));
    let command_timeout = Duration::from_millis(u64::from(o.command_timeout_ms.unwrap_or(3000)));
    config.connect_timeout(connect_timeout);
    if let Some(ms) = o.statement_timeout_ms.filter(|ms| *ms > 0) {
      let mut options = config.get_options().unwrap_or("").to_string();
      options.push_str(&format!(" -c statement_timeout={ms}"));
      config.options(options.trim());
    }
    let manager = Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
      .max_size(o.pool_size.unwrap_or(10).max(1) as usize)
      .runtime(Runtime::Tokio1)
      .wait_timeout(Some(command_timeout))
      .create_timeout(Some(connect_timeout))
      .recycle_timeout(Some(connect_timeout))
      .build()
      .map_err(|e| BackendError::invalid(format!("cannot build the connection pool: {e}")))?;
    let sql = statements(o.schema_name.as_deref().filter(|s| !s.is_empty()), &o.table_name)?;
    Ok(Self { pool, config, sql, create_table_if_missing: o.create_table_if_missing, table_ready: tokio::sync::OnceCell::new() })
  }

  async fn client(&self) -> BackendResult<Object> {
    let client = self.pool.get().await.map_err(classify_pool)?;
    if self.create_table_if_missing {
      self.table_ready.get_or_try_init(|| create_table(&client, &self.sql)).await?;
    }
    Ok(client)
  }

  async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> BackendResult<Vec<tokio_postgres::Row>> {
    let client = self.client().await?;
    let stmt = client.prepare_cached(sql).await.map_err(classify)?;
    client.query(&stmt, params).await.map_err(classify)
  }

  async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> BackendResult<u64> {
    let client = self.client().await?;
    let stmt = client.prepare_cached(sql).await.map_err(classify)?;
    client.execute(&stmt, params).await.map_err(classify)
  }
}

fn statements(schema: Option<&str>, table: &str) -> BackendResult<TableSql> {
  let t = match schema {
    Some(s) => format!("{}.{}", sql::quote(s)?, sql::quote(table)?),
    None => sql::quote(table)?,
  };
  // connect-pg-simple's fixed names for its default table; names derived from the table for any
  // other, because its fixed ones collide when a schema holds two session tables.
  let pkey = sql::quote(&sql::derived(table, "_pkey", ""))?;
  let index = sql::quote(&sql::derived(table, "_expire", "IDX_"))?;
  let mut create = Vec::new();
  if let Some(s) = schema {
    create.push(format!("CREATE SCHEMA IF NOT EXISTS {}", sql::quote(s)?));
  }
  create.push(format!(
    "CREATE TABLE IF NOT EXISTS {t} (\"sid\" varchar NOT NULL COLLATE \"default\", \"sess\" json NOT NULL, \
     \"expire\" timestamp(6) NOT NULL, CONSTRAINT {pkey} PRIMARY KEY (\"sid\") NOT DEFERRABLE INITIALLY IMMEDIATE)"
  ));
  create.push(format!("CREATE INDEX IF NOT EXISTS {index} ON {t} (\"expire\")"));
  let ops = Statements {
    get: format!("SELECT sess FROM {t} WHERE sid = $1 AND expire >= to_timestamp($2)"),
    set: format!(
      "INSERT INTO {t} (sess, expire, sid) SELECT $1, to_timestamp($2), $3 \
       ON CONFLICT (sid) DO UPDATE SET sess=$1, expire=to_timestamp($2) RETURNING sid"
    ),
    // Rewrites the cookie too, and only for a live row: a destroyed or expired session stays gone.
    touch: format!("UPDATE {t} SET sess = $1, expire = to_timestamp($2) WHERE sid = $3 AND expire >= to_timestamp($4)"),
    destroy: format!("DELETE FROM {t} WHERE sid = $1"),
    ids: format!("SELECT sid FROM {t} WHERE expire >= to_timestamp($1)"),
    all: format!("SELECT sid, sess FROM {t} WHERE expire >= to_timestamp($1)"),
    length: format!("SELECT count(*) FROM {t} WHERE expire >= to_timestamp($1)"),
    clear: format!("DELETE FROM {t}"),
    prune: format!("DELETE FROM {t} WHERE expire < to_timestamp($1)"),
  };
  Ok(TableSql { ops, create, lock_key: format!("ferrosession:{t}") })
}

/// Creates the table once, under a transaction-scoped advisory lock so that stores starting
/// together in several processes do not race each other's `CREATE`.
async fn create_table(client: &Object, sql: &TableSql) -> BackendResult<()> {
  let mut batch = format!("BEGIN; SELECT pg_advisory_xact_lock(hashtext({})); ", literal(&sql.lock_key));
  for statement in &sql.create {
    batch.push_str(statement);
    batch.push_str("; ");
  }
  batch.push_str("COMMIT;");
  if let Err(e) = client.batch_execute(&batch).await {
    let _ = client.batch_execute("ROLLBACK").await;
    return Err(classify(e));
  }
  Ok(())
}

/// A SQL string literal (for the lock key, which is built from already-quoted identifiers).
fn literal(s: &str) -> String {
  format!("'{}'", s.replace('\'', "''"))
}

/// `Math.ceil(Date.now() / 1000)`, connect-pg-simple's "now" for expiry comparisons.
fn now_secs() -> f64 {
  (clock::now_ms() / 1000.0).ceil()
}

/// connect-pg-simple stores `to_timestamp(Math.ceil(expires_ms / 1000))`.
fn expire_secs(expiry: Option<Expiry>) -> BackendResult<f64> {
  match expiry {
    Some(e) => Ok((e.at_ms / 1000.0).ceil()),
    None => Err(BackendError::invalid("PostgreSQL sessions always expire; disableTTL is not supported")),
  }
}

#[async_trait]
impl Backend for PostgresBackend {
  fn name(&self) -> &'static str {
    "postgres"
  }

  async fn get(&self, sid: &str) -> BackendResult<Option<String>> {
    let rows = self.query(&self.sql.ops.get, &[&sid, &now_secs()]).await?;
    match rows.first() {
      Some(row) => Ok(Some(row.try_get::<_, StoredJson>(0).map_err(classify)?.0)),
      None => Ok(None),
    }
  }

  async fn set(&self, sid: &str, value: &str, expiry: Option<Expiry>) -> BackendResult<()> {
    let expire = expire_secs(expiry)?;
    self.execute(&self.sql.ops.set, &[&JsonText(value), &expire, &sid]).await.map(drop)
  }

  async fn touch(&self, sid: &str, value: &str, expiry: Option<Expiry>) -> BackendResult<()> {
    let expire = expire_secs(expiry)?;
    self.execute(&self.sql.ops.touch, &[&JsonText(value), &expire, &sid, &now_secs()]).await.map(drop)
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    self.execute(&self.sql.ops.destroy, &[&sid]).await.map(drop)
  }

  async fn ids(&self) -> BackendResult<Vec<String>> {
    let rows = self.query(&self.sql.ops.ids, &[&now_secs()]).await?;
    rows.iter().map(|r| r.try_get::<_, String>(0).map_err(classify)).collect()
  }

  async fn all(&self) -> BackendResult<Vec<(String, String)>> {
    let rows = self.query(&self.sql.ops.all, &[&now_secs()]).await?;
    rows
      .iter()
      .map(|r| Ok((r.try_get::<_, String>(0).map_err(classify)?, r.try_get::<_, StoredJson>(1).map_err(classify)?.0)))
      .collect()
  }

  async fn length(&self) -> BackendResult<u64> {
    let rows = self.query(&self.sql.ops.length, &[&now_secs()]).await?;
    let n: i64 = rows.first().map(|r| r.try_get(0)).transpose().map_err(classify)?.unwrap_or(0);
    Ok(n.max(0) as u64)
  }

  async fn clear(&self) -> BackendResult<u64> {
    self.execute(&self.sql.ops.clear, &[]).await
  }

  /// Deletes expired rows unless another process holds the prune lock right now, so a fleet of
  /// app processes runs one prune at a time instead of N identical deletes.
  async fn prune(&self) -> BackendResult<Option<u64>> {
    let mut client = self.client().await?;
    let tx = client.transaction().await.map_err(classify)?;
    let locked: bool = tx
      .query_one("SELECT pg_try_advisory_xact_lock(hashtext($1::text), 1)", &[&self.sql.lock_key])
      .await
      .and_then(|r| r.try_get(0))
      .map_err(classify)?;
    if !locked {
      return Ok(None);
    }
    let stmt = tx.prepare_cached(&self.sql.ops.prune).await.map_err(classify)?;
    let removed = tx.execute(&stmt, &[&now_secs()]).await.map_err(classify)?;
    tx.commit().await.map_err(classify)?;
    Ok(Some(removed))
  }

  /// A fresh connection, not a pooled one: after the postmaster dies, its orphaned backends can
  /// still answer on connections opened before, but nothing new can connect until it is back.
  async fn ping(&self) -> BackendResult<()> {
    let (client, connection) = self.config.connect(NoTls).await.map_err(classify)?;
    let driver = tokio::spawn(connection);
    let answered = client.simple_query("").await.map(drop).map_err(classify);
    drop(client);
    let _ = driver.await;
    answered
  }

  async fn close(&self) {
    self.pool.close();
  }
}

fn classify_pool(e: PoolError) -> BackendError {
  match e {
    PoolError::Timeout(_) => BackendError::new(ErrorKind::Timeout, format!("no connection within the timeout ({e})")),
    PoolError::Backend(e) => classify(e),
    PoolError::Closed => BackendError::new(ErrorKind::Closed, "the connection pool was closed"),
    other => BackendError::unavailable(other.to_string()),
  }
}

fn classify(e: tokio_postgres::Error) -> BackendError {
  let detail = match e.source() {
    Some(src) => format!("{e}: {src}"),
    None => e.to_string(),
  };
  match e.code() {
    Some(code) if *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CANNOT_CONNECT_NOW || *code == SqlState::CRASH_SHUTDOWN => {
      BackendError::unavailable(detail)
    }
    Some(code) if *code == SqlState::QUERY_CANCELED => BackendError::backend(format!("{detail} (statement_timeout)")),
    Some(_) => BackendError::backend(detail),
    // No SQLSTATE: the error came from the socket, not the server.
    None if e.as_db_error().is_none() && (e.is_closed() || e.source().is_some()) => BackendError::unavailable(detail),
    None => BackendError::backend(detail),
  }
}

/// The serialised session, bound to a `json`, `jsonb` or text column as its exact bytes.
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
  fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
    if *ty == Type::JSONB {
      out.put_u8(1); // jsonb's binary format version
    }
    out.extend_from_slice(self.0.as_bytes());
    Ok(IsNull::No)
  }

  fn accepts(ty: &Type) -> bool {
    accepts_json_like(ty)
  }

  to_sql_checked!();
}

/// The stored session text from a `json`, `jsonb` or text column (connect-session users alter
/// the column type by hand; we read them all).
struct StoredJson(String);

impl<'a> FromSql<'a> for StoredJson {
  fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
    let bytes = if *ty == Type::JSONB { raw.get(1..).unwrap_or_default() } else { raw };
    Ok(StoredJson(String::from_utf8(bytes.to_vec())?))
  }

  fn accepts(ty: &Type) -> bool {
    accepts_json_like(ty)
  }
}

fn accepts_json_like(ty: &Type) -> bool {
  matches!(*ty, Type::JSON | Type::JSONB | Type::TEXT | Type::VARCHAR | Type::BPCHAR)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn default_table_keeps_connect_pg_simple_names() {
    let s = statements(None, "session").map_err(|e| e.detail).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.ops.get, "SELECT sess FROM \"session\" WHERE sid = $1 AND expire >= to_timestamp($2)");
    assert!(s.create[0].contains("CONSTRAINT \"session_pkey\""));
    assert!(s.create[1].contains("\"IDX_session_expire\""));
  }

  #[test]
  fn hostile_names_stay_inside_quotes() {
    let s = statements(Some("x\"; DROP SCHEMA public; --"), "t\"").map_err(|e| e.detail).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.ops.destroy.starts_with("DELETE FROM \"x\"\"; DROP SCHEMA public; --\".\"t\"\"\" WHERE"));
  }

  #[test]
  fn expire_rounds_up_to_whole_seconds() {
    let e = Expiry { at_ms: 1_764_255_019_586.0, ttl_secs: 0 };
    assert_eq!(expire_secs(Some(e)).ok(), Some(1_764_255_020.0));
    let exact = Expiry { at_ms: 1_764_255_019_000.0, ttl_secs: 0 };
    assert_eq!(expire_secs(Some(exact)).ok(), Some(1_764_255_019.0));
  }
}
