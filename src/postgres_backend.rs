//! PostgreSQL, in connect-pg-simple's table and statements: `sid varchar` primary key,
//! `sess json`, `expire timestamp(6)` with `to_timestamp(ceil(seconds))`. Statements are
//! prepared once per pooled connection. The connection's TimeZone is left as the server sets it,
//! exactly as node-pg leaves it, so both stores convert expiry instants to the same wall clock.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Config, NoTls, Row, Statement};

use crate::backend::{Backend, Reply, Request, Stored};
use crate::batch_kinds::{self, Answers, ByKind, Destroy, Get, Group, Set, Touch};
use crate::defaults::{self, Common};
use crate::error::{BackendError, BackendResult};
use crate::postgres_config::{self, Connection, Connector};
use crate::shared_pool::{self, SharedPools};
use crate::sql::{self, Statements};
use crate::tls::{self, TlsSettings};

fn pools() -> &'static SharedPools<Pool> {
  static POOLS: OnceLock<SharedPools<Pool>> = OnceLock::new();
  POOLS.get_or_init(SharedPools::default)
}

/// Everything that shapes a store's connections and its pool (not its table): stores that agree
/// on all of it share one pool.
fn connection_settings(o: &PostgresConfig, common: &Common) -> String {
  let tls = o.tls.as_ref().map(|t| (&t.mode, &t.ca, &t.cert, &t.key, &t.servername));
  format!(
    "{:?}",
    (
      (&o.connection_string, &o.host, o.port, &o.user, &o.password, &o.database),
      (o.pool_size, o.statement_timeout_ms, common,),
      (&o.application_name, &o.startup_options, tls),
    )
  )
}

/// What a PostgreSQL store is built from (besides the settings every store shares).
pub struct PostgresConfig {
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
  /// Most connections in the pool (absent: `defaults::POOL_SIZE`).
  pub pool_size: Option<u32>,
  /// Server-side `statement_timeout` in ms; 0 or absent leaves the server's setting.
  pub statement_timeout_ms: Option<u32>,
  /// TLS as JS read it from the app's pg settings or PGSSLMODE; the connection string's own TLS
  /// parameters win over it, as in node-pg.
  pub tls: Option<TlsSettings>,
  /// node-pg's `application_name` and `options` (startup options, `-c name=value ...`).
  pub application_name: Option<String>,
  pub startup_options: Option<String>,
  pub layout: Layout,
  /// The sid column of the knex layout (its `sidFieldName`).
  pub sid_column: Option<String>,
  /// Where JS found the connection settings (`conString`, `DATABASE_URL`, ...), named in the
  /// error when the server cannot be reached.
  pub settings_source: Option<String>,
}

/// Whose table: connect-pg-simple's (`expire timestamp(6)`, whole seconds rounded up) or
/// connect-session-knex's (`expired timestamptz`, to the millisecond).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
  PgSimple,
  Knex,
}

impl Layout {
  /// An instant as the seconds `to_timestamp()` is given: connect-pg-simple's
  /// `Math.ceil(ms / 1000)`, or the exact instant for knex's timestamptz.
  fn secs(self, ms: f64) -> f64 {
    match self {
      Layout::PgSimple => (ms / 1000.0).ceil(),
      Layout::Knex => ms / 1000.0,
    }
  }
}

/// The table's statements plus what PostgreSQL needs besides them.
struct TableSql {
  ops: Statements,
  /// A batch's requests of one kind as one statement over arrays (`run_batch`).
  many: ManySql,
  /// Reads nothing, but tells the `sess` column's type.
  probe_sess: String,
  create: Vec<String>,
  /// Key of the advisory locks that serialise schema creation and pruning across processes.
  lock_key: String,
  /// `"schema"."table"` as the user would write it, for error messages.
  display: String,
}

/// One statement per kind for a whole batch: the sids (and values, expiries) go as arrays and
/// the server walks them with `unnest`, so a batch costs one statement and one commit per kind
/// instead of one per request. `{type}` and `{sess}` are filled in once the `sess` column's type
/// is known (`batch_sql`).
struct ManySql {
  get: String,
  set: String,
  touch: String,
  destroy: String,
}

pub struct PostgresBackend {
  /// Shared with every store of the process that has the same connection settings.
  pool: Arc<Pool>,
  layout: Layout,
  /// For the recovery probe's own fresh connection.
  config: Config,
  connector: Connector,
  connect_timeout: Duration,
  sql: TableSql,
  create_table_if_missing: bool,
  table_ready: tokio::sync::OnceCell<()>,
  idle: Option<Duration>,
  reaping: AtomicBool,
  /// The `sess` column's type, seen when a statement reading it was prepared.
  sess_type: std::sync::OnceLock<Type>,
  touch_sql: tokio::sync::OnceCell<String>,
  batch_sql: tokio::sync::OnceCell<ManySql>,
  settings_source: Option<String>,
}

