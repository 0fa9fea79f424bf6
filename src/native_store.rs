//! The JS-facing native core: one class for every backend. Each method takes a request id,
//! spawns the work on the runtime and answers through the dispatcher, so no method blocks the
//! event loop and every request gets exactly one answer.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::FutureExt;
use napi::bindgen_prelude::{Either5, Null};
use napi_derive::napi;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::defaults;
use crate::dispatch::{Dispatcher, Sender, Value, panic_error, spawn_guarded};
use crate::error::{BackendError, BackendResult};
use crate::health::Health;
use crate::memory_backend::{MemoryBackend, MemoryOptions};
use crate::postgres_backend::{PostgresBackend, PostgresOptions};
use crate::redis_backend::{RedisBackend, RedisOptions};
use crate::sqlite_backend::{SqliteBackend, SqliteOptions};

/// Request codes of `batch`. JS reads these constants; nothing else numbers requests.
#[napi]
pub const OP_GET: u32 = 0;
#[napi]
pub const OP_SET: u32 = 1;
#[napi]
pub const OP_TOUCH: u32 = 2;
#[napi]
pub const OP_DESTROY: u32 = 3;

/// What a request method returns: `undefined` when the answer will come through the dispatcher;
/// for backends that run inline, the successful answer itself (`null` for "no value"), which
/// saves the round trip through the threadsafe function.
/// (`()` is `undefined`: napi turns `Option::None` into `null`, which is an answer here.)
/// Each method spells this type for TypeScript (`ts_return_type`): an alias would leak into
/// binding.d.ts as an undeclared name.
type Immediate = Either5<(), Null, String, Vec<Option<String>>, f64>;

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
  connect_timeout: Duration,
}

#[napi]
impl NativeStore {
  /// A Redis store. Constructing opens no connection; the first request does.
  #[napi(factory, catch_unwind)]
  pub fn redis(dispatcher: &Dispatcher, store_id: u32, options: RedisOptions) -> napi::Result<Self> {
    let timeouts = (options.command_timeout_ms, options.connect_timeout_ms);
    Self::with_backend(dispatcher, store_id, "redis", RedisBackend::new(options), timeouts)
  }

  /// A PostgreSQL store (connect-pg-simple's table). Constructing opens no connection.
  #[napi(factory, catch_unwind)]
  pub fn postgres(dispatcher: &Dispatcher, store_id: u32, options: PostgresOptions) -> napi::Result<Self> {
    let timeouts = (options.command_timeout_ms, options.connect_timeout_ms);
    Self::with_backend(
      dispatcher,
      store_id,
      "postgres",
      PostgresBackend::new(options),
      timeouts,
    )
  }

  /// A SQLite store (connect-session-knex's table) in a file or `:memory:`.
  #[napi(factory, catch_unwind)]
  pub fn sqlite(dispatcher: &Dispatcher, store_id: u32, options: SqliteOptions) -> napi::Result<Self> {
    let timeouts = (options.command_timeout_ms, None);
    Self::with_backend(dispatcher, store_id, "sqlite", SqliteBackend::new(options), timeouts)
  }

  /// A bounded in-process store.
  #[napi(factory, catch_unwind)]
  pub fn memory(dispatcher: &Dispatcher, store_id: u32, options: MemoryOptions) -> napi::Result<Self> {
    Self::with_backend(
      dispatcher,
      store_id,
      "memory",
      MemoryBackend::new(options),
      (None, None),
    )
  }

  /// Whether this store answers from the call itself (no I/O); JS then never batches its requests.
  #[napi(getter)]
  pub fn runs_inline(&self) -> bool {
    self.core.backend.runs_inline()
  }

  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn get(&self, id: u32, sid: String, now_ms: f64) -> Immediate {
    let deadline = self.core.deadline();
    immediate(
      self
        .core
        .run_coded(id, OP_GET, sid, String::new(), f64::NAN, now_ms, deadline),
    )
  }

