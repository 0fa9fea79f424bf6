//! The N-API face of the stores: one factory per backend, the option objects JS hands them, and
//! the defaults JS reads. This is the only file that turns JS values into a backend's
//! configuration; backends know nothing of N-API and are built from plain Rust structs
//! (`XConfig` beside each backend) plus the settings every store shares (`defaults::Common`).
//!
//! The objects here mirror those structs field for field (napi-rs derives the JS conversion and
//! the TypeScript declaration in binding.d.ts from them); what a field means is documented on
//! the backend's struct. Closed sets are string enums, so a misspelt value is refused here with
//! the allowed ones named.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::defaults::{self, Common};
use crate::dispatch::Dispatcher;
use crate::encryption::{self, EncryptionConfig, EncryptionKey};
use crate::memory_backend::{MemoryBackend, MemoryConfig};
use crate::native_store::NativeStore;

/// Every callback fires within this many ms unless the store says otherwise (`commandTimeout`).
#[napi]
pub const DEFAULT_COMMAND_TIMEOUT_MS: u32 = defaults::COMMAND_TIMEOUT_MS;
/// Opening a connection gives up after this many ms unless the store says otherwise.
#[napi]
pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = defaults::CONNECT_TIMEOUT_MS;
/// Idle connections are closed after this many ms unless the store says otherwise (`idleTimeout`).
#[napi]
pub const DEFAULT_IDLE_TIMEOUT_MS: u32 = defaults::IDLE_TIMEOUT_MS;

/// What every store takes, whatever its backend (absent: the default).
#[napi(object)]
pub struct CommonOptions {
  pub command_timeout_ms: Option<u32>,
  pub connect_timeout_ms: Option<u32>,
  /// 0 keeps idle connections open.
  pub idle_timeout_ms: Option<u32>,
}

impl From<&CommonOptions> for Common {
  fn from(o: &CommonOptions) -> Self {
    Common::from_ms(o.command_timeout_ms, o.connect_timeout_ms, o.idle_timeout_ms)
  }
}

#[napi(object)]
pub struct MemoryOptions {
  pub max: Option<u32>,
  pub max_bytes: Option<f64>,
}

#[napi(object)]
pub struct EncryptionKeyOptions {
  pub raw: Option<Buffer>,
  pub passphrase: Option<String>,
}

#[napi(object)]
pub struct EncryptionOptions {
  pub keys: Vec<EncryptionKeyOptions>,
  pub read_plaintext: bool,
  pub connect_mongo_secret: Option<String>,
}

#[napi]
impl NativeStore {
  /// A bounded in-process store.
  #[napi(factory, catch_unwind)]
  pub fn memory(
    dispatcher: &Dispatcher,
    store_id: u32,
    common: CommonOptions,
    options: MemoryOptions,
  ) -> napi::Result<Self> {
    let config = MemoryConfig {
      max: options.max,
      max_bytes: options.max_bytes,
    };
    Self::with_backend(
      dispatcher,
      store_id,
      "memory",
      MemoryBackend::new(config),
      &(&common).into(),
    )
  }

  /// Puts encryption in front of this store's backend; called once, before any request.
  #[napi(catch_unwind)]
  pub fn encrypt(&mut self, options: EncryptionOptions) -> napi::Result<()> {
    let config = EncryptionConfig {
      keys: options
        .keys
        .into_iter()
        .map(|k| EncryptionKey {
          raw: k.raw.map(|b| b.to_vec()),
          passphrase: k.passphrase,
        })
        .collect(),
      read_plaintext: options.read_plaintext,
      connect_mongo_secret: options.connect_mongo_secret,
    };
    self.wrap_backend(|inner| encryption::encrypted(inner, &config))
  }
}

#[cfg(feature = "redis")]
mod redis {
  use super::*;
  use crate::redis_backend::{RedisBackend, RedisConfig};
  use crate::redis_connection::{Certificates, SentinelSettings};

  #[napi(object)]
  pub struct RedisSentinelOptions {
    pub sentinels: Vec<String>,
    pub name: String,
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
  }

  #[napi(object)]
  pub struct RedisOptions {
    pub url: String,
    pub prefix: String,
    pub scan_count: u32,
    pub tls_ca: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub cluster: Option<Vec<String>>,
    pub sentinel: Option<RedisSentinelOptions>,
  }