/// A pooled connection lent to one request. If the request does not settle (its future is
/// dropped at the deadline), the connection is taken out of the pool and closed instead of being
/// handed to the next request: a connection whose request timed out may be black-holed, and
/// recycling it would make every later request time out too.
struct Lease(Option<Object>);

impl Lease {
  fn client(&self) -> BackendResult<&Object> {
    self
      .0
      .as_ref()
      .ok_or_else(|| BackendError::backend("the connection was already returned"))
  }

  /// The request completed (successfully or with an answer from the server): back to the pool.
  fn settle(mut self) {
    drop(self.0.take());
  }
}

impl Drop for Lease {
  fn drop(&mut self) {
    if let Some(object) = self.0.take() {
      drop(Object::take(object));
    }
  }
}

/// What a statement binds and returns, so a table whose columns have other types than
/// connect-pg-simple's gets an error naming the column instead of a driver type error.
#[derive(Clone, Copy)]
enum Slot {
  Sid,
  Sess,
  Other,
}

impl PostgresBackend {
  pub fn new(o: PostgresConfig, common: &Common) -> BackendResult<Self> {
    let Connection {
      mut config, connector, ..
    } = postgres_config::connection(o.connection_string.as_deref(), o.tls.clone())?;
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
    let connect_timeout = common.connect_timeout;
    let command_timeout = common.command_timeout;
    config.connect_timeout(connect_timeout);
    if let Some(name) = &o.application_name {
      config.application_name(name);
    }
    let mut options = config.get_options().unwrap_or("").to_string();
    if let Some(extra) = &o.startup_options {
      options.push(' ');
      options.push_str(extra);
    }
    if let Some(ms) = o.statement_timeout_ms.filter(|ms| *ms > 0) {
      options.push_str(&format!(" -c statement_timeout={ms}"));
    }
    if !options.trim().is_empty() {
      config.options(options.trim());
    }
    let manager_config = ManagerConfig {
      recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &connector {
      Connector::Plain => Manager::from_config(config.clone(), NoTls, manager_config),
      Connector::Tls(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
    };
    // create_timeout covers the whole connection setup, TLS and startup handshake included (the
    // driver's own connect_timeout covers only the TCP connect).
    let build = || {
      Pool::builder(manager)
        .max_size(o.pool_size.unwrap_or(defaults::POOL_SIZE).max(1) as usize)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(command_timeout))
        .create_timeout(Some(connect_timeout))
        .recycle_timeout(Some(connect_timeout))
        .build()
        .map_err(|e| BackendError::invalid(format!("cannot build the connection pool: {e}")))
    };
    let pool = pools().get_or_build(connection_settings(&o, common), |p| !p.is_closed(), build)?;
    let layout = o.layout;
    let schema = o.schema_name.as_deref().filter(|s| !s.is_empty());
    let sql = statements(layout, schema, &o.table_name, o.sid_column.as_deref().unwrap_or("sid"))?;
    let idle = common.idle_timeout;
    Ok(Self {
      pool,
      layout,
      config,
      connector,
      connect_timeout,
      sql,
      create_table_if_missing: o.create_table_if_missing,
      table_ready: tokio::sync::OnceCell::new(),
      idle,
      reaping: AtomicBool::new(false),
      sess_type: std::sync::OnceLock::new(),
      touch_sql: tokio::sync::OnceCell::new(),
      batch_sql: tokio::sync::OnceCell::new(),
      settings_source: o.settings_source.clone(),
    })
  }

  /// The `sess` column's type, learnt once: preparing a statement that reads it records it
  /// (check_type).
  async fn sess_column(&self) -> BackendResult<Type> {
    if self.sess_type.get().is_none() {
      let probe = format!("{} LIMIT 0", self.sql.probe_sess);
      self.run(&probe, &[], (NONE, &[Slot::Sess]), |_, _| Ok(())).await?;
    }
    Ok(self.sess_type.get().cloned().unwrap_or(Type::JSON))
  }

  /// The touch statement for this table's `sess` column type, learnt once.
  async fn touch_sql(&self) -> BackendResult<&str> {
    self
      .touch_sql
      .get_or_try_init(|| async {
        let sess = expires_rewritten(&self.sess_column().await?, "sess", "$4::text");
        Ok::<String, BackendError>(self.sql.ops.touch.replace("{sess}", &sess))
      })
      .await
      .map(String::as_str)
  }

  /// The batch statements for this table's `sess` column type, learnt once.
  async fn batch_sql(&self) -> BackendResult<&ManySql> {
    self
      .batch_sql
      .get_or_try_init(|| async {
        let column = self.sess_column().await?;
        let many = &self.sql.many;
        Ok::<ManySql, BackendError>(ManySql {
          get: many.get.clone(),
          set: many.set.replace("{type}", column.name()),
          touch: many
            .touch
            .replace("{sess}", &expires_rewritten(&column, "cur.sess", "u.iso")),
          destroy: many.destroy.clone(),
        })
      })
      .await
  }

  /// Closes pooled connections idle for longer than `idleTimeout`, from the first use on, for as
  /// long as the pool exists (the task holds it weakly).
  fn reap_idle_connections(&self) {
    let Some(idle) = self.idle else { return };
    if self.reaping.swap(true, Ordering::AcqRel) {
      return;
    }
    let pool = Arc::downgrade(&self.pool);
    crate::runtime::spawn(async move {
      loop {
        tokio::time::sleep((idle / 2).max(Duration::from_millis(10))).await;
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
          return;
        }
        pool.retain(|_, metrics| metrics.last_used() < idle);
      }
    });
  }

