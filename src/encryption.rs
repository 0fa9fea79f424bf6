//! Encryption at rest for every backend: a `Backend` in front of another that seals each session
//! value with AES-256-GCM before it leaves the process and opens it on the way back.
//!
//! Stored format, version 1: the JSON string `"fse1:<base64(nonce ‖ ciphertext ‖ tag)>"` (so JSON
//! and jsonb columns take it as they are), a random 96-bit nonce per write, and the session id as
//! associated data: a value copied onto another session's row does not open there. Writes use the
//! first key; reads try every key, so keys rotate without logging anyone out. Keys are 32 raw
//! bytes, or a passphrase stretched once at construction (PBKDF2-HMAC-SHA256).

use std::cell::RefCell;
use std::sync::Arc;

use async_trait::async_trait;
use base64_simd::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::backend::{Backend, Reply, Request, Stored, merge_into_stored, run_one_plainly, stored_text};
use crate::error::{BackendError, BackendResult};

const PREFIX: &str = "fse1:";
const NONCE: usize = 12;
const TAG: usize = 16;
/// Nonces drawn from the OS per refill of a thread's supply: one `getrandom` call (about 1 µs on
/// a virtual machine, a third of sealing 2 KB) serves this many writes.
const NONCES_PER_DRAW: usize = 256;
/// PBKDF2 rounds for passphrases (as connect-mongo's WebCrypto adapter).
const ROUNDS: u32 = 310_000;
const PASSPHRASE_SALT: &[u8] = b"ferrosession:encryption:v1";
/// connect-mongo's `createWebCryptoAdapter` default salt.
const CONNECT_MONGO_SALT: &[u8] = b"connect-mongo:webcrypto-default-salt";

/// A key: 32 raw bytes, or a passphrase (one of the two).
pub struct EncryptionKey {
  pub raw: Option<Vec<u8>>,
  pub passphrase: Option<String>,
}

pub struct EncryptionConfig {
  /// The first encrypts; all decrypt.
  pub keys: Vec<EncryptionKey>,
  /// Read values stored before encryption was turned on (never written so).
  pub read_plaintext: bool,
  /// connect-mongo's WebCrypto adapter secret: its ciphertexts (AES-GCM, PBKDF2-SHA-256 with its
  /// default salt and 310,000 rounds) stay readable.
  pub connect_mongo_secret: Option<String>,
}

/// `inner` with every value sealed on the way in and opened on the way out.
pub fn encrypted(inner: Arc<dyn Backend>, config: &EncryptionConfig) -> BackendResult<Arc<dyn Backend>> {
  let sealer = Sealer::new(config)?;
  Ok(Arc::new(Encrypted { inner, sealer }))
}

/// AES-256-GCM from ring (BoringSSL's assembly): sealing 2 KB measured 1.85 µs with its nonce
/// against 3.33 µs with RustCrypto's aes-gcm, opening 0.69 µs against 2.27 µs, here.
struct Sealer {
  keys: Vec<LessSafeKey>,
  read_plaintext: bool,
  connect_mongo: Option<LessSafeKey>,
}

impl Sealer {
  fn new(o: &EncryptionConfig) -> BackendResult<Self> {
    if o.keys.is_empty() {
      return Err(BackendError::invalid("encryption.keys needs at least one key"));
    }
    let keys = o
      .keys
      .iter()
      .enumerate()
      .map(|(i, k)| key_of(i, k))
      .collect::<BackendResult<_>>()?;
    let connect_mongo = o
      .connect_mongo_secret
      .as_deref()
      .map(|secret| cipher(&stretch(secret.as_bytes(), CONNECT_MONGO_SALT)))
      .transpose()?;
    Ok(Self {
      keys,
      read_plaintext: o.read_plaintext,
      connect_mongo,
    })
  }

