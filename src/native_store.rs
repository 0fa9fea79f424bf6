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
  core: Core,
}

/// What every request needs, cheap to clone into a task (all shared handles).
#[derive(Clone)]
struct Core {
  backend: Arc<dyn Backend>,
  health: Arc<Health>,
  sender: Sender,
  command_timeout: Duration,
}

/// Request codes of `batch`, in the order JS's lib/base-store.js numbers them.
const OP_GET: u32 = 0;
const OP_SET: u32 = 1;
const OP_TOUCH: u32 = 2;
const OP_DESTROY: u32 = 3;

#[napi]
impl NativeStore {
  /// A Redis store. Constructing opens no connection; the first request does.
  #[napi(factory, catch_unwind)]
  pub fn redis(dispatcher: &Dispatcher, store_id: u32, options: RedisOptions) -> napi::Result<Self> {
    let timeout = options.command_timeout_ms;
    Self::with_backend(dispatcher, store_id, "redis", RedisBackend::new(options), timeout)
  }

  /// A PostgreSQL store (connect-pg-simple's table). Constructing opens no connection.
  #[napi(factory, catch_unwind)]
  pub fn postgres(dispatcher: &Dispatcher, store_id: u32, options: PostgresOptions) -> napi::Result<Self> {
    let timeout = options.command_timeout_ms;
    Self::with_backend(dispatcher, store_id, "postgres", PostgresBackend::new(options), timeout)
  }

  /// A SQLite store (connect-session-knex's table) in a file or `:memory:`.
  #[napi(factory, catch_unwind)]
  pub fn sqlite(dispatcher: &Dispatcher, store_id: u32, options: SqliteOptions) -> napi::Result<Self> {
    let timeout = options.command_timeout_ms;
    Self::with_backend(dispatcher, store_id, "sqlite", SqliteBackend::new(options), timeout)
  }

  /// A bounded in-process store.
  #[napi(factory, catch_unwind)]
  pub fn memory(dispatcher: &Dispatcher, store_id: u32, options: MemoryOptions) -> napi::Result<Self> {
    Self::with_backend(dispatcher, store_id, "memory", MemoryBackend::new(options), None)
  }

  #[napi(catch_unwind)]
  pub fn get(&self, id: u32, sid: String) -> Immediate {
    self.core.run_coded(id, OP_GET, sid, String::new(), f64::NAN, f64::NAN)
  }

  /// `expires_at_ms`/`ttl_secs` both absent: the session never expires (`disableTTL`).
  #[napi(catch_unwind)]
  pub fn set(&self, id: u32, sid: String, value: String, expires_at_ms: Option<f64>, ttl_secs: Option<f64>) -> Immediate {
    self.core.run_coded(id, OP_SET, sid, value, expires_at_ms.unwrap_or(f64::NAN), ttl_secs.unwrap_or(f64::NAN))
  }

  #[napi(catch_unwind)]
  pub fn touch(&self, id: u32, sid: String, value: String, expires_at_ms: Option<f64>, ttl_secs: Option<f64>) -> Immediate {
    self.core.run_coded(id, OP_TOUCH, sid, value, expires_at_ms.unwrap_or(f64::NAN), ttl_secs.unwrap_or(f64::NAN))
  }

  #[napi(catch_unwind)]
  pub fn destroy(&self, id: u32, sid: String) -> Immediate {
    self.core.run_coded(id, OP_DESTROY, sid, String::new(), f64::NAN, f64::NAN)
  }

  #[napi(catch_unwind)]
  pub fn ids(&self, id: u32) -> Immediate {
    self.core.run(id, "ids", |b| async move { Ok(Value::List(b.ids().await?)) })
  }