  async fn lease(&self) -> BackendResult<Lease> {
    self.reap_idle_connections();
    let client = self.pool.get().await.map_err(|e| self.classify_pool(e))?;
    let lease = Lease(Some(client));
    if self.create_table_if_missing {
      let client = lease.client()?;
      self
        .table_ready
        .get_or_try_init(|| create_table(client, &self.sql, self))
        .await?;
    }
    Ok(lease)
  }

  /// Prepares (once per connection) and checks the types the statement binds and returns.
  async fn prepare(&self, client: &Object, sql: &str, params: &[Slot], columns: &[Slot]) -> BackendResult<Statement> {
    let stmt = client.prepare_cached(sql).await.map_err(|e| self.classify(&e))?;
    for (slot, ty) in params.iter().zip(stmt.params()) {
      self.check_type(*slot, ty)?;
    }
    for (slot, column) in columns.iter().zip(stmt.columns()) {
      self.check_type(*slot, column.type_())?;
    }
    Ok(stmt)
  }

  fn check_type(&self, slot: Slot, ty: &Type) -> BackendResult<()> {
    if matches!(slot, Slot::Sess) && accepts_json_like(ty) {
      let _ = self.sess_type.set(ty.clone());
    }
    let (column, ok, expected) = match slot {
      Slot::Sid => ("sid", accepts_text(ty), "varchar or text"),
      Slot::Sess => ("sess", accepts_json_like(ty), "json, jsonb or text"),
      Slot::Other => return Ok(()),
    };
    if ok {
      return Ok(());
    }
    Err(BackendError::backend(format!(
      "column \"{column}\" of table {} has type {}, but ferrosession needs {expected} there ({})",
      self.sql.display,
      ty.name(),
      match self.layout {
        Layout::PgSimple => "connect-pg-simple's table",
        Layout::Knex => "connect-session-knex's table",
      }
    )))
  }

  /// Runs one statement. After `ALTER TABLE ... TYPE` (connect-pg-simple users move `sess` to
  /// jsonb this way) the server refuses plans prepared before it; the statement is then prepared
  /// again and run once more instead of failing forever.
  async fn run<T>(
    &self,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    slots: (&[Slot], &[Slot]),
    read: fn(Vec<Row>, &Self) -> BackendResult<T>,
  ) -> BackendResult<T> {
    let lease = self.lease().await?;
    let client = lease.client()?;
    let mut retried = false;
    let outcome = loop {
      let stmt = match self.prepare(client, sql, slots.0, slots.1).await {
        Ok(stmt) => stmt,
        Err(e) => break Err(e),
      };
      match client.query(&stmt, params).await {
        Ok(rows) => break read(rows, self),
        Err(e) if !retried && is_stale_plan(&e) => {
          client.statement_cache.clear();
          retried = true;
        }
        Err(e) => break Err(self.classify(&e)),
      }
    };
    lease.settle();
    outcome
  }

  fn classify_pool(&self, e: PoolError) -> BackendError {
    match e {
      PoolError::Timeout(TimeoutType::Wait) => BackendError::timeout(format!(
        "no free connection in the pool within commandTimeout (all {} are busy)",
        self.pool.status().max_size
      )),
      PoolError::Timeout(_) => BackendError::unavailable(format!(
        "could not connect within {} ms (connectTimeout) {}",
        self.connect_timeout.as_millis(),
        self.target()
      )),
      PoolError::Backend(e) => self.classify(&e),
      PoolError::Closed => BackendError::closed(),
      other => BackendError::unavailable(other.to_string()),
    }
  }

  /// Only a server that cannot be reached is an outage; whatever the server answered (a missing
  /// table, a type error, a refused login) fails that request with the server's own words.
  fn classify(&self, e: &tokio_postgres::Error) -> BackendError {
    if let Some(db) = e.as_db_error() {
      let code = db.code();
      if *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CANNOT_CONNECT_NOW || *code == SqlState::CRASH_SHUTDOWN
      {
        return BackendError::unavailable(detail(e));
      }
      if *code == SqlState::QUERY_CANCELED {
        return BackendError::backend(format!("{} (statement_timeout)", detail(e)));
      }
      if *code == SqlState::UNDEFINED_TABLE {
        return BackendError::backend(format!(
          "{}: table {} does not exist in database {:?} (user {:?}); pass {}, or create it with the SQL in the README",
          detail(e),
          self.sql.display,
          self.config.get_dbname().unwrap_or("(the user's default)"),
          self.config.get_user().unwrap_or("(unset)"),
          match self.layout {
            Layout::PgSimple => "createTableIfMissing: true",
            Layout::Knex => "createTable: true",
          }
        ));
      }
      return BackendError::backend(detail(e));
    }
    if e.to_string().starts_with("error performing TLS handshake") {
      return BackendError::unavailable(tls::explain(&detail(e)));
    }
    if is_unreachable(e) {
      BackendError::unavailable(format!("{} {}", detail(e), self.target()))
    } else {
      BackendError::backend(detail(e))
    }
  }
}

