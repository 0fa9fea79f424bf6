//! The one way answers travel back to JavaScript: a single long-lived threadsafe function with
//! id-keyed callbacks (measured 1.4-2x cheaper on the JS thread than a Promise per call).
//! Answers are queued here and handed to JS in rounds of at most `ROUND` (docs/design.md,
//! "Fairness"): the threadsafe function wakes JS for the first round only; while answers keep
//! coming, JS pulls each next round from `setImmediate`, so the event loop runs its timers and
//! I/O between rounds however fast answers arrive. Once a round leaves the queue empty, JS says
//! so (`settle`) and the next answer wakes it again.
//!
//! Nothing on this path uses a JS timer: a test that installs fake timers (sinon, Jest) cannot
//! stop answers from arriving. What keeps Node alive while requests are in flight is this
//! threadsafe function itself, referenced by `keepAlive(true)` and released by `keepAlive(false)`.
//!
//! JS receives five arrays, one entry per answer, `(ids, codes, messages, values, expiries)`:
//! - `id > 0`: the answer to request `id`; `code`/`message` are set on failure, `value` is a
//!   string (one session), a string list (ids, or sid/value pairs), a number, or null.
//!   `expiry` is the backend's expiry of a session read back (epoch ms), NaN otherwise.
//! - `id == 0`: a store event; `code` is the event name (`connect`/`disconnect`), `message`
//!   the reason, `value` the store's id.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use napi::bindgen_prelude::{Either3, FnArgs, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsValue, Status, Unknown, sys};
use napi_derive::napi;
use tokio::time::Instant;

use crate::error::{BackendError, BackendResult, ErrorKind};

pub enum Value {
  Nothing,
  /// A session read back, with the backend's expiry for it (epoch ms; NaN: none).
  Stored(String, f64),
  List(Vec<String>),
  /// `[sid1, value1, sid2, value2, ...]`; a `None` value could not be read as text.
  Pairs(Vec<Option<String>>),
  Number(f64),
}

