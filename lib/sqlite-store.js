'use strict'
// SqliteStore, the embedded default: SQLite compiled into the addon, in connect-session-knex's
// table (`sessions`: sid, sess JSON text, expired ISO text), so an existing knex SQLite file
// keeps working. WAL and a busy timeout let several Node processes (cluster, PM2) share a file.

const path = require('node:path')
const { checkOptions } = require('./options')
const { NativeBackedStore } = require('./base-store')
const { normaliseTtl } = require('./expiry')

const DEFAULT_FILE = 'sessions.sqlite'

class SqliteStore extends NativeBackedStore {
  constructor (options = {}) {
    checkOptions(options, 'sqlite', 'SqliteStore')
    super('sqlite', options)
    // connect-session-knex v4 spelled these in lower case; accept both.
    const file = options.path ?? DEFAULT_FILE
    this.path = file === ':memory:' ? file : path.resolve(String(file))
    this.tableName = options.tableName ?? options.tablename ?? 'sessions'
    this.sidFieldName = options.sidFieldName ?? options.sidfieldname ?? 'sid'
    this.ttl = normaliseTtl(options.ttl, 'sqlite')
    const createTable = options.createTable ?? options.createtable ?? true
    const disabled = options.disableDbCleanup === true
    const interval = options.cleanupInterval ?? options.clearInterval ?? 60000
    this.onDbCleanupError = typeof options.onDbCleanupError === 'function' ? options.onDbCleanupError : (err) => console.error(err)
    this._schedulePruning(disabled ? 0 : interval, { onError: this.onDbCleanupError })
    this._open({
      path: this.path,
      tableName: String(this.tableName),
      sidFieldName: String(this.sidFieldName),
      createTable: Boolean(createTable),
      busyTimeoutMs: options.busyTimeout ? Math.ceil(options.busyTimeout) : undefined
    })
  }
}

module.exports = { SqliteStore }