/// A wave's statements, one per kind over arrays (`run_batch`), the kinds concurrently on pooled
/// connections: one statement and one commit per kind instead of one per request.
#[async_trait]
impl ByKind for PostgresBackend {
  async fn get_many(&self, gets: &Group<Get<'_>>) -> Answers {
    let sql = &self.batch_sql().await?.get;
    let read = |rows: Vec<Row>, b: &Self| -> BackendResult<Vec<(String, Stored)>> {
      rows
        .iter()
        .map(|r| {
          let sid = r.try_get::<_, String>(0).map_err(|e| b.classify(&e))?;
          let value = r.try_get::<_, StoredJson>(1).map_err(|e| b.classify(&e))?.0;
          let expires_at_ms = r.try_get::<_, Option<f64>>(2).map_err(|e| b.classify(&e))?;
          Ok((sid, Stored { value, expires_at_ms }))
        })
        .collect()
    };
    let now = self.layout.secs(gets.earliest_ms);
    let params: &[&(dyn ToSql + Sync)] = &[&gets.sids(), &now];
    let mut rows = self
      .run(sql, params, (NONE, &[Slot::Sid, Slot::Sess, Slot::Other]), read)
      .await?;
    Ok(
      gets
        .items
        .iter()
        .map(|get| {
          let at = rows.iter().position(|(s, _)| s == get.sid);
          Ok(Reply::Got(at.map(|at| rows.swap_remove(at).1)))
        })
        .collect(),
    )
  }

  async fn set_many(&self, sets: &Group<Set<'_>>) -> Answers {
    let sql = &self.batch_sql().await?.set;
    let values: Vec<JsonText> = sets.items.iter().map(|s| JsonText(s.value)).collect();
    let secs: Vec<f64> = sets.items.iter().map(|s| self.layout.secs(s.expires_at_ms)).collect();
    let params: &[&(dyn ToSql + Sync)] = &[&values, &secs, &sets.sids()];
    self.run(sql, params, (NONE, NONE), nothing).await?;
    batch_kinds::all_done(sets)
  }

  async fn touch_many(&self, touches: &Group<Touch<'_>>) -> Answers {
    let sql = &self.batch_sql().await?.touch;
    let secs: Vec<f64> = touches
      .items
      .iter()
      .map(|t| self.layout.secs(t.expires_at_ms))
      .collect();
    let iso: Vec<String> = touches
      .items
      .iter()
      .map(|t| crate::clock::iso_from_ms(t.expires_at_ms))
      .collect();
    let now = self.layout.secs(touches.earliest_ms);
    let params: &[&(dyn ToSql + Sync)] = &[&touches.sids(), &secs, &iso, &now];
    self.run(sql, params, (NONE, NONE), nothing).await?;
    batch_kinds::all_done(touches)
  }

  async fn destroy_many(&self, destroys: &Group<Destroy<'_>>) -> Answers {
    let sql = &self.batch_sql().await?.destroy;
    self.run(sql, &[&destroys.sids()], (NONE, NONE), nothing).await?;
    batch_kinds::all_done(destroys)
  }
}

impl PostgresBackend {
  /// Which server the store tried, and where those settings came from: what a user needs when
  /// the connection fails (above all when nothing was configured and defaults were used).
  fn target(&self) -> String {
    let hosts: Vec<String> = self
      .config
      .get_hosts()
      .iter()
      .map(|h| match h {
        tokio_postgres::config::Host::Tcp(name) => name.clone(),
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
      })
      .collect();
    let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
    format!(
      "(tried {} port {}, user {:?}, database {:?}; settings from {})",
      hosts.join(","),
      if ports.is_empty() {
        "5432".to_string()
      } else {
        ports.join(",")
      },
      self.config.get_user().unwrap_or("(unset)"),
      self.config.get_dbname().unwrap_or("(the user's name)"),
      self.settings_source.as_deref().unwrap_or("the store's options")
    )
  }
}

