//! Redis, in connect-redis's format: key `prefix + sid`, value the serialised session as a plain
//! string, written with `SET key value PX ms` (connect-redis writes `EX seconds`; milliseconds keep
//! fractional ttls and the cookie's exact expiry). One multiplexed connection carries every
//! request (pipelined by the driver); it is opened lazily and replaced when it stops answering.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use napi_derive::napi;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, ServerErrorKind};

use crate::backend::{Backend, remaining_ms, stored_text};
use crate::error::{BackendError, BackendResult};

#[napi(object)]
pub struct RedisOptions {
  /// `redis://[user:pass@]host:port[/db]`; `rediss://` for TLS.
  pub url: String,
  pub prefix: String,
  pub scan_count: u32,
  pub connect_timeout_ms: Option<u32>,
  pub command_timeout_ms: Option<u32>,
  /// PEM root certificate(s) to trust for `rediss://` instead of the system's.
  pub tls_ca: Option<String>,
}

pub struct RedisBackend {
  client: Client,
  config: AsyncConnectionConfig,
  connect_timeout: Duration,
  /// For error messages: a TLS handshake that fails is named as such.
  tls: bool,
  prefix: String,
  scan_count: u32,
  /// The live connection and its generation; cloning it is cheap and shares the socket.
  connection: Mutex<Option<(u64, MultiplexedConnection)>>,
  generation: AtomicU64,
  /// Serialises reconnects so an outage does not open one socket per waiting request.
  connecting: tokio::sync::Mutex<()>,
  closed: AtomicBool,
}

/// A connection lent to one request. If the request does not settle (its future is dropped at the
/// deadline, the driver reports a broken socket, or the server says it is read-only), the
/// connection is no longer trusted: a black-holed socket answers nothing ever again, and the next
/// request must open a new one instead of queueing behind it.
struct Lease<'a> {
  backend: &'a RedisBackend,
  generation: u64,
  conn: MultiplexedConnection,
  settled: bool,
}

impl Drop for Lease<'_> {
  fn drop(&mut self) {
    if !self.settled {
      self.backend.forget(self.generation);
    }
  }
}

impl RedisBackend {
  pub fn new(options: RedisOptions) -> BackendResult<Self> {
    let client = match options.tls_ca {
      Some(ca) => Client::build_with_tls(
        options.url.as_str(),
        redis::TlsCertificates {
          client_tls: None,
          root_cert: Some(ca.into_bytes()),
        },
      ),
      None => Client::open(options.url.as_str()),
    }
    .map_err(|e| BackendError::invalid(format!("bad url or TLS settings: {e}")))?;
    let connect_timeout = crate::defaults::connect_timeout(options.connect_timeout_ms);
    // The per-request deadline is enforced around every operation (commandTimeout); the driver's
    // own response timeout is left off so a request is never failed twice.
    let config = AsyncConnectionConfig::new()
      .set_connection_timeout(Some(connect_timeout))
      .set_response_timeout(None);
    Ok(Self {
      tls: options.url.starts_with("rediss:"),
      client,
      config,
      connect_timeout,
      prefix: options.prefix,
      scan_count: options.scan_count.max(1),
      connection: Mutex::new(None),
      generation: AtomicU64::new(0),
      connecting: tokio::sync::Mutex::new(()),
      closed: AtomicBool::new(false),
    })
  }

  fn key(&self, sid: &str) -> String {
    let mut key = String::with_capacity(self.prefix.len() + sid.len());
    key.push_str(&self.prefix);
    key.push_str(sid);
    key
  }

  fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
    self.connection.lock().ok().and_then(|c| c.clone())
  }

  /// Drops the connection of `generation` if it is still the current one: requests that were
  /// queued on a dead socket must not throw away the fresh connection opened after it.
  fn forget(&self, generation: u64) {
    if let Ok(mut c) = self.connection.lock()
      && c.as_ref().is_some_and(|(g, _)| *g == generation)
    {
      *c = None;
    }
  }

  async fn lease(&self) -> BackendResult<Lease<'_>> {
    if self.closed.load(Ordering::Acquire) {
      return Err(BackendError::closed());
    }
    let (generation, conn) = match self.cached() {
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

  async fn connect(&self) -> BackendResult<(u64, MultiplexedConnection)> {
    let _one_at_a_time = self.connecting.lock().await;
    if let Some(c) = self.cached() {
      return Ok(c);
    }
    let attempt = self.client.get_multiplexed_async_connection_with_config(&self.config);
    // Any failure to connect means the server cannot be reached: that, and only that, is an outage.
    let too_slow = || {
      self.unreachable(&format!(
        "no connection within {} ms (connectTimeout)",
        self.connect_timeout.as_millis()
      ))
    };
    let fresh = match tokio::time::timeout(self.connect_timeout, attempt).await {
      Ok(Ok(conn)) => conn,
      Ok(Err(e)) if e.is_timeout() => return Err(too_slow()),
      Ok(Err(e)) => return Err(self.unreachable(&e.to_string())),
      Err(_) => return Err(too_slow()),
    };
    if self.closed.load(Ordering::Acquire) {
      return Err(BackendError::closed());
    }
    let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
    if let Ok(mut c) = self.connection.lock() {
      *c = Some((generation, fresh.clone()));
    }
    Ok((generation, fresh))
  }

  fn unreachable(&self, detail: &str) -> BackendError {
    if self.tls {
      BackendError::unavailable(format!(
        "TLS connection failed: {detail} (rediss:// needs a TLS port; is the server speaking TLS there?)"
      ))
    } else {
      BackendError::unavailable(detail)
    }
  }

  async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> BackendResult<T> {
    let mut lease = self.lease().await?;
    let result = cmd.query_async(&mut lease.conn).await;
    // A broken socket or a demoted (read-only) server: leave `settled` false, so the lease's drop
    // discards the connection.
    lease.settled = result.as_ref().err().is_none_or(|e| !connection_is_bad(e));
    result.map_err(|e| self.classify(e))
  }

  /// Maps a driver error to our kinds. Only a connection that could not be used at all is an
  /// outage; anything the server answered is that request's own problem.
  fn classify(&self, e: RedisError) -> BackendError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
      self.unreachable(&e.to_string())
    } else if e.is_timeout() {
      BackendError::timeout(e.to_string())
    } else {
      BackendError::backend(e.to_string())
    }
  }

  /// SCAN over `prefix*`, with the prefix's glob characters escaped (connect-redis does not
  /// escape them, so a prefix like `a*` matches other apps' keys there).
  async fn scan_keys(&self) -> BackendResult<Vec<String>> {
    let pattern = format!("{}*", escape_glob(&self.prefix));
    let mut cursor: u64 = 0;
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    loop {
      let (next, batch): (u64, Vec<String>) = self
        .query(
          redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(self.scan_count),
        )
        .await?;
      for key in batch {
        if seen.insert(key.clone()) {
          keys.push(key);
        }
      }
      if next == 0 {
        return Ok(keys);
      }
      cursor = next;
    }
  }

  fn sid_of<'a>(&self, key: &'a str) -> &'a str {
    key.strip_prefix(self.prefix.as_str()).unwrap_or(key)
  }
}

/// Errors after which the connection must not be used again.
fn connection_is_bad(e: &RedisError) -> bool {
  e.is_io_error()
    || e.is_connection_dropped()
    || e.is_timeout()
    || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly))
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

  /// Redis expires keys itself; the JS side also checks `cookie.expires` against its own clock.
  async fn get(&self, sid: &str, _now_ms: f64) -> BackendResult<Option<String>> {
    let raw: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(self.key(sid))).await?;
    raw.map(stored_text).transpose()
  }

  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(self.key(sid)).arg(value);
    if let Some(at) = expires_at_ms {
      cmd.arg("PX").arg(remaining_ms(at, now_ms));
    }
    self.query::<()>(&cmd).await
  }

  async fn touch(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    // XX: only if the key still exists, in the same command, so a concurrent destroy wins.
    let mut cmd = redis::cmd("SET");
    cmd.arg(self.key(sid)).arg(value).arg("XX");
    if let Some(at) = expires_at_ms {
      cmd.arg("PX").arg(remaining_ms(at, now_ms));
    }
    self.query::<redis::Value>(&cmd).await.map(drop)
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    self.query::<()>(redis::cmd("DEL").arg(self.key(sid))).await
  }

  async fn ids(&self, _now_ms: f64) -> BackendResult<Vec<String>> {
    let keys = self.scan_keys().await?;
    Ok(keys.iter().map(|k| self.sid_of(k).to_string()).collect())
  }

  async fn all(&self, _now_ms: f64) -> BackendResult<Vec<(String, Option<String>)>> {
    let keys = self.scan_keys().await?;
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
    Ok(self.scan_keys().await?.len() as u64)
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
    self.closed.store(true, Ordering::Release);
    if let Ok(mut c) = self.connection.lock() {
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