  #[napi]
  impl NativeStore {
    /// A Redis store (a server, a Cluster or the master Sentinels name). Opens no connection.
    #[napi(factory, catch_unwind)]
    pub fn redis(
      dispatcher: &Dispatcher,
      store_id: u32,
      common: CommonOptions,
      options: RedisOptions,
    ) -> napi::Result<NativeStore> {
      let common = Common::from(&common);
      let config = RedisConfig {
        url: options.url,
        prefix: options.prefix,
        scan_count: options.scan_count,
        certificates: Certificates {
          ca: options.tls_ca,
          cert: options.tls_cert,
          key: options.tls_key,
        },
        cluster: options.cluster,
        sentinel: options.sentinel.map(|s| SentinelSettings {
          sentinels: s.sentinels,
          name: s.name,
          sentinel_username: s.sentinel_username,
          sentinel_password: s.sentinel_password,
        }),
      };
      NativeStore::with_backend(
        dispatcher,
        store_id,
        "redis",
        RedisBackend::new(config, &common),
        &common,
      )
    }
  }
}

/// TLS as JS read it from the app's pg settings or PGSSLMODE (mirrors `tls::TlsSettings`).
#[cfg(feature = "postgres")]
#[napi(object)]
pub struct TlsOptions {
  /// Not an enum: PGSSLMODE may hold anything, and postgres_config.rs answers an unknown mode
  /// with the modes it knows.
  pub mode: String,
  pub ca: Option<String>,
  pub cert: Option<String>,
  pub key: Option<String>,
  pub servername: Option<String>,
}

#[cfg(feature = "postgres")]
mod postgres {
  use super::*;
  use crate::postgres_backend::{Layout, PostgresBackend, PostgresConfig};
  use crate::tls::TlsSettings;

  /// Whose table: connect-pg-simple's or connect-session-knex's.
  #[napi(string_enum)]
  pub enum PostgresLayout {
    #[napi(value = "connect-pg-simple")]
    ConnectPgSimple,
    #[napi(value = "knex")]
    Knex,
  }

  #[napi(object)]
  pub struct PostgresOptions {
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
    pub statement_timeout_ms: Option<u32>,
    pub tls: Option<TlsOptions>,
    pub application_name: Option<String>,
    pub startup_options: Option<String>,
    pub layout: PostgresLayout,
    pub sid_column: Option<String>,
    pub settings_source: Option<String>,
  }

  pub(super) fn tls_settings(t: TlsOptions) -> TlsSettings {
    TlsSettings {
      mode: t.mode,
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      servername: t.servername,
    }
  }

  #[napi]
  impl NativeStore {
    /// A PostgreSQL store (connect-pg-simple's or connect-session-knex's table). Opens no connection.
    #[napi(factory, catch_unwind)]
    pub fn postgres(
      dispatcher: &Dispatcher,
      store_id: u32,
      common: CommonOptions,
      options: PostgresOptions,
    ) -> napi::Result<NativeStore> {
      let common = Common::from(&common);
      let o = options;
      let config = PostgresConfig {
        connection_string: o.connection_string,
        host: o.host,
        port: o.port,
        user: o.user,
        password: o.password,
        database: o.database,
        schema_name: o.schema_name,
        table_name: o.table_name,
        create_table_if_missing: o.create_table_if_missing,
        pool_size: o.pool_size,
        statement_timeout_ms: o.statement_timeout_ms,
        tls: o.tls.map(tls_settings),
        application_name: o.application_name,
        startup_options: o.startup_options,
        layout: match o.layout {
          PostgresLayout::ConnectPgSimple => Layout::PgSimple,
          PostgresLayout::Knex => Layout::Knex,
        },
        sid_column: o.sid_column,
        settings_source: o.settings_source,
      };
      NativeStore::with_backend(
        dispatcher,
        store_id,
        "postgres",
        PostgresBackend::new(config, &common),
        &common,
      )
    }
  }
}

#[cfg(feature = "mysql")]
mod mysql {
  use super::*;
  use crate::mysql_backend::{Layout, MysqlBackend, MysqlConfig, MysqlTls};

  /// Whose table: express-mysql-session's or connect-session-knex's.
  #[napi(string_enum)]
  pub enum MysqlLayout {
    #[napi(value = "express-mysql-session")]
    ExpressMysqlSession,
    #[napi(value = "knex")]
    Knex,
  }

  #[napi(object)]
  pub struct MysqlTlsOptions {
    pub ca: Option<Vec<String>>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub reject_unauthorized: bool,
    pub servername: Option<String>,
  }

  #[napi(object)]
  pub struct MysqlOptions {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    pub socket_path: Option<String>,
    pub layout: MysqlLayout,
    pub table_name: String,
    pub sid_column: String,
    pub expires_column: String,
    pub data_column: String,
    pub create_table: bool,
    pub collation: Option<String>,
    pub pool_size: Option<u32>,
    pub tls: Option<MysqlTlsOptions>,
  }

