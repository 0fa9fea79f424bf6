//! How RedisStore reaches Redis: one server, a Cluster, or a master found through Sentinel. Each
//! gives a connection that carries every request, pipelined by the driver; the backend
//! (`redis_backend.rs`) only sees `Conn`.
//!
//! - **Single:** one multiplexed connection.
//! - **Cluster:** the driver's cluster connection (slot-aware, follows MOVED/ASK and topology
//!   changes, splits MGET/DEL by slot). SCAN is the one command it cannot route: `scan` walks every
//!   primary with its own cursor.
//! - **Sentinel:** the sentinels are asked for the master on every (re)connect, so a connection
//!   dropped after a failover (or refused with READONLY by a demoted master) finds the new one.

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
  AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
  RedisResult, TlsCertificates, TlsMode, Value,
};

use crate::error::{BackendError, BackendResult};

/// Sentinel settings: where the sentinels are and which master they watch. The data nodes'
/// credentials, database and TLS come from the store's `url`.
pub struct SentinelSettings {
  /// `redis://host:port` (or `rediss://`) of each sentinel.
  pub sentinels: Vec<String>,
  /// The master's name, as in `sentinel monitor <name> ...`.
  pub name: String,
  pub sentinel_username: Option<String>,
  pub sentinel_password: Option<String>,
}

/// TLS material for `rediss://` connections: PEM text.
pub struct Certificates {
  pub ca: Option<String>,
  pub cert: Option<String>,
  pub key: Option<String>,
}

impl Certificates {
  fn any(&self) -> bool {
    self.ca.is_some() || self.cert.is_some() || self.key.is_some()
  }

  fn to_driver(&self) -> BackendResult<TlsCertificates> {
    let client_tls = match (&self.cert, &self.key) {
      (Some(cert), Some(key)) => {
        // Checked here so a bad certificate is an error at construction, not at the first request.
        crate::tls::client_identity(cert, key)?;
        Some(ClientTlsConfig {
          client_cert: cert.clone().into_bytes(),
          client_key: key.clone().into_bytes(),
        })
      }
      (None, None) => None,
      _ => {
        return Err(BackendError::invalid(
          "TLS: a client certificate needs both cert and key",
        ));
      }
    };
    Ok(TlsCertificates {
      client_tls,
      root_cert: self.ca.clone().map(String::into_bytes),
    })
  }
}

enum Kind {
  Single(Client),
  Cluster(ClusterClient),
  /// The driver's sentinel client needs `&mut self` to look the master up. The plain clients of
  /// the sentinels themselves are for watching `+switch-master`.
  Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    sentinels: Vec<Client>,
    name: String,
  },
}

pub struct Topology {
  kind: Kind,
  config: AsyncConnectionConfig,
  connect_timeout: Duration,
  /// For error messages: a TLS handshake that fails is named as such.
  pub tls: bool,
  /// For error messages: where the store connects (`host:port`, the cluster's root nodes, or the
  /// master the sentinels name), never with credentials.
  pub address: String,
}

/// A connection of any topology; cheap to clone (all share the sockets).
#[derive(Clone)]
pub enum Conn {
  Node(MultiplexedConnection),
  Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
  fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
    match self {
      Conn::Node(c) => c.req_packed_command(cmd),
      Conn::Cluster(c) => c.req_packed_command(cmd),
    }
  }

  fn req_packed_commands<'a>(
    &'a mut self,
    pipeline: &'a Pipeline,
    offset: usize,
    count: usize,
  ) -> RedisFuture<'a, Vec<Value>> {
    match self {
      Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
      Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
    }
  }

  fn get_db(&self) -> i64 {
    match self {
      Conn::Node(c) => c.get_db(),
      Conn::Cluster(c) => c.get_db(),
    }
  }
}