  fn seal(&self, sid: &str, plaintext: &str) -> BackendResult<String> {
    let nonce = fresh_nonce()?;
    // nonce ‖ ciphertext ‖ tag in one buffer, the plaintext encrypted where it lies.
    let mut bytes = Vec::with_capacity(NONCE + plaintext.len() + TAG);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(plaintext.as_bytes());
    let tag = self.keys[0]
      .seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(sid.as_bytes()),
        &mut bytes[NONCE..],
      )
      .map_err(|_| BackendError::backend("the session could not be encrypted"))?;
    bytes.extend_from_slice(tag.as_ref());
    // One buffer of the final size: the quotes, the prefix, the base64 appended in place.
    let mut out = String::with_capacity(PREFIX.len() + 2 + STANDARD.encoded_length(bytes.len()));
    out.push('"');
    out.push_str(PREFIX);
    STANDARD.encode_append(&bytes, &mut out);
    out.push('"');
    Ok(out)
  }

  /// The plaintext, or why it cannot be had: unreadable, so the session is treated as absent
  /// and reported (docs/design.md, "Stored data that cannot be read").
  fn open(&self, sid: &str, stored: &str) -> BackendResult<String> {
    let unquoted = stored
      .strip_prefix('"')
      .and_then(|s| s.strip_suffix('"'))
      .unwrap_or(stored);
    let Some(encoded) = unquoted.strip_prefix(PREFIX) else {
      return self.open_other(stored, unquoted);
    };
    let bytes = STANDARD
      .decode_to_vec(encoded)
      .map_err(|_| BackendError::unparsable("the encrypted session is not valid base64 (tampered with?)"))?;
    if bytes.len() < NONCE + TAG {
      return Err(BackendError::unparsable(
        "the encrypted session is too short (tampered with?)",
      ));
    }
    // Opening works in place and leaves the buffer unusable when the key is wrong: every key but
    // the last (rotation) tries a copy.
    let mut bytes = Some(bytes);
    for (i, key) in self.keys.iter().enumerate() {
      let attempt = if i + 1 == self.keys.len() {
        bytes.take()
      } else {
        bytes.clone()
      };
      if let Some(plain) = attempt.and_then(|b| opened_with(key, sid.as_bytes(), b)) {
        return stored_text(plain);
      }
    }
    Err(BackendError::unparsable(format!(
      "the session cannot be decrypted with any of the {} configured keys (a key that is not in encryption.keys, a value copied from another session, or one tampered with)",
      self.keys.len()
    )))
  }

  /// A value not in our format: connect-mongo's WebCrypto ciphertext if that secret is given,
  /// plaintext if allowed, otherwise refused (an attacker who can write to the database must not
  /// be able to plant a session in clear).
  fn open_other(&self, stored: &str, unquoted: &str) -> BackendResult<String> {
    if let Some(key) = &self.connect_mongo
      && let Ok(bytes) = STANDARD.decode_to_vec(unquoted)
      && let Some(plain) = opened_with(key, b"", bytes)
    {
      return stored_text(plain);
    }
    if self.read_plaintext {
      return Ok(stored.to_string());
    }
    Err(BackendError::unparsable(
      "the stored session is not encrypted, and encryption.readPlaintext is off",
    ))
  }
}

fn key_of(i: usize, k: &EncryptionKey) -> BackendResult<LessSafeKey> {
  match (&k.raw, &k.passphrase) {
    (Some(raw), None) if raw.len() == 32 => cipher(raw),
    (Some(raw), None) => Err(BackendError::invalid(format!(
      "encryption.keys[{i}] is {} bytes; a raw key is 32 bytes (or give a passphrase string)",
      raw.len()
    ))),
    (None, Some(p)) if p.len() >= 16 => cipher(&stretch(p.as_bytes(), PASSPHRASE_SALT)),
    (None, Some(_)) => Err(BackendError::invalid(format!(
      "encryption.keys[{i}] is a passphrase shorter than 16 characters"
    ))),
    _ => Err(BackendError::invalid(format!(
      "encryption.keys[{i}] must be 32 bytes or a passphrase"
    ))),
  }
}

