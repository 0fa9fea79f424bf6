//! The JS-facing native core: one class for every backend. Each method takes a request id,
//! spawns the work on the runtime and answers through the dispatcher, so no method blocks the
//! event loop and every request gets exactly one answer.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use napi::bindgen_prelude::{Either6, Null};
use napi_derive::napi;
use tokio::time::Instant;

use crate::backend::{Backend, Reply, Request, Stored};
use crate::defaults::Common;
use crate::dispatch::{Dispatcher, Sender, Start, Value, panic_error, spawn_guarded};
use crate::error::{BackendError, BackendResult, ErrorKind};
use crate::health::Health;
use crate::sid_order::{self, Place, SidOrder};

/// Request codes of `batch`. JS reads these constants; nothing else numbers requests.
#[napi]
pub const OP_GET: u32 = 0;
#[napi]
pub const OP_SET: u32 = 1;
#[napi]
pub const OP_TOUCH: u32 = 2;
#[napi]
pub const OP_DESTROY: u32 = 3;
#[napi]
pub const OP_PATCH: u32 = 4;

/// What a request method returns: `undefined` when the answer will come through the dispatcher;
/// for backends that run inline, the successful answer itself (`null` for "no value"), which
/// saves the round trip through the threadsafe function.
/// (`()` is `undefined`: napi turns `Option::None` into `null`, which is an answer here.)
/// Each method spells this type for TypeScript (`ts_return_type`): an alias would leak into
/// binding.d.ts as an undeclared name.
type Immediate = Either6<(), Null, String, Vec<Option<String>>, f64, (String, f64)>;

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
  /// Call order per session id, across single requests and batches.
  order: Arc<SidOrder>,
}