  /// `expires_at_ms` NaN: the session never expires (`disableTTL`).
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn set(&self, id: u32, sid: String, value: String, expires_at_ms: f64, now_ms: f64) -> Immediate {
    let deadline = self.core.deadline();
    immediate(
      self
        .core
        .run_coded(id, OP_SET, sid, value, expires_at_ms, now_ms, deadline),
    )
  }

  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn touch(&self, id: u32, sid: String, value: String, expires_at_ms: f64, now_ms: f64) -> Immediate {
    let deadline = self.core.deadline();
    immediate(
      self
        .core
        .run_coded(id, OP_TOUCH, sid, value, expires_at_ms, now_ms, deadline),
    )
  }

  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn destroy(&self, id: u32, sid: String) -> Immediate {
    let deadline = self.core.deadline();
    immediate(
      self
        .core
        .run_coded(id, OP_DESTROY, sid, String::new(), f64::NAN, f64::NAN, deadline),
    )
  }

  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn ids(&self, id: u32, now_ms: f64) -> Immediate {
    immediate(self.core.run(id, "ids", self.core.deadline(), move |b| async move {
      Ok(Value::List(b.ids(now_ms).await?))
    }))
  }

  /// Answers a flat list `[sid1, value1, sid2, value2, ...]`: one array, no object per session.
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn all(&self, id: u32, now_ms: f64) -> Immediate {
    immediate(self.core.run(id, "all", self.core.deadline(), move |b| async move {
      let pairs = b.all(now_ms).await?;
      let mut flat = Vec::with_capacity(pairs.len() * 2);
      for (sid, value) in pairs {
        flat.push(Some(sid));
        flat.push(value);
      }
      Ok(Value::Pairs(flat))
    }))
  }

  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn length(&self, id: u32, now_ms: f64) -> Immediate {
    immediate(self.core.run(id, "length", self.core.deadline(), move |b| async move {
      Ok(Value::Number(b.length(now_ms).await? as f64))
    }))
  }

  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn clear(&self, id: u32) -> Immediate {
    immediate(self.core.run(id, "clear", self.core.deadline(), |b| async move {
      Ok(Value::Number(b.clear().await? as f64))
    }))
  }

  /// Answers the number of rows removed, or -1 when another process held the prune lock.
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn prune(&self, id: u32, now_ms: f64) -> Immediate {
    immediate(self.core.run(id, "prune", self.core.deadline(), move |b| async move {
      Ok(Value::Number(b.prune(now_ms).await?.map_or(-1.0, |n| n as f64)))
    }))
  }

  /// For the tests and `ready()`: a round trip to the backend.
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn ping(&self, id: u32) -> Immediate {
    immediate(self.core.run(id, "ping", self.core.deadline(), |b| async move {
      b.ping().await?;
      Ok(Value::Nothing)
    }))
  }

  /// Many get/set/touch/destroy requests in one call: the ones JS issued during one turn of the
  /// event loop. One call and one wake-up of the runtime instead of one each per request; inside
  /// the runtime every request is its own task, and requests issued together reach the server
  /// together. Parallel arrays, one entry per request; `values` is empty text for get/destroy,
  /// `expires_at_ms` NaN for "never". The deadline of every request counts from this call.
  #[napi(catch_unwind)]
  pub fn batch(
    &self,
    ids: Vec<u32>,
    ops: Vec<u32>,
    sids: Vec<String>,
    values: Vec<String>,
    expires_at_ms: Vec<f64>,
    now_ms: Vec<f64>,
  ) {
    let core = self.core.clone();
    let deadline = core.deadline();
    let jobs = ids
      .into_iter()
      .zip(ops)
      .zip(sids)
      .zip(values)
      .zip(expires_at_ms.into_iter().zip(now_ms));
    let jobs: Vec<_> = jobs
      .map(|((((id, op), sid), value), (at, now))| (id, op, sid, value, at, now))
      .collect();
    let fallback = core.clone();
    let ids: Vec<u32> = jobs.iter().map(|job| job.0).collect();
    let started = crate::runtime::spawn(async move {
      for (id, op, sid, value, at, now) in jobs {
        // A panic here would strand the requests after it: each is answered whatever happens.
        match std::panic::catch_unwind(AssertUnwindSafe(|| {
          core.run_coded(id, op, sid, value, at, now, deadline)
        })) {
          Ok(None) => {}
          Ok(Some(value)) => core.sender.answer(id, Ok(value)), // an inline backend answered at once
          Err(panic) => core.fail(id, "batch", &panic_error(&panic)),
        }
      }
    });
    if !started {
      let err = BackendError::unavailable("the native runtime could not start its thread");
      for id in ids {
        fallback.fail(id, "batch", &err);
      }
    }
  }

