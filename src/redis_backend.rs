//! Redis, in connect-redis's format: key `prefix + sid`, value the serialised session as a plain
//! string, written with `SET key value PX ms` (connect-redis writes `EX seconds`; milliseconds keep
//! fractional ttls and the cookie's exact expiry). One connection (`redis_connection.rs`: a
//! server, a Cluster, or the master Sentinel names) carries every request, pipelined by the
//! driver; it is opened lazily, replaced when it stops answering, and released when idle.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use std::io::Write;

use redis::{ErrorKind, RedisError, RedisResult, RedisWrite, ServerErrorKind, ToRedisArgs, Value};

use crate::backend::{Backend, Reply, Request, Stored, remaining_ms, stored_text};
use crate::clock::iso_from_ms;
use crate::defaults::Common;
use crate::error::{BackendError, BackendResult, ErrorKind as Kind};
use crate::redis_connection::{self, Certificates, Conn, SentinelSettings, Topology};

/// What a Redis store is built from (besides the settings every store shares).
pub struct RedisConfig {
  /// `redis://[user:pass@]host:port[/db]`; `rediss://` for TLS. With a cluster or sentinel, the
  /// credentials, database and scheme every node is reached with.
  pub url: String,
  pub prefix: String,
  pub scan_count: u32,
  /// PEM root certificate(s) to trust for `rediss://` instead of the system's, and a client
  /// certificate (chain) with its key for servers that require one.
  pub certificates: Certificates,
  /// The root nodes of a Redis Cluster, as URLs.
  pub cluster: Option<Vec<String>>,
  pub sentinel: Option<SentinelSettings>,
}

pub struct RedisBackend {
  topology: Topology,
  connect_timeout: Duration,
  prefix: String,
  scan_count: u32,
  /// Shared with the idle reaper, which holds it weakly.
  link: Arc<Link>,
  /// Serialises reconnects so an outage does not open one connection per waiting request.
  connecting: tokio::sync::Mutex<()>,
  idle: Option<Duration>,
  reaping: AtomicBool,
  watching: AtomicBool,
  /// The server's `proto-max-bulk-len`, read when connecting (Redis's 512 MB default where
  /// CONFIG is not allowed): a larger value is refused before it is sent, since the server answers
  /// it by closing the connection, which would look like an outage.
  max_bulk: AtomicU64,
  /// Keys the last listing skipped (not UTF-8), for JS to report.
  skipped: AtomicU64,
}

/// The live connection with its generation, and when it was last used.
struct Link {
  current: Mutex<Option<(u64, Conn)>>,
  generation: AtomicU64,
  born: Instant,
  last_used_ms: AtomicU64,
  closed: AtomicBool,
}

impl Link {
  fn touch(&self) {
    self
      .last_used_ms
      .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
  }

  fn idle_for(&self) -> Duration {
    Duration::from_millis(
      (self.born.elapsed().as_millis() as u64).saturating_sub(self.last_used_ms.load(Ordering::Relaxed)),
    )
  }

  fn cached(&self) -> Option<(u64, Conn)> {
    self.current.lock().ok().and_then(|c| c.clone())
  }

  /// Drops the connection of `generation` if it is still the current one: requests that were
  /// queued on a dead socket must not throw away the fresh connection opened after it.
  fn forget(&self, generation: u64) {
    if let Ok(mut c) = self.current.lock()
      && c.as_ref().is_some_and(|(g, _)| *g == generation)
    {
      *c = None;
    }
  }
}

/// A connection lent to one request. If the request does not settle (its future is dropped at the
/// deadline, the driver reports a broken socket, or the server says it is read-only), the
/// connection is no longer trusted: a black-holed socket answers nothing ever again, and the next
/// request must open a new one instead of queueing behind it.
struct Lease<'a> {
  backend: &'a RedisBackend,
  generation: u64,
  conn: Conn,
  settled: bool,
}

impl Drop for Lease<'_> {
  fn drop(&mut self) {
    if !self.settled {
      self.backend.link.forget(self.generation);
    }
  }
}

