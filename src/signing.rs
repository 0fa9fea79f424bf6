//! cookie-signature's scheme: `value + "." + base64(HMAC-SHA256(secret, value))` without `=`
//! padding. JS checks argument types (to throw cookie-signature's exact TypeErrors) and joins
//! the value to the signature, so strings JS cannot round-trip through UTF-8 stay byte-identical.

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type Secret = Either<String, Buffer>;

fn secret_bytes(secret: &Secret) -> &[u8] {
  match secret {
    Either::A(s) => s.as_bytes(),
    Either::B(b) => b.as_ref(),
  }
}

thread_local! {
  /// The HMAC state keyed with the last secret used on this thread. Keying costs two of the four
  /// SHA-256 compressions of a signature, and an app signs with the same secret every time.
  static KEYED: RefCell<Option<(Vec<u8>, Hmac<Sha256>)>> = const { RefCell::new(None) };
}

fn keyed(secret: &[u8]) -> Option<Hmac<Sha256>> {
  KEYED.with(|cell| {
    let mut cached = cell.borrow_mut();
    if let Some((key, mac)) = cached.as_ref()
      && key.as_slice() == secret
    {
      return Some(mac.clone());
    }
    let mac = Hmac::<Sha256>::new_from_slice(secret).ok()?; // HMAC accepts any key length
    *cached = Some((secret.to_vec(), mac.clone()));
    Some(mac)
  })
}

/// The length of every signature: base64 without padding of a 32-byte MAC.
const SIGNATURE_LEN: usize = 43;

/// The 43-character signature of `value`, or `None` if the MAC could not be keyed. HMAC accepts
/// any key length, so `None` never happens; it exists so that no code path can produce an empty
/// "expected signature", which `"anything."` would match.
pub fn signature(value: &[u8], secret: &[u8]) -> Option<String> {
  // An empty secret is public knowledge: whatever it signs, anyone can forge. It signs nothing
  // and so matches nothing (JS refuses it with a clear error before it gets here).
  if secret.is_empty() {
    return None;
  }
  let mut mac = keyed(secret)?;
  mac.update(value);
  let sig = STANDARD_NO_PAD.encode(mac.finalize().into_bytes());
  (sig.len() == SIGNATURE_LEN).then_some(sig)
}

/// Whether `input` is exactly `value + "." + signature(value)` for one of `secrets`, compared in
/// constant time; returns the index of the matching secret or -1.
pub fn matching_secret(input: &[u8], secrets: &[&[u8]]) -> i32 {
  let Some(dot) = input.iter().rposition(|&b| b == b'.') else {
    return -1;
  };
  let value = &input[..dot];
  let mut found = -1;
  let candidate = &input[dot + 1..];
  for (i, secret) in secrets.iter().enumerate() {
    // Fail closed: a secret that cannot produce a signature matches nothing.
    let Some(expected) = signature(value, secret) else {
      continue;
    };
    // Lengths are public (always 43 for a valid signature); the bytes are compared in constant time.
    let same = candidate.len() == SIGNATURE_LEN && bool::from(candidate.ct_eq(expected.as_bytes()));
    if same && found < 0 {
      found = i as i32;
    }
  }
  found
}

#[napi(
  catch_unwind,
  js_name = "signature",
  ts_args_type = "value: string, secret: string | Buffer"
)]
pub fn signature_js(value: String, secret: Secret) -> napi::Result<String> {
  signature(value.as_bytes(), secret_bytes(&secret))
    .ok_or_else(|| napi::Error::from_reason("ferrosession: cannot sign with this secret"))
}

/// The one-secret case of `matchingSecret`, without building an array per cookie.
#[napi(
  catch_unwind,
  js_name = "matchesSecret",
  ts_args_type = "input: string, secret: string | Buffer"
)]
pub fn matches_secret_js(input: String, secret: Secret) -> bool {
  matching_secret(input.as_bytes(), &[secret_bytes(&secret)]) == 0
}

