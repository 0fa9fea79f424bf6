//! The JS-facing native core: one class for every backend. Each method takes a request id,
//! spawns the work on the runtime and answers through the dispatcher, so no method blocks the
//! event loop and every request gets exactly one answer.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use napi::bindgen_prelude::{Either5, Null};
use napi_derive::napi;

use crate::backend::{Backend, Expiry};
use crate::dispatch::{panic_error, spawn_guarded, Dispatcher, Sender, Value};
use crate::error::{BackendError, BackendResult, ErrorKind};
use crate::health::Health;
use crate::memory_backend::{MemoryBackend, MemoryOptions};
use crate::postgres_backend::{PostgresBackend, PostgresOptions};
use crate::redis_backend::{RedisBackend, RedisOptions};
use crate::sqlite_backend::{SqliteBackend, SqliteOptions};

const DEFAULT_COMMAND_TIMEOUT_MS: u32 = 3000;

/// What a request method returns: `undefined` when the answer will come through the dispatcher;
/// for backends that run inline, the successful answer itself (`null` for "no value"), which
/// saves the round trip through the threadsafe function.
/// (`()` is `undefined`: napi turns `Option::None` into `null`, which is an answer here.)
type Immediate = Either5<(), Null, String, Vec<String>, f64>;

const DISPATCHED: Immediate = Either5::A(());

#[napi]
pub struct NativeStore {
  backend: Arc<dyn Backend>,
  health: Arc<Health>,
  sender: Sender,
  command_timeout: Duration,
}

#[napi]
impl NativeStore {
  /// A Redis store. Constructing opens no connection; the first request does.
  #[napi(factory, catch_unwind)]
  pub fn redis(dispatcher: &Dispatcher, store_id: u32, options: RedisOptions) -> napi::Result<Self> {
    let timeout = options.command_timeout_ms;
    let backend = RedisBackend::new(options).map_err(to_napi("redis"))?;
    Ok(Self::with_backend(dispatcher, store_id, Arc::new(backend), timeout))
  }

  /// A PostgreSQL store (connect-pg-simple's table). Constructing opens no connection.
  #[napi(factory, catch_unwind)]
  pub fn postgres(dispatcher: &Dispatcher, store_id: u32, options: PostgresOptions) -> napi::Result<Self> {
    let timeout = options.command_timeout_ms;
    let backend = PostgresBackend::new(options).map_err(to_napi("postgres"))?;
    Ok(Self::with_backend(dispatcher, store_id, Arc::new(backend), timeout))
  }

  /// A SQLite store (connect-session-knex's table) in a file or `:memory:`.
  #[napi(factory, catch_unwind)]
  pub fn sqlite(dispatcher: &Dispatcher, store_id: u32, options: SqliteOptions) -> napi::Result<Self> {
    let timeout = options.command_timeout_ms;
    let backend = SqliteBackend::new(options).map_err(to_napi("sqlite"))?;
    Ok(Self::with_backend(dispatcher, store_id, Arc::new(backend), timeout))
  }

  /// A bounded in-process store.
  #[napi(factory, catch_unwind)]
  pub fn memory(dispatcher: &Dispatcher, store_id: u32, options: MemoryOptions) -> napi::Result<Self> {
    let backend = MemoryBackend::new(options).map_err(to_napi("memory"))?;
    Ok(Self::with_backend(dispatcher, store_id, Arc::new(backend), None))
  }

  #[napi(catch_unwind)]
  pub fn get(&self, id: u32, sid: String) -> Immediate {
    self.run(id, "get", move |b| async move {
      Ok(b.get(&sid).await?.map_or(Value::Nothing, Value::Text))
    })
  }

  /// `expires_at_ms`/`ttl_secs` both absent: the session never expires (`disableTTL`).
  #[napi(catch_unwind)]
  pub fn set(&self, id: u32, sid: String, value: String, expires_at_ms: Option<f64>, ttl_secs: Option<f64>) -> Immediate {
    let expiry = expiry_of(expires_at_ms, ttl_secs);
    self.run(id, "set", move |b| async move {
      b.set(&sid, &value, expiry?).await?;
      Ok(Value::Nothing)
    })
  }

  #[napi(catch_unwind)]
  pub fn touch(&self, id: u32, sid: String, value: String, expires_at_ms: Option<f64>, ttl_secs: Option<f64>) -> Immediate {
    let expiry = expiry_of(expires_at_ms, ttl_secs);
    self.run(id, "touch", move |b| async move {
      b.touch(&sid, &value, expiry?).await?;
      Ok(Value::Nothing)
    })
  }

  #[napi(catch_unwind)]
  pub fn destroy(&self, id: u32, sid: String) -> Immediate {
    self.run(id, "destroy", move |b| async move {
      b.destroy(&sid).await?;
      Ok(Value::Nothing)
    })
  }

  #[napi(catch_unwind)]
  pub fn ids(&self, id: u32) -> Immediate {
    self.run(id, "ids", |b| async move { Ok(Value::List(b.ids().await?)) })
  }

  /// Answers a flat list `[sid1, value1, sid2, value2, ...]`: one array, no object per session.
  #[napi(catch_unwind)]
  pub fn all(&self, id: u32) -> Immediate {
    self.run(id, "all", |b| async move {
      let pairs = b.all().await?;
      let mut flat = Vec::with_capacity(pairs.len() * 2);
      for (sid, value) in pairs {
        flat.push(sid);
        flat.push(value);
      }
      Ok(Value::List(flat))
    })
  }

