'use strict'
// MySqlStore: express-mysql-session 3's options, table and statements (or, with layout: 'knex',
// connect-session-knex's table), with pooling and the protocol in Rust. Connection settings come
// from the options, from the mysql2/mysql pool or connection passed as the second argument (read,
// then connected to natively), or from a mysql:// URL.

const { optionError } = require('./errors')
const { NativeBackedStore } = require('./base-store')
const { COMMON, STORE_OPTIONS: OPTIONS_OF } = require('./options')
const { nativeOf, fromConnection, fromUrl } = require('./mysql-settings')
const { withFactoryShape } = require('./factory-shape')
const { normaliseTtl } = require('./expiry')

const DEFAULT_COLUMNS = { session_id: 'session_id', expires: 'expires', data: 'data' }
/** The store's own options (express-mysql-session's and ours); the rest are connection settings. */
const STORE_OPTIONS = new Set([...COMMON, ...OPTIONS_OF.mysql])

/** A sid no session can have (uid-safe never makes it): reading it changes nothing. */
const READY_PROBE_SID = '\u0000ferrosession:ready'

class MySqlStore extends NativeBackedStore {
  constructor (options = {}, connection = undefined) {
    super('mysql', options)
    this.options = options
    this.connection = connection
    this.state = 'INITIALIZING'
    const knex = options.layout === 'knex'
    if (options.layout !== undefined && options.layout !== 'knex' && options.layout !== 'express-mysql-session') {
      throw optionError(`ferrosession mysql: option layout must be 'express-mysql-session' or 'knex', got ${String(options.layout)}`)
    }
    const settings = settingsOf(options, connection)
    // express-mysql-session ends a pool it made itself, not one it was given (unless told to).
    this.endConnectionOnClose = options.endConnectionOnClose ?? !connection
    this.expiration = options.expiration ?? 86400000
    if (typeof this.expiration !== 'number' || !(this.expiration > 0)) {
      throw optionError(`ferrosession mysql: option expiration must be a positive number of ms, got ${String(options.expiration)}`)
    }
    // Sessions without a cookie expiry live `expiration` ms; our `ttl` (seconds, or a function of
    // the session, as for every ferrosession store) wins when given.
    this.ttl = options.ttl === undefined ? this.expiration / 1000 : normaliseTtl(options.ttl, 'mysql')
    const charset = options.charset ?? 'utf8mb4_bin'
    if (!/^utf8mb4_[a-z0-9_]+$/.test(String(charset))) {
      throw optionError(`ferrosession mysql: option charset must be a utf8mb4 collation (session text needs all of Unicode), got ${String(charset)}`)
    }
    let table, columns, createTable
    if (knex) {
      table = options.tableName ?? options.tablename ?? 'sessions'
      columns = { session_id: options.sidFieldName ?? options.sidfieldname ?? 'sid', expires: 'expired', data: 'sess' }
      createTable = options.createTable ?? options.createtable ?? true
      const interval = options.disableDbCleanup === true ? 0 : (options.cleanupInterval ?? options.clearInterval ?? 60000)
      this.onDbCleanupError = typeof options.onDbCleanupError === 'function' ? options.onDbCleanupError : (err) => console.error(err)
      this._schedulePruning(interval, { jitter: jitterOf(options), onError: this.onDbCleanupError })
    } else {
      const schema = options.schema || {}
      for (const key of Object.keys(schema.columnNames || {})) {
        if (!(key in DEFAULT_COLUMNS)) {
          // express-mysql-session's own message, word for word.
          throw new Error(`Unknown column specified ("${key}"). Only the following columns are configurable: "session_id", "expires", "data". Please review the documentation to understand how to correctly use this option.`)
        }
      }
      table = schema.tableName ?? 'sessions'
      columns = { ...DEFAULT_COLUMNS, ...(schema.columnNames || {}) }
      createTable = options.createDatabaseTable ?? true
      const clear = options.clearExpired ?? true
      const interval = options.checkExpirationInterval ?? 900000
      this._schedulePruning(clear ? interval : 0, {
        jitter: jitterOf(options),
        onError: (err) => this.errorLog('Failed to clear expired sessions:', err)
      })
    }
    if (settings.idleTimeoutMs !== undefined) this.idleTimeout = settings.idleTimeoutMs
    if (options.commandTimeout == null && settings.commandTimeoutMs) this.commandTimeout = settings.commandTimeoutMs
    if (options.connectTimeout == null && settings.connectTimeoutMs) this.connectTimeout = settings.connectTimeoutMs
    this.tableName = String(table) // where its sessions are (the CLI's inspect says so)
    this._open({
      host: settings.host,
      port: settings.port,
      user: settings.user,
      password: settings.password === undefined ? undefined : String(settings.password),
      database: settings.database,
      socketPath: settings.socketPath,
      tls: settings.tls,
      layout: knex ? 'knex' : 'express-mysql-session',
      tableName: String(table),
      sidColumn: String(columns.session_id),
      expiresColumn: String(columns.expires),
      dataColumn: String(columns.data),
      createTable: Boolean(createTable),
      collation: String(charset),
      poolSize: options.poolSize ?? settings.poolSize
    })
    this._readyPromise = null
  }