impl RedisBackend {
  pub fn new(options: RedisConfig, common: &Common) -> BackendResult<Self> {
    let connect_timeout = common.connect_timeout;
    let topology = Topology::new(
      &options.url,
      options.cluster.as_deref(),
      options.sentinel.as_ref(),
      &options.certificates,
      connect_timeout,
    )?;
    let idle = common.idle_timeout;
    Ok(Self {
      topology,
      connect_timeout,
      prefix: options.prefix,
      scan_count: options.scan_count.max(1),
      link: Arc::new(Link {
        current: Mutex::new(None),
        generation: AtomicU64::new(0),
        born: Instant::now(),
        last_used_ms: AtomicU64::new(0),
        closed: AtomicBool::new(false),
      }),
      connecting: tokio::sync::Mutex::new(()),
      idle,
      reaping: AtomicBool::new(false),
      watching: AtomicBool::new(false),
      max_bulk: AtomicU64::new(REDIS_DEFAULT_MAX_BULK),
      skipped: AtomicU64::new(0),
    })
  }

  async fn lease(&self) -> BackendResult<Lease<'_>> {
    if self.link.closed.load(Ordering::Acquire) {
      return Err(BackendError::closed());
    }
    self.link.touch();
    let (generation, conn) = match self.link.cached() {
      Some(c) => c,
      None => self.connect().await?,
    };
    Ok(Lease {
      backend: self,
      generation,
      conn,
      settled: false,
    })
  }

  async fn connect(&self) -> BackendResult<(u64, Conn)> {
    let _one_at_a_time = self.connecting.lock().await;
    if let Some(c) = self.link.cached() {
      return Ok(c);
    }
    let too_slow = || {
      self.unreachable(&format!(
        "no connection within {} ms (connectTimeout)",
        self.connect_timeout.as_millis()
      ))
    };
    // Any failure to connect means the server cannot be reached: that, and only that, is an outage.
    let fresh = match tokio::time::timeout(self.connect_timeout, self.topology.connect()).await {
      Ok(Ok(conn)) => conn,
      Ok(Err(e)) if e.is_timeout() => return Err(too_slow()),
      Ok(Err(e)) if e.kind() == ErrorKind::Parse => return Err(self.not_redis()),
      // The server answered: wrong credentials fail each request and are not an outage (one rule
      // on every backend, README "Reliability").
      Ok(Err(e)) if is_refused_login(&e) => {
        return Err(BackendError::backend(format!(
          "the server refused the login: {e}; check the username and password in the URL or options"
        )));
      }
      Ok(Err(e)) => return Err(self.unreachable(&e.to_string())),
      Err(_) => return Err(too_slow()),
    };
    if self.link.closed.load(Ordering::Acquire) {
      return Err(BackendError::closed());
    }
    let generation = self.link.generation.fetch_add(1, Ordering::AcqRel) + 1;
    if let Ok(mut c) = self.link.current.lock() {
      *c = Some((generation, fresh.clone()));
    }
    self.reap_when_idle();
    self.follow_failovers();
    self.learn_max_bulk(&fresh).await;
    Ok((generation, fresh))
  }

  async fn learn_max_bulk(&self, conn: &Conn) {
    let mut conn = conn.clone();
    let mut config = redis::cmd("CONFIG");
    config.arg("GET").arg("proto-max-bulk-len");
    let asked = config.query_async::<Vec<String>>(&mut conn);
    if let Ok(Ok(reply)) = tokio::time::timeout(self.connect_timeout, asked).await
      && let Some(limit) = reply.get(1).and_then(|v| v.parse::<u64>().ok())
    {
      self.max_bulk.store(limit, Ordering::Release);
    }
  }

  /// Refuses a value the server would not take as one bulk string.
  fn check_size(&self, value_len: usize) -> BackendResult<()> {
    let limit = self.max_bulk.load(Ordering::Acquire);
    if value_len as u64 > limit {
      return Err(BackendError::too_large(
        value_len,
        limit,
        "raise the server's proto-max-bulk-len (CONFIG SET proto-max-bulk-len ..., and in redis.conf) or keep less in the session",
      ));
    }
    Ok(())
  }

  /// With Sentinel, from the first connection on: a failover drops the connection to the old
  /// master, so the next request asks the sentinels for the new one.
  fn follow_failovers(&self) {
    if self.watching.swap(true, Ordering::AcqRel) {
      return;
    }
    let (on_switch, alive) = (Arc::downgrade(&self.link), Arc::downgrade(&self.link));
    self.topology.watch_failovers(
      move || {
        if let Some(link) = on_switch.upgrade()
          && let Some((generation, _)) = link.cached()
        {
          link.forget(generation);
        }
      },
      move || alive.upgrade().is_some_and(|link| !link.closed.load(Ordering::Acquire)),
    );
  }

  /// Closes the connection once it has gone unused for `idleTimeout`, for as long as the backend
  /// exists (the task holds it weakly). The next request opens a new one.
  fn reap_when_idle(&self) {
    let Some(idle) = self.idle else { return };
    if self.reaping.swap(true, Ordering::AcqRel) {
      return;
    }
    let link: Weak<Link> = Arc::downgrade(&self.link);
    crate::runtime::spawn(async move {
      loop {
        tokio::time::sleep((idle / 2).max(Duration::from_millis(10))).await;
        let Some(link) = link.upgrade() else { return };
        if link.idle_for() >= idle
          && let Some((generation, _)) = link.cached()
        {
          link.forget(generation); // requests still holding it finish on it
        }
      }
    });
  }

  /// A first reply that is not RESP: something else listens there. (The driver's own text is a
  /// multi-line dump of the bytes it could not parse.) Only the connection handshake says this:
  /// later, the same error kind also means a reply value of an unexpected type.
  fn not_redis(&self) -> BackendError {
    let detail = format!(
      "the server at {} does not speak the Redis protocol (its reply is not RESP); \
       check the URL's port: Redis listens on 6379 unless configured otherwise",
      self.topology.address
    );
    if self.topology.tls {
      self.unreachable(&detail)
    } else {
      BackendError::unavailable(detail) // it was reached: "cannot reach" would mislead
    }
  }

  fn unreachable(&self, detail: &str) -> BackendError {
    let at = &self.topology.address;
    if self.topology.tls {
      BackendError::unavailable(format!(
        "TLS connection to {at} failed: {detail} (rediss:// needs a TLS port; is the server speaking TLS there?)"
      ))
    } else {
      BackendError::unavailable(format!("cannot reach {at}: {detail}"))
    }
  }

  async fn query_pipe(&self, pipe: &redis::Pipeline) -> BackendResult<Vec<Value>> {
    let mut lease = self.lease().await?;
    let result = pipe.query_async::<Vec<Value>>(&mut lease.conn).await;
    lease.settled = result.as_ref().err().is_none_or(|e| !self.connection_is_bad(e));
    result.map_err(|e| self.classify(e))
  }

  /// An EVALSHA of `script`, loading the script first where the server does not know it yet.
  async fn eval<T: redis::FromRedisValue>(&self, script: &str, evalsha: &redis::Cmd) -> BackendResult<T> {
    match self.query::<T>(evalsha).await {
      Err(e) if e.detail.contains("NoScript") || e.detail.contains("NOSCRIPT") => {
        self
          .query::<Value>(redis::cmd("SCRIPT").arg("LOAD").arg(script))
          .await?;
        self.query::<T>(evalsha).await
      }
      other => other,
    }
  }

  async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> BackendResult<T> {
    let mut lease = self.lease().await?;
    let result = cmd.query_async(&mut lease.conn).await;
    // A broken socket or a demoted (read-only) server: leave `settled` false, so the lease's drop
    // discards the connection. A cluster connection repairs its own node connections.
    lease.settled = result.as_ref().err().is_none_or(|e| !self.connection_is_bad(e));
    result.map_err(|e| self.classify(e))
  }

  /// Errors after which the connection must not be used again.
  fn connection_is_bad(&self, e: &RedisError) -> bool {
    if self.topology.is_cluster() {
      return e.is_timeout();
    }
    e.is_io_error()
      || e.is_connection_dropped()
      || e.is_timeout()
      || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly))
  }

  /// Maps a driver error to our kinds. Only a server that could not be used at all is an outage;
  /// one unreachable node of a cluster fails the requests for its slots only.
  fn classify(&self, e: RedisError) -> BackendError {
    if e.kind() == ErrorKind::Client
      && let Some(detail) = e.detail().filter(|d| d.starts_with(UNPARSABLE))
    {
      return BackendError::unparsable(detail);
    }
    let broken = e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped();
    if broken && self.topology.is_cluster() {
      BackendError::new(Kind::NodeDown, format!("a cluster node could not be reached: {e}"))
    } else if broken || matches!(e.kind(), ErrorKind::ClusterConnectionNotFound) {
      self.unreachable(&e.to_string())
    } else if e.is_timeout() {
      BackendError::timeout(e.to_string())
    } else {
      BackendError::backend(e.to_string())
    }
  }

  /// SCAN over `prefix*` (on every primary of a cluster), with the prefix's glob characters
  /// escaped (connect-redis does not escape them, so a prefix like `a*` matches other apps' keys).
  async fn scan_keys(&self) -> BackendResult<Vec<Vec<u8>>> {
    let pattern = format!("{}*", escape_glob(&self.prefix));
    let mut lease = self.lease().await?;
    let result = redis_connection::scan(&mut lease.conn, &pattern, self.scan_count).await;
    lease.settled = result.as_ref().err().is_none_or(|e| !self.connection_is_bad(e));
    result.map_err(|e| self.classify(e))
  }

  fn sid_of<'a>(&self, key: &'a str) -> &'a str {
    key.strip_prefix(self.prefix.as_str()).unwrap_or(key)
  }

  /// The keys under the prefix that are text. Another program may have written a key that is not
  /// UTF-8: it is no session of ours, so listing skips it (and `clear` removes it).
  async fn text_keys(&self) -> BackendResult<Vec<String>> {
    let keys = self.scan_keys().await?;
    let total = keys.len();
    let text: Vec<String> = keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).collect();
    self.skipped.store((total - text.len()) as u64, Ordering::Release);
    Ok(text)
  }
}