impl Topology {
  /// `url` is the server (single), the template for every node (credentials, database, scheme)
  /// with a cluster or sentinel; `cluster` lists the cluster's root nodes.
  pub fn new(
    url: &str,
    cluster: Option<&[String]>,
    sentinel: Option<&SentinelSettings>,
    certs: &Certificates,
    connect_timeout: Duration,
  ) -> BackendResult<Self> {
    let bad = |e: RedisError| BackendError::invalid(format!("bad url or TLS settings: {}", plain(&e)));
    let tls = url.starts_with("rediss:") || cluster.is_some_and(|nodes| nodes.iter().any(|u| u.starts_with("rediss:")));
    if certs.any() && !tls {
      return Err(BackendError::invalid(
        "TLS certificates were given for a redis:// URL; use rediss:// to connect with TLS",
      ));
    }
    let kind = match (cluster, sentinel) {
      (Some(_), Some(_)) => return Err(BackendError::invalid("give cluster or sentinel settings, not both")),
      (Some(nodes), None) => {
        if nodes.is_empty() {
          return Err(BackendError::invalid("cluster.rootNodes is empty"));
        }
        let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
          .connection_timeout(connect_timeout)
          // The store's deadline bounds every request; waits between retries stay short, so a
          // failover is followed within it (the driver's defaults start at 1.28 s).
          .min_retry_wait(20)
          .max_retry_wait(500)
          .retries(10);
        if certs.any() {
          builder = builder.certs(certs.to_driver()?);
        }
        Kind::Cluster(builder.build().map_err(bad)?)
      }
      (None, Some(s)) => Kind::Sentinel {
        client: tokio::sync::Mutex::new(sentinel_client(url, s, certs)?),
        sentinels: s
          .sentinels
          .iter()
          .map(|u| sentinel_info(u, s))
          .collect::<Result<_, _>>()
          .map_err(bad)?,
        name: s.name.clone(),
      },
      (None, None) => Kind::Single(if certs.any() {
        Client::build_with_tls(url, certs.to_driver()?).map_err(bad)?
      } else {
        Client::open(url).map_err(bad)?
      }),
    };
    // The per-request deadline is enforced around every operation (commandTimeout); the driver's
    // own response timeout is left off so a request is never failed twice.
    let config = AsyncConnectionConfig::new()
      .set_connection_timeout(Some(connect_timeout))
      .set_response_timeout(None);
    let address = match &kind {
      Kind::Single(client) => client.get_connection_info().addr().to_string(),
      Kind::Cluster(_) => format!(
        "the cluster at {}",
        cluster
          .unwrap_or_default()
          .iter()
          .map(|u| host_port(u))
          .collect::<Vec<_>>()
          .join(", ")
      ),
      Kind::Sentinel { name, .. } => format!(
        "the master {name:?} of the sentinels at {}",
        sentinel
          .map(|s| s.sentinels.iter().map(|u| host_port(u)).collect::<Vec<_>>().join(", "))
          .unwrap_or_default()
      ),
    };
    Ok(Self {
      kind,
      config,
      connect_timeout,
      tls,
      address,
    })
  }

  pub fn is_cluster(&self) -> bool {
    matches!(self.kind, Kind::Cluster(_))
  }

  /// A new connection (for a sentinel, to the master the sentinels name now).
  pub async fn connect(&self) -> RedisResult<Conn> {
    match &self.kind {
      Kind::Single(client) => client
        .get_multiplexed_async_connection_with_config(&self.config)
        .await
        .map(Conn::Node),
      Kind::Cluster(client) => {
        let config = redis::cluster::ClusterConfig::new().set_connection_timeout(self.connect_timeout);
        client.get_async_connection_with_config(config).await.map(Conn::Cluster)
      }
      Kind::Sentinel { client, .. } => client
        .lock()
        .await
        .get_async_connection_with_config(&self.config)
        .await
        .map(Conn::Node),
    }
  }

