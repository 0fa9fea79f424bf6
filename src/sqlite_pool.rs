//! The connections behind SqliteStore: one database per file per process, shared by every store
//! on that file, with a fixed, small set of connection threads (two for a file, one for
//! `:memory:`), each owning its connection, fed by one queue.
//!
//! Why shared: in WAL mode every open connection holds a lock on the file, and SQLite cannot close
//! the file descriptor of a connection while another connection of the same process holds a lock
//! on that file (it would drop the process's POSIX locks). So stores that each opened their own
//! connections to one file kept a descriptor per closed connection for as long as any other store
//! on that file lived. Why threads: 256 requests in flight wait in the queue instead of parking
//! hundreds of OS threads, and nothing ever blocks the event loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{BackendError, BackendResult};

/// Work for a connection thread: it gets the thread's connection (opened on first use) or the
/// error opening it failed with.
pub type Job = Box<dyn FnOnce(Result<&Connection, &rusqlite::Error>) + Send>;

/// The running connection threads: a queue, and a signal from each thread when it has ended.
struct Threads {
  jobs: crossbeam_channel::Sender<Job>,
  ended: Vec<oneshot::Receiver<()>>,
}

pub struct Database {
  path: String,
  thread_count: usize,
  /// How long opening the file may wait for another process (switching it to WAL).
  open_busy_timeout: Duration,
  /// Started on first use, so a database nobody uses opens nothing.
  threads: Mutex<Option<Threads>>,
  /// Held while a connection is opened: two first connections racing to switch a new file to WAL
  /// would make one of them fail with SQLITE_BUSY at once.
  opening: Arc<Mutex<()>>,
}

/// Every open database of this process, by file.
fn registry() -> &'static Mutex<HashMap<String, Weak<Database>>> {
  static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Database>>>> = OnceLock::new();
  REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Database {
  /// The database of `path`, shared with every other store on the same file in this process.
  /// Each `:memory:` store gets a private one (every in-memory connection is its own database).
  pub fn of(path: &str, busy_timeout: Duration) -> Arc<Database> {
    let fresh = |path: &str| {
      Arc::new(Database {
        path: path.to_string(),
        thread_count: if path == ":memory:" { 1 } else { 2 },
        open_busy_timeout: busy_timeout,
        threads: Mutex::new(None),
        opening: Arc::new(Mutex::new(())),
      })
    };
    if path == ":memory:" {
      return fresh(path);
    }
    // The same file under another spelling (a symlink, `a/../b`) is the same database.
    let key = std::fs::canonicalize(path)
      .map(|p| p.to_string_lossy().into_owned())
      .unwrap_or_else(|_| path.to_string());
    let mut all = registry().lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|_, db| db.strong_count() > 0);
    if let Some(db) = all.get(&key).and_then(Weak::upgrade) {
      return db;
    }
    let db = fresh(path);
    all.insert(key, Arc::downgrade(&db));
    db
  }

  /// Queues `job`, starting the connection threads on first use.
  pub fn submit(&self, job: Job) -> BackendResult<()> {
    let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
    if threads.is_none() {
      *threads = Some(self.start()?);
    }
    match threads.as_ref() {
      Some(t) => t.jobs.send(job).map_err(|_| BackendError::closed()),
      None => Err(BackendError::closed()), // invariant: started just above
    }
  }

  fn start(&self) -> BackendResult<Threads> {
    let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
    let mut ended = Vec::with_capacity(self.thread_count);
    for n in 0..self.thread_count {
      let queue = queue.clone();
      let opener = Opener {
        path: self.path.clone(),
        busy_timeout: self.open_busy_timeout,
        opening: self.opening.clone(),
      };
      let (done, signal) = oneshot::channel();
      std::thread::Builder::new()
        .name(format!("ferrosession-sqlite-{n}"))
        .spawn(move || connection_thread(&queue, &opener, done))
        .map_err(|e| BackendError::unavailable(format!("cannot start a SQLite connection thread: {e}")))?;
      ended.push(signal);
    }
    Ok(Threads { jobs, ended })
  }

  /// Lets the threads finish what was queued, close their connections and end; resolves when
  /// they have. Called by the last store on the file when it closes.
  pub async fn shut_down(&self) {
    let threads = self.threads.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(Threads { jobs, ended }) = threads {
      drop(jobs);
      for signal in ended {
        let _ = signal.await;
      }
    }
  }
}

/// What a connection thread needs to open its connection.
struct Opener {
  path: String,
  busy_timeout: Duration,
  opening: Arc<Mutex<()>>,
}

/// One connection thread: takes jobs until the queue is closed (the last store on the file was
/// closed or collected), then closes its connection and says so.
fn connection_thread(queue: &crossbeam_channel::Receiver<Job>, opener: &Opener, ended: oneshot::Sender<()>) {
  let mut conn: Option<Connection> = None;
  // A request whose statement ran here continues here (its answer goes to JS from this thread)
  // instead of waking the runtime for it: `hops`.
  let _continue_here = crate::hops::continue_tasks_here();
  while let Ok(job) = queue.recv() {
    match opened(&mut conn, opener) {
      Ok(c) => {
        job(Ok(c));
        // No job may leave the shared connection inside a transaction: the next store's writes
        // would join it and be acknowledged without being committed.
        crate::sqlite_backend::end_transaction(c);
      }
      Err(e) => job(Err(&e)), // opening is tried again with the next request
    }
    crate::hops::run_woken_here();
  }
  // Dropping the connection closes the file (and checkpoints the WAL when it is the last).
  drop(conn);
  let _ = ended.send(());
}

/// The thread's connection, opened on first use (and after a failed open).
fn opened<'a>(conn: &'a mut Option<Connection>, opener: &Opener) -> rusqlite::Result<&'a Connection> {
  if conn.is_none() {
    *conn = Some(open(opener)?);
  }
  conn.as_ref().ok_or(rusqlite::Error::InvalidQuery) // invariant: opened just above
}

fn open(opener: &Opener) -> rusqlite::Result<Connection> {
  let _one_at_a_time = opener.opening.lock().unwrap_or_else(|p| p.into_inner());
  let conn = Connection::open(&opener.path)?;
  conn.busy_timeout(opener.busy_timeout)?;
  if opener.path != ":memory:" {
    // WAL: readers never block the writer, and several processes can share the file. Switching
    // needs a moment alone with the file, which another process may be holding.
    retry_while_busy(opener.busy_timeout, || {
      conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
    })?;
    conn.execute_batch("PRAGMA synchronous = NORMAL")?;
  }
  Ok(conn)
}

/// Runs `step` again while SQLite answers SQLITE_BUSY without waiting (it does so where waiting
/// could deadlock), for at most `limit`.
pub fn retry_while_busy<T>(limit: Duration, mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
  let started = std::time::Instant::now();
  loop {
    match step() {
      Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) && started.elapsed() < limit => {
        std::thread::sleep(Duration::from_millis(5));
      }
      other => return other,
    }
  }
}