/// Redis's own default `proto-max-bulk-len`, 512 MB.
const REDIS_DEFAULT_MAX_BULK: u64 = 512 * 1024 * 1024;

/// Wrong credentials (or a user without permission), as opposed to a server that cannot be reached.
fn is_refused_login(e: &RedisError) -> bool {
  e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

/// How `stored_text` describes bytes that are not UTF-8; carried through a driver error.
const UNPARSABLE: &str = "the stored session is not UTF-8";

/// `prefix + sid` written straight into the command buffer, without building the key first.
struct Key<'a>(&'a str, &'a str);

impl ToRedisArgs for Key<'_> {
  fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
    let mut arg = out.writer_for_next_arg();
    // Writing into the command's own buffer cannot fail.
    let _ = arg.write_all(self.0.as_bytes());
    let _ = arg.write_all(self.1.as_bytes());
  }
}

/// touch, run by the server: move the TTL of a key that still exists (PEXPIRE answers 0 for a
/// missing one, so nothing is recreated), and where the stored session starts with its cookie and
/// that cookie has an `expires` (the `Date#toISOString` text connect-redis and we write), overwrite
/// those 24 bytes with the new expiry. Only the new expiry crosses the network, and the stored
/// cookie stays current: reads stay strict to the millisecond against the JS clock, fake clocks
/// included, with no second round trip.
const TOUCH_SCRIPT: &str = r#"
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
local head = redis.call('GETRANGE', KEYS[1], 0, 511)
if string.sub(head, 1, 11) ~= '{"cookie":{' then return 1 end
local _, e = string.find(head, '"expires":"', 12, true)
local close = string.find(head, '}', 12, true)
if e and (not close or close > e) and string.sub(head, e + 24, e + 25) == 'Z"' then
  redis.call('SETRANGE', KEYS[1], e, ARGV[2])
