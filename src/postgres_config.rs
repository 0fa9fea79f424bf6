//! Where a PostgreSQL store connects and how: the connection string (with libpq's TLS parameters,
//! which tokio-postgres does not parse), the TLS settings JS read from the app's pg config, and
//! `PGSSLMODE` & co. TLS is used or refused, never dropped: a store asked for TLS connects with
//! it or fails saying why.

use std::str::FromStr;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{BackendError, BackendResult};
use crate::tls::{self, TlsSettings, Verify};

/// Connection-string parameters handled here rather than by tokio-postgres.
const TLS_PARAMS: [&str; 6] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "ssl", "uselibpqcompat"];
/// libpq parameters we cannot honour: refused by name rather than ignored.
const REFUSED_PARAMS: [&str; 7] = [
  "sslpassword",
  "sslcrl",
  "sslcrldir",
  "sslcertmode",
  "ssl_min_protocol_version",
  "ssl_max_protocol_version",
  "requirepeer",
];

/// How connections are made: plain, or TLS with a configured verifier.
#[derive(Clone)]
pub enum Connector {
  Plain,
  Tls(NamedTls),
}

impl Connector {
  /// One connection outside the pool (the recovery probe); its driver runs on the runtime.
  pub async fn connect(&self, config: &Config) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    match self {
      Connector::Plain => {
        let (client, connection) = config.connect(NoTls).await?;
        Ok((client, tokio::spawn(async move { drop(connection.await) })))
      }
      Connector::Tls(tls) => {
        let (client, connection) = config.connect(tls.clone()).await?;
        Ok((client, tokio::spawn(async move { drop(connection.await) })))
      }
    }
  }
}

/// The parsed settings: tokio-postgres's config, and how to secure it.
pub struct Connection {
  pub config: Config,
  pub connector: Connector,
  /// For errors and the README's "what is read" table: `disable`, `prefer`, ... as resolved.
  pub tls_mode: String,
}

/// Builds the connection from a connection string (optional) and the TLS settings JS resolved from
/// the app's config or the environment (`explicit`). As in node-pg, TLS parameters in the
/// connection string win over the explicit ones.
pub fn connection(connection_string: Option<&str>, explicit: Option<TlsSettings>) -> BackendResult<Connection> {
  let (rest, params) = match connection_string.filter(|s| !s.is_empty()) {
    Some(s) => split_tls_params(s)?,
    None => (String::new(), Vec::new()),
  };
  let config = if rest.is_empty() {
    Config::new()
  } else {
    Config::from_str(&rest).map_err(|e| BackendError::invalid(format!("bad connection string: {}", chain(&e))))?
  };
  let settings = if params.is_empty() {
    explicit.unwrap_or_default()
  } else {
    from_params(&params)?
  };
  Ok(Connection {
    config,
    connector: Connector::Plain,
    tls_mode: settings.mode.clone(),
  })
  .and_then(|c| secure(c, &settings))
}

/// Applies `settings` to the connection: the driver's SSL mode and the verifier.
fn secure(mut c: Connection, settings: &TlsSettings) -> BackendResult<Connection> {
  let mode = if settings.mode.is_empty() {
    "prefer"
  } else {
    settings.mode.as_str()
  };
  // libpq ignores sslmode for Unix sockets; tokio-postgres would fail them.
  let only_sockets =
    !c.config.get_hosts().is_empty() && c.config.get_hosts().iter().all(|h| !matches!(h, Host::Tcp(_)));
  let (ssl_mode, verify) = match mode {
    "disable" => (SslMode::Disable, None),
    _ if only_sockets => (SslMode::Disable, None),
    // prefer: TLS when the server offers it; with a CA given, its chain must check out. Unlike
    // libpq there is no plaintext retry after a failed handshake: no silent downgrade.
    "prefer" => (
      SslMode::Prefer,
      Some(if settings.ca.is_some() {
        Verify::Chain
      } else {
        Verify::Nothing
      }),
    ),
    // libpq: require with a root certificate behaves as verify-ca.
    "require" => (
      SslMode::Require,
      Some(if settings.ca.is_some() {
        Verify::Chain
      } else {
        Verify::Nothing
      }),
    ),
    "no-verify" => (SslMode::Require, Some(Verify::Nothing)),
    "verify-ca" => (SslMode::Require, Some(Verify::Chain)),
    "verify-full" => (SslMode::Require, Some(Verify::Full)),
    "allow" => {
      return Err(BackendError::invalid(
        "sslmode=allow (plaintext first, TLS if the server insists) is not supported; use prefer or disable",
      ));
    }
    other => {
      return Err(BackendError::invalid(format!(
        "unknown sslmode {other:?}; use disable, prefer, require, verify-ca, verify-full or no-verify"
      )));
    }
  };
  c.config.ssl_mode(ssl_mode);
  c.tls_mode = mode.to_string();
  if let Some(verify) = verify {
    let inner = MakeRustlsConnect::new(tls::client_config(verify, settings)?);
    c.connector = Connector::Tls(NamedTls {
      inner,
      servername: settings.servername.clone(),
    });
  }
  Ok(c)
}