pub struct Reply {
  id: u32,
  error: Option<(&'static str, String)>,
  value: Value,
}

type JsValueOut = Option<Either3<String, Vec<Option<String>>, f64>>;
type Columns = (
  Vec<u32>,
  Vec<Option<String>>,
  Vec<Option<String>>,
  Vec<JsValueOut>,
  Vec<f64>,
);
type JsArgs = FnArgs<Columns>;
/// Weak: an idle store must not keep Node alive. JS references it while requests are in flight.
type Tsfn = ThreadsafeFunction<(), (), JsArgs, Status, false, true>;
type Queue = Arc<Mutex<Answers>>;

/// At most this many answers reach JS in one go. Measured: at 256 in flight, a 20 ms interval
/// timer in the same process stays within a few ms of its time; unbounded, one wake-up delivered
/// 48,160 answers and the timer fired 2.3 s late.
const ROUND: usize = 256;

/// The answers JS has not taken yet, and whether JS has been woken (or will pull) for them.
#[derive(Default)]
struct Answers {
  queue: std::collections::VecDeque<Reply>,
  scheduled: bool,
  /// When JS was last woken for answers, while staying awake (`warm`) wants to know how soon
  /// the event loop takes them.
  woken_at: Option<std::time::Instant>,
}

impl Answers {
  fn round(&mut self) -> Vec<Reply> {
    let n = self.queue.len().min(ROUND);
    self.queue.drain(..n).collect()
  }
}

#[napi]
pub struct Dispatcher {
  tsfn: Arc<Tsfn>,
  queue: Queue,
}

#[napi]
impl Dispatcher {
  #[napi(
    constructor,
    catch_unwind,
    ts_args_type = "callback: (ids: number[], codes: (string | null)[], messages: (string | null)[], values: (string | (string | null)[] | number | null)[], expiries: number[]) => void"
  )]
  pub fn new(callback: Function<'_, JsArgs, ()>) -> napi::Result<Self> {
    let queue: Queue = Arc::new(Mutex::new(Answers::default()));
    let drained = queue.clone();
    let tsfn = callback
      .build_threadsafe_function::<()>()
      .weak::<true>()
      .callee_handled::<false>()
      .build_callback(move |_ctx| {
        let (replies, woken_at) = {
          let mut answers = drained.lock().unwrap_or_else(|p| p.into_inner());
          (answers.round(), answers.woken_at.take())
        };
        if let Some(at) = woken_at {
          let delay = u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX);
          crate::warm::picked_up(delay);
        }
        Ok(FnArgs::from(columns(replies)))
      })?;
    Ok(Self {
      tsfn: Arc::new(tsfn),
      queue,
    })
  }

  /// The next round of answers, for JS to deliver (it pulls from `setImmediate` after a round).
  #[napi(
    catch_unwind,
    ts_return_type = "[number[], (string | null)[], (string | null)[], (string | (string | null)[] | number | null)[], number[]]"
  )]
  pub fn pull(&self) -> Columns {
    // Answers came while JS delivered the last round: the event loop is busy, not waiting.
    crate::warm::picked_up(u64::MAX);
    columns(self.queue.lock().unwrap_or_else(|p| p.into_inner()).round())
  }

  /// Called by JS after each round: `true` when answers are waiting (JS pulls them on its next
  /// turn); `false` when none is, and then the next answer wakes JS through the threadsafe
  /// function.
  #[napi(catch_unwind)]
  pub fn settle(&self) -> bool {
    let mut answers = self.queue.lock().unwrap_or_else(|p| p.into_inner());
    answers.scheduled = !answers.queue.is_empty();
    answers.scheduled
  }

  /// `true` while requests are in flight: the process stays alive until they are answered.
  /// `false` when none is left, so an idle app exits on its own.
  #[napi(catch_unwind)]
  pub fn keep_alive(&self, env: Env, on: bool) {
    let raw = self.tsfn.raw();
    // Fails only while the environment shuts down, when there is nothing left to keep alive.
    let _ = unsafe {
      if on {
        sys::napi_ref_threadsafe_function(env.raw(), raw)
      } else {
        sys::napi_unref_threadsafe_function(env.raw(), raw)
      }
    };
  }
}

/// Raises `error` as an uncaught exception, exactly as if it had been thrown from an I/O callback.
/// Used when an app's callback throws: reporting it must not depend on `process.nextTick` or
/// `queueMicrotask`, which fake timers may have replaced, and a throw inside a Promise job would
/// become an unhandled rejection instead.
#[napi(catch_unwind, ts_args_type = "error: unknown")]
pub fn raise_uncaught(env: Env, error: Unknown<'_>) {
  let _ = unsafe { sys::napi_fatal_exception(env.raw(), error.raw()) };
}

fn columns(replies: Vec<Reply>) -> Columns {
  let mut ids = Vec::with_capacity(replies.len());
  let mut codes = Vec::with_capacity(replies.len());
  let mut messages = Vec::with_capacity(replies.len());
  let mut values = Vec::with_capacity(replies.len());
  let mut expiries = Vec::with_capacity(replies.len());
  for Reply { id, error, value } in replies {
    ids.push(id);
    let (code, message) = match error {
      Some((code, message)) => (Some(code.to_string()), Some(message)),
      None => (None, None),
    };
    codes.push(code);
    messages.push(message);
    expiries.push(if let Value::Stored(_, at) = &value {
      *at
    } else {
      f64::NAN
    });
    values.push(match value {
      Value::Nothing => None,
      Value::Stored(s, _) => Some(Either3::A(s)),
      Value::List(l) => Some(Either3::B(l.into_iter().map(Some).collect())),
      Value::Pairs(p) => Some(Either3::B(p)),
      Value::Number(n) => Some(Either3::C(n)),
    });
  }
  (ids, codes, messages, values, expiries)
}

/// What a store keeps of the dispatcher: cheap to clone into every spawned task.
#[derive(Clone)]
pub struct Sender {
  tsfn: Arc<Tsfn>,
  queue: Queue,
}

