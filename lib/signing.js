'use strict'
// sign/unsign, byte-identical to the npm cookie-signature (HMAC-SHA256, base64 without `=`),
// with its TypeErrors. The MAC and the constant-time comparison run in Rust; the value is joined
// in JS so that any string, even one UTF-8 cannot represent, comes back exactly as given.

const { binding } = require('./native')

function key (secret) {
  const bytes = keyBytes(secret)
  // cookie-signature accepts an empty secret; we refuse it: what it signs, anyone can forge.
  if (bytes.length === 0) throw new TypeError('Secret key must not be empty: anyone could forge what it signs.')
  return bytes
}

function keyBytes (secret) {
  if (typeof secret === 'string' || Buffer.isBuffer(secret)) return secret
  if (ArrayBuffer.isView(secret)) return Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength)
  if (secret && secret.type === 'secret' && typeof secret.export === 'function') return secret.export()
  throw new TypeError('Secret key must be a string, a Buffer or a TypedArray.')
}

function sign (val, secret) {
  if (typeof val !== 'string') throw new TypeError('Cookie value must be provided as a string.')
  if (secret == null) throw new TypeError('Secret key must be provided.')
  return val + '.' + binding.signature(val, key(secret))
}

/** Returns the value, or false. `secret` may be an array: tried in order, for key rotation. */
function unsign (input, secret) {
  if (typeof input !== 'string') throw new TypeError('Signed cookie string must be provided.')
  if (secret == null) throw new TypeError('Secret key must be provided.')
  let ok
  if (Array.isArray(secret)) {
    if (secret.length === 0) throw new TypeError('Secret key must be provided.')
    ok = binding.matchingSecret(input, secret.map(key)) >= 0
  } else {
    ok = binding.matchesSecret(input, key(secret))
  }
  return ok ? input.slice(0, input.lastIndexOf('.')) : false
}

/**
 * Which of `secrets` (an array, tried in order) signed `input`: its index, or -1. The middleware
 * uses it to send back a cookie verified with the first secret as it came, instead of signing
 * the same value again (HMAC is deterministic: the bytes are the same).
 */
function matchingSecretIndex (input, secrets) {
  if (typeof input !== 'string') throw new TypeError('Signed cookie string must be provided.')
  if (!Array.isArray(secrets) || secrets.length === 0) throw new TypeError('Secret key must be provided.')
  for (const s of secrets) if (s == null) throw new TypeError('Secret key must be provided.')
  if (secrets.length === 1) return binding.matchesSecret(input, key(secrets[0])) ? 0 : -1
  return binding.matchingSecret(input, secrets.map(key))
}

module.exports = { sign, unsign, matchingSecretIndex }
