'use strict'
// PostgresStore: connect-pg-simple 10's options, table and statements, with pooling and the
// protocol in Rust. Connection settings come, in connect-pg-simple's order, from `pool` (an
// existing pg.Pool), `pgPromise`, `conObject`, `conString`, `DATABASE_URL`, then libpq's PG*
// environment variables; the store reads them and connects natively.

const { NativeBackedStore } = require('./base-store')
const { binding, dispatcher } = require('./native')
const { normaliseTtl } = require('./expiry')

const DEFAULT_PRUNE_SECONDS = 900

class PostgresStore extends NativeBackedStore {
  constructor (options = {}) {
    super('postgres', options)
    const connection = connectionOf(options)
    let { schemaName, tableName } = options
    // connect-pg-simple's legacy spelling `schema"."table` in tableName.
    if (!schemaName && typeof tableName === 'string' && tableName.includes('"."')) {
      [schemaName, tableName] = tableName.split('"."')
    }
    this.schemaName = schemaName || undefined
    this.tableName = tableName || 'session'
    this.ttl = normaliseTtl(options.ttl, 'postgres')
    this.pruneSessionInterval = options.pruneSessionInterval === false
      ? false
      : (options.pruneSessionInterval ?? DEFAULT_PRUNE_SECONDS) * 1000
    this.pruneSessionRandomizedInterval = typeof options.pruneSessionRandomizedInterval === 'function'
      ? options.pruneSessionRandomizedInterval
      : options.pruneSessionRandomizedInterval === false ? (ms) => ms : (ms) => Math.ceil(ms / 2 + ms * Math.random())
    this._schedulePruning(this.pruneSessionInterval || 0, {
      jitter: this.pruneSessionRandomizedInterval,
      onError: (err) => this.errorLog('Failed to prune sessions:', err)
    })
    this._attach(binding.NativeStore.postgres(dispatcher, this._storeId, {
      ...connection,
      schemaName: this.schemaName,
      tableName: this.tableName,
      createTableIfMissing: Boolean(options.createTableIfMissing),
      poolSize: connection.poolSize ?? options.poolSize,
      connectTimeoutMs: Math.ceil(this.connectTimeout),
      commandTimeoutMs: Math.ceil(this.commandTimeout),
      statementTimeoutMs: options.statementTimeout ? Math.ceil(options.statementTimeout) : undefined
    }))
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

/** The connection settings of the first source present, in connect-pg-simple's order. */
function connectionOf (options) {
  if (options.pool) return fromPgConfig(options.pool.options || {})
  if (options.pgPromise) {
    const cn = options.pgPromise.$cn
    return typeof cn === 'string' ? { connectionString: cn } : fromPgConfig(cn || {})
  }
  if (options.conObject) return fromPgConfig(options.conObject)
  if (options.conString) return { connectionString: options.conString }
  if (process.env.DATABASE_URL) return { connectionString: process.env.DATABASE_URL }
  return fromPgConfig({
    host: process.env.PGHOST,
    port: process.env.PGPORT,
    user: process.env.PGUSER || process.env.USER,
    password: process.env.PGPASSWORD,
    database: process.env.PGDATABASE
  })
}

/** node-pg's config object (also a pg.Pool's `options`) to the native options. */
function fromPgConfig (c) {
  return {
    connectionString: c.connectionString || undefined,
    host: c.host || undefined,
    port: c.port ? Number(c.port) : undefined,
    user: c.user || undefined,
    password: typeof c.password === 'string' ? c.password : undefined,
    database: c.database || undefined,
    poolSize: c.max || undefined
  }
}

module.exports = { PostgresStore, connectionOf }