end
return 1
"#;

fn touch_script() -> &'static redis::Script {
  static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
  SCRIPT.get_or_init(|| redis::Script::new(TOUCH_SCRIPT))
}

/// A merged save's conditional write: the value is replaced only while it is still the text the
/// merge read (`ARGV[1]`); `ARGV[3]` is the ttl in ms, or empty for none. 1 written, 0 not.
const SET_IF_UNCHANGED_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"#;

fn set_if_unchanged_script() -> &'static redis::Script {
  static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
  SCRIPT.get_or_init(|| redis::Script::new(SET_IF_UNCHANGED_SCRIPT))
}

/// EVALSHA of the touch script for one key.
fn touch_cmd(prefix: &str, sid: &str, at: f64, now_ms: f64) -> redis::Cmd {
  let mut cmd = redis::cmd("EVALSHA");
  cmd
    .arg(touch_script().get_hash())
    .arg(1)
    .arg(Key(prefix, sid))
    .arg(remaining_ms(at, now_ms))
    .arg(iso_from_ms(at));
  cmd
}

/// The commands of one request, appended to a pipeline.
fn push(pipe: &mut redis::Pipeline, request: &Request, prefix: &str) {
  match request {
    Request::Get { sid, .. } => {
      pipe.cmd("GET").arg(Key(prefix, sid)).cmd("PTTL").arg(Key(prefix, sid));
    }
    Request::Set {
      sid,
      value,
      expires_at_ms,
      now_ms,
    } => {
      let cmd = pipe.cmd("SET").arg(Key(prefix, sid)).arg(value.as_str());
      if let Some(at) = expires_at_ms {
        cmd.arg("PX").arg(remaining_ms(*at, *now_ms));
      }
    }
    Request::Touch {
      sid,
      expires_at_ms: Some(at),
      now_ms,
    } => {
      pipe.add_command(touch_cmd(prefix, sid, *at, *now_ms));
    }
    Request::Touch {
      expires_at_ms: None, ..
    } => {} // never expires: nothing to send
    Request::Destroy { sid } => {
      pipe.cmd("DEL").arg(Key(prefix, sid));
    }
    // Never in a pipeline: the batch engine runs a patch on its own (read, merge, write).
    Request::Patch { .. } => {}
  }
}

