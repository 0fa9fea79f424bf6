'use strict'
// Expiry rules, once for every backend (docs/design.md, "Expiry"):
// - `ttl` as a function: its result in seconds (fractions kept: 1.9 lives 1.9 s);
// - else `cookie.expires` when it is a valid date;
// - else the store's default `ttl` in seconds.
// The result is the absolute instant in epoch ms. "Now" is always the `Date.now()` of the JS call
// (the JS clock is the clock: apps fake it in their tests), and travels to Rust with the request.

const { optionError } = require('./errors')
const DAY_SECONDS = 86400

function cookieExpiresMs (sess) {
  const expires = sess && sess.cookie && sess.cookie.expires
  if (!expires) return NaN
  return expires instanceof Date ? expires.getTime() : new Date(expires).getTime()
}

/**
 * @returns {number | null} when the session expires (epoch ms), or null when it never does
 * @throws {TypeError} when a `ttl` function returns something that is not a finite number
 */
function expiresAt (sess, { ttl, disableTTL }, now) {
  if (disableTTL) return null
  if (typeof ttl === 'function') {
    const secs = ttl(sess)
    if (typeof secs !== 'number' || !Number.isFinite(secs)) {
      throw new TypeError(`the ttl function returned ${String(secs)}, not a finite number of seconds`)
    }
    return now + secs * 1000
  }
  const at = cookieExpiresMs(sess)
  if (Number.isFinite(at)) return at
  return now + ttl * 1000
}

/** Strict read check: a session whose cookie has expired is gone, to the millisecond. */
function hasExpired (sess, now) {
  const at = cookieExpiresMs(sess)
  return Number.isFinite(at) && at <= now
}

/** connect-redis's `ttl || 86400`, with a clear error for anything else that is not usable. */
function normaliseTtl (ttl, backend) {
  if (ttl === undefined || ttl === null || ttl === 0) return DAY_SECONDS
  if (typeof ttl === 'function') return ttl
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw optionError(`ferrosession ${backend}: option ttl must be a positive number of seconds or a function, got ${String(ttl)}`)
  }
  return ttl
}

module.exports = { expiresAt, hasExpired, cookieExpiresMs, normaliseTtl, DAY_SECONDS }
