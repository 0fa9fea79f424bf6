//! Fewer thread hand-offs for backends that do their work on threads of their own (SQLite's
//! connection threads).
//!
//! Through the runtime, one SQLite request crossed threads four times: JS to the runtime, the
//! runtime to a connection thread, back to the runtime, back to JS. Each crossing wakes a sleeping
//! thread, measured at 25-35 µs on a small virtual machine, which is most of a one-request-at-a-
//! time read (about 120 µs, where the statement itself takes under 10 µs). A task started here is
//! first polled on the calling thread (JS hands the job to a connection thread directly) and, when
//! the connection thread's answer wakes it, continues on that thread right after the job (the
//! answer goes to JS from there): two crossings. Woken anywhere else (a deadline, the next request
//! in a sid's line), it continues on the runtime, as any task.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::task::{ArcWake, waker_ref};

type BoxedFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Nobody holds the task to poll it; a wake schedules it.
const IDLE: u8 = 0;
/// Scheduled: a poll is coming; wakes add nothing.
const SCHEDULED: u8 = 1;
/// Being polled; a wake now asks for another poll.
const RUNNING: u8 = 2;
/// Woken while being polled: scheduled again when the poll returns.
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

struct Task {
  state: AtomicU8,
  /// Locked only by the one thread polling (the state admits one at a time): never contended.
  future: Mutex<Option<BoxedFuture>>,
}

thread_local! {
  /// On a thread that runs continuations itself: the tasks woken on it, run after its job.
  static WOKEN_HERE: RefCell<Option<Vec<Arc<Task>>>> = const { RefCell::new(None) };
}

impl ArcWake for Task {
  fn wake_by_ref(task: &Arc<Self>) {
    let mut state = task.state.load(Ordering::Acquire);
    loop {
      let next = match state {
        IDLE => SCHEDULED,
        RUNNING => NOTIFIED,
        _ => return, // already scheduled, notified or done
      };
      match task
        .state
        .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
      {
        Ok(_) if next == SCHEDULED => return schedule(task.clone()),
        Ok(_) => return,
        Err(now) => state = now,
      }
    }
  }
}

/// Starts `future`, polling it first on this thread (inside the runtime's context, so its timers
/// register there). Returns false (and drops the future) when there is no runtime.
pub fn start_here<F>(future: F) -> bool
where
  F: Future<Output = ()> + Send + 'static,
{
  let Some(rt) = crate::runtime::runtime() else {
    return false;
  };
  let _context = rt.enter();
  let task = Arc::new(Task {
    state: AtomicU8::new(SCHEDULED),
    future: Mutex::new(Some(Box::pin(future))),
  });
  poll(task);
  true
}

/// Makes this thread run the tasks woken on it, when it calls `run_woken_here` (a connection
/// thread, after each job), for as long as the returned guard lives. Should the thread end
/// without running them (a panic outside the jobs' own guards), dropping the guard hands them to
/// the runtime: a task left scheduled here would never be polled again, its deadline included.
pub fn continue_tasks_here() -> ContinueHere {
  WOKEN_HERE.with(|woken| *woken.borrow_mut() = Some(Vec::new()));
  ContinueHere
}

pub struct ContinueHere;

impl Drop for ContinueHere {
  fn drop(&mut self) {
    let left = WOKEN_HERE.with(|woken| woken.borrow_mut().take().unwrap_or_default());
    for task in left {
      crate::runtime::spawn(async move { poll(task) });
    }
  }
}

/// Polls the tasks woken on this thread since the last call (and those they wake in turn).
pub fn run_woken_here() {
  loop {
    let woken = WOKEN_HERE.with(|w| w.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default());
    if woken.is_empty() {
      return;
    }
    let Some(rt) = crate::runtime::runtime() else { return };
    let _context = rt.enter();
    for task in woken {
      poll(task);
    }
  }
}

fn schedule(task: Arc<Task>) {
  let Some(task) = WOKEN_HERE.with(|woken| match woken.borrow_mut().as_mut() {
    Some(list) => {
      list.push(task);
      None
    }
    None => Some(task),
  }) else {
    return;
  };
  // Without a runtime nothing could wake the task again: it was started through one, so this
  // only fails while the process ends.
  crate::runtime::spawn(async move { poll(task) });
}

