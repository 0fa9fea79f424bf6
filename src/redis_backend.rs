//! Redis, in connect-redis's format: key `prefix + sid`, value the serialised session as a plain
//! string, `SET key value EX ttl`. One multiplexed connection carries every request (pipelined
//! by the driver); it is opened lazily and replaced after an outage.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use napi_derive::napi;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

use crate::backend::{Backend, Expiry};
use crate::error::{BackendError, BackendResult, ErrorKind};

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
  prefix: String,
  scan_count: u32,
  /// The live connection; cloning it is cheap and shares the socket.
  connection: Mutex<Option<MultiplexedConnection>>,
  /// Serialises reconnects so an outage does not open one socket per waiting request.
  connecting: tokio::sync::Mutex<()>,
}

impl RedisBackend {
  pub fn new(options: RedisOptions) -> BackendResult<Self> {
    let client = match options.tls_ca {
      Some(ca) => Client::build_with_tls(options.url.as_str(), redis::TlsCertificates { client_tls: None, root_cert: Some(ca.into_bytes()) }),
      None => Client::open(options.url.as_str()),
    }
    .map_err(|e| BackendError::invalid(format!("bad url or TLS settings: {e}")))?;
    let connect_timeout = Duration::from_millis(u64::from(options.connect_timeout_ms.unwrap_or(5000)));
    // The per-request deadline is enforced around every operation (commandTimeout); the driver's
    // own response timeout is left off so a request is never failed twice.
    let config = AsyncConnectionConfig::new()
      .set_connection_timeout(Some(connect_timeout))
      .set_response_timeout(None);
    Ok(Self {
      client,
      config,
      prefix: options.prefix,
      scan_count: options.scan_count.max(1),
      connection: Mutex::new(None),
      connecting: tokio::sync::Mutex::new(()),
    })
  }

  fn key(&self, sid: &str) -> String {
    let mut key = String::with_capacity(self.prefix.len() + sid.len());
    key.push_str(&self.prefix);
    key.push_str(sid);
    key
  }

  fn cached(&self) -> Option<MultiplexedConnection> {
    self.connection.lock().ok().and_then(|c| c.clone())
  }

  fn forget_connection(&self) {
    if let Ok(mut c) = self.connection.lock() {
      *c = None;
    }
  }

  async fn conn(&self) -> BackendResult<MultiplexedConnection> {
    if let Some(c) = self.cached() {
      return Ok(c);
    }
    let _one_at_a_time = self.connecting.lock().await;
    if let Some(c) = self.cached() {
      return Ok(c);
    }
    let fresh = self
      .client
      .get_multiplexed_async_connection_with_config(&self.config)
      .await
      .map_err(|e| self.classify(e))?;
    if let Ok(mut c) = self.connection.lock() {
      *c = Some(fresh.clone());
    }
    Ok(fresh)
  }

  /// Maps a driver error to our kinds; a broken connection is dropped so the next request
  /// reconnects instead of failing forever on a dead socket.
  fn classify(&self, e: RedisError) -> BackendError {
    if e.is_timeout() {
      self.forget_connection();
      BackendError::new(ErrorKind::Timeout, e.to_string())
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_unrecoverable_error() {
      self.forget_connection();
      BackendError::unavailable(e.to_string())
    } else {
      BackendError::backend(e.to_string())
    }
  }

  async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> BackendResult<T> {
    let mut conn = self.conn().await?;
    cmd.query_async(&mut conn).await.map_err(|e| self.classify(e))
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
        .query(redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(self.scan_count))
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

const BATCH: usize = 500;

#[async_trait]
impl Backend for RedisBackend {
  fn name(&self) -> &'static str {
    "redis"
  }

  async fn get(&self, sid: &str) -> BackendResult<Option<String>> {
    self.query(redis::cmd("GET").arg(self.key(sid))).await
  }

  async fn set(&self, sid: &str, value: &str, expiry: Option<Expiry>) -> BackendResult<()> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(self.key(sid)).arg(value);
    if let Some(e) = expiry {
      cmd.arg("EX").arg(e.ttl_secs);
    }
    self.query::<()>(&cmd).await
  }

  async fn touch(&self, sid: &str, value: &str, expiry: Option<Expiry>) -> BackendResult<()> {
    // XX: only if the key still exists, in the same command, so a concurrent destroy wins.
    let mut cmd = redis::cmd("SET");
    cmd.arg(self.key(sid)).arg(value).arg("XX");
    if let Some(e) = expiry {
      cmd.arg("EX").arg(e.ttl_secs);
    }
    self.query::<redis::Value>(&cmd).await.map(drop)
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    self.query::<()>(redis::cmd("DEL").arg(self.key(sid))).await
  }

  async fn ids(&self) -> BackendResult<Vec<String>> {
    let keys = self.scan_keys().await?;
    Ok(keys.iter().map(|k| self.sid_of(k).to_string()).collect())
  }

  async fn all(&self) -> BackendResult<Vec<(String, String)>> {
    let keys = self.scan_keys().await?;
    let mut pairs = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH) {
      let values: Vec<Option<String>> = self.query(redis::cmd("MGET").arg(chunk)).await?;
      for (key, value) in chunk.iter().zip(values) {
        // A key can expire between SCAN and MGET: skip it, as connect-redis does.
        if let Some(value) = value {
          pairs.push((self.sid_of(key).to_string(), value));
        }
      }
    }
    Ok(pairs)
  }

  async fn length(&self) -> BackendResult<u64> {
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
    self.forget_connection();
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