  #[napi]
  impl NativeStore {
    /// A MySQL/MariaDB store. Opens no connection.
    #[napi(factory, catch_unwind)]
    pub fn mysql(
      dispatcher: &Dispatcher,
      store_id: u32,
      common: CommonOptions,
      options: MysqlOptions,
    ) -> napi::Result<NativeStore> {
      let common = Common::from(&common);
      let o = options;
      let config = MysqlConfig {
        host: o.host,
        port: o.port,
        user: o.user,
        password: o.password,
        database: o.database,
        socket_path: o.socket_path,
        layout: match o.layout {
          MysqlLayout::ExpressMysqlSession => Layout::ExpressMysqlSession,
          MysqlLayout::Knex => Layout::Knex,
        },
        table_name: o.table_name,
        sid_column: o.sid_column,
        expires_column: o.expires_column,
        data_column: o.data_column,
        create_table: o.create_table,
        collation: o.collation,
        pool_size: o.pool_size,
        tls: o.tls.map(|t| MysqlTls {
          ca: t.ca,
          cert: t.cert,
          key: t.key,
          reject_unauthorized: t.reject_unauthorized,
          servername: t.servername,
        }),
      };
      NativeStore::with_backend(
        dispatcher,
        store_id,
        "mysql",
        MysqlBackend::new(config, &common),
        &common,
      )
    }
  }
}

#[cfg(feature = "mongodb")]
mod mongodb {
  use super::*;
  use crate::mongodb_backend::{AutoRemove, MongoBackend, MongoConfig};

  /// connect-mongo's `autoRemove`.
  #[napi(string_enum)]
  pub enum MongoAutoRemove {
    #[napi(value = "native")]
    Native,
    #[napi(value = "interval")]
    Interval,
    #[napi(value = "disabled")]
    Disabled,
  }

  #[napi(object)]
  pub struct MongoOptions {
    pub url: String,
    pub db_name: Option<String>,
    pub collection_name: String,
    pub stringify: bool,
    pub auto_remove: MongoAutoRemove,
    pub last_modified: bool,
    pub timestamps: bool,
    pub write_nodes: Option<u32>,
    pub write_tag: Option<String>,
    pub write_journal: Option<bool>,
    pub write_timeout_ms: Option<u32>,
    pub pool_size: Option<u32>,
  }

  #[napi]
  impl NativeStore {
    /// A MongoDB store (connect-mongo's documents). Opens no connection.
    #[napi(factory, catch_unwind)]
    pub fn mongodb(
      dispatcher: &Dispatcher,
      store_id: u32,
      common: CommonOptions,
      options: MongoOptions,
    ) -> napi::Result<NativeStore> {
      let common = Common::from(&common);
      let o = options;
      let config = MongoConfig {
        url: o.url,
        db_name: o.db_name,
        collection_name: o.collection_name,
        stringify: o.stringify,
        auto_remove: match o.auto_remove {
          MongoAutoRemove::Native => AutoRemove::Native,
          MongoAutoRemove::Interval => AutoRemove::Interval,
          MongoAutoRemove::Disabled => AutoRemove::Disabled,
        },
        last_modified: o.last_modified,
        timestamps: o.timestamps,
        write_nodes: o.write_nodes,
        write_tag: o.write_tag,
        write_journal: o.write_journal,
        write_timeout_ms: o.write_timeout_ms,
        pool_size: o.pool_size,
      };
      NativeStore::with_backend(
        dispatcher,
        store_id,
        "mongodb",
        MongoBackend::new(config, &common),
        &common,
      )
    }
  }
}

#[cfg(feature = "sqlite")]
mod sqlite {
  use super::*;
  use crate::sqlite_backend::{SqliteBackend, SqliteConfig};

  #[napi(object)]
  pub struct SqliteOptions {
    pub path: String,
    pub table_name: String,
    pub sid_field_name: String,
    pub create_table: bool,
    pub busy_timeout_ms: Option<u32>,
  }

  #[napi]
  impl NativeStore {
    /// A SQLite store (connect-session-knex's table) in a file or `:memory:`.
    #[napi(factory, catch_unwind)]
    pub fn sqlite(
      dispatcher: &Dispatcher,
      store_id: u32,
      common: CommonOptions,
      options: SqliteOptions,
    ) -> napi::Result<NativeStore> {
      let config = SqliteConfig {
        path: options.path,
        table_name: options.table_name,
        sid_field_name: options.sid_field_name,
        create_table: options.create_table,
        busy_timeout_ms: options.busy_timeout_ms,
      };
      NativeStore::with_backend(
        dispatcher,
        store_id,
        "sqlite",
        SqliteBackend::new(config),
        &(&common).into(),
      )
    }
  }
}
