//! MySQL and MariaDB, in one of two tables: express-mysql-session's (`session_id`, `expires` as
//! unsigned seconds `Math.round`ed, `data` text; column and table names configurable) or
//! connect-session-knex's (`sid`, `sess` json, `expired` datetime in UTC floored to the second).
//! Pooled connections with statements prepared once each (mysql_async's per-connection cache);
//! the expiry instants come from the JS clock, never from the server's `NOW()`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{
  ClientIdentity, Conn, DriverError, Error as MyError, IoError, Opts, OptsBuilder, Params, Pool, PoolConstraints,
  PoolOpts, Row, SslOpts, Value,
};

use crate::backend::{Backend, Reply, Request, Stored, stored_text};
use crate::batch_kinds::{self, Answers, ByKind, Destroy, Get, Group, Set, Touch};
use crate::defaults::{self, Common};
use crate::error::{BackendError, BackendResult};
use crate::shared_pool::{self, SharedPools};
use crate::sql::{self, Dialect, Statements};

/// The driver's pool, and whether a store closing it disconnected it (the driver cannot say).
struct SharedPool {
  pool: Pool,
  disconnected: std::sync::atomic::AtomicBool,
}

fn pools() -> &'static SharedPools<SharedPool> {
  static POOLS: std::sync::OnceLock<SharedPools<SharedPool>> = std::sync::OnceLock::new();
  POOLS.get_or_init(SharedPools::default)
}

/// Everything that shapes a store's connections and its pool (not its table): stores that agree
/// on all of it share one pool.
fn connection_settings(o: &MysqlConfig, common: &Common) -> String {
  let tls = o
    .tls
    .as_ref()
    .map(|t| (&t.ca, &t.cert, &t.key, t.reject_unauthorized, &t.servername));
  format!(
    "{:?}",
    (
      (&o.host, o.port, &o.user, &o.password, &o.database, &o.socket_path),
      (o.pool_size, common, tls),
    )
  )
}

/// What a MySQL store is built from (besides the settings every store shares).
pub struct MysqlConfig {
  pub host: Option<String>,
  pub port: Option<u16>,
  pub user: Option<String>,
  pub password: Option<String>,
  pub database: Option<String>,
  /// A Unix socket path (mysql2's `socketPath`): used instead of host and port.
  pub socket_path: Option<String>,
  pub layout: Layout,
  /// The table, `database.table` allowed (express-mysql-session splits on the dot).
  pub table_name: String,
  pub sid_column: String,
  pub expires_column: String,
  pub data_column: String,
  pub create_table: bool,
  /// express-mysql-session's `charset`: the collation of the created table's text columns.
  pub collation: Option<String>,
  /// Most connections in the pool (absent: `defaults::POOL_SIZE`).
  pub pool_size: Option<u32>,
  /// Present: TLS is required (never a silent fallback to plaintext).
  pub tls: Option<MysqlTls>,
}

/// mysql2's `ssl` option, as JS read it.
pub struct MysqlTls {
  /// PEM certificates to trust instead of the built-in roots.
  pub ca: Option<Vec<String>>,
  pub cert: Option<String>,
  pub key: Option<String>,
  /// false: any certificate is accepted (mysql2's `rejectUnauthorized: false`).
  pub reject_unauthorized: bool,
  /// Check the certificate against this name instead of the host.
  pub servername: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
  /// `expires` holds `Math.round(ms / 1000)` as an unsigned int.
  ExpressMysqlSession,
  /// `expired` holds the UTC wall clock floored to the second, as a `datetime`.
  Knex,
}

impl Layout {
  /// The anchor's sid column width (`varchar(128)` / `varchar(255)`). A longer sid is refused
  /// here: a server in non-strict mode would cut it silently, and two sids that share their first
  /// characters would then share a row.
  fn max_sid_chars(self) -> usize {
    match self {
      Layout::ExpressMysqlSession => 128,
      Layout::Knex => 255,
    }
  }

  /// The value an instant is stored (and compared) as.
  fn stamp(self, ms: f64) -> Value {
    match self {
      Layout::ExpressMysqlSession => Value::UInt((ms / 1000.0).round().max(0.0) as u64),
      Layout::Knex => Value::Bytes(crate::clock::datetime_from_ms(ms).into_bytes()),
    }
  }