  /// Stops events and releases connections for good; answers when they are released. JS calls
  /// this only once the store's own requests have all been answered.
  #[napi(catch_unwind)]
  pub fn close(&self, id: u32) {
    self.core.health.close();
    let backend = self.core.backend.clone();
    let sender = self.core.sender.clone();
    let timeout = self.core.command_timeout;
    spawn_guarded(
      self.core.deadline(),
      timeout.as_millis(),
      async move {
        backend.close().await;
        Ok(())
      },
      move |r| {
        sender.answer(
          id,
          r.map(|()| Value::Nothing)
            .map_err(|e| (e.kind, e.message("store", "close"))),
        )
      },
    );
  }

  /// Test hook for the panic guard: panics inside a spawned task, as a bug in a backend would.
  /// Refused unless the process was started with FERROSESSION_TEST_HOOKS=1.
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number"
  )]
  pub fn panic_in_task(&self, id: u32) -> Immediate {
    let enabled = test_hooks_enabled();
    immediate(
      self
        .core
        .run(id, "panic test", self.core.deadline(), move |_b| async move {
          if !enabled {
            return Err(BackendError::invalid(
              "test hooks are off (set FERROSESSION_TEST_HOOKS=1)",
            ));
          }
          panic!("deliberate panic in a spawned task"); // invariant: kept on purpose, this hook proves the guard
        }),
    )
  }
}

/// Read once: the switch cannot be flipped by code running later in the process.
fn test_hooks_enabled() -> bool {
  static ENABLED: OnceLock<bool> = OnceLock::new();
  *ENABLED.get_or_init(|| std::env::var("FERROSESSION_TEST_HOOKS").is_ok_and(|v| v == "1"))
}

impl NativeStore {
  /// The one way a store is made: a backend's constructor result (its option errors become a JS
  /// `Error` naming the backend) wired to the dispatcher, health events and the timeouts.
  fn with_backend<B: Backend>(
    dispatcher: &Dispatcher,
    store_id: u32,
    name: &str,
    backend: BackendResult<B>,
    (command_ms, connect_ms): (Option<u32>, Option<u32>),
  ) -> napi::Result<Self> {
    let backend = backend.map_err(|e| napi::Error::from_reason(e.message(name, "options")))?;
    let sender = Sender::of(dispatcher);
    Ok(Self {
      core: Core {
        backend: Arc::new(backend),
        health: Health::new(store_id, sender.clone()),
        sender,
        command_timeout: defaults::command_timeout(command_ms),
        connect_timeout: defaults::connect_timeout(connect_ms),
      },
    })
  }
}

impl Core {
  /// The deadline of a request made now: fixed at the call, whenever its task gets to run.
  fn deadline(&self) -> Instant {
    Instant::now() + self.command_timeout
  }

  fn fail(&self, id: u32, op: &str, err: &BackendError) {
    self
      .sender
      .answer(id, Err((err.kind, err.message(self.backend.name(), op))));
  }