#[napi(
  catch_unwind,
  js_name = "matchingSecret",
  ts_args_type = "input: string, secrets: Array<string | Buffer>"
)]
pub fn matching_secret_js(input: String, secrets: Vec<Secret>) -> i32 {
  let keys: Vec<&[u8]> = secrets.iter().map(secret_bytes).collect();
  matching_secret(input.as_bytes(), &keys)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn sign(v: &str, s: &[u8]) -> String {
    format!("{v}.{}", signature(v.as_bytes(), s).unwrap_or_default())
  }

  #[test]
  fn an_empty_secret_signs_and_matches_nothing() {
    assert_eq!(signature(b"sid", b""), None);
    let forged = format!("sid.{}", signature(b"sid", b"x").unwrap_or_default());
    assert_eq!(matching_secret(forged.as_bytes(), &[b"real", b""]), -1);
    assert_eq!(matching_secret(b"sid.", &[b""]), -1);
  }

  #[test]
  fn matches_cookie_signature_vectors() {
    // Produced by the npm cookie-signature 1.0.7 and 1.2.2 (docs/design.md, "Cookie signing").
    assert_eq!(
      sign("hello", b"tobiiscool"),
      "hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI"
    );
    assert_eq!(sign("", b"tobiiscool"), ".vSL46q0CTANPH45to/hQj/srOUhYSCmMElOFMnD4QOk");
    assert_eq!(
      sign("abc.def", b"secret"),
      "abc.def.bw6MfpI6W0A40NkeJEdmGA2Kgk83mtWOBZyYtoLzRuA"
    );
    assert_eq!(
      sign("héllo wörld ☃", b"keyboard cat"),
      "héllo wörld ☃.8z4vXsTC9P7WGyJU+EoIRpNio4yTuwqmLQBg9Vkq8lI"
    );
    assert_eq!(
      sign("hello", "clé secrète ☃".as_bytes()),
      "hello.r80JISSWXVDdtJzHtfKO1mabanSbzZ+9PsbQkXHnp7w"
    );
    let raw = [
      0x00u8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    ];
    assert_eq!(sign("hello", &raw), "hello.JVg0BbNb1kpvjQgpxnajty2wZ+uA7fPbo6QF1m3HqU4");
    assert_eq!(
      sign("hello", "x".repeat(100).as_bytes()),
      "hello.udqO6oqYWWni6ehcYtVwDG9j0PYUlLqmCKmBNumK3b0"
    );
    // cookie-signature gives "x.TLyWCZpkZ84AJGHxBUm0iYJl6+YYi0XvrMRCk1FuYsQ" for an empty secret:
    // refused here (an_empty_secret_signs_and_matches_nothing).
    assert_eq!(signature(b"x", b""), None);
  }

  #[test]
  fn unsign_accepts_only_the_exact_signed_string() {
    let good = "Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC.J1/gN9LiujZdKp0yB/9J86Yx5zf42sXSXmE0ZIpqYE4";
    let cat: &[&[u8]] = &[b"keyboard cat"];
    assert_eq!(matching_secret(good.as_bytes(), cat), 0);
    for bad in [
      "Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC.J1/gN9LiujZdKp0yB/9J86Yx5zf42sXSXmE0ZIpqYEA",
      "Xo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC.J1/gN9LiujZdKp0yB/9J86Yx5zf42sXSXmE0ZIpqYE4",
      "Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC.J1/gN9LiujZdKp0yB/9J86Yx5zf42sXSXmE0ZIpqYE4x",
      "Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC.J1/gN9LiujZdKp0yB/9J86Yx5zf42sXSXmE0ZIpqYE4=",
      "Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC.J1/gN9LiujZdKp0yB/9J86Yx5zf42sXSXmE0Z",
      "Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC",
    ] {
      assert_eq!(matching_secret(bad.as_bytes(), cat), -1, "{bad}");
    }
    let nyan = "Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC.BosaH66nXO0Gw0QGogTLMAh0cka06uCTcBifkrmrMh0";
    assert_eq!(matching_secret(nyan.as_bytes(), cat), -1);
    assert_eq!(matching_secret(nyan.as_bytes(), &[b"keyboard cat", b"nyan cat"]), 1);
    assert_eq!(
      matching_secret(".aJcKKTu8Uv0mRiw7LTI435t+pOa+giU/WLAuLCKGEFc".as_bytes(), cat),
      0
    );
  }
}