  /// Answers a flat list `[sid1, value1, sid2, value2, ...]`: one array, no object per session.
  #[napi(catch_unwind)]
  pub fn all(&self, id: u32) -> Immediate {
    self.core.run(id, "all", |b| async move {
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
    self.core.run(id, "length", |b| async move { Ok(Value::Number(b.length().await? as f64)) })
  }

  #[napi(catch_unwind)]
  pub fn clear(&self, id: u32) -> Immediate {
    self.core.run(id, "clear", |b| async move { Ok(Value::Number(b.clear().await? as f64)) })
  }

  /// Answers the number of rows removed, or -1 when another process held the prune lock.
  #[napi(catch_unwind)]
  pub fn prune(&self, id: u32) -> Immediate {
    self.core.run(id, "prune", |b| async move {
      Ok(Value::Number(b.prune().await?.map_or(-1.0, |n| n as f64)))
    })
  }

  /// Many get/set/touch/destroy requests in one call: the ones JS issued during one turn of the
  /// event loop. One call and one wake-up of the runtime instead of one each per request; inside
  /// the runtime every request is its own task (a cheap local spawn), and requests issued together
  /// reach the server together (the Redis connection writes them in one go). Parallel arrays, one
  /// entry per request; `values` is empty text for get/destroy, `at_ms`/`ttl_secs` NaN for "never".
  #[napi(catch_unwind)]
  pub fn batch(&self, ids: Vec<u32>, ops: Vec<u32>, sids: Vec<String>, values: Vec<String>, at_ms: Vec<f64>, ttl_secs: Vec<f64>) {
    let core = self.core.clone();
    let jobs = ids.into_iter().zip(ops).zip(sids).zip(values).zip(at_ms.into_iter().zip(ttl_secs));
    let jobs: Vec<_> = jobs.map(|((((id, op), sid), value), (at, ttl))| (id, op, sid, value, at, ttl)).collect();
    napi::bindgen_prelude::spawn(async move {
      for (id, op, sid, value, at, ttl) in jobs {
        // A panic here would strand the requests after it: each is answered whatever happens.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| drop(core.run_coded(id, op, sid, value, at, ttl))));
        if let Err(panic) = started {
          let err = panic_error(&panic);
          core.sender.answer(id, Err((err.kind, err.message(core.backend.name(), "batch"))));
        }
      }
    });
  }

  /// Stops events and releases connections; answers when they are released.
  #[napi(catch_unwind)]
  pub fn close(&self, id: u32) {
    self.core.health.close();
    let backend = self.core.backend.clone();
    let sender = self.core.sender.clone();
    spawn_guarded(self.core.command_timeout, async move {
      backend.close().await;
      Ok(())
    }, move |r| sender.answer(id, r.map(|()| Value::Nothing).map_err(|e| (e.kind, e.message("store", "close")))));
  }

  /// Test hook for the panic guard: panics inside a spawned task, as a bug in a backend would.
  #[napi(catch_unwind)]
  pub fn panic_in_task(&self, id: u32) -> Immediate {
    self.core.run(id, "panic test", |_b| async move {
      if id > 0 {
        panic!("deliberate panic in a spawned task"); // invariant: kept on purpose, this hook proves the guard
      }
      Ok(Value::Nothing)
    })
  }

  /// For the tests and `ready()`: a round trip to the backend.
  #[napi(catch_unwind)]
  pub fn ping(&self, id: u32) -> Immediate {
    self.core.run(id, "ping", |b| async move {
      b.ping().await?;
      Ok(Value::Nothing)
    })
  }
}

impl NativeStore {
  /// The one way a store is made: a backend's constructor result (its option errors become a JS
  /// `Error` naming the backend) wired to the dispatcher, health events and the deadline.
  fn with_backend<B: Backend>(
    dispatcher: &Dispatcher,
    store_id: u32,
    name: &str,
    backend: BackendResult<B>,
    timeout_ms: Option<u32>,
  ) -> napi::Result<Self> {
    let backend = backend.map_err(|e| napi::Error::from_reason(e.message(name, "options")))?;
    let sender = Sender::of(dispatcher);
    let command_timeout = Duration::from_millis(u64::from(timeout_ms.unwrap_or(DEFAULT_COMMAND_TIMEOUT_MS)));
    Ok(Self { core: Core { backend: Arc::new(backend), health: Health::new(store_id, sender.clone()), sender, command_timeout } })
  }
}

impl Core {
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

  /// One get/set/touch/destroy request, by its code (`at`/`ttl` NaN: never expires).
  fn run_coded(&self, id: u32, op: u32, sid: String, value: String, at: f64, ttl: f64) -> Immediate {
    let expiry = expiry_of(at, ttl);
    match op {
      OP_GET => self.run(id, "get", move |b| async move { Ok(b.get(&sid).await?.map_or(Value::Nothing, Value::Text)) }),
      OP_SET => self.run(id, "set", move |b| async move {
        b.set(&sid, &value, expiry?).await?;
        Ok(Value::Nothing)
      }),
      OP_TOUCH => self.run(id, "touch", move |b| async move {
        b.touch(&sid, &value, expiry?).await?;
        Ok(Value::Nothing)
      }),
      OP_DESTROY => self.run(id, "destroy", move |b| async move {
        b.destroy(&sid).await?;
        Ok(Value::Nothing)
      }),
      _ => self.run(id, "batch", move |_| async move { Err(BackendError::invalid(format!("unknown request code {op}"))) }),
    }
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

/// Both NaN: never expires. Both finite: that expiry. Anything else is refused.
fn expiry_of(at_ms: f64, ttl_secs: f64) -> BackendResult<Option<Expiry>> {
  if at_ms.is_nan() && ttl_secs.is_nan() {
    Ok(None)
  } else if at_ms.is_finite() && ttl_secs.is_finite() {
    Ok(Some(Expiry { at_ms, ttl_secs: ttl_secs as i64 }))
  } else {
    Err(BackendError::invalid("expiry must be two finite numbers or none"))
  }
}

