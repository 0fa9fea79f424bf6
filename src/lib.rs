//! ferrosession's native core: the storage backends (Redis, PostgreSQL, MySQL, MongoDB, SQLite, memory), their
//! I/O and pooling, and cookie signing, driven from the JS `Store` classes in `lib/`. Nothing here may panic across the N-API boundary: every
//! export has `catch_unwind` and every spawned task goes through `dispatch::spawn_guarded`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// `cargo test` builds no N-API module, so the `#[napi]` exports look unused there.
#![cfg_attr(test, allow(dead_code))]
// A build with some backends left out (cargo features) leaves helpers only those backends use.
#![cfg_attr(
  not(all(
    feature = "redis",
    feature = "postgres",
    feature = "sqlite",
    feature = "mysql",
    feature = "mongodb"
  )),
  allow(dead_code)
)]

mod backend;
mod batch_kinds;
mod clock;
mod defaults;
mod dispatch;
mod error;
mod health;
mod hops;
mod memory_backend;
mod merge_patch;
mod native_store;
// After native_store: napi expands `#[napi] impl NativeStore` blocks only once the struct is seen.
mod encryption;
#[cfg(feature = "mongodb")]
mod mongodb_backend;
#[cfg(feature = "mysql")]
mod mysql_backend;
mod napi_stores;
#[cfg(feature = "postgres")]
mod postgres_backend;
#[cfg(feature = "postgres")]
mod postgres_config;
#[cfg(feature = "redis")]
mod redis_backend;
#[cfg(feature = "redis")]
mod redis_connection;
mod runtime;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod shared_pool;
mod sid_order;
mod signing;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite_backend;
#[cfg(feature = "sqlite")]
mod sqlite_pool;
mod tls;
mod warm;
