//! One small tokio runtime for the whole process. The work is I/O-bound: one worker sustained
//! the same Redis and PostgreSQL throughput as two (shared/docs/napi-design.md §5), and a server
//! running one Node process per core must not start cores x cores threads.
//! `FERROSESSION_WORKERS` overrides the worker count.

#[napi_derive::module_init]
fn init() {
  let workers = std::env::var("FERROSESSION_WORKERS")
    .ok()
    .and_then(|v| v.parse::<usize>().ok())
    .filter(|n| (1..=64).contains(n))
    .unwrap_or(1);
  let built = tokio::runtime::Builder::new_multi_thread()
    .worker_threads(workers)
    .thread_name("ferrosession")
    .enable_all()
    .build();
  // If the runtime cannot be built, napi-rs builds its default one on first use instead.
  if let Ok(rt) = built {
    napi::bindgen_prelude::create_custom_tokio_runtime(rt);
  }
  // TLS (`rediss://`) uses rustls with the ring provider: no system OpenSSL needed. Fails only if
  // a provider is already installed in this process, which is just as good.
  let _ = rustls::crypto::ring::default_provider().install_default();
}