impl Sender {
  pub fn of(dispatcher: &Dispatcher) -> Self {
    Self {
      tsfn: dispatcher.tsfn.clone(),
      queue: dispatcher.queue.clone(),
    }
  }

  fn send(&self, reply: Reply) {
    let wake = {
      let mut answers = self.queue.lock().unwrap_or_else(|p| p.into_inner());
      answers.queue.push_back(reply);
      let wake = !std::mem::replace(&mut answers.scheduled, true);
      if wake && crate::warm::enabled() {
        answers.woken_at = Some(std::time::Instant::now());
      }
      wake
    };
    // Only an answer that finds JS neither woken nor about to pull wakes it. NonBlocking on an
    // unbounded queue fails only once the environment is gone (a terminated worker), when
    // nobody is left to answer.
    if wake {
      let _ = self.tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
      crate::warm::answered();
    }
  }

  pub fn answer(&self, id: u32, result: Result<Value, (ErrorKind, String)>) {
    let reply = match result {
      Ok(value) => Reply { id, error: None, value },
      Err((kind, message)) => Reply {
        id,
        error: Some((kind.code(), message)),
        value: Value::Nothing,
      },
    };
    self.send(reply);
  }

  pub fn event(&self, store_id: u32, name: &'static str, reason: String) {
    self.send(Reply {
      id: 0,
      error: Some((name, reason)),
      value: Value::Number(f64::from(store_id)),
    });
  }
}

/// Where a task starts: on the runtime, or polled first on the calling thread (`hops`), for
/// backends whose work runs on threads of their own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Start {
  OnRuntime,
  Here,
}

impl Start {
  /// Starts `task` there; false (the task dropped) when there is no runtime.
  pub fn spawn<F>(self, task: F) -> bool
  where
    F: Future<Output = ()> + Send + 'static,
  {
    match self {
      Start::OnRuntime => crate::runtime::spawn(task),
      Start::Here => crate::hops::start_here(task),
    }
  }
}

/// Runs `work` on the runtime with a deadline and a panic guard, and hands its outcome to
/// `finish` exactly once: the answer to a request can never be lost to a panic or a hang.
/// `deadline` is fixed by the caller when JS made the call, not when the task starts, so a busy
/// runtime cannot stretch a request past `commandTimeout`.
pub fn spawn_guarded<T, Fut, Done>(start: Start, deadline: Instant, timeout_ms: u128, work: Fut, finish: Done)
where
  T: Send + 'static,
  Fut: Future<Output = BackendResult<T>> + Send + 'static,
  Done: FnOnce(BackendResult<T>) + Send + 'static,
{
  // The finisher is shared with the fallback below, which answers if the runtime cannot run it.
  let finish = Arc::new(Mutex::new(Some(finish)));
  let task_finish = finish.clone();
  let task = async move {
    let guarded = AssertUnwindSafe(tokio::time::timeout_at(deadline, work)).catch_unwind();
    let outcome = match guarded.await {
      Ok(Ok(result)) => result,
      Ok(Err(_elapsed)) => Err(BackendError::timeout(format!(
        "no answer within {timeout_ms} ms (commandTimeout)"
      ))),
      Err(panic) => Err(panic_error(&panic)),
    };
    if let Some(f) = task_finish.lock().unwrap_or_else(|p| p.into_inner()).take() {
      f(outcome);
    }
  };
  let started = start.spawn(task);
  if !started && let Some(f) = finish.lock().unwrap_or_else(|p| p.into_inner()).take() {
    f(Err(BackendError::unavailable(
      "the native runtime could not start its thread",
    )));
  }
}

/// The error a caught panic becomes: the request fails, the process lives.
pub fn panic_error(panic: &Box<dyn std::any::Any + Send>) -> BackendError {
  let text = if let Some(s) = panic.downcast_ref::<&str>() {
    (*s).to_string()
  } else if let Some(s) = panic.downcast_ref::<String>() {
    s.clone()
  } else {
    "unknown panic payload".to_string()
  };
  BackendError::new(ErrorKind::Panic, format!("native panic: {text}"))
}