  /// With Sentinel: calls `switched()` whenever the sentinels announce that the master changed
  /// (`+switch-master`), so the store reconnects to the new master at once instead of writing to
  /// the demoted one until it is reconfigured (about ten seconds, whose writes would be lost).
  /// Runs until `alive()` says the store is gone.
  pub fn watch_failovers(&self, switched: impl Fn() + Send + 'static, alive: impl Fn() -> bool + Send + 'static) {
    let Kind::Sentinel { sentinels, name, .. } = &self.kind else {
      return;
    };
    let (sentinels, name) = (sentinels.clone(), name.clone());
    crate::runtime::spawn(async move {
      use futures_util::StreamExt;
      let mut next = 0usize;
      while alive() {
        let sentinel = &sentinels[next % sentinels.len()];
        next += 1;
        if let Ok(mut pubsub) = sentinel.get_async_pubsub().await
          && pubsub.subscribe("+switch-master").await.is_ok()
        {
          let mut messages = pubsub.on_message();
          loop {
            let message = tokio::time::timeout(Duration::from_secs(1), messages.next()).await;
            if !alive() {
              return;
            }
            match message {
              Ok(Some(m)) => {
                // "<master name> <old ip> <old port> <new ip> <new port>"
                let payload: String = m.get_payload().unwrap_or_default();
                if payload.split(' ').next() == Some(name.as_str()) {
                  switched();
                }
              }
              Ok(None) => break, // the sentinel went away: watch through the next one
              Err(_) => {}       // no news: check that the store still exists, and wait on
            }
          }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
      }
    });
  }
}

/// A plain client of one sentinel, with the sentinels' credentials.
fn sentinel_info(url: &str, s: &SentinelSettings) -> RedisResult<Client> {
  let mut info = url.into_connection_info()?;
  let mut settings = info.redis_settings().clone();
  if let Some(u) = &s.sentinel_username {
    settings = settings.set_username(u);
  }
  if let Some(p) = &s.sentinel_password {
    settings = settings.set_password(p);
  }
  info = info.set_redis_settings(settings);
  Client::open(info)
}

fn sentinel_client(url: &str, s: &SentinelSettings, certs: &Certificates) -> BackendResult<SentinelClient> {
  let bad = |e: RedisError| BackendError::invalid(format!("bad sentinel settings: {e}"));
  let node = url.into_connection_info().map_err(bad)?;
  let mut addrs = Vec::with_capacity(s.sentinels.len());
  for sentinel in &s.sentinels {
    addrs.push(sentinel.as_str().into_connection_info().map_err(bad)?.addr().clone());
  }
  if addrs.is_empty() {
    return Err(BackendError::invalid("sentinel.sentinels is empty"));
  }
  let mut b = SentinelClientBuilder::new(addrs, s.name.clone(), SentinelServerType::Master).map_err(bad)?;
  let settings = node.redis_settings();
  b = b.set_client_to_redis_db(settings.db());
  if let Some(u) = settings.username() {
    b = b.set_client_to_redis_username(u);
  }
  if let Some(p) = settings.password() {
    b = b.set_client_to_redis_password(p);
  }
  if url.starts_with("rediss:") {
    b = b.set_client_to_redis_tls_mode(TlsMode::Secure);
    if certs.any() {
      b = b.set_client_to_redis_certificates(certs.to_driver()?);
    }
  }
  if let Some(u) = &s.sentinel_username {
    b = b.set_client_to_sentinel_username(u);
  }
  if let Some(p) = &s.sentinel_password {
    b = b.set_client_to_sentinel_password(p);
  }
  b.build().map_err(bad)
}

/// Every key matching `pattern`: SCAN with its cursor on each primary of a cluster (the driver
/// would send it to a random node each time), or on the one server.
/// Keys as bytes: a key that is not UTF-8 must not make the whole listing fail.
pub async fn scan(conn: &mut Conn, pattern: &str, count: u32) -> RedisResult<Vec<Vec<u8>>> {
  let scan_from = |cursor: u64| {
    let mut c = redis::cmd("SCAN");
    c.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
    c
  };
  let mut seen = HashSet::new();
  let mut keys = Vec::new();
  let mut keep = |batch: Vec<Vec<u8>>| {
    for key in batch {
      if seen.insert(key.clone()) {
        keys.push(key);
      }
    }
  };
  match conn {
    Conn::Node(node) => {
      let mut cursor = 0u64;
      loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = scan_from(cursor).query_async(node).await?;
        keep(batch);
        if next == 0 {
          break;
        }
        cursor = next;
      }
    }
    Conn::Cluster(cluster) => {
      // The first page from every primary in one fan-out; its answer also names them.
      let first = cluster
        .route_command(
          scan_from(0),
          RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
        )
        .await?;
      let Value::Map(per_node) = first else {
        return Err(RedisError::from((
          redis::ErrorKind::Client,
          "unexpected SCAN reply from the cluster",
        )));
      };
      for (address, reply) in per_node {
        let address: String = redis::from_redis_value(address)?;
        let (mut cursor, batch): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply.extract_error()?)?;
        keep(batch);
        let node: redis::cluster::NodeAddress = address
          .parse()
          .map_err(|_| RedisError::from((redis::ErrorKind::Client, "bad node address")))?;
        while cursor != 0 {
          let route = SingleNodeRoutingInfo::ByAddress {
            host: node.host().to_string(),
            port: node.port(),
          };
          let reply = cluster
            .route_command(scan_from(cursor), RoutingInfo::SingleNode(route))
            .await?;
          let (next, batch): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply)?;
          keep(batch);
          cursor = next;
        }
      }
    }
  }
  Ok(keys)
}

/// A driver error in plain words: without the kind the driver appends (" - InvalidClientConfig").
fn plain(e: &RedisError) -> String {
  let text = e.to_string();
  match text.rsplit_once(" - ") {
    Some((words, kind)) if !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric()) => words.to_string(),
    _ => text,
  }
}

/// The `host:port` of a `redis://` URL for messages: its credentials left out.
fn host_port(url: &str) -> String {
  let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
  let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
  rest.split('/').next().unwrap_or(rest).to_string()
}