/// The driver's error text with its causes (its own Display shows only the outermost).
fn detail(e: &(dyn StdError + 'static)) -> String {
  postgres_config::chain(e)
}

/// Errors that come from the socket rather than from the server's answers.
fn is_unreachable(e: &tokio_postgres::Error) -> bool {
  const SOCKET_KINDS: [&str; 5] = [
    "error connecting to server",
    "timeout waiting for server",
    "error performing TLS handshake",
    "error communicating with the server",
    "unexpected message from server",
  ];
  e.is_closed() || SOCKET_KINDS.iter().any(|k| e.to_string().starts_with(k))
}

/// The SQL for `sess` (the column as `sess` names it) with its cookie's `expires` replaced by
/// the text `iso`. Only a date is replaced: a browser-session cookie (`expires: null`) stays one.
/// For a json or text column the 24 characters of the `Date#toISOString` text are replaced where
/// the session starts with its cookie; a jsonb column is edited as JSON.
fn expires_rewritten(column: &Type, sess: &str, iso: &str) -> String {
  match *column {
    Type::JSONB => format!(
      "CASE WHEN jsonb_typeof({sess}->'cookie'->'expires') = 'string' \
       THEN jsonb_set({sess}, '{{cookie,expires}}', to_jsonb({iso}), false) ELSE {sess} END"
    ),
    Type::JSON => format!("regexp_replace({sess}::text, {EXPIRES_IN_COOKIE}, '\\1' || {iso} || '\"')::json"),
    _ => format!("regexp_replace({sess}, {EXPIRES_IN_COOKIE}, '\\1' || {iso} || '\"')"),
  }
}

/// The cookie's `expires` where a session's JSON starts with its cookie: `\1` is what comes before
/// the 24 characters of the date (no brace in between, so it is the cookie's own `expires`).
const EXPIRES_IN_COOKIE: &str = r#"'^(\{"cookie":\{[^{}]*?"expires":")\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"'"#;

/// "cached plan must not change result type": the table changed under a prepared statement.
fn is_stale_plan(e: &tokio_postgres::Error) -> bool {
  e.as_db_error()
    .is_some_and(|db| *db.code() == SqlState::FEATURE_NOT_SUPPORTED && db.message().contains("cached plan"))
}

fn statements(layout: Layout, schema: Option<&str>, table: &str, sid_column: &str) -> BackendResult<TableSql> {
  let t = match schema {
    Some(s) => format!("{}.{}", sql::quote(s)?, sql::quote(table)?),
    None => sql::quote(table)?,
  };
  let mut create = Vec::new();
  if let Some(s) = schema {
    create.push(format!("CREATE SCHEMA IF NOT EXISTS {}", sql::quote(s)?));
  }
  let (sid, expire) = match layout {
    Layout::PgSimple => {
      // connect-pg-simple's fixed names for its default table; names derived from the table for
      // any other, because its fixed ones collide when a schema holds two session tables.
      let pkey = sql::quote(&sql::derived(table, "_pkey", ""))?;
      let index = sql::quote(&sql::derived(table, "_expire", "IDX_"))?;
      create.push(format!(
        "CREATE TABLE IF NOT EXISTS {t} (\"sid\" varchar NOT NULL COLLATE \"default\", \"sess\" json NOT NULL, \
         \"expire\" timestamp(6) NOT NULL, CONSTRAINT {pkey} PRIMARY KEY (\"sid\") NOT DEFERRABLE INITIALLY IMMEDIATE)"
      ));
      create.push(format!("CREATE INDEX IF NOT EXISTS {index} ON {t} (\"expire\")"));
      // The naive timestamp is read in the connection's TimeZone, as to_timestamp() wrote it.
      ("sid".to_string(), "expire")
    }
    Layout::Knex => {
      // connect-session-knex 5's table as knex creates it.
      let s = sql::quote(sid_column)?;
      let pkey = sql::quote(&sql::derived(table, "_pkey", ""))?;
      let index = sql::quote(&sql::derived(table, "_expired_index", ""))?;
      create.push(format!(
        "CREATE TABLE IF NOT EXISTS {t} ({s} varchar(255) NOT NULL, \"sess\" json NOT NULL, \
         \"expired\" timestamptz NOT NULL, CONSTRAINT {pkey} PRIMARY KEY ({s}))"
      ));
      create.push(format!("CREATE INDEX IF NOT EXISTS {index} ON {t} (\"expired\")"));
      (s, "expired")
    }
  };
  // Live means "expires after now". connect-pg-simple's whole seconds make `>=` the same as its
  // own rule; knex's microseconds would let a session live through the very millisecond it
  // expires at (connect-session-knex compares `now <= expired`), so that layout is strict.
  let live = match layout {
    Layout::PgSimple => ">=",
    Layout::Knex => ">",
  };
  let ops = Statements {
    // The real expiry comes back too: a touch by the anchor moves it without rewriting `sess`.
    get: format!(
      "SELECT sess, (extract(epoch FROM {expire}::timestamptz) * 1000)::float8 FROM {t} WHERE {sid} = $1 AND {expire} {live} to_timestamp($2)"
    ),
    set: format!(
      "INSERT INTO {t} (sess, {expire}, {sid}) SELECT $1, to_timestamp($2), $3 \
       ON CONFLICT ({sid}) DO UPDATE SET sess=$1, {expire}=to_timestamp($2) RETURNING {sid}"
    ),
    // `sess::text` is the text a read returns (for jsonb too: both are its normal form).
    set_if_unchanged: format!(
      "UPDATE {t} SET sess = $1, {expire} = to_timestamp($2) WHERE {sid} = $3 AND sess::text = $4 RETURNING {sid}"
    ),
    // Sends only the new expiry, and only for a live row (a destroyed or expired session stays
    // gone): the expiry column as the anchor's touch writes it, and the cookie's `expires` inside
    // `sess` rewritten in place by the server, so the stored cookie stays current to the ms.
    // (`{sess}` is filled in per column type: `touch_sql`, `expires_rewritten`.)
    touch: format!(
      "UPDATE {t} SET {expire} = to_timestamp($1), sess = {{sess}} WHERE {sid} = $2 AND {expire} {live} to_timestamp($3)"
    ),
    destroy: format!("DELETE FROM {t} WHERE {sid} = $1"),
    ids: format!("SELECT {sid} FROM {t} WHERE {expire} {live} to_timestamp($1)"),
    all: format!("SELECT {sid}, sess FROM {t} WHERE {expire} {live} to_timestamp($1)"),
    length: format!("SELECT count(*) FROM {t} WHERE {expire} {live} to_timestamp($1)"),
    clear: format!("WITH removed AS (DELETE FROM {t} RETURNING 1) SELECT count(*) FROM removed"),
    prune: format!("DELETE FROM {t} WHERE {expire} < to_timestamp($1)"),
  };
  // The same statements over arrays. The target row is `cur`, the batch's row `u`: a sid column
  // named like one of `u`'s columns cannot make a name ambiguous.
  let many = ManySql {
    get: format!(
      "SELECT {sid}, sess, (extract(epoch FROM {expire}::timestamptz) * 1000)::float8 FROM {t} \
       WHERE {sid} = ANY($1::text[]) AND {expire} {live} to_timestamp($2)"
    ),
    set: format!(
      "INSERT INTO {t} (sess, {expire}, {sid}) SELECT u.sess, to_timestamp(u.secs), u.sid \
       FROM unnest($1::{{type}}[], $2::float8[], $3::text[]) AS u(sess, secs, sid) \
       ON CONFLICT ({sid}) DO UPDATE SET sess = excluded.sess, {expire} = excluded.{expire}"
    ),
    touch: format!(
      "UPDATE {t} AS cur SET {expire} = to_timestamp(u.secs), sess = {{sess}} \
       FROM unnest($1::text[], $2::float8[], $3::text[]) AS u(sid, secs, iso) \
       WHERE cur.{sid} = u.sid AND cur.{expire} {live} to_timestamp($4)"
    ),
    destroy: format!("DELETE FROM {t} WHERE {sid} = ANY($1::text[])"),
  };
  let display = match schema {
    Some(s) => format!("{s:?}.{table:?}"),
    None => format!("{table:?}"),
  };
  let probe_sess = format!("SELECT sess FROM {t}");
  Ok(TableSql {
    ops,
    many,
    probe_sess,
    create,
    lock_key: format!("ferrosession:{t}"),
    display,
  })
}

/// Creates the table once, under a transaction-scoped advisory lock so that stores starting
/// together in several processes do not race each other's `CREATE`.
async fn create_table(client: &Object, sql: &TableSql, backend: &PostgresBackend) -> BackendResult<()> {
  let mut batch = format!(
    "BEGIN; SELECT pg_advisory_xact_lock(hashtext({})); ",
    literal(&sql.lock_key)
  );
  for statement in &sql.create {
    batch.push_str(statement);
    batch.push_str("; ");
  }
  batch.push_str("COMMIT;");
  if let Err(e) = client.batch_execute(&batch).await {
    let _ = client.batch_execute("ROLLBACK").await;
    return Err(backend.classify(&e));
  }
  Ok(())
}

/// A SQL string literal (for the lock key, which is built from already-quoted identifiers).
fn literal(s: &str) -> String {
  format!("'{}'", s.replace('\'', "''"))
}

/// The stored expiry: connect-pg-simple's `to_timestamp(Math.ceil(expires_ms / 1000))`, or
/// knex's exact instant.
fn expire_secs(layout: Layout, expires_at_ms: Option<f64>) -> BackendResult<f64> {
  match expires_at_ms {
    Some(at) => Ok(layout.secs(at)),
    None => Err(BackendError::invalid(
      "PostgreSQL sessions always expire; disableTTL is not supported",
    )),
  }
}

fn first_sess(rows: Vec<Row>, backend: &PostgresBackend) -> BackendResult<Option<Stored>> {
  match rows.first() {
    Some(row) => {
      let value = row.try_get::<_, StoredJson>(0).map_err(|e| backend.classify(&e))?.0;
      let expires_at_ms = row.try_get::<_, Option<f64>>(1).map_err(|e| backend.classify(&e))?;
      Ok(Some(Stored { value, expires_at_ms }))
    }
    None => Ok(None),
  }
}

fn nothing(_rows: Vec<Row>, _backend: &PostgresBackend) -> BackendResult<()> {
  Ok(())
}

/// The `count(*)` a statement returns.
fn count(rows: Vec<Row>, backend: &PostgresBackend) -> BackendResult<u64> {
  let n: i64 = rows
    .first()
    .map(|r| r.try_get(0))
    .transpose()
    .map_err(|e| backend.classify(&e))?
    .unwrap_or(0);
  Ok(n.max(0) as u64)
}

const SID: &[Slot] = &[Slot::Sid];
const NONE: &[Slot] = &[];

#[async_trait]
impl Backend for PostgresBackend {
  fn name(&self) -> &'static str {
    "postgres"
  }

  /// connect-pg-simple's table keeps whole seconds; knex's timestamptz microseconds.
  fn expiry_precision_ms(&self) -> f64 {
    match self.layout {
      Layout::PgSimple => 1000.0,
      Layout::Knex => 1.0,
    }
  }

  async fn get(&self, sid: &str, now_ms: f64) -> BackendResult<Option<Stored>> {
    self
      .run(
        &self.sql.ops.get,
        &[&sid, &self.layout.secs(now_ms)],
        (&[Slot::Sid, Slot::Other], &[Slot::Sess]),
        first_sess,
      )
      .await
  }

  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, _now_ms: f64) -> BackendResult<()> {
    let expire = expire_secs(self.layout, expires_at_ms)?;
    let params: &[&(dyn ToSql + Sync)] = &[&JsonText(value), &expire, &sid];
    self
      .run(
        &self.sql.ops.set,
        params,
        (&[Slot::Sess, Slot::Other, Slot::Sid], SID),
        nothing,
      )
      .await
  }

  async fn set_if_unchanged(
    &self,
    sid: &str,
    expected: &str,
    value: &str,
    expires_at_ms: Option<f64>,
    _now_ms: f64,
  ) -> Option<BackendResult<bool>> {
    let expire = match expire_secs(self.layout, expires_at_ms) {
      Ok(expire) => expire,
      Err(e) => return Some(Err(e)),
    };
    let params: &[&(dyn ToSql + Sync)] = &[&JsonText(value), &expire, &sid, &expected];
    let slots: &[Slot] = &[Slot::Sess, Slot::Other, Slot::Sid, Slot::Other];
    Some(
      self
        .run(&self.sql.ops.set_if_unchanged, params, (slots, SID), |rows, _| {
          Ok(!rows.is_empty())
        })
        .await,
    )
  }

  async fn touch(&self, sid: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    let expire = expire_secs(self.layout, expires_at_ms)?;
    let iso = crate::clock::iso_from_ms(expires_at_ms.unwrap_or_default());
    let sql = self.touch_sql().await?;
    let params: &[&(dyn ToSql + Sync)] = &[&expire, &sid, &self.layout.secs(now_ms), &iso];
    self.run(sql, params, (&[Slot::Other, Slot::Sid], NONE), nothing).await
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    self.run(&self.sql.ops.destroy, &[&sid], (SID, NONE), nothing).await
  }

  /// A wave's gets, sets, touches and destroys as one statement per kind (`ByKind` above).
  async fn run_batch(&self, requests: &[Request]) -> Option<Vec<BackendResult<Reply>>> {
    batch_kinds::run(self, requests).await
  }

  async fn ids(&self, now_ms: f64) -> BackendResult<Vec<String>> {
    let read = |rows: Vec<Row>, b: &Self| -> BackendResult<Vec<String>> {
      rows
        .iter()
        .map(|r| r.try_get::<_, String>(0).map_err(|e| b.classify(&e)))
        .collect()
    };
    self
      .run(&self.sql.ops.ids, &[&self.layout.secs(now_ms)], (NONE, SID), read)
      .await
  }

  async fn all(&self, now_ms: f64) -> BackendResult<Vec<(String, Option<String>)>> {
    let read = |rows: Vec<Row>, b: &Self| -> BackendResult<Vec<(String, Option<String>)>> {
      rows
        .iter()
        .map(|r| {
          let sid = r.try_get::<_, String>(0).map_err(|e| b.classify(&e))?;
          Ok((sid, r.try_get::<_, StoredJson>(1).ok().map(|s| s.0)))
        })
        .collect()
    };
    self
      .run(
        &self.sql.ops.all,
        &[&self.layout.secs(now_ms)],
        (NONE, &[Slot::Sid, Slot::Sess]),
        read,
      )
      .await
  }

  async fn length(&self, now_ms: f64) -> BackendResult<u64> {
    self
      .run(&self.sql.ops.length, &[&self.layout.secs(now_ms)], (NONE, NONE), count)
      .await
  }

  async fn clear(&self) -> BackendResult<u64> {
    self.run(&self.sql.ops.clear, &[], (NONE, NONE), count).await
  }

  /// Deletes expired rows unless another process holds the prune lock right now, so a fleet of
  /// app processes runs one prune at a time instead of N identical deletes.
  async fn prune(&self, now_ms: f64) -> BackendResult<Option<u64>> {
    let mut lease = self.lease().await?;
    let result = async {
      let client = lease
        .0
        .as_mut()
        .ok_or_else(|| BackendError::backend("the connection was already returned"))?;
      let tx = client.transaction().await.map_err(|e| self.classify(&e))?;
      let locked: bool = tx
        .query_one(
          "SELECT pg_try_advisory_xact_lock(hashtext($1::text), 1)",
          &[&self.sql.lock_key],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| self.classify(&e))?;
      if !locked {
        return Ok(None);
      }
      let stmt = tx
        .prepare_cached(&self.sql.ops.prune)
        .await
        .map_err(|e| self.classify(&e))?;
      let removed = tx
        .execute(&stmt, &[&self.layout.secs(now_ms)])
        .await
        .map_err(|e| self.classify(&e))?;
      tx.commit().await.map_err(|e| self.classify(&e))?;
      Ok(Some(removed))
    }
    .await;
    lease.settle();
    result
  }

  /// A fresh connection, not a pooled one: after the postmaster dies, its orphaned backends can
  /// still answer on connections opened before, but nothing new can connect until it is back.
  /// The whole attempt, startup handshake included, is bounded by connectTimeout: a server that
  /// accepts and then says nothing must not hang the probe.
  async fn ping(&self) -> BackendResult<()> {
    let attempt = async {
      let (client, driver) = self
        .connector
        .connect(&self.config)
        .await
        .map_err(|e| self.classify(&e))?;
      let answered = client.simple_query("").await.map(drop).map_err(|e| self.classify(&e));
      drop(client);
      let _ = driver.await;
      answered
    };
    match tokio::time::timeout(self.connect_timeout, attempt).await {
      Ok(result) => result,
      Err(_) => Err(BackendError::unavailable(format!(
        "no answer within {} ms (connectTimeout)",
        self.connect_timeout.as_millis()
      ))),
    }
  }

  /// Closes the pool when no other store of the process shares it.
  async fn close(&self) {
    if shared_pool::only_user(&self.pool) {
      self.pool.close();
    }
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
    let bytes = if *ty == Type::JSONB {
      raw.get(1..).unwrap_or_default()
    } else {
      raw
    };
    Ok(StoredJson(String::from_utf8(bytes.to_vec())?))
  }

  fn accepts(ty: &Type) -> bool {
    accepts_json_like(ty)
  }
}

