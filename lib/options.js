'use strict'
// Every store's options are used or refused, never dropped (docs/design.md, "Options"): a key a
// store does not know is refused with its closest known name (a misspelt `prefx` would otherwise
// leave the prefix at `sess:` and log every user out at the switch). Options of the anchors'
// earlier majors that mean nothing here are accepted, with one warning each, from one list.

/** What every ferrosession store takes. */
const { optionError } = require('./errors')
const COMMON = ['serializer', 'ttl', 'disableTouch', 'touchAfter', 'encryption', 'errorLog', 'maxSize',
  'commandTimeout', 'connectTimeout']

/** Earlier majors' options with no meaning here, and why: accepted with a warning. */
const RETIRED = {
  logErrors: 'connect-redis 3 logged errors itself; ferrosession reports them through errorLog',
  unref: 'connect-redis 3 unref\'d its client; ferrosession\'s connections never keep the process alive',
  stale: 'memorystore could return expired sessions; ferrosession never does',
  dispose: 'memorystore called it on eviction; ferrosession does not',
  noDisposeOnSet: 'memorystore\'s dispose option is not supported'
}

/**
 * Each store's own options, beside COMMON (one table: constructors check against it, createStore
 * reads it). MySQL's connection settings are refused by lib/mysql-settings.js itself.
 */
const STORE_OPTIONS = {
  redis: ['client', 'prefix', 'scanCount', 'disableTTL', 'idleTimeout', 'url', 'cluster', 'sentinel', 'tls',
    'host', 'port', 'db', 'password', 'pass', 'username'],
  postgres: ['pool', 'pgPromise', 'conObject', 'conString', 'schemaName', 'tableName', 'tablename', 'sidFieldName',
    'sidfieldname', 'createTable', 'createtable', 'createTableIfMissing', 'cleanupInterval', 'clearInterval',
    'disableDbCleanup', 'onDbCleanupError', 'layout', 'pruneSessionInterval', 'pruneSessionRandomizedInterval',
    'idleTimeout', 'statementTimeout', 'poolSize'],
  sqlite: ['path', 'tableName', 'tablename', 'sidFieldName', 'sidfieldname', 'createTable', 'createtable',
    'cleanupInterval', 'clearInterval', 'disableDbCleanup', 'onDbCleanupError', 'busyTimeout'],
  memory: ['max', 'maxBytes', 'checkPeriod'],
  mongodb: ['mongoUrl', 'clientPromise', 'client', 'dbName', 'collectionName', 'autoRemove', 'autoRemoveInterval',
    'stringify', 'crypto', 'cryptoAdapter', 'transformId', 'writeOperationOptions', 'timestamps', 'mongoOptions',
    'poolSize', 'createAutoRemoveIdx', 'serialize', 'unserialize'],
  // express-mysql-session's and connect-session-knex's; every other key is a connection setting.
  mysql: ['schema', 'createDatabaseTable', 'clearExpired', 'checkExpirationInterval', 'expiration',
    'endConnectionOnClose', 'charset', 'url', 'layout', 'tableName', 'sidFieldName', 'createTable', 'cleanupInterval',
    'onDbCleanupError', 'poolSize', 'pruneRandomizedInterval', 'tablename', 'sidfieldname', 'createtable',
    'clearInterval', 'disableDbCleanup', 'knex']
}

const warned = new Set()
/** Every name some store takes; each store's own (with COMMON): built once, used per constructor. */
const EVERY_KNOWN = new Set([...COMMON, ...Object.values(STORE_OPTIONS).flat()])
const KNOWN = Object.fromEntries(Object.entries(STORE_OPTIONS).map(([backend, own]) => [backend, new Set([...COMMON, ...own])]))

/**
 * Refuses any own key of `options` that is neither common, in `own`, nor retired; warns once per
 * retired key. `name` is the class the user wrote (`RedisStore`), `backend` our short name.
 */
function checkOptions (options, backend, name) {
  if (options === null || typeof options !== 'object') return
  const known = KNOWN[backend]
  for (const key of Object.keys(options)) {
    if (known.has(key)) continue
    if (Object.hasOwn(RETIRED, key)) {
      if (!warned.has(key)) {
        warned.add(key)
        process.emitWarning(`ferrosession ${backend}: option '${key}' is accepted and ignored: ${RETIRED[key]}`, 'FerrosessionWarning')
      }
      continue
    }
    const near = closest(key, [...known])
    throw optionError(`ferrosession ${backend}: unknown option '${key}' for ${name}` + (near ? `; did you mean '${near}'?` : ''))
  }
}

/**
 * createStore's options for the store `backend`: a key no store knows is refused (a typo); a key
 * only other stores take is left out, so that one options object serves whichever URL the app
 * is deployed with (`createTableIfMissing` means something to PostgreSQL only).
 */
function forStore (options, backend) {
  if (options === null || typeof options !== 'object') return options
  const own = KNOWN[backend]
  const out = {}
  for (const key of Object.keys(options)) {
    if (!EVERY_KNOWN.has(key) && !Object.hasOwn(RETIRED, key) && backend !== 'mysql') {
      const near = closest(key, [...EVERY_KNOWN])
      throw optionError(`ferrosession createStore: unknown option '${key}'` + (near ? `; did you mean '${near}'?` : ''))
    }
    if (own.has(key) || !EVERY_KNOWN.has(key)) out[key] = options[key]
  }
  return out
}

/** The known name nearest to `key` (edit distance, case-insensitive), if it is near enough. */
function closest (key, names) {
  let best = null
  let bestDistance = Infinity
  for (const name of names) {
    const d = distance(key.toLowerCase(), name.toLowerCase())
    if (d < bestDistance) [best, bestDistance] = [name, d]
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : null
}

function distance (a, b) {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = row
  }
  return previous[b.length]
}

module.exports = { checkOptions, forStore, closest, STORE_OPTIONS, COMMON, RETIRED }