  /// The instant a stored expiry value names, in epoch ms.
  fn instant(self, value: &Value) -> Option<f64> {
    match (self, value) {
      (_, Value::UInt(s)) => Some(*s as f64 * 1000.0),
      (_, Value::Int(s)) => Some(*s as f64 * 1000.0),
      (Layout::Knex, Value::Date(y, mo, d, h, mi, s, us)) => Some(crate::clock::ms_from_utc(
        i64::from(*y),
        i64::from(*mo),
        i64::from(*d),
        i64::from(*h),
        i64::from(*mi),
        i64::from(*s),
        i64::from(*us),
      )),
      _ => None,
    }
  }
}

/// What a statement's packet carries beyond its sid and value (header, statement id, types, the
/// expiry), rounded up.
const PACKET_OVERHEAD: u64 = 1024;

struct TableSql {
  ops: Statements,
  /// `get` for many sids at once: this, then `(?, ?, ...)` and the expiry condition.
  get_many: String,
  expires_column: String,
  /// `set` for many rows at once: `INSERT ... VALUES` and the `ON DUPLICATE KEY` clause.
  set_many: (String, String),
  /// `touch` for many rows at once: its four fixed parts, between which go the `WHEN ? THEN ?`
  /// lists of new expiries and new cookie dates, and the sids' placeholders.
  touch_many: [String; 4],
  /// `destroy` for many sids at once: this, then `(BINARY ?, ...)`.
  destroy_many: String,
  create: Vec<String>,
  /// GET_LOCK name for pruning once per cluster (at most 64 characters).
  lock_name: String,
  display: String,
}

pub struct MysqlBackend {
  /// Shared with every store of the process that has the same connection settings.
  pool: Arc<SharedPool>,
  /// For the recovery probe's own fresh connection.
  opts: Opts,
  layout: Layout,
  sql: TableSql,
  create_table: bool,
  table_ready: tokio::sync::OnceCell<()>,
  /// The server's `max_allowed_packet`, read on first use: a larger session is refused before it
  /// is sent (sent, it breaks the connection's packet sequence and looks like an outage).
  max_packet: tokio::sync::OnceCell<u64>,
  connect_timeout: Duration,
  database: Option<String>,
  user: Option<String>,
  /// For error messages: the socket path, or `host:port` (never the password).
  address: String,
}

impl MysqlBackend {
  pub fn new(o: MysqlConfig, common: &Common) -> BackendResult<Self> {
    let layout = o.layout;
    let connect_timeout = common.connect_timeout;
    let max = o.pool_size.unwrap_or(defaults::POOL_SIZE).max(1) as usize;
    let mut pool_opts = PoolOpts::default()
      .with_constraints(
        PoolConstraints::new(0, max).ok_or_else(|| BackendError::invalid("poolSize must be at least 1"))?,
      )
      // Our statements leave no session state behind; a reset would also drop the statement
      // cache and cost a round trip on every return to the pool.
      .with_reset_connection(false);
    if let Some(idle) = common.idle_timeout {
      pool_opts = pool_opts
        .with_inactive_connection_ttl(idle)
        .with_ttl_check_interval((idle / 2).max(Duration::from_secs(1)));
    }
    let mut builder = OptsBuilder::default()
      .ip_or_hostname(o.host.clone().unwrap_or_else(|| "localhost".to_string()))
      .tcp_port(o.port.unwrap_or(3306))
      .user(o.user.clone())
      .pass(o.password.clone())
      .db_name(o.database.clone())
      // After connecting over TCP the driver would otherwise reconnect through the server's
      // local socket, skipping TLS and possibly reaching another server on this machine.
      .prefer_socket(false)
      .socket(o.socket_path.clone())
      .tcp_keepalive(Some(Duration::from_secs(60)))
      // The batched get prepares one statement per batch size (up to 32), beside the others.
      .stmt_cache_size(64)
      // An UPDATE counts the rows it matched, not only those whose values changed: a merged save
      // whose row ends up as it was (MySQL keeps JSON columns normalised, so compact text written
      // over them often reads back the same) must not look like a lost race (set_if_unchanged).
      .client_found_rows(true)
      .pool_opts(pool_opts);
    if let Some(tls) = &o.tls {
      builder = builder.ssl_opts(Some(ssl_opts(tls)?));
    }
    let opts: Opts = builder.into();
    let sql = statements(layout, &o)?;
    Ok(Self {
      pool: pools().get_or_build(
        connection_settings(&o, common),
        |p| !p.disconnected.load(std::sync::atomic::Ordering::Acquire),
        || {
          Ok(SharedPool {
            pool: Pool::new(opts.clone()),
            disconnected: std::sync::atomic::AtomicBool::new(false),
          })
        },
      )?,
      opts,
      layout,
      sql,
      create_table: o.create_table,
      table_ready: tokio::sync::OnceCell::new(),
      max_packet: tokio::sync::OnceCell::new(),
      connect_timeout,
      address: match &o.socket_path {
        Some(path) => path.clone(),
        None => format!(
          "{}:{}",
          o.host.as_deref().unwrap_or("localhost"),
          o.port.unwrap_or(3306)
        ),
      },
      database: o.database,
      user: o.user,
    })
  }

