'use strict'
// ferrosession: express-session stores whose I/O, pooling and cookie signing run in Rust.
// `const { RedisStore } = require('ferrosession')` replaces connect-redis's import line, and
// `const { session } = require('ferrosession')` replaces express-session's.

const { RedisStore } = require('./lib/redis-store')
const { PostgresStore } = require('./lib/postgres-store')
const { SqliteStore } = require('./lib/sqlite-store')
const { MemoryStore } = require('./lib/memory-store')
const { createStore } = require('./lib/create-store')
const { sign, unsign } = require('./lib/signing')
const session = require('./lib/session')

module.exports = { RedisStore, PostgresStore, SqliteStore, MemoryStore, createStore, sign, unsign, session, default: RedisStore }
