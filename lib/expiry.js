'use strict'
// Expiry rules, once for every backend (shared/docs/anchor-formats.md §3.1, §3.2):
// - `ttl` as a function: its result in seconds;
// - else `cookie.expires` when it is a valid date (connect-redis: ceil of the seconds left);
// - else the store's default `ttl` in seconds.
// The result carries both forms the backends need: the absolute instant in ms (SQL stores keep
// `ceil(ms / 1000)`) and whole seconds from now (Redis `EX`). A ttl <= 0 means already expired.

const DAY_SECONDS = 86400

function cookieExpiresMs (sess) {
  const expires = sess && sess.cookie && sess.cookie.expires
  if (!expires) return NaN
  return expires instanceof Date ? expires.getTime() : new Date(expires).getTime()
}

/**
 * @returns {{atMs: number, ttlSecs: number} | null} null when the session never expires
 * @throws {TypeError} when a `ttl` function returns something that is not a finite number
 */
function expiryOf (sess, { ttl, disableTTL }, now = Date.now()) {
  if (disableTTL) return null
  if (typeof ttl === 'function') {
    const secs = ttl(sess)
    if (typeof secs !== 'number' || !Number.isFinite(secs)) {
      throw new TypeError(`the ttl function returned ${String(secs)}, not a finite number of seconds`)
    }
    return { atMs: now + secs * 1000, ttlSecs: Math.ceil(secs) }
  }
  const at = cookieExpiresMs(sess)
  if (Number.isFinite(at)) return { atMs: at, ttlSecs: Math.ceil((at - now) / 1000) }
  return { atMs: now + ttl * 1000, ttlSecs: ttl }
}

/** Strict read check: a session whose cookie has expired is gone, to the millisecond. */
function hasExpired (sess, now = Date.now()) {
  const at = cookieExpiresMs(sess)
  return Number.isFinite(at) && at <= now
}

/** connect-redis's `ttl || 86400`, with a clear error for anything else that is not usable. */
function normaliseTtl (ttl, backend) {
  if (ttl === undefined || ttl === null || ttl === 0) return DAY_SECONDS
  if (typeof ttl === 'function') return ttl
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw new TypeError(`ferrosession ${backend}: option ttl must be a positive number of seconds or a function, got ${String(ttl)}`)
  }
  return ttl
}

module.exports = { expiryOf, hasExpired, normaliseTtl, DAY_SECONDS }