  #[napi(catch_unwind)]
  pub fn length(&self, id: u32) -> Immediate {
    self.run(id, "length", |b| async move { Ok(Value::Number(b.length().await? as f64)) })
  }

  #[napi(catch_unwind)]
  pub fn clear(&self, id: u32) -> Immediate {
    self.run(id, "clear", |b| async move { Ok(Value::Number(b.clear().await? as f64)) })
  }

  /// Answers the number of rows removed, or -1 when another process held the prune lock.
  #[napi(catch_unwind)]
  pub fn prune(&self, id: u32) -> Immediate {
    self.run(id, "prune", |b| async move {
      Ok(Value::Number(b.prune().await?.map_or(-1.0, |n| n as f64)))
    })
  }

  /// Stops events and releases connections; answers when they are released.
  #[napi(catch_unwind)]
  pub fn close(&self, id: u32) {
    self.health.close();
    let backend = self.backend.clone();
    let sender = self.sender.clone();
    spawn_guarded(self.command_timeout, async move {
      backend.close().await;
      Ok(())
    }, move |r| sender.answer(id, r.map(|()| Value::Nothing).map_err(|e| (e.kind, e.message("store", "close")))));
  }

  /// Test hook for the panic guard: panics inside a spawned task, as a bug in a backend would.
  #[napi(catch_unwind)]
  pub fn panic_in_task(&self, id: u32) -> Immediate {
    self.run(id, "panic test", |_b| async move {
      let crash: Option<Value> = None;
      #[allow(clippy::unwrap_used)] // the panic is the point of this hook
      Ok(crash.unwrap())
    })
  }

  /// For the tests and `ready()`: a round trip to the backend.
  #[napi(catch_unwind)]
  pub fn ping(&self, id: u32) -> Immediate {
    self.run(id, "ping", |b| async move {
      b.ping().await?;
      Ok(Value::Nothing)
    })
  }
}

impl NativeStore {
  fn with_backend(dispatcher: &Dispatcher, store_id: u32, backend: Arc<dyn Backend>, timeout_ms: Option<u32>) -> Self {
    let sender = Sender::of(dispatcher);
    let command_timeout = Duration::from_millis(u64::from(timeout_ms.unwrap_or(DEFAULT_COMMAND_TIMEOUT_MS)));
    Self { backend, health: Health::new(store_id, sender.clone()), sender, command_timeout }
  }

  /// Every operation goes through here: deadline, panic guard, health events, one answer.
  fn run<F, Fut>(&self, id: u32, op: &'static str, work: F) -> Immediate
  where
    F: FnOnce(Arc<dyn Backend>) -> Fut,
    Fut: Future<Output = BackendResult<Value>> + Send + 'static,
  {
    let backend = self.backend.clone();
    let health = self.health.clone();
    let sender = self.sender.clone();
    if health.is_closed() {
      let err = BackendError::new(ErrorKind::Closed, "the store was closed");
      sender.answer(id, Err((err.kind, err.message(backend.name(), op))));
      return DISPATCHED;
    }
    let inline = backend.runs_inline();
    let fut = work(backend.clone());
    let finish = move |outcome: BackendResult<Value>| {
      let name = backend.name();
      match outcome {
        Ok(value) => sender.answer(id, Ok(value)),
        Err(err) => {
          let message = err.message(name, op);
          if err.kind.is_outage() {
            health.saw_outage(&backend, message.clone());
          }
          sender.answer(id, Err((err.kind, message)));
        }
      }
    };
    if !inline {
      spawn_guarded(self.command_timeout, fut, finish);
      return DISPATCHED;
    }
    // No I/O to wait for: finish on this thread, under the same panic guard, and hand a
    // successful answer straight back; errors still travel the dispatcher's one path.
    let mut fut = Box::pin(fut);
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().now_or_never())) {
      Ok(Some(Ok(value))) => return immediate(value),
      Ok(Some(Err(err))) => finish(Err(err)),
      Ok(None) => spawn_guarded(self.command_timeout, fut, finish),
      Err(panic) => finish(Err(panic_error(&panic))),
    }
    DISPATCHED
  }
}

fn immediate(value: Value) -> Immediate {
  match value {
    Value::Nothing => Either5::B(Null),
    Value::Text(s) => Either5::C(s),
    Value::List(l) => Either5::D(l),
    Value::Number(n) => Either5::E(n),
  }
}

fn expiry_of(at_ms: Option<f64>, ttl_secs: Option<f64>) -> BackendResult<Option<Expiry>> {
  match (at_ms, ttl_secs) {
    (None, None) => Ok(None),
    (Some(at_ms), Some(ttl)) if at_ms.is_finite() && ttl.is_finite() => {
      Ok(Some(Expiry { at_ms, ttl_secs: ttl as i64 }))
    }
    _ => Err(BackendError::invalid("expiry must be two finite numbers or none")),
  }
}

fn to_napi(backend: &'static str) -> impl Fn(BackendError) -> napi::Error {
  move |e| napi::Error::from_reason(e.message(backend, "options"))
}