  /// Every operation goes through here: deadline, panic guard, health events, one answer.
  /// Returns `Some(value)` when an inline backend answered successfully at once (the caller
  /// hands it to JS); otherwise the answer goes through the dispatcher.
  fn run<F, Fut>(&self, id: u32, op: &'static str, deadline: Instant, work: F) -> Option<Value>
  where
    F: FnOnce(Arc<dyn Backend>) -> Fut,
    Fut: Future<Output = BackendResult<Value>> + Send + 'static,
  {
    if self.health.is_closed() {
      self.fail(id, op, &BackendError::closed());
      return None;
    }
    let backend = self.backend.clone();
    let (health, sender, connect_timeout) = (self.health.clone(), self.sender.clone(), self.connect_timeout);
    let inline = backend.runs_inline();
    let fut = work(backend.clone());
    let finish = move |outcome: BackendResult<Value>| match outcome {
      Ok(value) => sender.answer(id, Ok(value)),
      Err(err) => {
        let message = err.message(backend.name(), op);
        if err.kind.is_outage() {
          health.saw_outage(&backend, message.clone(), connect_timeout);
        }
        sender.answer(id, Err((err.kind, message)));
      }
    };
    let timeout_ms = self.command_timeout.as_millis();
    if !inline {
      spawn_guarded(deadline, timeout_ms, fut, finish);
      return None;
    }
    // No I/O to wait for: finish on this thread, under the same panic guard, and hand a
    // successful answer straight back; errors still travel the dispatcher's one path.
    let mut fut = Box::pin(fut);
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().now_or_never())) {
      Ok(Some(Ok(value))) => return Some(value),
      Ok(Some(Err(err))) => finish(Err(err)),
      Ok(None) => spawn_guarded(deadline, timeout_ms, fut, finish),
      Err(panic) => finish(Err(panic_error(&panic))),
    }
    None
  }

  /// One get/set/touch/destroy request, by its code (`at` NaN: never expires).
  #[allow(clippy::too_many_arguments)]
  fn run_coded(
    &self,
    id: u32,
    op: u32,
    sid: String,
    value: String,
    at: f64,
    now: f64,
    deadline: Instant,
  ) -> Option<Value> {
    let expires_at = if at.is_nan() { None } else { Some(at) };
    let times_ok = now.is_finite() && expires_at.is_none_or(f64::is_finite);
    let times = move || {
      if times_ok {
        Ok(())
      } else {
        Err(BackendError::invalid("expiry and now must be finite numbers"))
      }
    };
    match op {
      OP_GET => self.run(id, "get", deadline, move |b| async move {
        times()?;
        Ok(b.get(&sid, now).await?.map_or(Value::Nothing, Value::Text))
      }),
      OP_SET => self.run(id, "set", deadline, move |b| async move {
        times()?;
        b.set(&sid, &value, expires_at, now).await?;
        Ok(Value::Nothing)
      }),
      OP_TOUCH => self.run(id, "touch", deadline, move |b| async move {
        times()?;
        b.touch(&sid, &value, expires_at, now).await?;
        Ok(Value::Nothing)
      }),
      OP_DESTROY => self.run(id, "destroy", deadline, move |b| async move {
        b.destroy(&sid).await?;
        Ok(Value::Nothing)
      }),
      _ => self.run(id, "batch", deadline, move |_| async move {
        Err(BackendError::invalid(format!("unknown request code {op}")))
      }),
    }
  }
}

fn immediate(value: Option<Value>) -> Immediate {
  match value {
    None => Either5::A(()),
    Some(Value::Nothing) => Either5::B(Null),
    Some(Value::Text(s)) => Either5::C(s),
    Some(Value::List(l)) => Either5::D(l.into_iter().map(Some).collect()),
    Some(Value::Pairs(p)) => Either5::D(p),
    Some(Value::Number(n)) => Either5::E(n),
  }
}
