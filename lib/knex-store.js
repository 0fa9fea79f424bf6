'use strict'
// KnexStore: a drop-in for connect-session-knex 5 (`new ConnectSessionKnexStore({ knex, ... })`)
// and its v4 factory (`require('connect-session-knex')(session)`). It reads the app's knex
// instance (its dialect and connection settings) and returns the native store for that database,
// in connect-session-knex's `sessions` table: SqliteStore for SQLite, PostgresStore or MySqlStore
// with layout 'knex' for PostgreSQL and MySQL/MariaDB. No knex query runs; knex may be closed.

const { optionError } = require('./errors')
const { withFactoryShape } = require('./factory-shape')

/** connect-session-knex's own default without a knex instance: a SQLite file. */
const DEFAULT_SQLITE_FILE = 'connect-session-knex.sqlite'

/** The options connect-session-knex 5 and 4 take, passed on to the store as they are. */
const KNEX_OPTIONS = ['tableName', 'tablename', 'sidFieldName', 'sidfieldname', 'createTable', 'createtable',
  'cleanupInterval', 'clearInterval', 'disableDbCleanup', 'onDbCleanupError']

class KnexStore {
  constructor (options = {}) {
    const { knex } = options
    const passed = {}
    for (const [key, value] of Object.entries(options)) if (key !== 'knex') passed[key] = value
    let store
    if (!knex) {
      store = new (require('./sqlite-store').SqliteStore)({ path: DEFAULT_SQLITE_FILE, ...passed })
    } else {
      const client = knex.client
      if (!client || typeof client !== 'object') throw optionError('ferrosession knex: option knex is not a knex instance (it has no client)')
      const dialect = client.dialect
      const connection = settingsOf(client)
      if (dialect === 'sqlite3') {
        const file = connection.filename
        if (typeof file !== 'string') throw optionError('ferrosession knex: the SQLite knex connection has no filename')
        store = new (require('./sqlite-store').SqliteStore)({ ...passed, path: file })
      } else if (dialect === 'postgresql') {
        store = new (require('./postgres-store').PostgresStore)({ ...passed, ...pgOptions(connection, client), layout: 'knex' })
      } else if (dialect === 'mysql') {
        store = new (require('./mysql-store').MySqlStore)({ ...passed, ...connection, layout: 'knex' })
      } else {
        throw optionError(`ferrosession knex: the ${String(dialect)} dialect is not supported (SQLite, PostgreSQL, MySQL and MariaDB are)`)
      }
    }
    // connect-session-knex's public fields.
    store.options = { ...options, ...Object.fromEntries(KNEX_OPTIONS.filter((k) => k in passed).map((k) => [k, passed[k]])) }
    store.ready = thenableReady(store)
    return store
  }
}

/**
 * connect-session-knex's `ready` is a Promise (`await store.ready`); ours is a method
 * (`store.ready()`). This is both: the method, which can also be awaited or chained.
 */
function thenableReady (store) {
  const ready = store.ready.bind(store)
  let promise = null
  const settled = () => promise || (promise = ready())
  ready.then = (onFulfilled, onRejected) => settled().then(onFulfilled, onRejected)
  ready.catch = (onRejected) => settled().catch(onRejected)
  ready.finally = (onFinally) => settled().finally(onFinally)
  return ready
}

/**
 * The knex client's connection settings. knex keeps the password as a hidden (non-enumerable)
 * property, so each field is read by name; a connection function cannot be called from a
 * constructor and is refused.
 */
function settingsOf (client) {
  if (client.connectionConfigProvider || typeof (client.config && client.config.connection) === 'function') {
    throw optionError('ferrosession knex: a knex connection given as a function is not supported; give knex the connection settings (an object or a URL)')
  }
  if (client.config && client.config.connectionPool) {
    throw optionError('ferrosession knex: knex\'s connectionPool option (an external pool) is not supported; give knex the connection settings')
  }
  const source = client.connectionSettings || (client.config && client.config.connection) || {}
  if (typeof source === 'string') return { url: source }
  const out = {}
  for (const key of Object.getOwnPropertyNames(source)) {
    if (source[key] !== undefined) out[key] = source[key]
  }
  return out
}

/** knex's pg connection object as PostgresStore options (its searchPath is the schema). */
function pgOptions (connection, client) {
  const { connectionString, sslmode, ...conObject } = connection
  // pg-connection-string turned `sslmode` into `ssl` already when knex parsed a URL.
  if (sslmode !== undefined && conObject.ssl === undefined) {
    throw optionError('ferrosession knex: the connection\'s sslmode has no ssl setting beside it; put sslmode in a connection URL')
  }
  const searchPath = client.searchPath ?? (client.config && client.config.searchPath)
  const schemaName = Array.isArray(searchPath) ? searchPath[0] : searchPath
  if (connectionString) return { conString: connectionString, schemaName }
  return { conObject, schemaName }
}

module.exports = { KnexStore: withFactoryShape(KnexStore) }