  /// A pooled connection, the table created first if asked. Connecting is bounded by
  /// connectTimeout (the driver has no timeout of its own): a server that accepts the TCP
  /// connection and never answers the handshake is unreachable, not slow.
  async fn conn(&self) -> BackendResult<Conn> {
    let mut conn = match tokio::time::timeout(self.connect_timeout, self.pool.pool.get_conn()).await {
      Ok(result) => result.map_err(|e| self.classify(e))?,
      Err(_) => {
        return Err(BackendError::unavailable(format!(
          "could not connect within {} ms (connectTimeout)",
          self.connect_timeout.as_millis()
        )));
      }
    };
    if self.create_table {
      self
        .table_ready
        .get_or_try_init(|| async {
          for statement in &self.sql.create {
            conn.query_drop(statement).await.map_err(|e| self.classify(e))?;
          }
          Ok::<(), BackendError>(())
        })
        .await?;
    }
    Ok(conn)
  }

  async fn rows(&self, statement: &str, params: Vec<Value>) -> BackendResult<Vec<Row>> {
    let mut conn = self.conn().await?;
    match conn.exec::<Row, _, _>(statement, Params::Positional(params)).await {
      Ok(rows) => Ok(rows),
      Err(e) => Err(self.fail_on(conn, e).await),
    }
  }

  /// Runs a statement that returns no rows; the number of rows it changed.
  async fn change(&self, statement: &str, params: Vec<Value>) -> BackendResult<u64> {
    let mut conn = self.conn().await?;
    match conn.exec_drop(statement, Params::Positional(params)).await {
      Ok(()) => Ok(conn.affected_rows()),
      Err(e) => Err(self.fail_on(conn, e).await),
    }
  }

  /// The error of a statement on `conn`. A connection whose packets went out of step (a protocol
  /// error) is closed instead of going back to the pool: the next request gets a fresh one, and
  /// the failure stays this request's.
  async fn fail_on(&self, conn: Conn, e: MyError) -> BackendError {
    if matches!(e, MyError::Driver(_) | MyError::Io(_)) {
      let _ = tokio::time::timeout(self.connect_timeout, conn.disconnect()).await;
    }
    self.classify(e)
  }

  /// Refuses `size` bytes of statement data when the server would refuse the packet. The limit
  /// is read once, on the first request that needs it.
  async fn check_size(&self, size: usize) -> BackendResult<()> {
    let limit = *self
      .max_packet
      .get_or_try_init(|| async {
        let mut conn = self.conn().await?;
        match conn.query_first::<u64, _>("SELECT @@max_allowed_packet").await {
          Ok(limit) => Ok(limit.unwrap_or(u64::MAX)),
          Err(e) => Err(self.fail_on(conn, e).await),
        }
      })
      .await?;
    if (size as u64).saturating_add(PACKET_OVERHEAD) > limit {
      return Err(BackendError::too_large(
        size,
        limit,
        "raise the server's max_allowed_packet (SET GLOBAL max_allowed_packet = ..., and in my.cnf) or keep less in the session",
      ));
    }
    Ok(())
  }

