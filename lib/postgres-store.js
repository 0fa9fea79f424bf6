'use strict'
// PostgresStore: connect-pg-simple 10's options, table and statements (or, with layout: 'knex',
// connect-session-knex 5's), with pooling and the protocol in Rust. Connection settings come, in connect-pg-simple's order, from `pool` (an
// existing pg.Pool), `pgPromise`, `conObject`, `conString`, `DATABASE_URL`, then libpq's PG*
// environment variables; the store reads them and connects natively.

const { optionError } = require('./errors')
const { checkOptions } = require('./options')
const { NativeBackedStore } = require('./base-store')
const { normaliseTtl } = require('./expiry')
const { connectionOf } = require('./pg-settings')

const DEFAULT_PRUNE_SECONDS = 900

class PostgresStore extends NativeBackedStore {
  constructor (options = {}) {
    checkOptions(options, 'postgres', 'PostgresStore')
    super('postgres', options)
    if (options.layout !== undefined && options.layout !== 'knex' && options.layout !== 'connect-pg-simple') {
      throw optionError(`ferrosession postgres: option layout must be 'connect-pg-simple' or 'knex', got ${String(options.layout)}`)
    }
    const knex = options.layout === 'knex'
    const connection = connectionOf(options)
    let { schemaName, tableName } = options
    // connect-pg-simple's legacy spelling `schema"."table` in tableName.
    if (!schemaName && typeof tableName === 'string' && tableName.includes('"."')) {
      [schemaName, tableName] = tableName.split('"."')
    }
    this.schemaName = schemaName || undefined
    this.ttl = normaliseTtl(options.ttl, 'postgres')
    this.pruneSessionRandomizedInterval = typeof options.pruneSessionRandomizedInterval === 'function'
      ? options.pruneSessionRandomizedInterval
      : options.pruneSessionRandomizedInterval === false ? (ms) => ms : (ms) => Math.ceil(ms / 2 + ms * Math.random())
    let createTable
    if (knex) {
      // connect-session-knex 5's names, and v4's lower-case spellings.
      this.tableName = tableName ?? options.tablename ?? 'sessions'
      this.sidFieldName = options.sidFieldName ?? options.sidfieldname ?? 'sid'
      createTable = options.createTable ?? options.createtable ?? true
      const interval = options.disableDbCleanup === true ? 0 : (options.cleanupInterval ?? options.clearInterval ?? 60000)
      this.onDbCleanupError = typeof options.onDbCleanupError === 'function' ? options.onDbCleanupError : (err) => console.error(err)
      this._schedulePruning(interval, { jitter: this.pruneSessionRandomizedInterval, onError: this.onDbCleanupError })
    } else {
      this.tableName = tableName || 'session'
      createTable = Boolean(options.createTableIfMissing)
      this.pruneSessionInterval = options.pruneSessionInterval === false
        ? false
        : (options.pruneSessionInterval ?? DEFAULT_PRUNE_SECONDS) * 1000
      this._schedulePruning(this.pruneSessionInterval || 0, {
        jitter: this.pruneSessionRandomizedInterval,
        onError: (err) => this.errorLog('Failed to prune sessions:', err)
      })
    }
    // The store's own options win; then what the app's pg settings say; then the defaults.
    if (options.commandTimeout == null && connection.commandTimeoutMs) this.commandTimeout = connection.commandTimeoutMs
    if (options.connectTimeout == null && connection.connectTimeoutMs) this.connectTimeout = connection.connectTimeoutMs
    if (options.idleTimeout == null && connection.idleTimeoutMs !== undefined) this.idleTimeout = connection.idleTimeoutMs
    const statementTimeout = options.statementTimeout ?? connection.statementTimeoutMs
    this._open({
      connectionString: connection.connectionString,
      host: connection.host,
      port: connection.port,
      user: connection.user,
      password: connection.password,
      database: connection.database,
      tls: connection.tls,
      applicationName: connection.applicationName,
      startupOptions: connection.startupOptions,
      settingsSource: connection.source,
      schemaName: this.schemaName,
      tableName: this.tableName,
      createTableIfMissing: Boolean(createTable),
      layout: knex ? 'knex' : 'connect-pg-simple',
      sidColumn: knex ? String(this.sidFieldName) : undefined,
      poolSize: options.poolSize ?? connection.poolSize,
      statementTimeoutMs: statementTimeout ? Math.ceil(statementTimeout) : undefined
    })
  }

  /** connect-pg-simple's `"schema"."table"` reference. */
  quotedTable () {
    const q = (name) => '"' + String(name).replace(/"/g, '""') + '"'
    return (this.schemaName ? q(this.schemaName) + '.' : '') + q(this.tableName)
  }

  /** connect-pg-simple's name for prune(): deletes expired rows now. */
  pruneSessions (cb) {
    return this.prune(cb)
  }
}

module.exports = { PostgresStore, connectionOf }
