//! The one trait every storage backend implements. Backends store opaque strings (the session as
//! JS serialised it) and never parse them.
//!
//! Time comes from JS: `now_ms` is the `Date.now()` of the JS call that made the request, and
//! `expires_at_ms` was computed from it. Native code never reads the system clock to decide
//! whether a session has expired, so apps that fake the clock in their tests (sinon, Jest) see
//! expiry follow their clock on every backend.

use async_trait::async_trait;

use crate::error::{BackendError, BackendResult};

/// A stored session as read back: the text, and when the backend will expire it (epoch ms, on
/// the JS clock), which a cheap `touch` may have moved past the cookie the text was written with.
pub struct Stored {
  pub value: String,
  pub expires_at_ms: Option<f64>,
}

/// One request of a batch.
#[derive(Clone)]
pub enum Request {
  Get {
    sid: String,
    now_ms: f64,
  },
  Set {
    sid: String,
    value: String,
    expires_at_ms: Option<f64>,
    now_ms: f64,
  },
  Touch {
    sid: String,
    expires_at_ms: Option<f64>,
    now_ms: f64,
  },
  Destroy {
    sid: String,
  },
  /// A JSON merge patch (RFC 7396) of a session a request loaded: merged into what is stored
  /// now and written with the new expiry; nothing at all when the session is gone (a logout or
  /// a regenerate is never undone by a request still running).
  Patch {
    sid: String,
    patch: String,
    expires_at_ms: Option<f64>,
    now_ms: f64,
  },
}

impl Request {
  pub fn sid(&self) -> &str {
    match self {
      Request::Get { sid, .. }
      | Request::Set { sid, .. }
      | Request::Touch { sid, .. }
      | Request::Destroy { sid }
      | Request::Patch { sid, .. } => sid,
    }
  }
}

/// The answer to one request of a batch.
pub enum Reply {
  Got(Option<Stored>),
  Done,
  /// A set that tells whether it created the session or replaced one (MongoDB's upsert reports
  /// it): MongoStore emits connect-mongo's `create` or `update` by it.
  Wrote {
    created: bool,
  },
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
  /// Short name used in every error message: `redis`, `postgres`, `sqlite`, `memory`.
  fn name(&self) -> &'static str;

  /// True for backends that never wait (no I/O): their requests run on the calling thread,
  /// skipping the hop to the runtime. The one source of truth for "inline": JS reads it from the
  /// native store, and `batch` hands such answers to the dispatcher.
  fn runs_inline(&self) -> bool {
    false
  }

  /// True for backends whose work runs on threads of their own (SQLite's connection threads) that
  /// continue the tasks they wake (`hops`): a request is then started on the caller's thread and
  /// finished on the thread that did its work, skipping two hand-offs through the runtime.
  fn works_on_own_threads(&self) -> bool {
    false
  }

  /// Whether the backend's driver knows now that its server cannot be reached, when its requests
  /// wait out their timeout instead of failing with a network error (MongoDB's retries and
  /// server selection): a timeout then counts as an outage (`connect`/`disconnect`).
  fn server_unreachable(&self) -> bool {
    false
  }

  /// How much later than asked a backend may expire a session (its expiry's granularity), in ms:
  /// JS trusts a reported expiry over the cookie's only when it is later by more than this.
  fn expiry_precision_ms(&self) -> f64 {
    0.0
  }

  /// Whether the expiry a read reports runs on the real clock (a server-side TTL) rather than the
  /// JS clock that wrote it: JS then trusts it only while its clock is the real one.
  fn expiry_on_real_clock(&self) -> bool {
    false
  }

  /// How many keys or rows under this store's namespace the last listing (`ids`, `all`, `length`)
  /// skipped because they cannot be a session id (Redis keys that are not UTF-8): JS reports them.
  fn skipped_by_last_listing(&self) -> u64 {
    0
  }

  /// The stored session that is unexpired at `now_ms`, with its real expiry, or `None`.
  async fn get(&self, sid: &str, now_ms: f64) -> BackendResult<Option<Stored>>;

  /// Insert or replace. `expires_at_ms: None` means "never expires" (connect-redis's `disableTTL`).
  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()>;

