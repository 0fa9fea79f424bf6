'use strict'
// `ferrosession inspect` and `ferrosession migrate`: what a store holds, and copying every live
// session from one store to another (say connect-redis's Redis to PostgreSQL) with its expiry,
// while the app keeps using both. A session the target already has is never overwritten, so
// running a migration again (after Ctrl-C, a crash or an unreachable target) copies only what is
// missing. Each session is one write: the target never holds part of one.

const { optionError } = require('./errors')
const { createStore, withoutCredentials } = require('./create-store')

/** Errors worth waiting out: the server is down or slow, not the data wrong. */
const TRANSIENT = new Set(['ESESSION_UNAVAILABLE', 'ESESSION_TIMEOUT'])
/** Sessions are read and written this many at a time (one native batch each). */
const DEFAULT_CHUNK = 500
const HOUR = 3600 * 1000

function shown (url) {
  return url ? withoutCredentials(url) : '(embedded SQLite)'
}

function open (url, options) {
  return createStore(url || undefined, options)
}

/** Where in the store the sessions were looked for, in the words of its options. */
function whereIn (store) {
  if (typeof store.prefix === 'string') return `keys starting with ${JSON.stringify(store.prefix)} (option prefix)`
  if (typeof store.quotedTable === 'function') return `the table ${store.quotedTable()} (options schemaName, tableName)`
  if (typeof store.collectionName === 'string') return `the collection ${JSON.stringify(store.collectionName)} (option collectionName)`
  if (typeof store.path === 'string') return `the table ${JSON.stringify(store.tableName)} of ${store.path} (options path, tableName)`
  if (typeof store.tableName === 'string') return `the table ${JSON.stringify(store.tableName)}`
  return 'this process\'s memory'
}

function percentile (sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0
}

