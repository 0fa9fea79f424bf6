'use strict'
// ferrosession: express-session stores whose I/O, pooling and cookie signing run in Rust.
// `const { RedisStore } = require('ferrosession')` replaces connect-redis's import line, and
// `const { session } = require('ferrosession')` replaces express-session's; MySqlStore and
// KnexStore replace express-mysql-session and connect-session-knex the same way, and MongoStore
// connect-mongo's.

const { RedisStore } = require('./lib/redis-store')
const { PostgresStore } = require('./lib/postgres-store')
const { SqliteStore } = require('./lib/sqlite-store')
const { MySqlStore } = require('./lib/mysql-store')
const { KnexStore } = require('./lib/knex-store')
const { MongoStore } = require('./lib/mongo-store')
const { MemoryStore } = require('./lib/memory-store')
const { createStore } = require('./lib/create-store')
const { sign, unsign } = require('./lib/signing')
const { registerMetrics } = require('./lib/metrics')
const session = require('./lib/session')

module.exports = {
  RedisStore,
  PostgresStore,
  MySqlStore,
  // express-mysql-session's and connect-session-knex's own names for the same classes.
  MySQLStore: MySqlStore,
  KnexStore,
  MongoStore,
  ConnectSessionKnexStore: KnexStore,
  SqliteStore,
  MemoryStore,
  createStore,
  sign,
  unsign,
  registerMetrics,
  session,
  default: RedisStore
}