/// Who a request of a batch answers (its id and operation), and its place in its sid's line.
type Head = (u32, &'static str, Option<Place>);

/// A get/set/touch/destroy request as it came from JS, with its place in its sid's line.
struct Entry {
  id: u32,
  op: u32,
  place: Option<Place>,
  request: BackendResult<Request>,
}

#[napi]
impl NativeStore {
  /// Whether this store answers from the call itself (no I/O); JS then never batches its requests.
  #[napi(getter)]
  pub fn runs_inline(&self) -> bool {
    self.core.backend.runs_inline()
  }

  /// One get/set/patch/touch/destroy request, by its code (`OP_*`), with the fields a batch
  /// sends for it: `value` is the session's text (set) or a JSON merge patch (patch), empty
  /// otherwise; `expires_at_ms` NaN: never expires; `now_ms` may be NaN for a destroy.
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number | [string, number]"
  )]
  pub fn request(&self, id: u32, op: u32, sid: String, value: String, expires_at_ms: f64, now_ms: f64) -> Immediate {
    // An inline store's requests (memory) answer at once and say nothing of the runtime's rhythm.
    if !self.core.backend.runs_inline() {
      crate::warm::request_arrived(true);
    }
    let deadline = self.core.deadline();
    immediate(self.core.run_coded(id, op, sid, value, expires_at_ms, now_ms, deadline))
  }

  /// How much later than asked this backend may expire a session (its granularity), in ms.
  #[napi(getter)]
  pub fn expiry_precision_ms(&self) -> f64 {
    self.core.backend.expiry_precision_ms()
  }

  /// Keys the last ids/all/length skipped because they cannot be a session id (Redis keys that
  /// are not UTF-8), for JS to report through errorLog.
  #[napi(getter)]
  pub fn skipped_by_last_listing(&self) -> f64 {
    self.core.backend.skipped_by_last_listing() as f64
  }

  /// Whether the expiry reads report runs on the real clock (Redis's TTL).
  #[napi(getter)]
  pub fn expiry_on_real_clock(&self) -> bool {
    self.core.backend.expiry_on_real_clock()
  }

  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number | [string, number]"
  )]
  pub fn ids(&self, id: u32, now_ms: f64) -> Immediate {
    immediate(self.core.run(id, "ids", self.core.deadline(), move |b| async move {
      Ok(Value::List(b.ids(now_ms).await?))
    }))
  }

  /// Answers a flat list `[sid1, value1, sid2, value2, ...]`: one array, no object per session.
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number | [string, number]"
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
    ts_return_type = "undefined | null | string | (string | null)[] | number | [string, number]"
  )]
  pub fn length(&self, id: u32, now_ms: f64) -> Immediate {
    immediate(self.core.run(id, "length", self.core.deadline(), move |b| async move {
      Ok(Value::Number(b.length(now_ms).await? as f64))
    }))
  }

  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number | [string, number]"
  )]
  pub fn clear(&self, id: u32) -> Immediate {
    immediate(self.core.run(id, "clear", self.core.deadline(), |b| async move {
      Ok(Value::Number(b.clear().await? as f64))
    }))
  }

  /// Answers the number of rows removed, or -1 when another process held the prune lock.
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number | [string, number]"
  )]
  pub fn prune(&self, id: u32, now_ms: f64) -> Immediate {
    immediate(self.core.run(id, "prune", self.core.deadline(), move |b| async move {
      Ok(Value::Number(b.prune(now_ms).await?.map_or(-1.0, |n| n as f64)))
    }))
  }

  /// For the tests and `ready()`: a round trip to the backend.
  #[napi(
    catch_unwind,
    ts_return_type = "undefined | null | string | (string | null)[] | number | [string, number]"
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
    crate::warm::request_arrived(false);
    let core = self.core.clone();
    let deadline = core.deadline();
    let entries: Vec<Entry> = ids
      .into_iter()
      .zip(ops)
      .zip(sids)
      .zip(values)
      .zip(expires_at_ms.into_iter().zip(now_ms))
      .map(|((((id, op), sid), value), (at, now))| Entry {
        id,
        op,
        place: core.place(&sid), // now, in call order
        request: decode(op, sid, value, at, now),
      })
      .collect();
    let fallback = core.clone();
    let ids: Vec<u32> = entries.iter().map(|e| e.id).collect();
    let started = fallback
      .start()
      .spawn(async move { core.run_batch(entries, deadline).await });
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
      Start::OnRuntime,
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
    ts_return_type = "undefined | null | string | (string | null)[] | number | [string, number]"
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
  /// Puts a wrapper (encryption) in front of this store's backend, before any request.
  pub(crate) fn wrap_backend(
    &mut self,
    wrap: impl FnOnce(Arc<dyn Backend>) -> BackendResult<Arc<dyn Backend>>,
  ) -> napi::Result<()> {
    let name = self.core.backend.name();
    self.core.backend =
      wrap(self.core.backend.clone()).map_err(|e| napi::Error::from_reason(e.message(name, "options")))?;
    Ok(())
  }

  /// The one way a store is made: a backend's constructor result (its option errors become a JS
  /// `Error` naming the backend) wired to the dispatcher, health events and the timeouts.
  pub(crate) fn with_backend<B: Backend>(
    dispatcher: &Dispatcher,
    store_id: u32,
    name: &str,
    backend: BackendResult<B>,
    common: &Common,
  ) -> napi::Result<Self> {
    let backend = backend.map_err(|e| napi::Error::from_reason(e.message(name, "options")))?;
    let sender = Sender::of(dispatcher);
    Ok(Self {
      core: Core {
        backend: Arc::new(backend),
        health: Health::new(store_id, sender.clone()),
        sender,
        command_timeout: common.command_timeout,
        connect_timeout: common.connect_timeout,
        order: Arc::new(SidOrder::default()),
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

  /// Answers request `id` with `outcome`, announcing an outage it reveals. `epoch`: the
  /// health epoch when the request started (a request begun before the last recovery reports
  /// an outage that is already over).
  fn conclude(&self, id: u32, op: &str, outcome: BackendResult<Value>, epoch: u64) {
    match outcome {
      Ok(value) => self.sender.answer(id, Ok(value)),
      Err(err) => {
        let message = err.message(self.backend.name(), op);
        if err.kind.is_outage() || (err.kind == ErrorKind::Timeout && self.backend.server_unreachable()) {
          self
            .health
            .saw_outage(&self.backend, message.clone(), self.connect_timeout, epoch);
        }
        self.sender.answer(id, Err((err.kind, message)));
      }
    }
  }

  /// Where this backend's requests start (`hops`).
  fn start(&self) -> Start {
    if self.backend.works_on_own_threads() {
      Start::Here
    } else {
      Start::OnRuntime
    }
  }

  /// A request's place in its sid's line. None for an inline backend: its requests finish during
  /// their own call, so they are always in call order.
  fn place(&self, sid: &str) -> Option<Place> {
    (!self.backend.runs_inline()).then(|| self.order.enter(sid))
  }

  /// A batch, in waves in which no sid appears twice (`sid_order::waves`), one after the other,
  /// each after the requests before it on its sids. A wave goes to the backend's `run_batch`
  /// (one pipeline, one statement per kind...) or, where it has none, as concurrent requests;
  /// either way under the batch's deadline and a panic guard, with one answer per request.
  async fn run_batch(&self, entries: Vec<Entry>, deadline: Instant) {
    let epoch = self.health.epoch();
    if self.health.is_closed() {
      for entry in &entries {
        self.fail(entry.id, "batch", &BackendError::closed());
      }
      return;
    }
    let mut queued = Vec::with_capacity(entries.len());
    for Entry { id, op, place, request } in entries {
      match request {
        Ok(request) => queued.push((id, op_name(op), request, place)),
        Err(err) => self.fail(id, op_name(op), &err),
      }
    }
    let waves = sid_order::waves(queued.iter().map(|q| q.2.sid()));
    let mut slots: Vec<_> = queued.into_iter().map(Some).collect();
    for wave in waves {
      let (mut heads, requests): (Vec<Head>, Vec<Request>) = wave
        .iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        .map(|(id, op, request, place)| ((id, op, place), request))
        .unzip();
      let backend = self.backend.clone();
      let work = async {
        for (_, _, place) in heads.iter_mut() {
          if let Some(place) = place {
            place.wait().await;
          }
        }
        run_wave(&backend, requests).await
      };
      let err = match AssertUnwindSafe(tokio::time::timeout_at(deadline, work))
        .catch_unwind()
        .await
      {
        Ok(Ok(results)) => {
          let mut results = results.into_iter();
          for (id, op, _place) in &heads {
            let result = results
              .next()
              .unwrap_or_else(|| Err(BackendError::backend("the backend gave no answer to this request")));
            self.conclude(*id, op, result.map(reply_value), epoch);
          }
          continue; // the wave's places are released here: the next wave may go
        }
        Ok(Err(_elapsed)) => BackendError::timeout(format!(
          "no answer within {} ms (commandTimeout)",
          self.command_timeout.as_millis()
        )),
        Err(panic) => panic_error(&panic),
      };
      // This wave and every later one fail alike.
      let rest = slots.iter_mut().filter_map(Option::take).map(|(id, op, ..)| (id, op));
      for (id, op) in heads.iter().map(|(id, op, _)| (*id, *op)).chain(rest) {
        self.conclude(id, op, Err(err.clone()), epoch);
      }
      return;
    }
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
    let inline = self.backend.runs_inline();
    let fut = work(self.backend.clone());
    let core = self.clone();
    let epoch = self.health.epoch();
    let finish = move |outcome: BackendResult<Value>| core.conclude(id, op, outcome, epoch);
    let timeout_ms = self.command_timeout.as_millis();
    if !inline {
      spawn_guarded(self.start(), deadline, timeout_ms, fut, finish);
      return None;
    }
    // No I/O to wait for: finish on this thread, under the same panic guard, and hand a
    // successful answer straight back; errors still travel the dispatcher's one path.
    let mut fut = Box::pin(fut);
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().now_or_never())) {
      Ok(Some(Ok(value))) => return Some(value),
      Ok(Some(Err(err))) => finish(Err(err)),
      Ok(None) => spawn_guarded(Start::OnRuntime, deadline, timeout_ms, fut, finish),
      Err(panic) => finish(Err(panic_error(&panic))),
    }
    None
  }

  /// One get/set/touch/destroy request, by its code (`at` NaN: never expires), after the
  /// requests JS made before it for the same sid.
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
    let mut place = self.place(&sid);
    let request = decode(op, sid, value, at, now);
    self.run(id, op_name(op), deadline, move |b| async move {
      let request = request?;
      if let Some(place) = place.as_mut() {
        place.wait().await;
      }
      let reply = b.run_one(&request).await;
      drop(place); // done: the next request for this sid may go
      reply.map(reply_value)
    })
  }
}

