'use strict'
// `ferrosession inspect` and `ferrosession migrate`: what a store holds, and copying every live
// session from one store to another (say connect-redis's Redis to PostgreSQL) with its expiry,
// while the app keeps using both. A session the target already has is never overwritten, so
// running a migration again (after Ctrl-C, a crash or an unreachable target) copies only what is
// missing. Each session is one write: the target never holds part of one.

const { createStore } = require('./create-store')

/** Errors worth waiting out: the server is down or slow, not the data wrong. */
const TRANSIENT = new Set(['ESESSION_UNAVAILABLE', 'ESESSION_TIMEOUT'])
/** Sessions are read and written this many at a time (one native batch each). */
const DEFAULT_CHUNK = 500
const HOUR = 3600 * 1000

/** A URL fit to print: no password. */
function shown (url) {
  return url ? url.replace(/\/\/[^/@]*@/, '//…@') : '(embedded SQLite)'
}

function open (url, options) {
  return createStore(url || undefined, options)
}

function percentile (sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0
}

async function inspect ({ url, options = {}, now = Date.now() }) {
  const store = open(url, options)
  try {
    const ids = await store.ids()
    const sizes = []
    let unreadable = 0
    let withinHour = 0
    let withinDay = 0
    for (let i = 0; i < ids.length; i += DEFAULT_CHUNK) {
      const sessions = await Promise.all(ids.slice(i, i + DEFAULT_CHUNK).map((sid) => store.get(sid).catch(() => undefined)))
      for (const sess of sessions) {
        if (sess === undefined) unreadable++
        if (!sess) continue
        sizes.push(Buffer.byteLength(JSON.stringify(sess)))
        const expires = sess.cookie && sess.cookie.expires ? Date.parse(sess.cookie.expires) : NaN
        if (expires - now <= HOUR) withinHour++
        if (expires - now <= 24 * HOUR) withinDay++
      }
    }
    sizes.sort((a, b) => a - b)
    return {
      store: shown(url),
      sessions: ids.length,
      unreadable,
      expiringWithinHour: withinHour,
      expiringWithinDay: withinDay,
      bytes: { p50: percentile(sizes, 50), p90: percentile(sizes, 90), p99: percentile(sizes, 99), max: sizes.length ? sizes[sizes.length - 1] : 0 }
    }
  } finally {
    await store.close()
  }
}