/// rustls through tokio-postgres, checking the certificate against `servername` (node-pg's
/// `ssl.servername`) instead of the host name when one is given.
#[derive(Clone)]
pub struct NamedTls {
  inner: MakeRustlsConnect,
  servername: Option<String>,
}

impl<S> MakeTlsConnect<S> for NamedTls
where
  MakeRustlsConnect: MakeTlsConnect<S>,
{
  type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
  type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect;
  type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

  fn make_tls_connect(&mut self, host: &str) -> Result<Self::TlsConnect, Self::Error> {
    let name = self.servername.clone().unwrap_or_else(|| host.to_string());
    self.inner.make_tls_connect(&name)
  }
}

/// The TLS settings a connection string asks for, with libpq's meanings and node-pg's spellings.
fn from_params(params: &[(String, String)]) -> BackendResult<TlsSettings> {
  let mut s = TlsSettings::default();
  let mut root_file = None;
  for (key, value) in params {
    match key.as_str() {
      "sslmode" => s.mode = value.clone(),
      "ssl" => match value.as_str() {
        "true" | "1" => {
          if s.mode.is_empty() {
            s.mode = "verify-full".into();
          }
        }
        "false" | "0" => s.mode = "disable".into(),
        other => {
          return Err(BackendError::invalid(format!(
            "connection string: ssl={other:?}; use ssl=true or ssl=false"
          )));
        }
      },
      "sslrootcert" => root_file = Some(value.clone()),
      "sslcert" => s.cert = Some(read_pem(value, "sslcert")?),
      "sslkey" => s.key = Some(read_pem(value, "sslkey")?),
      "uselibpqcompat" if value == "true" => {} // libpq's meanings are the only ones here
      other => {
        return Err(BackendError::invalid(format!(
          "connection string: {other}={value:?} is not supported"
        )));
      }
    }
  }
  match root_file.as_deref() {
    // PostgreSQL 16's rule: the system's roots, and nothing less than full verification.
    Some("system") => {
      if !s.mode.is_empty() && s.mode != "verify-full" {
        return Err(BackendError::invalid(format!(
          "sslrootcert=system needs sslmode=verify-full, not {:?}",
          s.mode
        )));
      }
      s.mode = "verify-full".into();
    }
    Some(path) => s.ca = Some(read_pem(path, "sslrootcert")?),
    None => {}
  }
  if s.mode.is_empty() {
    s.mode = "prefer".into(); // libpq's default
  }
  Ok(s)
}

fn read_pem(path: &str, what: &str) -> BackendResult<String> {
  std::fs::read_to_string(path).map_err(|e| BackendError::invalid(format!("{what}={path:?} cannot be read: {e}")))
}

/// Splits libpq's TLS parameters off a connection string (URL or `key=value` form), returning
/// the rest for tokio-postgres, and refuses the parameters nothing here can honour.
fn split_tls_params(s: &str) -> BackendResult<(String, Vec<(String, String)>)> {
  let mut taken = Vec::new();
  let rest = if s.starts_with("postgres://") || s.starts_with("postgresql://") {
    let Some((base, query)) = s.split_once('?') else {
      return Ok((s.to_string(), taken));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
      let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
      let key = percent_decode(k);
      if TLS_PARAMS.contains(&key.as_str()) {
        taken.push((key, percent_decode(v)));
      } else if REFUSED_PARAMS.contains(&key.as_str()) {
        return Err(refused(&key));
      } else {
        kept.push(pair);
      }
    }
    if kept.is_empty() {
      base.to_string()
    } else {
      format!("{base}?{}", kept.join("&"))
    }
  } else {
    let mut kept = Vec::new();
    for (key, value) in keyword_pairs(s)? {
      if TLS_PARAMS.contains(&key.as_str()) {
        taken.push((key, value));
      } else if REFUSED_PARAMS.contains(&key.as_str()) {
        return Err(refused(&key));
      } else {
        kept.push(format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'")));
      }
    }
    kept.join(" ")
  };
  Ok((rest, taken))
}

fn refused(key: &str) -> BackendError {
  BackendError::invalid(format!("connection string parameter {key} is not supported"))
}

/// libpq's `key = value` pairs: values bare (backslash escapes) or single-quoted.
fn keyword_pairs(s: &str) -> BackendResult<Vec<(String, String)>> {
  let mut pairs = Vec::new();
  let mut chars = s.chars().peekable();
  loop {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
      chars.next();
    }
    if chars.peek().is_none() {
      return Ok(pairs);
    }
    let mut key = String::new();
    while let Some(&c) = chars.peek() {
      if c == '=' || c.is_whitespace() {
        break;
      }
      key.push(c);
      chars.next();
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
      chars.next();
    }
    if chars.next() != Some('=') {
      return Err(BackendError::invalid(format!(
        "bad connection string: {key:?} has no value"
      )));
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
      chars.next();
    }
    let mut value = String::new();
    if chars.peek() == Some(&'\'') {
      chars.next();
      loop {
        match chars.next() {
          Some('\\') => value.extend(chars.next()),
          Some('\'') => break,
          Some(c) => value.push(c),
          None => {
            return Err(BackendError::invalid(
              "bad connection string: an unterminated quoted value",
            ));
          }
        }
      }
    } else {
      while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
          break;
        }
        chars.next();
        if c == '\\' {
          value.extend(chars.next());
        } else {
          value.push(c);
        }
      }
    }
    pairs.push((key, value));
  }
}