  /// Only a server that cannot be reached is an outage; whatever the server answered fails that
  /// request with the server's own words.
  fn classify(&self, e: MyError) -> BackendError {
    match e {
      MyError::Server(s) => match s.code {
        // shutdown, connection killed: the server is going away
        1053 | 1927 => BackendError::unavailable(format!("{} (error {})", s.message, s.code)),
        // The server answers: it fails this request alone (a flood of stores must not switch
        // sessions off for every user).
        1040 => BackendError::backend(format!(
          "{} (error 1040): the server's max_connections is used up; close stores you no longer use, or lower poolSize",
          s.message
        )),
        1146 => BackendError::backend(format!(
          "{} (error 1146): table {} does not exist in database {:?} (user {:?}); pass createDatabaseTable: true (or createTable: true), or create it with the SQL in the README",
          s.message,
          self.sql.display,
          self.database.as_deref().unwrap_or("(none selected)"),
          self.user.as_deref().unwrap_or("(unset)")
        )),
        1969 | 3024 => BackendError::backend(format!("{} (error {}, statement timeout)", s.message, s.code)),
        _ => BackendError::backend(format!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state)),
      },
      MyError::Io(IoError::Tls(t)) => BackendError::unavailable(crate::tls::explain(&format!(
        "error performing TLS handshake with {}: {t}",
        self.address
      ))),
      MyError::Io(io) => BackendError::unavailable(format!("cannot reach {}: {io}", self.address)),
      MyError::Driver(DriverError::PoolDisconnected) => BackendError::closed(),
      MyError::Driver(d @ DriverError::ConnectionClosed) => BackendError::unavailable(d.to_string()),
      // A protocol error on one connection (its packets out of step) is that request's failure;
      // the connection is closed (`fail_on`) and the server is not taken for unreachable.
      MyError::Driver(d @ (DriverError::PacketOutOfOrder | DriverError::UnexpectedPacket { .. })) => {
        BackendError::backend(format!("{d} (the connection was replaced)"))
      }
      MyError::Driver(d @ DriverError::NoClientSslFlagFromServer) => BackendError::unavailable(format!(
        "{d}: TLS was asked for (the ssl option) and the server does not offer it; ferrosession never falls back to plaintext"
      )),
      MyError::Url(u) => BackendError::invalid(u.to_string()),
      other => BackendError::backend(other.to_string()),
    }
  }

  fn check_sid(&self, sid: &str) -> BackendResult<()> {
    let max = self.layout.max_sid_chars();
    let length = sid.chars().count();
    if length > max {
      return Err(BackendError::invalid(format!(
        "the session id is {length} characters long; the table's sid column holds {max}"
      )));
    }
    Ok(())
  }

  /// The row for exactly `sid`. A case-insensitive, PAD SPACE sid column (knex creates its table
  /// with the database's default collation) also matches `SID` or `sid  `; such a row is not
  /// this session.
  fn first_stored(&self, sid: &str, rows: Vec<Row>) -> BackendResult<Option<Stored>> {
    match rows.into_iter().find(|r| is_row_of(r, sid)) {
      Some(row) => self.stored_of(row),
      None => Ok(None),
    }
  }

  /// The session a row holds, with its expiry.
  fn stored_of(&self, mut row: Row) -> BackendResult<Option<Stored>> {
    let data: Option<Vec<u8>> = take(&mut row, 0)?;
    // express-mysql-session's `data` column is nullable; NULL reads as "no session", as there.
    let Some(bytes) = data else { return Ok(None) };
    let expiry: Value = take::<Option<Value>>(&mut row, 1)?.unwrap_or(Value::NULL);
    Ok(Some(Stored {
      value: stored_text(bytes)?,
      expires_at_ms: self.layout.instant(&expiry),
    }))
  }
}

/// Whether a row (its third column the sid) is exactly `sid`'s: a case-insensitive, PAD SPACE
/// sid column also matches `SID` or `sid  `.
fn is_row_of(row: &Row, sid: &str) -> bool {
  matches!(row.as_ref(2), Some(Value::Bytes(b)) if b.as_slice() == sid.as_bytes())
}

/// Column `i` of a row as `T`, without the driver's panicking conversion.
fn take<T: mysql_async::prelude::FromValue>(row: &mut Row, i: usize) -> BackendResult<T> {
  match row.take_opt::<T, usize>(i) {
    Some(Ok(v)) => Ok(v),
    Some(Err(e)) => Err(BackendError::backend(format!(
      "column {} has a value ferrosession cannot read: {e}",
      i + 1
    ))),
    None => Err(BackendError::backend(format!("the result has no column {}", i + 1))),
  }
}

fn ssl_opts(tls: &MysqlTls) -> BackendResult<SslOpts> {
  let mut ssl = SslOpts::default();
  if let Some(ca) = tls.ca.as_ref().filter(|ca| !ca.is_empty()) {
    let roots = ca.iter().map(|pem| pem.clone().into_bytes().into()).collect();
    // As Node's TLS does once a `ca` is given: only those are trusted.
    ssl = ssl.with_root_certs(roots).with_disable_built_in_roots(true);
  }
  match (&tls.cert, &tls.key) {
    (Some(cert), Some(key)) => {
      // Parsed here so a bad PEM is an error at construction, not at the first request.
      crate::tls::client_identity(cert, key)?;
      ssl = ssl.with_client_identity(Some(ClientIdentity::new(
        cert.clone().into_bytes().into(),
        key.clone().into_bytes().into(),
      )));
    }
    (None, None) => {}
    _ => {
      return Err(BackendError::invalid(
        "ssl.cert and ssl.key go together: give both or neither",
      ));
    }
  }
  if !tls.reject_unauthorized {
    ssl = ssl.with_danger_accept_invalid_certs(true);
  }
  if let Some(name) = &tls.servername {
    ssl = ssl.with_danger_tls_hostname_override(Some(name.clone()));
  }
  Ok(ssl)
}