/** cli-progress's bar with ETA on a terminal; elsewhere a plain line every tenth of the way. */
function progressBar (stream, total) {
  if (stream.isTTY) {
    const { SingleBar, Presets } = require('cli-progress')
    const bar = new SingleBar({ stream, format: 'migrate [{bar}] {percentage}% {value}/{total} sessions, ETA {eta_formatted}', hideCursor: true }, Presets.shades_classic)
    bar.start(total, 0)
    return { update: (done) => bar.update(done), stop: () => bar.stop() }
  }
  let lastDecile = -1
  return {
    update (done) {
      const decile = total ? Math.floor((done / total) * 10) : 10
      if (decile > lastDecile) {
        lastDecile = decile
        stream.write(`migrate: ${done}/${total} sessions (${Math.floor((total ? done / total : 1) * 100)}%)\n`)
      }
    },
    stop () {}
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Copies every live session of `from` that `to` does not have, keeping its expiry (the cookie's
 * `expires`, which the target's TTL rules turn into its own). Resolves with the summary
 * `{ total, copied, alreadyThere, expired, failed, failures, seconds, dryRun }`; rejects (with
 * `err.summary`) when a store stays unreachable for `retryFor` ms.
 */
async function migrate ({ from, to, fromOptions = {}, toOptions = {}, dryRun = false, chunk = DEFAULT_CHUNK, retryFor = 30000, log = process.stderr }) {
  if (to === undefined || to === null) throw new TypeError('ferrosession migrate: --to <url> is required')
  if ((from || '') === (to || '') && JSON.stringify(fromOptions) === JSON.stringify(toOptions)) {
    throw new TypeError('ferrosession migrate: the source and the target are the same store')
  }
  const started = Date.now()
  const source = open(from, fromOptions)
  const target = open(to, toOptions)
  const summary = { total: 0, copied: 0, alreadyThere: 0, expired: 0, failed: 0, failures: [], seconds: 0, dryRun }
  let bar = null
  try {
    const ids = (await withRetry(() => source.ids(), 'source', retryFor, log)).sort()
    summary.total = ids.length
    log.write(`migrate: ${ids.length} live sessions in ${shown(from)}; ${dryRun ? 'dry run, nothing is written to' : 'copying those missing from'} ${shown(to)}\n`)
    bar = progressBar(log, ids.length)
    for (let i = 0; i < ids.length; i += chunk) {
      const sids = ids.slice(i, i + chunk)
      const [sessions, present] = await withRetry(() => Promise.all([
        Promise.all(sids.map((sid) => source.get(sid))),
        Promise.all(sids.map((sid) => target.get(sid).then((s) => s !== null, (err) => (TRANSIENT.has(err.code) ? Promise.reject(err) : false))))
      ]), 'source or target', retryFor, log)
      const todo = []
      sids.forEach((sid, k) => {
        if (present[k]) summary.alreadyThere++
        else if (!sessions[k]) summary.expired++ // expired or destroyed since the listing
        else todo.push([sid, sessions[k]])
      })
      if (!dryRun) {
        const results = await withRetry(() => Promise.all(todo.map(([sid, sess]) =>
          target.set(sid, sess).then(() => null, (err) => (TRANSIENT.has(err.code) ? Promise.reject(err) : err)))), 'target', retryFor, log)
        results.forEach((err, k) => {
          if (err) {
            summary.failed++
            if (summary.failures.length < 10) summary.failures.push(`${todo[k][0]}: ${err.message}`)
          }
        })
        summary.copied += todo.length - results.filter(Boolean).length
      } else {
        summary.copied += todo.length
      }
      bar.update(i + sids.length)
    }
    return summary
  } catch (err) {
    err.summary = summary
    throw err
  } finally {
    if (bar) bar.stop()
    summary.seconds = (Date.now() - started) / 1000
    await Promise.all([source.close(), target.close()])
  }
}

/**
 * `work()`, again after an unreachable or slow store, backing off from 250 ms, for up to
 * `retryFor` ms in all; then fails with a message that says how to go on.
 */
async function withRetry (work, which, retryFor, log) {
  const deadline = Date.now() + retryFor
  for (let wait = 250; ; wait = Math.min(wait * 2, 5000)) {
    try {
      return await work()
    } catch (err) {
      if (!TRANSIENT.has(err.code) || Date.now() + wait > deadline) {
        const stopped = new Error(`ferrosession migrate: the ${which} store failed: ${err.message}` +
          (TRANSIENT.has(err.code) ? `; gave up after ${Math.round(retryFor / 1000)} s. Run the same command again: it copies only what is missing.` : ''))
        stopped.code = err.code
        stopped.transient = TRANSIENT.has(err.code)
        throw stopped
      }
      log.write(`\nmigrate: the ${which} store is not answering (${err.code}); retrying in ${wait} ms\n`)
      await sleep(wait)
    }
  }
}

/** The summary as the command prints it. */
function describe (s) {
  const rate = s.seconds > 0 ? Math.round(s.copied / s.seconds) : s.copied
  return `migrate: ${s.dryRun ? 'dry run: would copy' : 'copied'} ${s.copied} sessions in ${s.seconds.toFixed(1)} s (${rate}/s); ` +
    `skipped ${s.alreadyThere} the target already had and ${s.expired} that expired during the run; failed ${s.failed}` +
    s.failures.map((f) => `\n  failed: ${f}`).join('')
}

module.exports = { inspect, migrate, describe }