/// A request from its code and fields, as both entries (one request, a batch) send them.
/// `at` NaN: never expires; `now` may be NaN for a destroy, which compares no time.
fn decode(op: u32, sid: String, value: String, at: f64, now: f64) -> BackendResult<Request> {
  let expires_at_ms = if at.is_nan() { None } else { Some(at) };
  if !matches!(op, OP_GET | OP_SET | OP_TOUCH | OP_DESTROY | OP_PATCH) {
    return Err(BackendError::invalid(format!("unknown request code {op}")));
  }
  if !(now.is_finite() || op == OP_DESTROY) || expires_at_ms.is_some_and(|at| !at.is_finite()) {
    return Err(BackendError::invalid("expiry and now must be finite numbers"));
  }
  Ok(match op {
    OP_GET => Request::Get { sid, now_ms: now },
    OP_SET => Request::Set {
      sid,
      value,
      expires_at_ms,
      now_ms: now,
    },
    OP_TOUCH => Request::Touch {
      sid,
      expires_at_ms,
      now_ms: now,
    },
    OP_PATCH => Request::Patch {
      sid,
      patch: value,
      expires_at_ms,
      now_ms: now,
    },
    _ => Request::Destroy { sid },
  })
}

/// One wave (no sid twice): patches each on their own (read, merge, write), everything else
/// through the backend's `run_batch` where it has one; all at once, answers in the wave's order.
async fn run_wave(backend: &Arc<dyn Backend>, requests: Vec<Request>) -> Vec<BackendResult<Reply>> {
  let (patches, others): (Vec<_>, Vec<_>) = requests
    .into_iter()
    .enumerate()
    .partition(|(_, r)| matches!(r, Request::Patch { .. }));
  let (at, others): (Vec<usize>, Vec<Request>) = others.into_iter().unzip();
  let batched = async {
    if others.is_empty() {
      return Vec::new();
    }
    match backend.run_batch(&others).await {
      Some(results) => results,
      None => join_all(others.iter().map(|r| backend.run_one(r))).await,
    }
  };
  let patched = join_all(patches.iter().map(|(_, r)| backend.run_one(r)));
  let (batched, patched) = futures_util::future::join(batched, patched).await;
  let mut results: Vec<Option<BackendResult<Reply>>> = (0..at.len() + patches.len()).map(|_| None).collect();
  for (i, result) in at.into_iter().zip(batched) {
    results[i] = Some(result);
  }
  for ((i, _), result) in patches.iter().zip(patched) {
    results[*i] = Some(result);
  }
  results
    .into_iter()
    .map(|r| r.unwrap_or_else(|| Err(BackendError::backend("the backend gave no answer to this request"))))
    .collect()
}

fn reply_value(reply: Reply) -> Value {
  match reply {
    Reply::Got(stored) => stored_value(stored),
    Reply::Done => Value::Nothing,
    Reply::Wrote { created } => Value::Number(if created { 1.0 } else { 0.0 }),
  }
}
fn op_name(op: u32) -> &'static str {
  match op {
    OP_GET => "get",
    OP_SET => "set",
    OP_TOUCH => "touch",
    OP_DESTROY => "destroy",
    OP_PATCH => "patch",
    _ => "batch",
  }
}

fn stored_value(stored: Option<Stored>) -> Value {
  match stored {
    Some(Stored { value, expires_at_ms }) => Value::Stored(value, expires_at_ms.unwrap_or(f64::NAN)),
    None => Value::Nothing,
  }
}

fn immediate(value: Option<Value>) -> Immediate {
  match value {
    None => Either6::A(()),
    Some(Value::Nothing) => Either6::B(Null),
    Some(Value::List(l)) => Either6::D(l.into_iter().map(Some).collect()),
    Some(Value::Pairs(p)) => Either6::D(p),
    Some(Value::Number(n)) => Either6::E(n),
    Some(Value::Stored(s, at)) => Either6::F((s, at)),
  }
}