async function inspect ({ url, options = {}, now = Date.now() }) {
  let unreadable = 0
  // A stored value that does not parse reads as absent; the store reports each one here.
  const store = open(url, { ...options, errorLog: () => unreadable++ })
  try {
    const [ids] = await firstContact([{ url, flag: 'the URL', optionsFlag: '--options', options, check: () => store.ids() }])
    const sizes = []
    let withinHour = 0
    let withinDay = 0
    for (let i = 0; i < ids.length; i += DEFAULT_CHUNK) {
      const sessions = await Promise.all(ids.slice(i, i + DEFAULT_CHUNK).map((sid) => store.get(sid)))
      for (const sess of sessions) {
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
      lookedIn: whereIn(store),
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
 * `err.summary`) when a store stays unreachable for `retryFor` ms. A dry run never opens the
 * target (opening one may create its table or file): its count includes sessions the target
 * may already have.
 */
async function migrate ({ from, to, fromOptions = {}, toOptions = {}, dryRun = false, chunk = DEFAULT_CHUNK, retryFor = 30000, log = process.stderr }) {
  if (to === undefined || to === null) throw optionError('ferrosession migrate: --to <url> is required')
  if ((from || '') === (to || '') && JSON.stringify(fromOptions) === JSON.stringify(toOptions)) {
    throw optionError('ferrosession migrate: the source and the target are the same store')
  }
  const started = Date.now()
  const summary = { total: 0, copied: 0, alreadyThere: 0, expired: 0, failed: 0, failures: [], seconds: 0, dryRun }
  const fail = (sid, err) => {
    summary.failed++
    if (summary.failures.length < 10) summary.failures.push(`${sid}: ${err.message}`)
  }
  const source = open(from, fromOptions)
  let target = null
  let bar = null
  try {
    target = dryRun ? null : open(to, toOptions)
    // Both stores are checked before the first session moves: a wrong password, host or table is
    // one message at once, not 50,000 failed sessions or 30 s of retrying a server that never was.
    const [listed] = await firstContact([
      { url: from, flag: '--from', optionsFlag: '--from-options', options: fromOptions, check: () => source.ids() },
      target && { url: to, flag: '--to', optionsFlag: '--to-options', options: toOptions, check: () => canWrite(target) }
    ])
    const ids = listed.sort()
    summary.total = ids.length
    log.write(`migrate: ${ids.length} live sessions in ${shown(from)}; ${dryRun ? 'dry run: the target is not opened' : `copying those missing from ${shown(to)}`}\n`)
    bar = progressBar(log, ids.length)
    for (let i = 0; i < ids.length; i += chunk) {
      const sids = ids.slice(i, i + chunk)
      // Each sid's read settles on its own: one bad key fails that session, not the run.
      const [sessions, present] = await Promise.all([
        settleEach(sids, (sid) => source.get(sid), 'source', retryFor, log),
        target ? settleEach(sids, (sid) => target.get(sid).then((s) => s !== null), 'target', retryFor, log) : sids.map(() => ({ value: false }))
      ])
      const todo = []
      sids.forEach((sid, k) => {
        if (sessions[k].error) return fail(sid, sessions[k].error)
        // A target that cannot say whether it has the session must not get it overwritten.
        if (present[k].error) return fail(sid, present[k].error)
        if (present[k].value) summary.alreadyThere++
        else if (!sessions[k].value) summary.expired++ // expired or destroyed since the listing
        else todo.push([sid, sessions[k].value])
      })
      if (target) {
        const written = await settleEach(todo, ([sid, sess]) => target.set(sid, sess), 'target', retryFor, log)
        written.forEach((w, k) => (w.error ? fail(todo[k][0], w.error) : summary.copied++))
      } else {
        summary.copied += todo.length
      }
      bar.update(i + sids.length)
    }
    return summary
  } catch (err) {
    if (!err.beforeCopy) err.summary = summary
    throw err
  } finally {
    if (bar) bar.stop()
    summary.seconds = (Date.now() - started) / 1000
    await Promise.all([source.close(), target && target.close()])
  }
}

/**
 * `work(item)` for each item, each settling as `{ value }` or `{ error }`. Items that fail
 * because a store is unreachable or slow are tried again (only those), backing off from 250 ms,
 * for up to `retryFor` ms; then the whole run stops with a message that says how to go on.
 */
async function settleEach (items, work, which, retryFor, log) {
  const out = new Array(items.length)
  let pending = items.map((_, k) => k)
  const deadline = Date.now() + retryFor
  for (let wait = 250; ; wait = Math.min(wait * 2, 5000)) {
    const settled = await Promise.allSettled(pending.map((k) => work(items[k])))
    const again = []
    let transient = null
    settled.forEach((r, n) => {
      const k = pending[n]
      if (r.status === 'fulfilled') out[k] = { value: r.value }
      else if (TRANSIENT.has(r.reason.code)) {
        again.push(k)
        transient = r.reason
      } else out[k] = { error: r.reason }
    })
    if (!again.length) return out
    if (Date.now() + wait > deadline) throw stoppedBy(transient, which, retryFor)
    log.write(`\nmigrate: the ${which} store is not answering (${transient.code}); retrying ${again.length} in ${wait} ms\n`)
    await sleep(wait)
    pending = again
  }
}

function stoppedBy (err, which, retryFor) {
  const stopped = new Error(`ferrosession migrate: the ${which} store failed: ${err.message}` +
    (TRANSIENT.has(err.code) ? `; gave up after ${Math.round(retryFor / 1000)} s. Run the same command again: it copies only what is missing.` : ''))
  stopped.code = err.code
  stopped.transient = TRANSIENT.has(err.code)
  return stopped
}

/** A sid no app issues (uid-safe's ids are base64url): the target check reads and deletes it. */
const PROBE_SID = 'ferrosession migrate: check'

/** Reads and deletes a sid nobody has: the server answers, the login and the table work. */
async function canWrite (store) {
  await store.get(PROBE_SID)
  await store.destroy(PROBE_SID)
}

/**
 * Runs every store's first request together, without retrying: at the start an unreachable
 * server is a wrong address far more often than an outage. Rejects with one message that names
 * each store that failed, why, and the fix as the command spells it.
 */
async function firstContact (checks) {
  const results = await Promise.allSettled(checks.map((c) => (c ? c.check() : null)))
  const failed = checks.map((c, k) => c && results[k].status === 'rejected' && { ...c, err: results[k].reason }).filter(Boolean)
  if (!failed.length) return results.map((r) => r.value)
  const stopped = new Error(failed.map((c) =>
    `ferrosession: cannot use the store ${shown(c.url)} (${c.flag}): ${c.err.message}${hintFor(c)}`).join('\n'))
  stopped.code = failed[0].err.code
  stopped.beforeCopy = true
  throw stopped
}

/** What to change, in the command's spelling: a constructor option becomes `--to-options` JSON. */
function hintFor ({ err, flag, optionsFlag, options }) {
  const pass = /pass (\w+): true/.exec(err.message)
  // Never the options the user passed back: they may hold a password or a connection string.
  if (pass && Object.keys(options).length) return `\n  fix: add "${pass[1]}": true to the JSON of ${optionsFlag}`
  if (pass) return `\n  fix: add ${optionsFlag} '${JSON.stringify({ [pass[1]]: true })}'`
  if (err.code === 'ESESSION_UNAVAILABLE' || err.code === 'ESESSION_TIMEOUT') {
    return `\n  fix: check the host and port in ${flag} (is the server running and reachable from here?)`
  }
  if (/password|login|Access denied|authentication/i.test(err.message)) {
    return `\n  fix: check the user and password in ${flag} (or ${optionsFlag})`
  }
  return ''
}

/** The summary as the command prints it. */
function describe (s) {
  const rate = s.seconds > 0 ? Math.round(s.copied / s.seconds) : s.copied
  return `migrate: ${s.dryRun ? 'dry run: would copy up to' : 'copied'} ${s.copied} sessions in ${s.seconds.toFixed(1)} s (${rate}/s); ` +
    `skipped ${s.alreadyThere} the target already had and ${s.expired} that expired during the run; failed ${s.failed}` +
    s.failures.map((f) => `\n  failed: ${f}`).join('')
}

module.exports = { inspect, migrate, describe }