fn accepts_json_like(ty: &Type) -> bool {
  matches!(
    *ty,
    Type::JSON | Type::JSONB | Type::TEXT | Type::VARCHAR | Type::BPCHAR
  )
}

fn accepts_text(ty: &Type) -> bool {
  matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn default_table_keeps_connect_pg_simple_names() {
    let s = statements(Layout::PgSimple, None, "session", "sid")
      .map_err(|e| e.detail)
      .unwrap_or_else(|e| panic!("{e}"));
    assert!(
      s.ops
        .get
        .ends_with("FROM \"session\" WHERE sid = $1 AND expire >= to_timestamp($2)")
    );
    assert!(s.create[0].contains("CONSTRAINT \"session_pkey\""));
    assert!(s.create[1].contains("\"IDX_session_expire\""));
  }

  #[test]
  fn hostile_names_stay_inside_quotes() {
    let s = statements(Layout::PgSimple, Some("x\"; DROP SCHEMA public; --"), "t\"", "sid")
      .map_err(|e| e.detail)
      .unwrap_or_else(|e| panic!("{e}"));
    assert!(
      s.ops
        .destroy
        .starts_with("DELETE FROM \"x\"\"; DROP SCHEMA public; --\".\"t\"\"\" WHERE")
    );
  }

  #[test]
  fn expire_rounds_up_to_whole_seconds() {
    assert_eq!(
      expire_secs(Layout::PgSimple, Some(1_764_255_019_586.0)).ok(),
      Some(1_764_255_020.0)
    );
    assert_eq!(
      expire_secs(Layout::PgSimple, Some(1_764_255_019_000.0)).ok(),
      Some(1_764_255_019.0)
    );
    assert_eq!(
      expire_secs(Layout::Knex, Some(1_764_255_019_586.0)).ok(),
      Some(1_764_255_019.586)
    );
  }

  #[test]
  fn knex_table_keeps_connect_session_knex_names() {
    let s = statements(Layout::Knex, None, "sessions", "sid")
      .map_err(|e| e.detail)
      .unwrap_or_else(|e| panic!("{e}"));
    assert!(s.create[0].contains("\"expired\" timestamptz NOT NULL, CONSTRAINT \"sessions_pkey\""));
    assert!(s.create[1].starts_with("CREATE INDEX IF NOT EXISTS \"sessions_expired_index\""));
    assert!(s.ops.get.contains("WHERE \"sid\" = $1 AND expired > to_timestamp($2)"));
  }
}