fn poll(task: Arc<Task>) {
  if task
    .state
    .compare_exchange(SCHEDULED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
    .is_err()
  {
    return;
  }
  let finished = {
    let mut slot = task.future.lock().unwrap_or_else(|p| p.into_inner());
    let Some(future) = slot.as_mut() else { return };
    let waker = waker_ref(&task);
    let mut cx = Context::from_waker(&waker);
    // The futures started here catch their own panics (dispatch::spawn_guarded); this guard keeps
    // a connection thread alive should one escape anyway.
    match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
      Ok(Poll::Pending) => false,
      Ok(Poll::Ready(())) | Err(_) => {
        *slot = None;
        true
      }
    }
  };
  if finished {
    task.state.store(DONE, Ordering::Release);
    return;
  }
  if task
    .state
    .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
    .is_err()
  {
    // Woken while it ran: poll it again, from the scheduler rather than in a loop here.
    task.state.store(SCHEDULED, Ordering::Release);
    schedule(task);
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::mpsc;
  use std::thread::ThreadId;
  use tokio::sync::oneshot;

  /// Starts a task here that reports the thread of its first poll (checked: this one), waits for
  /// the returned sender, then reports the thread it continued on.
  fn traced() -> (oneshot::Sender<()>, mpsc::Receiver<ThreadId>) {
    let (wake, woken) = oneshot::channel::<()>();
    let (seen, threads) = mpsc::channel();
    assert!(start_here(async move {
      let _ = seen.send(std::thread::current().id());
      let _ = woken.await;
      let _ = seen.send(std::thread::current().id());
    }));
    assert_eq!(threads.recv().ok(), Some(std::thread::current().id()));
    (wake, threads)
  }

  #[test]
  fn starts_on_the_caller_and_continues_on_the_thread_that_woke_it() {
    let (wake, threads) = traced();
    let worker = std::thread::spawn(move || {
      let _here = continue_tasks_here();
      let _ = wake.send(());
      run_woken_here();
      std::thread::current().id()
    });
    let worker = worker.join().ok();
    assert_eq!(
      threads.recv().ok(),
      worker,
      "continued on the thread whose answer woke it"
    );
  }

  #[test]
  fn a_thread_that_ends_before_running_what_it_woke_hands_it_to_the_runtime() {
    let (wake, threads) = traced();
    std::thread::spawn(move || {
      let _here = continue_tasks_here();
      let _ = wake.send(()); // woken here, and this thread ends without run_woken_here
    })
    .join()
    .ok();
    assert!(
      threads.recv_timeout(std::time::Duration::from_secs(10)).is_ok(),
      "the task was never polled again"
    );
  }

  #[test]
  fn woken_by_any_other_thread_it_continues_on_the_runtime() {
    let (wake, threads) = traced();
    let waker = std::thread::spawn(move || {
      let _ = wake.send(());
      std::thread::current().id()
    })
    .join()
    .ok();
    let continued = threads.recv_timeout(std::time::Duration::from_secs(10)).ok();
    assert!(continued.is_some(), "the task was never polled again");
    assert_ne!(continued, waker);
    assert_ne!(continued, Some(std::thread::current().id()));
  }

  #[test]
  fn wakes_from_many_threads_at_once_lose_none_and_poll_no_finished_task() {
    // A task waiting for 200 answers that arrive from 4 threads at once, half of them on threads
    // that continue tasks themselves: it must finish exactly once.
    let (done, finished) = mpsc::channel();
    let mut senders = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..200 {
      let (tx, rx) = oneshot::channel::<()>();
      senders.push(tx);
      answers.push(rx);
    }
    assert!(start_here(async move {
      for answer in answers {
        let _ = answer.await;
      }
      let _ = done.send(());
    }));
    let mut threads = Vec::new();
    for n in 0..4 {
      let mine: Vec<_> = senders.drain(..50).collect();
      threads.push(std::thread::spawn(move || {
        let _here = (n % 2 == 0).then(continue_tasks_here);
        for tx in mine {
          let _ = tx.send(());
          run_woken_here();
        }
      }));
    }
    for t in threads {
      assert!(t.join().is_ok());
    }
    assert!(finished.recv_timeout(std::time::Duration::from_secs(10)).is_ok());
    assert!(finished.recv_timeout(std::time::Duration::from_millis(100)).is_err());
  }
}