  /**
   * express-mysql-session's: resolves once the server answers and, with createDatabaseTable,
   * the table exists (a read of a sid that cannot be stored makes the store create it).
   */
  onReady () {
    if (!this._readyPromise) {
      this._readyPromise = this.ready()
        .then(() => this.get(READY_PROBE_SID))
        .then(() => { this.state = 'INITIALIZED' })
      this._readyPromise.catch(() => {}) // the caller's own .then/.catch sees the failure
    }
    return this._readyPromise
  }

  /**
   * express-mysql-session answers all() with an object keyed by sid; on the knex layout the
   * anchor is connect-session-knex, which answers an array.
   */
  _allShaped (pairs) {
    if (this.options.layout === 'knex') return super._allShaped(pairs)
    const sessions = {}
    // defineProperty: a sid such as "__proto__" is a key like any other, not the prototype.
    for (const [sid, sess] of pairs) Object.defineProperty(sessions, sid, { value: sess, enumerable: true, writable: true, configurable: true })
    return sessions
  }

  /** express-mysql-session's name for prune(). */
  clearExpiredSessions (cb) {
    return this.prune(cb)
  }

  close (cb) {
    const given = this.connection
    const endGiven = this.endConnectionOnClose && given && typeof given.end === 'function'
    this.state = 'CLOSING'
    const closing = new Promise((resolve, reject) => super.close((err) => (err ? reject(err) : resolve())))
      .then(() => endGiven && new Promise((resolve, reject) => {
        // mysql2's promise API returns a Promise; the callback API takes a callback.
        const result = given.end((err) => (err ? reject(err) : resolve()))
        if (result && typeof result.then === 'function') result.then(resolve, reject)
      }))
      .finally(() => { this.state = 'CLOSED' })
    if (typeof cb === 'function') {
      closing.then(() => cb(), cb)
      return undefined
    }
    return closing.then(() => undefined)
  }
}

function settingsOf (options, connection) {
  if (connection !== undefined && connection !== null) return fromConnection(connection)
  const connectionSettings = {}
  for (const key of Object.keys(options)) {
    if (!STORE_OPTIONS.has(key)) connectionSettings[key] = options[key]
  }
  if (options.url) Object.assign(connectionSettings, { ...fromUrl(options.url), ...connectionSettings })
  return nativeOf(connectionSettings, 'options')
}

/** Prune timers of a fleet spread out (each tick at 50-150 % of the interval). */
function jitterOf (options) {
  return typeof options.pruneRandomizedInterval === 'function'
    ? options.pruneRandomizedInterval
    : options.pruneRandomizedInterval === false ? (ms) => ms : (ms) => Math.ceil(ms / 2 + ms * Math.random())
}

module.exports = { MySqlStore: withFactoryShape(MySqlStore), MySqlStoreClass: MySqlStore }