fn statements(layout: Layout, o: &MysqlConfig) -> BackendResult<TableSql> {
  let q = |name: &str| sql::quote_in(Dialect::MySql, name);
  // express-mysql-session's escapeId splits `db.table` on the dot; so do we.
  let (schema, table) = match o.table_name.split_once('.') {
    Some((db, table)) => (Some(db), table),
    None => (None, o.table_name.as_str()),
  };
  let t = match schema {
    Some(db) => format!("{}.{}", q(db)?, q(table)?),
    None => q(table)?,
  };
  let (s, e, d) = (q(&o.sid_column)?, q(&o.expires_column)?, q(&o.data_column)?);
  let collation = o.collation.as_deref().unwrap_or("utf8mb4_bin");
  // Written into the DDL as a keyword, so only a collation name's own characters pass.
  if !collation.starts_with("utf8mb4_") || !collation.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
    return Err(BackendError::invalid(format!(
      "{collation:?} is not a utf8mb4 collation"
    )));
  }
  let create = match layout {
    Layout::ExpressMysqlSession => vec![format!(
      "CREATE TABLE IF NOT EXISTS {t} ({s} varchar(128) COLLATE {collation} NOT NULL, {e} int(11) unsigned NOT NULL, \
       {d} mediumtext COLLATE {collation}, PRIMARY KEY ({s})) ENGINE=InnoDB"
    )],
    Layout::Knex => {
      let index = q(&sql::derived_in(Dialect::MySql, table, "_expired_index", ""))?;
      vec![format!(
        "CREATE TABLE IF NOT EXISTS {t} ({s} varchar(255) NOT NULL, {d} json NOT NULL, {e} datetime NOT NULL, \
         PRIMARY KEY ({s}), INDEX {index} ({e}))"
      )]
    }
  };
  // Sends only the new expiry (and the cookie's date, rewritten in place by the server where the
  // session starts with its cookie: the column keeps whole seconds, the cookie the exact ms).
  let marker = "'\"expires\":\"'";
  let at = format!("LOCATE({marker}, {d})");
  let in_place_with = |date: &str| {
    format!(
      "CASE WHEN LEFT({d}, 11) = '{{\"cookie\":{{' AND {at} > 0 AND {at} < LOCATE('}}', {d}) \
       AND SUBSTRING({d}, {at} + 34, 2) = 'Z\"' THEN INSERT({d}, {at} + 11, 24, {date}) ELSE {d} END"
    )
  };
  let in_place = in_place_with("?");
  // Sids match byte for byte (`BINARY ?`), never by the column's collation: under it `'abc '`
  // equals `'abc'` (PAD SPACE), and on the knex layout's default `'AbC'` equals `'abc'`, so a
  // write or delete for one would change the other's row. A write whose sid the key calls equal
  // to a stored, different sid leaves that row as it is.
  let same_row = format!("{s} = BINARY VALUES({s})");
  let on_same_sid =
    format!(" ON DUPLICATE KEY UPDATE {e} = IF({same_row}, VALUES({e}), {e}), {d} = IF({same_row}, VALUES({d}), {d})");
  let ops = Statements {
    get: format!("SELECT {d}, {e}, {s} FROM {t} WHERE {s} = BINARY ? AND {e} >= ?"),
    set: format!("INSERT INTO {t} ({s}, {e}, {d}) VALUES (?, ?, ?){on_same_sid}"),
    // A JSON column compared as the text a read returns.
    set_if_unchanged: format!(
      "UPDATE {t} SET {e} = ?, {d} = ? WHERE {s} = BINARY ? AND CAST({d} AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_bin = ?"
    ),
    touch: format!("UPDATE {t} SET {e} = ?, {d} = {in_place} WHERE {s} = BINARY ? AND {e} >= ?"),
    destroy: format!("DELETE FROM {t} WHERE {s} = BINARY ?"),
    ids: format!("SELECT {s} FROM {t} WHERE {e} >= ?"),
    all: format!("SELECT {s}, {d} FROM {t} WHERE {e} >= ?"),
    length: format!("SELECT COUNT(*) FROM {t} WHERE {e} >= ?"),
    clear: format!("DELETE FROM {t}"),
    prune: format!("DELETE FROM {t} WHERE {e} < ?"),
  };
  let display = match schema {
    Some(db) => format!("{db:?}.{table:?}"),
    None => format!("{table:?}"),
  };
  Ok(TableSql {
    get_many: format!("SELECT {d}, {e}, {s} FROM {t} WHERE {s} IN "),
    destroy_many: format!("DELETE FROM {t} WHERE {s} IN "),
    touch_many: {
      // The in-place edit with a per-row date: split where the date's CASE goes.
      let edit = in_place_with("\u{0}");
      let (before, after) = edit.split_once('\u{0}').unwrap_or((&edit, ""));
      [
        format!("UPDATE {t} SET {e} = CASE {s} "),
        format!(" END, {d} = {before}CASE {s} "),
        format!(" END{after} WHERE {s} IN ("),
        format!(") AND {e} >= ?"),
      ]
    },
    set_many: (format!("INSERT INTO {t} ({s}, {e}, {d}) VALUES "), on_same_sid.clone()),
    expires_column: e.clone(),
    ops,
    create,
    lock_name: format!("ferrosession:{:016x}", fnv1a(t.as_bytes())),
    display,
  })
}

