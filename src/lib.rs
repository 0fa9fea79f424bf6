//! ferrosession's native core: Redis and PostgreSQL I/O, pooling and cookie signing, driven from
//! the JS `Store` classes in `lib/`. Nothing here may panic across the N-API boundary: every
//! export has `catch_unwind` and every spawned task goes through `dispatch::spawn_guarded`.
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod backend;
mod clock;
mod dispatch;
mod error;
mod health;
mod memory_backend;
mod native_store;
mod postgres_backend;
mod redis_backend;
mod runtime;
mod signing;
mod sql;
mod sqlite_backend;
