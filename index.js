'use strict'
// ferrosession: express-session stores whose I/O, pooling and cookie signing run in Rust.
// `const { RedisStore } = require('ferrosession')` replaces connect-redis's import line.

const { RedisStore } = require('./lib/redis-store')
const { PostgresStore } = require('./lib/postgres-store')
const { SqliteStore } = require('./lib/sqlite-store')
const { MemoryStore } = require('./lib/memory-store')
const { createStore } = require('./lib/create-store')
const { sign, unsign } = require('./lib/signing')

module.exports = { RedisStore, PostgresStore, SqliteStore, MemoryStore, createStore, sign, unsign, default: RedisStore }