/// `text` with the cookie's `expires` set to `at_ms`, where the session starts with its cookie
/// and the date is express-session's 24-character ISO text (as the backends' in-place touch
/// requires); otherwise `text` as it is.
fn with_cookie_expires(text: &str, at_ms: f64) -> String {
  const HEAD: &str = "{\"cookie\":{";
  const MARK: &str = "\"expires\":\"";
  let date = crate::clock::iso_from_ms(at_ms);
  let cookie_end = text.find('}').unwrap_or(0);
  match text.find(MARK).map(|i| i + MARK.len()) {
    Some(start)
      if text.starts_with(HEAD)
        && start < cookie_end
        && date.len() == 24
        && text.get(start + 23..start + 25) == Some("Z\"") =>
    {
      format!("{}{}{}", &text[..start], date, &text[start + 24..])
    }
    _ => text.to_string(),
  }
}

fn stretch(secret: &[u8], salt: &[u8]) -> [u8; 32] {
  let mut out = [0u8; 32];
  pbkdf2::pbkdf2_hmac::<sha2::Sha256>(secret, salt, ROUNDS, &mut out);
  out
}

/// The AES-256-GCM key of `key` (32 bytes; ring refuses any other length).
fn cipher(key: &[u8]) -> BackendResult<LessSafeKey> {
  UnboundKey::new(&AES_256_GCM, key)
    .map(LessSafeKey::new)
    .map_err(|_| BackendError::invalid(format!("an AES-256 key is 32 bytes, not {}", key.len())))
}

/// The plaintext of `nonce ‖ ciphertext ‖ tag` under `key` and `aad`, opened in place; None when
/// it does not open (another key, another sid, tampered with).
fn opened_with(key: &LessSafeKey, aad: &[u8], mut bytes: Vec<u8>) -> Option<Vec<u8>> {
  if bytes.len() < NONCE + TAG {
    return None;
  }
  let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE]).ok()?;
  let len = key
    .open_in_place(nonce, Aad::from(aad), &mut bytes[NONCE..])
    .ok()?
    .len();
  bytes.drain(..NONCE);
  bytes.truncate(len);
  Some(bytes)
}

/// A fresh random nonce. Nonces are stored in clear, so a thread keeps a supply drawn from the OS
/// in one call and hands each out once (a nonce used twice under one key would break GCM).
fn fresh_nonce() -> BackendResult<[u8; NONCE]> {
  thread_local! {
    static SUPPLY: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
  }
  SUPPLY.with(|supply| {
    let (bytes, used) = &mut *supply.borrow_mut();
    if *used + NONCE > bytes.len() {
      bytes.resize(NONCE * NONCES_PER_DRAW, 0);
      SystemRandom::new()
        .fill(bytes)
        .map_err(|_| BackendError::backend("the OS gave no randomness for a nonce"))?;
      *used = 0;
    }
    let mut nonce = [0u8; NONCE];
    nonce.copy_from_slice(&bytes[*used..*used + NONCE]);
    *used += NONCE;
    Ok(nonce)
  })
}

/// The backend behind encryption: values sealed on the way in, opened on the way out; the rest
/// (expiry, ids, counts) passes through.
struct Encrypted {
  inner: Arc<dyn Backend>,
  sealer: Sealer,
}

impl Encrypted {
  fn opened(&self, sid: &str, stored: Option<Stored>) -> BackendResult<Option<Stored>> {
    stored
      .map(|s| {
        Ok(Stored {
          value: self.sealer.open(sid, &s.value)?,
          expires_at_ms: s.expires_at_ms,
        })
      })
      .transpose()
  }
}

