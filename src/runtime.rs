//! One small tokio runtime for the whole process, owned by this module rather than by napi-rs.
//!
//! Why our own: napi-rs ties its runtime to the lifetime of Node environments, so an addon loaded
//! only in `worker_threads` had that runtime shut down under pending work when the workers ended
//! ("Access tokio runtime failed in spawn" panics), and a new environment got napi's default
//! runtime instead of this one. A process-wide static built on first use survives every
//! environment and is always the one configured here.
//!
//! Why one worker: the work is I/O-bound; one worker sustained the same Redis and PostgreSQL
//! throughput as two (docs/design.md, "Runtime"), and a server running one Node process per core
//! must not start cores x cores threads. `FERROSESSION_WORKERS` overrides the count.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();

fn build() -> Option<Runtime> {
  let workers = std::env::var("FERROSESSION_WORKERS")
    .ok()
    .and_then(|v| v.parse::<usize>().ok())
    .filter(|n| (1..=64).contains(n))
    .unwrap_or(1);
  Builder::new_multi_thread()
    .worker_threads(workers)
    .thread_name("ferrosession")
    .enable_all()
    .build()
    .ok()
}

/// The runtime, built on first use; `None` only if the OS refused to start its threads.
pub fn runtime() -> Option<&'static Runtime> {
  RUNTIME.get_or_init(build).as_ref()
}

/// Starts `future` on the runtime. Returns false (and drops the future) when there is no runtime,
/// so the caller can answer its request with an error instead of leaving it pending.
pub fn spawn<F>(future: F) -> bool
where
  F: Future<Output = ()> + Send + 'static,
{
  match runtime() {
    Some(rt) => {
      drop(rt.spawn(future));
      true
    }
    None => false,
  }
}

/// The system's real time in epoch ms: JS compares it with Date.now() to tell whether its clock
/// is faked (a test's fake timers), before trusting an expiry that runs on the real clock.
#[napi_derive::napi(catch_unwind)]
pub fn real_now_ms() -> f64 {
  std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .map(|d| d.as_secs_f64() * 1000.0)
    .unwrap_or(0.0)
}

#[napi_derive::module_init]
fn init() {
  // TLS (Redis `rediss://`, PostgreSQL `sslmode`) uses rustls with the ring provider: no system
  // OpenSSL. Fails only if a provider is already installed in this process, which is as good.
  let _ = rustls::crypto::ring::default_provider().install_default();
}