fn percent_decode(s: &str) -> String {
  let bytes = s.as_bytes();
  let mut out = Vec::with_capacity(bytes.len());
  let mut i = 0;
  while i < bytes.len() {
    if bytes[i] == b'%'
      && i + 2 < bytes.len()
      && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
        .ok()
        .and_then(|h| u8::from_str_radix(h, 16).ok())
    {
      out.push(b);
      i += 3;
      continue;
    }
    out.push(bytes[i]);
    i += 1;
  }
  String::from_utf8_lossy(&out).into_owned()
}

/// An error with its causes (tokio-postgres's Display shows only the outermost).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
  let mut text = e.to_string();
  let mut source = e.source();
  while let Some(s) = source {
    text.push_str(": ");
    text.push_str(&s.to_string());
    source = s.source();
  }
  text
}

#[cfg(test)]
mod tests {
  use super::*;

  fn split(s: &str) -> (String, Vec<(String, String)>) {
    split_tls_params(s).unwrap_or_else(|e| panic!("{}", e.detail))
  }

  #[test]
  fn tls_parameters_are_taken_out_of_urls_and_keyword_strings() {
    let (rest, taken) = split("postgres://u@h:5432/db?sslmode=verify-full&application_name=x&ssl=true");
    assert_eq!(rest, "postgres://u@h:5432/db?application_name=x");
    assert_eq!(
      taken,
      [("sslmode".into(), "verify-full".into()), ("ssl".into(), "true".into())]
    );
    let (rest, taken) = split("host=h user='a b' sslmode = require dbname=d");
    assert_eq!(rest, "host='h' user='a b' dbname='d'");
    assert_eq!(taken, [("sslmode".into(), "require".into())]);
    assert!(Config::from_str(&rest).is_ok());
  }

  #[test]
  fn unsupported_parameters_are_refused_by_name() {
    let err = split_tls_params("postgres://h/db?sslpassword=x")
      .err()
      .map(|e| e.detail);
    assert_eq!(
      err.as_deref(),
      Some("connection string parameter sslpassword is not supported")
    );
    let err = connection(Some("postgres://h/db?sslmode=allow"), None)
      .err()
      .map(|e| e.detail)
      .unwrap_or_default();
    assert!(err.contains("sslmode=allow"));
    let err = connection(Some("postgres://h/db?bogus=1"), None)
      .err()
      .map(|e| e.detail)
      .unwrap_or_default();
    assert!(err.contains("unknown option `bogus`"), "{err}");
  }

  #[test]
  fn libpq_meanings_and_node_pg_spellings() {
    let mode = |s: &str| {
      connection(Some(s), None)
        .map(|c| (c.tls_mode, c.config.get_ssl_mode()))
        .ok()
    };
    assert_eq!(mode("postgres://h/db"), Some(("prefer".into(), SslMode::Prefer)));
    assert_eq!(
      mode("postgres://h/db?sslmode=disable"),
      Some(("disable".into(), SslMode::Disable))
    );
    assert_eq!(
      mode("postgres://h/db?ssl=true"),
      Some(("verify-full".into(), SslMode::Require))
    );
    assert_eq!(
      mode("postgres://h/db?sslmode=no-verify"),
      Some(("no-verify".into(), SslMode::Require))
    );
    assert_eq!(
      mode("host=/var/run/postgresql sslmode=verify-full"),
      Some(("verify-full".into(), SslMode::Disable))
    );
  }
}