/// A stable 64-bit hash (FNV-1a), to name the prune lock within MySQL's 64-character limit.
fn fnv1a(bytes: &[u8]) -> u64 {
  bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
    (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
  })
}

/// A wave's gets as one `IN (...)` query, its sets as one multi-row `INSERT`, its touches as one
/// `UPDATE` and its destroys as one `DELETE`: one statement and one round trip each instead of
/// one per request (the server's and the runtime's work per statement is what limited
/// throughput).
#[async_trait]
impl ByKind for MysqlBackend {
  /// A sid the column cannot hold is refused on its own.
  fn combinable(&self, request: &Request) -> bool {
    self.check_sid(request.sid()).is_ok()
  }

  /// Measured, HTTP write-heavy through express-session, each A/B pair against the build that
  /// ran a wave's `INSERT ... ON DUPLICATE KEY UPDATE` first: run beside the other kinds it gave
  /// 0.81-0.94x (3 pairs), first 1.08-1.11x (2 pairs). InnoDB's insert locks, we think.
  fn sets_first(&self) -> bool {
    true
  }

  /// A wave's sets as one multi-row `INSERT` (`run_batch`). Together too big for one packet:
  /// refused before it is sent, and `batch_kinds` then writes (and checks) each on its own.
  async fn set_many(&self, sets: &Group<Set<'_>>) -> Answers {
    let size: usize = sets.items.iter().map(|s| s.sid.len() + s.value.len() + 32).sum();
    self.check_size(size).await?;
    let (insert, update) = &self.sql.set_many;
    let rows = vec!["(?, ?, ?)"; sets.items.len()].join(", ");
    let statement = format!("{insert}{rows}{update}");
    let mut params = Vec::with_capacity(sets.items.len() * 3);
    for set in &sets.items {
      params.extend([
        Value::from(set.sid),
        self.layout.stamp(set.expires_at_ms),
        Value::from(set.value),
      ]);
    }
    self.change(&statement, params).await?;
    batch_kinds::all_done(sets)
  }

  /// A wave's touches as one `UPDATE`, each row's new expiry and cookie date by a `CASE`.
  async fn touch_many(&self, touches: &Group<Touch<'_>>) -> Answers {
    let [head, middle, tail, end] = &self.sql.touch_many;
    let whens = vec!["WHEN BINARY ? THEN ?"; touches.items.len()].join(" ");
    let marks = vec!["BINARY ?"; touches.items.len()].join(", ");
    let statement = format!("{head}{whens}{middle}{whens}{tail}{marks}{end}");
    let mut params = Vec::with_capacity(touches.items.len() * 5 + 1);
    for touch in &touches.items {
      params.extend([Value::from(touch.sid), self.layout.stamp(touch.expires_at_ms)]);
    }
    for touch in &touches.items {
      let iso = crate::clock::iso_from_ms(touch.expires_at_ms);
      params.extend([Value::from(touch.sid), Value::from(iso)]);
    }
    params.extend(touches.sids().into_iter().map(Value::from));
    params.push(self.layout.stamp(touches.earliest_ms));
    self.change(&statement, params).await?;
    batch_kinds::all_done(touches)
  }

  /// A wave's destroys as one `DELETE`.
  async fn destroy_many(&self, destroys: &Group<Destroy<'_>>) -> Answers {
    let marks = vec!["BINARY ?"; destroys.items.len()].join(", ");
    let statement = format!("{}({marks})", self.sql.destroy_many);
    self
      .change(&statement, destroys.sids().into_iter().map(Value::from).collect())
      .await?;
    batch_kinds::all_done(destroys)
  }