/// One request's answer, taken from the pipeline's answers in order.
fn reply(request: &Request, values: &mut impl Iterator<Item = Value>) -> RedisResult<Reply> {
  let mut next = || values.next().unwrap_or(Value::Nil).extract_error();
  match request {
    Request::Get { now_ms, .. } => {
      let (raw, ttl) = (next(), next());
      let raw: Option<Vec<u8>> = redis::from_redis_value(raw?)?;
      let ttl: i64 = redis::from_redis_value(ttl?)?;
      let Some(raw) = raw else { return Ok(Reply::Got(None)) };
      let value = match stored_text(raw) {
        Ok(value) => value,
        Err(e) => return Err(RedisError::from((ErrorKind::Client, "unparsable", e.detail))), // starts with UNPARSABLE
      };
      // -1: no expiry; -2: gone since the GET (treated as no expiry known).
      let expires_at_ms = (ttl >= 0).then(|| now_ms + ttl as f64);
      Ok(Reply::Got(Some(Stored { value, expires_at_ms })))
    }
    Request::Set { .. }
    | Request::Destroy { .. }
    | Request::Touch {
      expires_at_ms: Some(_), ..
    } => next().map(|_| Reply::Done),
    Request::Touch {
      expires_at_ms: None, ..
    }
    | Request::Patch { .. } => Ok(Reply::Done),
  }
}

/// Redis glob metacharacters in a literal prefix must be escaped for MATCH.
fn escape_glob(literal: &str) -> String {
  let mut out = String::with_capacity(literal.len());
  for ch in literal.chars() {
    if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
      out.push('\\');
    }
    out.push(ch);
  }
  out
}

/// Keys per MGET/DEL: bounded so one call never builds an unbounded reply.
const BATCH: usize = 500;

