//! ferrosession's native core: the storage backends (Redis, PostgreSQL, SQLite, memory), their
//! I/O and pooling, and cookie signing, driven from the JS `Store` classes in `lib/`. Nothing here may panic across the N-API boundary: every
//! export has `catch_unwind` and every spawned task goes through `dispatch::spawn_guarded`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// `cargo test` builds no N-API module, so the `#[napi]` exports look unused there.
#![cfg_attr(test, allow(dead_code))]

mod backend;
mod clock;
mod defaults;
mod dispatch;
mod error;
mod health;
mod memory_backend;
mod native_store;
mod postgres_backend;
mod postgres_config;
mod redis_backend;
mod redis_connection;
mod runtime;
mod signing;
mod sql;
mod sqlite_backend;
mod sqlite_pool;
mod tls;