  /// A wave's gets as one `IN (...)` query; each get then takes the row of exactly its sid.
  async fn get_many(&self, gets: &Group<Get<'_>>) -> Answers {
    let marks = vec!["BINARY ?"; gets.items.len()].join(", ");
    let statement = format!("{}({marks}) AND {} >= ?", self.sql.get_many, self.sql.expires_column);
    let mut params: Vec<Value> = gets.sids().into_iter().map(Value::from).collect();
    params.push(self.layout.stamp(gets.earliest_ms));
    let mut rows = self.rows(&statement, params).await?;
    // A wave names each sid once, so each row is taken (not copied) by the one get it answers.
    let mut answer = |sid: &str| match rows.iter().position(|r| is_row_of(r, sid)) {
      Some(at) => self.stored_of(rows.swap_remove(at)),
      None => Ok(None),
    };
    Ok(gets.items.iter().map(|get| answer(get.sid).map(Reply::Got)).collect())
  }
}

#[async_trait]
impl Backend for MysqlBackend {
  fn name(&self) -> &'static str {
    "mysql"
  }

  /// Both tables keep whole seconds.
  fn expiry_precision_ms(&self) -> f64 {
    1000.0
  }

  async fn get(&self, sid: &str, now_ms: f64) -> BackendResult<Option<Stored>> {
    self.check_sid(sid)?;
    let rows = self
      .rows(&self.sql.ops.get, vec![sid.into(), self.layout.stamp(now_ms)])
      .await?;
    self.first_stored(sid, rows)
  }

  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, _now_ms: f64) -> BackendResult<()> {
    self.check_sid(sid)?;
    let at = expires_at_ms
      .ok_or_else(|| BackendError::invalid("MySQL sessions always expire; disableTTL is not supported"))?;
    self.check_size(sid.len() + value.len()).await?;
    self
      .change(&self.sql.ops.set, vec![sid.into(), self.layout.stamp(at), value.into()])
      .await
      .map(drop)
  }

  async fn set_if_unchanged(
    &self,
    sid: &str,
    expected: &str,
    value: &str,
    expires_at_ms: Option<f64>,
    _now_ms: f64,
  ) -> Option<BackendResult<bool>> {
    let at = expires_at_ms?; // never expires: refused by set(), which the merge falls back to
    let checked = async {
      self.check_sid(sid)?;
      self.check_size(sid.len() + value.len() + expected.len()).await?;
      let params = vec![self.layout.stamp(at), value.into(), sid.into(), expected.into()];
      // One row matched (client_found_rows): written.
      self
        .change(&self.sql.ops.set_if_unchanged, params)
        .await
        .map(|n| n == 1)
    };
    Some(checked.await)
  }

  async fn touch(&self, sid: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    self.check_sid(sid)?;
    let Some(at) = expires_at_ms else { return Ok(()) };
    let iso = crate::clock::iso_from_ms(at);
    let params = vec![self.layout.stamp(at), iso.into(), sid.into(), self.layout.stamp(now_ms)];
    self.change(&self.sql.ops.touch, params).await.map(drop)
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    self.change(&self.sql.ops.destroy, vec![sid.into()]).await.map(drop)
  }

  async fn ids(&self, now_ms: f64) -> BackendResult<Vec<String>> {
    let rows = self.rows(&self.sql.ops.ids, vec![self.layout.stamp(now_ms)]).await?;
    rows
      .into_iter()
      .map(|mut r| take::<Vec<u8>>(&mut r, 0).and_then(stored_text))
      .collect()
  }

  async fn all(&self, now_ms: f64) -> BackendResult<Vec<(String, Option<String>)>> {
    let rows = self.rows(&self.sql.ops.all, vec![self.layout.stamp(now_ms)]).await?;
    rows
      .into_iter()
      .map(|mut r| {
        let sid = take::<Vec<u8>>(&mut r, 0).and_then(stored_text)?;
        let data = take::<Option<Vec<u8>>>(&mut r, 1)?.and_then(|b| String::from_utf8(b).ok());
        Ok((sid, data))
      })
      .collect()
  }

  async fn length(&self, now_ms: f64) -> BackendResult<u64> {
    let rows = self.rows(&self.sql.ops.length, vec![self.layout.stamp(now_ms)]).await?;
    match rows.into_iter().next() {
      Some(mut row) => take::<u64>(&mut row, 0),
      None => Ok(0),
    }
  }

  async fn clear(&self) -> BackendResult<u64> {
    self.change(&self.sql.ops.clear, vec![]).await
  }

  /// A wave's gets, sets, touches and destroys as one statement per kind (`ByKind` above).
  async fn run_batch(&self, requests: &[Request]) -> Option<Vec<BackendResult<Reply>>> {
    batch_kinds::run(self, requests).await
  }

  /// Deletes expired rows unless another process holds the prune lock right now (`GET_LOCK` with
  /// no wait), so a fleet of app processes runs one prune at a time.
  async fn prune(&self, now_ms: f64) -> BackendResult<Option<u64>> {
    let mut conn = self.conn().await?;
    let lock = self.sql.lock_name.as_str();
    let got: Option<Option<i64>> = conn
      .exec_first("SELECT GET_LOCK(?, 0)", (lock,))
      .await
      .map_err(|e| self.classify(e))?;
    if got.flatten() != Some(1) {
      return Ok(None);
    }
    let removed = conn
      .exec_drop(&self.sql.ops.prune, (self.layout.stamp(now_ms),))
      .await
      .map(|()| conn.affected_rows())
      .map_err(|e| self.classify(e));
    // Released before the connection goes back to the pool (a reset is off, so it would stay
    // held); if this fails the connection is dropped and the server releases the lock with it.
    let released = conn.exec_drop("SELECT RELEASE_LOCK(?)", (lock,)).await;
    if released.is_err() {
      drop(conn.disconnect().await);
    }
    removed.map(Some)
  }

  /// A fresh connection, not a pooled one (a connection from before an outage proves nothing),
  /// bounded by connectTimeout.
  async fn ping(&self) -> BackendResult<()> {
    let attempt = async {
      let mut conn = Conn::new(self.opts.clone()).await.map_err(|e| self.classify(e))?;
      let answered = conn.ping().await.map_err(|e| self.classify(e));
      drop(conn.disconnect().await);
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

  async fn close(&self) {
    // Waits for connections in use to come back; bounded so close() always answers.
    if shared_pool::only_user(&self.pool) {
      self.pool.disconnected.store(true, std::sync::atomic::Ordering::Release);
      let _ = tokio::time::timeout(self.connect_timeout, self.pool.pool.clone().disconnect()).await;
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn options(layout: Layout, table: &str) -> MysqlConfig {
    MysqlConfig {
      host: None,
      port: None,
      user: None,
      password: None,
      database: None,
      socket_path: None,
      layout,
      table_name: table.to_string(),
      sid_column: "session_id".to_string(),
      expires_column: "expires".to_string(),
      data_column: "data".to_string(),
      create_table: true,
      collation: None,
      pool_size: None,
      tls: None,
    }
  }

  #[test]
  fn express_mysql_session_statements_and_table() {
    let s = statements(
      Layout::ExpressMysqlSession,
      &options(Layout::ExpressMysqlSession, "app.sessions"),
    )
    .map_err(|e| e.detail)
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
      s.ops.set,
      "INSERT INTO `app`.`sessions` (`session_id`, `expires`, `data`) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE \
       `expires` = IF(`session_id` = BINARY VALUES(`session_id`), VALUES(`expires`), `expires`), \
       `data` = IF(`session_id` = BINARY VALUES(`session_id`), VALUES(`data`), `data`)"
    );
    assert!(s.create[0].contains("`session_id` varchar(128) COLLATE utf8mb4_bin NOT NULL"));
    assert!(s.lock_name.len() <= 64);
  }

  #[test]
  fn hostile_names_stay_inside_backticks() {
    let mut o = options(Layout::Knex, "t`; DROP TABLE x; --");
    o.sid_column = "s`".to_string();
    let s = statements(Layout::Knex, &o)
      .map_err(|e| e.detail)
      .unwrap_or_else(|e| panic!("{e}"));
    assert!(
      s.ops
        .destroy
        .starts_with("DELETE FROM `t``; DROP TABLE x; --` WHERE `s``` = BINARY ?")
    );
  }

  #[test]
  fn stamps_round_seconds_or_floor_datetimes_as_the_anchors_do() {
    assert_eq!(
      Layout::ExpressMysqlSession.stamp(1_704_164_645_500.0),
      Value::UInt(1_704_164_646)
    );
    assert_eq!(
      Layout::ExpressMysqlSession.stamp(1_704_164_645_499.0),
      Value::UInt(1_704_164_645)
    );
    assert_eq!(
      Layout::Knex.stamp(1_704_164_645_999.0),
      Value::Bytes(b"2024-01-02 03:04:05".to_vec())
    );
    assert_eq!(
      Layout::Knex.instant(&Value::Date(2024, 1, 2, 3, 4, 5, 0)),
      Some(1_704_164_645_000.0)
    );
  }
}