#[async_trait]
impl Backend for RedisBackend {
  fn name(&self) -> &'static str {
    "redis"
  }

  /// PTTL is relative, read against the JS clock like the PX it was written with, so a read may
  /// see it up to a round trip (or a write delay under load) off. Our own touch keeps the stored
  /// cookie current; PTTL matters for keys connect-redis touched (whole seconds, EXPIRE).
  fn expiry_precision_ms(&self) -> f64 {
    1000.0
  }

  /// Redis counts a TTL in real time, not on the JS clock that wrote it.
  fn expiry_on_real_clock(&self) -> bool {
    true
  }

  /// GET and PTTL in one round trip: the value, and the expiry a touch may have moved.
  async fn get(&self, sid: &str, now_ms: f64) -> BackendResult<Option<Stored>> {
    let mut pipe = redis::pipe();
    push(
      &mut pipe,
      &Request::Get {
        sid: sid.to_string(),
        now_ms,
      },
      &self.prefix,
    );
    let values: Vec<Value> = self.query_pipe(&pipe).await?;
    match reply(
      &Request::Get {
        sid: String::new(),
        now_ms,
      },
      &mut values.into_iter(),
    ) {
      Ok(Reply::Got(stored)) => Ok(stored),
      Ok(Reply::Done | Reply::Wrote { .. }) => Ok(None),
      Err(e) => Err(self.classify(e)),
    }
  }

  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    self.check_size(value.len())?;
    let mut cmd = redis::cmd("SET");
    cmd.arg(Key(&self.prefix, sid)).arg(value);
    if let Some(at) = expires_at_ms {
      cmd.arg("PX").arg(remaining_ms(at, now_ms));
    }
    self.query::<()>(&cmd).await
  }

  /// Sends only the new expiry: the server moves the key's TTL and rewrites the cookie's
  /// `expires` in place (`TOUCH_SCRIPT`); a destroyed session is not recreated.
  async fn touch(&self, sid: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    let Some(at) = expires_at_ms else { return Ok(()) }; // never expires: nothing to move
    let touch = touch_cmd(&self.prefix, sid, at, now_ms);
    self.eval::<Value>(TOUCH_SCRIPT, &touch).await.map(drop)
  }

  async fn set_if_unchanged(
    &self,
    sid: &str,
    expected: &str,
    value: &str,
    expires_at_ms: Option<f64>,
    now_ms: f64,
  ) -> Option<BackendResult<bool>> {
    if let Err(e) = self.check_size(value.len()) {
      return Some(Err(e));
    }
    let ttl = expires_at_ms.map_or(String::new(), |at| remaining_ms(at, now_ms).to_string());
    let mut cmd = redis::cmd("EVALSHA");
    cmd
      .arg(set_if_unchanged_script().get_hash())
      .arg(1)
      .arg(Key(&self.prefix, sid))
      .arg(expected)
      .arg(value)
      .arg(ttl);
    Some(self.eval::<i64>(SET_IF_UNCHANGED_SCRIPT, &cmd).await.map(|n| n == 1))
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    self.query::<()>(redis::cmd("DEL").arg(Key(&self.prefix, sid))).await
  }

  /// A batch as one pipeline: one command buffer, one write, one set of answers. Not on a
  /// cluster, where one pipeline cannot span slots (each request goes on its own there).
  async fn run_batch(&self, requests: &[Request]) -> Option<Vec<BackendResult<Reply>>> {
    let limit = self.max_bulk.load(Ordering::Acquire) as usize;
    let oversized = requests
      .iter()
      .any(|r| matches!(r, Request::Set { value, .. } if value.len() > limit));
    if self.topology.is_cluster() || oversized {
      return None; // one by one: an oversized set fails alone
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors(); // one failing command fails its request, not the batch
    for request in requests {
      push(&mut pipe, request, &self.prefix);
    }
    let values = match self.query_pipe(&pipe).await {
      Ok(values) => values,
      Err(e) => return Some(requests.iter().map(|_| Err(e.clone())).collect()),
    };
    let mut values = values.into_iter();
    let mut replies: Vec<BackendResult<Reply>> = requests
      .iter()
      .map(|r| reply(r, &mut values).map_err(|e| self.classify(e)))
      .collect();
    // A server that has not seen the touch script yet (first use, restart, SCRIPT FLUSH): load
    // it, and run those touches again on their own.
    for (request, reply) in requests.iter().zip(replies.iter_mut()) {
      if let (
        Request::Touch {
          sid,
          expires_at_ms,
          now_ms,
        },
        Err(e),
      ) = (request, &reply)
        && (e.detail.contains("NoScript") || e.detail.contains("NOSCRIPT"))
      {
        *reply = self.touch(sid, *expires_at_ms, *now_ms).await.map(|()| Reply::Done);
      }
    }
    Some(replies)
  }

  fn skipped_by_last_listing(&self) -> u64 {
    self.skipped.load(Ordering::Acquire)
  }

  async fn ids(&self, _now_ms: f64) -> BackendResult<Vec<String>> {
    let keys = self.text_keys().await?;
    Ok(keys.iter().map(|k| self.sid_of(k).to_string()).collect())
  }

  async fn all(&self, _now_ms: f64) -> BackendResult<Vec<(String, Option<String>)>> {
    let keys = self.text_keys().await?;
    let mut pairs = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH) {
      let values: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(chunk)).await?;
      for (key, value) in chunk.iter().zip(values) {
        // A key can expire between SCAN and MGET: skip it, as connect-redis does.
        if let Some(value) = value {
          pairs.push((self.sid_of(key).to_string(), stored_text(value).ok()));
        }
      }
    }
    Ok(pairs)
  }

  async fn length(&self, _now_ms: f64) -> BackendResult<u64> {
    Ok(self.text_keys().await?.len() as u64)
  }

  async fn clear(&self) -> BackendResult<u64> {
    let keys = self.scan_keys().await?;
    let mut removed = 0u64;
    for chunk in keys.chunks(BATCH) {
      removed += self.query::<u64>(redis::cmd("DEL").arg(chunk)).await?;
    }
    Ok(removed)
  }

  async fn ping(&self) -> BackendResult<()> {
    self.query::<()>(&redis::cmd("PING")).await
  }

  async fn close(&self) {
    self.link.closed.store(true, Ordering::Release);
    if let Ok(mut c) = self.link.current.lock() {
      *c = None;
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn glob_characters_in_a_prefix_are_escaped() {
    assert_eq!(escape_glob("sess:"), "sess:");
    assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
  }
}