#[async_trait]
impl Backend for Encrypted {
  fn name(&self) -> &'static str {
    self.inner.name()
  }

  fn runs_inline(&self) -> bool {
    self.inner.runs_inline()
  }

  fn works_on_own_threads(&self) -> bool {
    self.inner.works_on_own_threads()
  }

  fn server_unreachable(&self) -> bool {
    self.inner.server_unreachable()
  }

  fn expiry_precision_ms(&self) -> f64 {
    self.inner.expiry_precision_ms()
  }

  fn expiry_on_real_clock(&self) -> bool {
    self.inner.expiry_on_real_clock()
  }

  fn skipped_by_last_listing(&self) -> u64 {
    self.inner.skipped_by_last_listing()
  }

  async fn get(&self, sid: &str, now_ms: f64) -> BackendResult<Option<Stored>> {
    let stored = self.inner.get(sid, now_ms).await?;
    self.opened(sid, stored)
  }

  async fn set(&self, sid: &str, value: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    let sealed = self.sealer.seal(sid, value)?;
    self.inner.set(sid, &sealed, expires_at_ms, now_ms).await
  }

  /// The expiry only, as for every store, where the backend keeps it on the JS clock. Where it
  /// runs on the server's real clock (Redis's TTL), JS trusts the stored cookie's date over it
  /// whenever the app's clock is faked, and the server cannot rewrite that date inside a sealed
  /// value as it does in clear: so the session is opened, its cookie date moved, and sealed again.
  /// Requests for one sid run in call order (`sid_order`), so no write of this process comes
  /// between the read and the write; a session that is gone, or does not open, is left alone.
  async fn touch(&self, sid: &str, expires_at_ms: Option<f64>, now_ms: f64) -> BackendResult<()> {
    let (true, Some(at)) = (self.inner.expiry_on_real_clock(), expires_at_ms) else {
      return self.inner.touch(sid, expires_at_ms, now_ms).await;
    };
    let Some(stored) = self.inner.get(sid, now_ms).await? else {
      return Ok(()); // never recreated
    };
    let Ok(text) = self.sealer.open(sid, &stored.value) else {
      return Ok(());
    };
    let sealed = self.sealer.seal(sid, &with_cookie_expires(&text, at))?;
    self.inner.set(sid, &sealed, Some(at), now_ms).await
  }

  async fn destroy(&self, sid: &str) -> BackendResult<()> {
    self.inner.destroy(sid).await
  }

  async fn ids(&self, now_ms: f64) -> BackendResult<Vec<String>> {
    self.inner.ids(now_ms).await
  }

  /// A value that does not open is `None`: JS skips it and reports it, as for `get`.
  async fn all(&self, now_ms: f64) -> BackendResult<Vec<(String, Option<String>)>> {
    let pairs = self.inner.all(now_ms).await?;
    Ok(
      pairs
        .into_iter()
        .map(|(sid, value)| {
          let opened = value.and_then(|v| self.sealer.open(&sid, &v).ok());
          (sid, opened)
        })
        .collect(),
    )
  }

  async fn length(&self, now_ms: f64) -> BackendResult<u64> {
    self.inner.length(now_ms).await
  }

  async fn clear(&self) -> BackendResult<u64> {
    self.inner.clear().await
  }

  async fn prune(&self, now_ms: f64) -> BackendResult<Option<u64>> {
    self.inner.prune(now_ms).await
  }

  async fn ping(&self) -> BackendResult<()> {
    self.inner.ping().await
  }

  async fn close(&self) {
    self.inner.close().await
  }

  /// A patch is merged into the opened session and sealed again, and written only while the
  /// sealed text read is still stored (the inner backend's conditional write). No conditional
  /// write of its own: what it could compare is plaintext, never what is stored.
  async fn run_one(&self, request: &Request) -> BackendResult<Reply> {
    let Request::Patch {
      sid,
      patch,
      expires_at_ms,
      now_ms,
    } = request
    else {
      return run_one_plainly(self, request).await;
    };
    let open = |stored: String| self.sealer.open(sid, &stored);
    let seal = |text: String| self.sealer.seal(sid, &text);
    merge_into_stored(&*self.inner, sid, patch, *expires_at_ms, *now_ms, &open, &seal).await
  }

  async fn run_batch(&self, requests: &[Request]) -> Option<Vec<BackendResult<Reply>>> {
    if self.inner.expiry_on_real_clock() && requests.iter().any(|r| matches!(r, Request::Touch { .. })) {
      return None; // each through touch() above
    }
    // A value that cannot be sealed sends the batch one by one (through set() above), so that
    // set fails alone.
    let sealed = requests
      .iter()
      .map(|r| match r {
        Request::Set {
          sid,
          value,
          expires_at_ms,
          now_ms,
        } => self.sealer.seal(sid, value).map(|value| Request::Set {
          sid: sid.clone(),
          value,
          expires_at_ms: *expires_at_ms,
          now_ms: *now_ms,
        }),
        other => Ok(other.clone()),
      })
      .collect::<BackendResult<Vec<_>>>()
      .ok()?;
    // Sealed once: a backend with nothing better than one by one runs these, rather than the
    // caller sending the batch back through set(), which would seal every value again.
    let results = match self.inner.run_batch(&sealed).await {
      Some(results) => results,
      None => futures_util::future::join_all(sealed.iter().map(|r| self.inner.run_one(r))).await,
    };
    Some(
      results
        .into_iter()
        .zip(requests)
        .map(|(result, request)| match (result, request) {
          (Ok(Reply::Got(stored)), Request::Get { sid, .. }) => self.opened(sid, stored).map(Reply::Got),
          (other, _) => other,
        })
        .collect(),
    )
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_cookie_date_is_moved_in_the_opened_session_only_where_it_is_express_sessions() {
    let text = r#"{"cookie":{"originalMaxAge":1000,"expires":"2026-01-01T00:00:00.000Z","httpOnly":true},"v":"}"}"#;
    let moved = with_cookie_expires(text, 1_767_225_600_500.0);
    assert_eq!(
      moved,
      text.replace("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.500Z")
    );
    for other in [
      r#"{"v":1,"cookie":{"expires":"2026-01-01T00:00:00.000Z"}}"#,
      r#"{"cookie":{"expires":null}}"#,
      "{}",
    ] {
      assert_eq!(with_cookie_expires(other, 0.0), other);
    }
  }

  fn sealer(keys: &[&[u8]], plaintext: bool) -> Sealer {
    let options = EncryptionConfig {
      keys: keys
        .iter()
        .map(|k| EncryptionKey {
          raw: Some(k.to_vec()),
          passphrase: None,
        })
        .collect(),
      read_plaintext: plaintext,
      connect_mongo_secret: None,
    };
    Sealer::new(&options).unwrap_or_else(|e| panic!("{}", e.detail))
  }

  #[test]
  fn values_sealed_before_the_switch_to_ring_still_open() {
    // Written by the build that sealed with RustCrypto's aes-gcm (key 32 x 7, sid "sid-kat"):
    // the stored format is plain AES-256-GCM, so changing the implementation changes no byte.
    let sealed = r#""fse1:Zc5hyMxmwlYP47HhlditphITwT663fkNf7OutlPNJaoJxzwrebfptYJBdenkL2izIWwBhATB7zcLUJG2g5Rixxy07XOgatFXgdUNffriEDFtsb17iMA=""#;
    let plain = r#"{"cookie":{"originalMaxAge":null},"v":"sealed by aes-gcm"}"#;
    assert_eq!(
      sealer(&[&[7; 32]], false).open("sid-kat", sealed).ok().as_deref(),
      Some(plain)
    );
    assert!(sealer(&[&[7; 32]], false).open("sid-other", sealed).is_err());
  }

  #[test]
  fn every_nonce_is_fresh_across_refills() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..NONCES_PER_DRAW * 3 {
      assert!(seen.insert(fresh_nonce().unwrap_or_default()), "a nonce came twice");
    }
  }

  #[test]
  fn round_trips_rotates_and_refuses_tampering_and_swaps() {
    let old = sealer(&[&[1; 32]], false);
    let rotated = sealer(&[&[2; 32], &[1; 32]], false);
    let sealed = old.seal("sid-a", "{\"cookie\":{}}").unwrap_or_default();
    assert!(sealed.starts_with("\"fse1:"));
    assert_eq!(rotated.open("sid-a", &sealed).ok().as_deref(), Some("{\"cookie\":{}}"));
    assert!(
      rotated.open("sid-b", &sealed).is_err(),
      "a value copied to another sid must not open"
    );
    let mut tampered = sealed.clone().into_bytes();
    tampered[10] ^= 1;
    assert!(
      old
        .open("sid-a", &String::from_utf8(tampered).unwrap_or_default())
        .is_err()
    );
    assert!(sealer(&[&[3; 32]], false).open("sid-a", &sealed).is_err());
    assert!(
      old.open("sid-a", "{\"cookie\":{}}").is_err(),
      "plaintext is refused unless allowed"
    );
    assert!(sealer(&[&[1; 32]], true).open("sid-a", "{\"cookie\":{}}").is_ok());
  }
}