  /// Move the expiry of a session that is still live at `now_ms`, and nothing else (the stored text
  /// keeps the cookie it was written with, as connect-redis's does): never recreates a destroyed
  /// or expired session. `None`: the session never expires (nothing to move).
  async fn touch(&self, sid: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()>;

  /// Remove; an unknown sid is not an error.
  async fn destroy(&self, sid: &str) -> BackendResult<()>;

  /// Every sid of this store (its prefix or table) that is live at `now_ms`.
  async fn ids(&self, now_ms: f64) -> BackendResult<Vec<String>>;

  /// Every live session as `(sid, value)`; `None` for a value that is not readable text (the JS
  /// side skips it and reports it, as it does for `get`).
  async fn all(&self, now_ms: f64) -> BackendResult<Vec<(String, Option<String>)>>;

  /// How many sessions are live at `now_ms`.
  async fn length(&self, now_ms: f64) -> BackendResult<u64>;

  /// Remove every session of this store; returns how many were removed.
  async fn clear(&self) -> BackendResult<u64>;

  /// Remove sessions expired at `now_ms` where the backend does not do it itself. `Ok(None)`
  /// means another process is pruning right now and this call left it to them.
  async fn prune(&self, _now_ms: f64) -> BackendResult<Option<u64>> {
    Ok(Some(0))
  }

  /// A cheap round trip that proves the server accepts work again, used to notice that an
  /// unavailable backend is back: it must not succeed on a connection left over from before.
  async fn ping(&self) -> BackendResult<()>;

  /// Release connections for good: every later request fails with `ESESSION_CLOSED`, and
  /// nothing is reopened.
  async fn close(&self);

  /// Writes `value` only while the stored text is still `expected` (what a read just returned),
  /// in one atomic step on the server: `Ok(false)` when another writer changed it meanwhile or
  /// it is gone. This makes a merged save atomic across processes (`merge_into_stored` reads,
  /// merges and writes again when it lost). `None`: the backend has no such step; the merge is
  /// then written plainly, atomic among this process's requests only (`sid_order.rs`).
  async fn set_if_unchanged(
    &self,
    _sid: &str,
    _expected: &str,
    _value: &str,
    _expires_at_ms: Option<f64>,
    _now_ms: f64,
  ) -> Option<BackendResult<bool>> {
    None
  }

  /// Runs the requests JS issued in one turn together. `None`: this backend has nothing better
  /// than running them one by one (the caller then does). Redis sends them as one pipeline.
  async fn run_batch(&self, _requests: &[Request]) -> Option<Vec<BackendResult<Reply>>> {
    None
  }

  /// One request of a batch on its own, as if JS had made it alone (for what a backend's
  /// `run_batch` does not combine).
  async fn run_one(&self, request: &Request) -> BackendResult<Reply> {
    run_one_plainly(self, request).await
  }
}

/// `run_one` through the four methods: the trait's default, and the fallback of a backend that
/// answers some requests its own way (MongoDB's set tells whether it created the session).
pub async fn run_one_plainly<B: Backend + ?Sized>(backend: &B, request: &Request) -> BackendResult<Reply> {
  match request {
    Request::Get { sid, now_ms } => backend.get(sid, *now_ms).await.map(Reply::Got),
    Request::Set {
      sid,
      value,
      expires_at_ms,
      now_ms,
    } => backend
      .set(sid, value, *expires_at_ms, *now_ms)
      .await
      .map(|()| Reply::Done),
    Request::Touch {
      sid,
      expires_at_ms,
      now_ms,
    } => backend.touch(sid, *expires_at_ms, *now_ms).await.map(|()| Reply::Done),
    Request::Destroy { sid } => backend.destroy(sid).await.map(|()| Reply::Done),
    Request::Patch {
      sid,
      patch,
      expires_at_ms,
      now_ms,
    } => merge_into_stored(backend, sid, patch, *expires_at_ms, *now_ms, &Ok, &Ok).await,
  }
}

/// How many times a merged save is read, merged and written again after another process wrote
/// the session between its read and its conditional write (each loss means that other writer
/// made progress; the request's deadline bounds the whole anyway).
const MERGE_ATTEMPTS: u32 = 64;

/// A random pause before merging again, growing with the losses (up to 16 ms): two processes
/// saving one session in step would otherwise lose to each other, one of them every time.
async fn back_off(losses: u32) {
  use std::hash::{BuildHasher, Hasher};
  let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
  let ceiling_us = 1000u64 << losses.min(4);
  tokio::time::sleep(std::time::Duration::from_micros(random % ceiling_us)).await;
}

/// A session patch merged into what is stored now and written back (docs/design.md, "Concurrent
/// requests"): read, merge, then a conditional write (`set_if_unchanged`) that loses, and is
/// tried again, when another writer got in between. No request of this process for the sid comes
/// in between (`sid_order.rs`). A session that is gone, does not open or is not JSON is left as it
/// is; a merge that changes nothing only moves the expiry. `open`/`seal` turn stored text into
/// the session's JSON and back (encryption at rest; the identity otherwise).
pub async fn merge_into_stored<B: Backend + ?Sized>(
  backend: &B,
  sid: &str,
  patch: &str,
  expires_at_ms: Option<f64>,
  now_ms: f64,
  open: &(dyn Fn(String) -> BackendResult<String> + Sync),
  seal: &(dyn Fn(String) -> BackendResult<String> + Sync),
) -> BackendResult<Reply> {
  for attempt in 0..MERGE_ATTEMPTS {
    if attempt > 0 {
      back_off(attempt).await;
    }
    let stored = match backend.get(sid, now_ms).await {
      Ok(stored) => stored,
      Err(e) if e.kind == crate::error::ErrorKind::Unparsable => None, // absent for the app
      Err(e) => return Err(e),
    };
    let Some(stored) = stored else { return Ok(Reply::Done) }; // gone: never recreated
    let Ok(text) = open(stored.value.clone()) else {
      return Ok(Reply::Done);
    };
    let Some(merged) = crate::merge_patch::merge_or_absent(text.clone().into_bytes(), patch)? else {
      return Ok(Reply::Done);
    };
    if merged == text {
      return backend.touch(sid, expires_at_ms, now_ms).await.map(|()| Reply::Done);
    }
    let sealed = seal(merged)?;
    match backend
      .set_if_unchanged(sid, &stored.value, &sealed, expires_at_ms, now_ms)
      .await
    {
      None => {
        return backend
          .set(sid, &sealed, expires_at_ms, now_ms)
          .await
          .map(|()| Reply::Done);
      }
      Some(Ok(true)) => return Ok(Reply::Done),
      Some(Ok(false)) => continue, // another writer got in between: merge into what it wrote
      Some(Err(e)) => return Err(e),
    }
  }
  Err(BackendError::backend(format!(
    "the session was changed by other writers during each of {MERGE_ATTEMPTS} attempts to merge this save into it"
  )))
}

/// Stored bytes as the text JS will parse. Bytes that are not UTF-8 can never be a session the
/// serializer wrote: the request treats the session as absent instead of failing (or, worse,
/// reporting an outage), and the stored bytes are left alone.
pub fn stored_text(bytes: Vec<u8>) -> BackendResult<String> {
  String::from_utf8(bytes).map_err(|e| {
    BackendError::unparsable(format!(
      "the stored session is not UTF-8 text (invalid byte at offset {})",
      e.utf8_error().valid_up_to()
    ))
  })
}

/// The whole milliseconds from `now_ms` to `expires_at_ms`, at least 1 (a session whose expiry has
/// passed is deleted by the JS side before it gets here).
pub fn remaining_ms(expires_at_ms: f64, now_ms: f64) -> i64 {
  ((expires_at_ms - now_ms).round() as i64).max(1)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn invalid_utf8_is_unparsable_not_an_outage() {
    let err = stored_text(vec![0x7b, 0xff, 0x7d]).err().map(|e| (e.kind, e.detail));
    assert_eq!(err.as_ref().map(|e| e.0), Some(crate::error::ErrorKind::Unparsable));
    assert!(err.is_some_and(|e| e.1.contains("offset 1")));
    assert_eq!(stored_text(b"{}".to_vec()).ok().as_deref(), Some("{}"));
  }

  #[test]
  fn remaining_time_keeps_milliseconds() {
    assert_eq!(remaining_ms(1900.0, 0.0), 1900);
    assert_eq!(remaining_ms(500.4, 0.0), 500);
    assert_eq!(remaining_ms(10.0, 20.0), 1);
  }
}
