'use strict'
// How each backend's stores are made for the tests. Every store gets its own namespace (a Redis
// prefix, a PostgreSQL table in the suite's own schema), so suites and tests never collide, and
// every store is closed after its suite. Addresses come from REDIS_URL / DATABASE_URL.

const { closedPort } = require('../../scripts/ports')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const { RedisStore, PostgresStore, SqliteStore, MemoryStore, MySqlStore, MongoStore } = require('../..')

const { serviceUrl } = require('../../scripts/services')

const REDIS_URL = serviceUrl('REDIS_URL')
const DATABASE_URL = serviceUrl('DATABASE_URL')
const MYSQL_URL = serviceUrl('MYSQL_URL')

/** The MongoDB-wire-compatible server global-setup.js started (or MONGO_URL as given). */
function mongoUrl () {
  if (!process.env.MONGO_URL) throw new Error('MONGO_URL is not set: run the tests through jest (its global setup starts the server)')
  return process.env.MONGO_URL
}

/** MYSQL_URL's parts, for the mariadb command line and for stores in other databases. */
function mysqlServer () {
  const u = new URL(MYSQL_URL)
  return { host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: decodeURIComponent(u.password || '') }
}

/**
 * Each suite's own MySQL database, created on first use. Synchronously, with the mariadb (or
 * mysql) command line, because stores are made synchronously.
 */
const mysqlDatabases = new Set()
function mysqlDatabase (suite) {
  const name = `ferrotest_${suite}_${RUN}`
  if (!mysqlDatabases.has(name)) {
    mysqlSql(`CREATE DATABASE IF NOT EXISTS \`${name}\``)
    mysqlDatabases.add(name)
  }
  return name
}

function mysqlSql (statement) {
  const { host, port, user, password } = mysqlServer()
  const cli = ['mariadb', 'mysql'].find((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0)
  if (!cli) throw new Error('the mariadb (or mysql) command line client is needed to prepare the MySQL tests')
  const args = ['--no-defaults', '-h', host, '-P', String(port), '-u', user, '-e', statement]
  const result = spawnSync(cli, args, { encoding: 'utf8', env: { ...process.env, MYSQL_PWD: password } })
  if (result.status !== 0) throw new Error(`${cli} ${statement}: ${result.stderr.trim()}`)
  return result.stdout
}

async function dropMysqlDatabase (suite) {
  const name = `ferrotest_${suite}_${RUN}`
  const mysql = require('mysql2/promise')
  const connection = await mysql.createConnection({ ...mysqlServer(), password: mysqlServer().password || undefined })
  await connection.query(`DROP DATABASE IF EXISTS \`${name}\``)
  await connection.end()
  mysqlDatabases.delete(name)
}

let counter = 0
const uniq = () => `${process.pid}_${Date.now().toString(36)}_${++counter}`

/**
 * This test run: Redis prefixes and PostgreSQL schemas are named after it, so two runs at once
 * (or a run and a child process of another) never clean up each other's data. Child processes
 * started through childTmp() inherit their parent's run.
 */
const RUN = process.env.FERROTEST_RUN || String(process.pid)

/** A fresh temporary directory per suite for SQLite files, removed by cleanup. */
const sqliteDirs = new Map()
function sqliteDir (suite) {
  // A child process started by a test is given FERROTEST_TMP: a directory its parent removes.
  const base = process.env.FERROTEST_TMP || os.tmpdir()
  if (!sqliteDirs.has(suite)) sqliteDirs.set(suite, fs.mkdtempSync(path.join(base, `ferrotest-${suite}-`)))
  return sqliteDirs.get(suite)
}

/** A temporary directory for child processes' files (FERROTEST_TMP), and how to remove it. */
function childTmp () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-child-'))
  return { dir, env: { ...process.env, FERROTEST_TMP: dir, FERROTEST_RUN: RUN }, remove: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/** One node-redis client per suite for looking at what Redis holds, opened on first use. */
let inspecting = null
function inspector () {
  if (!inspecting) inspecting = require('redis').createClient({ url: REDIS_URL }).connect()
  return inspecting
}

const backends = {
  redis: {
    name: 'redis',
    create (suite, options = {}) {
      return new RedisStore({ url: REDIS_URL, prefix: `ferrotest:${suite}:${RUN}:${uniq()}:`, ...options })
    },
    async unreachable (options = {}) {
      return new RedisStore({ url: `redis://127.0.0.1:${await closedPort()}`, prefix: 'nowhere:', ...options })
    },
    /** The expiry Redis itself holds for a session (PTTL), for rules that Redis enforces. */
    async serverTtlMs (store, sid) {
      return (await inspector()).pTTL(store.prefix + sid)
    },
    reopen: (store, options) => new RedisStore({ url: REDIS_URL, prefix: store.prefix, ...options }),
    async cleanup (suite) {
      const { createClient } = require('redis')
      const client = await createClient({ url: REDIS_URL }).connect()
      for await (const keys of client.scanIterator({ MATCH: `ferrotest:${suite}:${RUN}:*`, COUNT: 500 })) {
        if (keys.length) await client.del(keys)
      }
      await client.quit()
      if (inspecting) await (await inspecting).quit()
      inspecting = null
    }
  },

  postgres: {
    name: 'postgres',
    // connect-pg-simple's table keeps whole seconds (rounded up): a session without a cookie
    // expiry lives up to a second longer than its ttl. Sessions with one are checked to the ms.
    granularityMs: 1000,
    create (suite, options = {}) {
      return new PostgresStore({
        conString: DATABASE_URL,
        schemaName: `ferrotest_${suite}_${RUN}`,
        tableName: `t_${uniq()}`,
        createTableIfMissing: true,
        pruneSessionInterval: false,
        poolSize: 2,
        ...options
      })
    },
    async unreachable (options = {}) {
      return new PostgresStore({
        conString: `postgres://postgres@127.0.0.1:${await closedPort()}/test`,
        pruneSessionInterval: false,
        ...options
      })
    },
    reopen: (store, options) => new PostgresStore({ conString: DATABASE_URL, schemaName: store.schemaName, tableName: store.tableName, pruneSessionInterval: false, ...options }),
    async cleanup (suite) {
      const { Client } = require('pg')
      const client = new Client({ connectionString: DATABASE_URL })
      await client.connect()
      await client.query(`DROP SCHEMA IF EXISTS "ferrotest_${suite}_${RUN}" CASCADE`)
      await client.end()
    }
  },

  postgres_knex: {
    name: 'postgres_knex',
    errorName: 'postgres',
    maxSidLength: 255, // connect-session-knex's varchar(255)
    // connect-session-knex's timestamptz keeps microseconds.
    create (suite, options = {}) {
      return new PostgresStore({
        conString: DATABASE_URL,
        schemaName: `ferrotest_${suite}_${RUN}`,
        tableName: `t_${uniq()}`,
        layout: 'knex',
        cleanupInterval: 0,
        poolSize: 2,
        ...options
      })
    },
    async unreachable (options = {}) {
      return new PostgresStore({ conString: `postgres://postgres@127.0.0.1:${await closedPort()}/test`, layout: 'knex', cleanupInterval: 0, ...options })
    },
    reopen: (store, options) => new PostgresStore({ conString: DATABASE_URL, schemaName: store.schemaName, tableName: store.tableName, layout: 'knex', cleanupInterval: 0, ...options }),
    cleanup: (suite) => backends.postgres.cleanup(suite)
  },

  mysql: {
    name: 'mysql',
    allShape: 'object', // express-mysql-session's all(): an object keyed by sid
    // express-mysql-session's table keeps whole seconds (Math.round): a session without a cookie
    // expiry lives up to half a second longer than its ttl.
    granularityMs: 1000,
    maxSidLength: 128, // express-mysql-session's varchar(128)
    namespace: (name) => ({ schema: { tableName: name } }),
    create (suite, options = {}) {
      return new MySqlStore({
        ...mysqlServer(),
        database: mysqlDatabase(suite),
        schema: { tableName: `t_${uniq()}` },
        clearExpired: false,
        poolSize: 2,
        ...options
      })
    },
    async unreachable (options = {}) {
      return new MySqlStore({ host: '127.0.0.1', port: await closedPort(), user: 'root', clearExpired: false, ...options })
    },
    reopen: (store, options) => new MySqlStore({ ...mysqlServer(), database: store.options.database, schema: store.options.schema, clearExpired: false, ...options }),
    cleanup: dropMysqlDatabase
  },

  mysql_knex: {
    name: 'mysql_knex',
    errorName: 'mysql',
    // connect-session-knex's MySQL datetime keeps whole seconds (floored).
    granularityMs: 1000,
    maxSidLength: 255, // connect-session-knex's varchar(255)
    namespace: (name) => ({ tableName: name }),
    jsonDepthLimit: 32, // MariaDB's json_valid CHECK on the json column
    create (suite, options = {}) {
      return new MySqlStore({
        ...mysqlServer(),
        database: mysqlDatabase(suite),
        layout: 'knex',
        tableName: `t_${uniq()}`,
        cleanupInterval: 0,
        poolSize: 2,
        ...options
      })
    },
    async unreachable (options = {}) {
      return new MySqlStore({ host: '127.0.0.1', port: await closedPort(), user: 'root', layout: 'knex', cleanupInterval: 0, ...options })
    },
    reopen: (store, options) => new MySqlStore({ ...mysqlServer(), database: store.options.database, layout: 'knex', tableName: store.options.tableName, cleanupInterval: 0, ...options }),
    cleanup: dropMysqlDatabase
  },

  mongodb: {
    name: 'mongodb',
    clearAnswers: 'nothing', // connect-mongo's clear() calls back with no value
    namespace: (name) => ({ collectionName: name }),
    create (suite, options = {}) {
      return new MongoStore({ mongoUrl: mongoUrl(), dbName: `ferrotest_${suite}_${RUN}`, collectionName: `c_${uniq()}`, ...options })
    },
    async unreachable (options = {}) {
      return new MongoStore({ mongoUrl: `mongodb://127.0.0.1:${await closedPort()}/`, ...options })
    },
    reopen: (store, options) => new MongoStore({ mongoUrl: mongoUrl(), dbName: store.options.dbName, collectionName: store.collectionName, ...options }),
    async cleanup (suite) {
      const { MongoClient } = require('mongodb')
      const client = await MongoClient.connect(mongoUrl(), { serverSelectionTimeoutMS: 3000 })
      await client.db(`ferrotest_${suite}_${RUN}`).dropDatabase()
      await client.close()
    }
  },

  sqlite: {
    name: 'sqlite',
    create (suite, { ownFile = false, ...options } = {}) {
      // One file per suite, one table per store: stores share the file as app processes would.
      // `ownFile` gives the store a file of its own (to count its open file descriptors).
      const file = path.join(sqliteDir(suite), ownFile ? `own-${uniq()}.sqlite` : 'sessions.sqlite')
      return new SqliteStore({ path: file, tableName: `t_${uniq()}`, cleanupInterval: 0, ...options })
    },
    async unreachable (options = {}) {
      return new SqliteStore({ path: '/nonexistent-dir/ferrosession/sessions.sqlite', cleanupInterval: 0, ...options })
    },
    reopen: (store, options) => new SqliteStore({ path: store.path, tableName: store.tableName, cleanupInterval: 0, ...options }),
    /** How many file descriptors this process holds on the store's database file. */
    openFiles (store) {
      return fs.readdirSync('/proc/self/fd').filter((fd) => {
        try { return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(store.path) } catch { return false }
      }).length
    },
    async cleanup (suite) {
      if (sqliteDirs.has(suite)) fs.rmSync(sqliteDirs.get(suite), { recursive: true, force: true })
      sqliteDirs.delete(suite)
    }
  },

  memory: {
    name: 'memory',
    allShape: 'object', // express-session's MemoryStore all(): an object keyed by sid
    // memorystore's ttl is in milliseconds.
    ttlScale: 1000,
    create (suite, options = {}) {
      return new MemoryStore(options)
    },
    // In-process: there is no server to be unreachable.
    unreachable: null,
    async cleanup () {}
  }
}

/**
 * Stores made through this tracker are closed, and the suite's namespace dropped, in afterAll.
 * `name` must be unique per suite file (it names the Redis prefix and the PostgreSQL schema).
 */
function storeFactory (backend, suite) {
  const made = []
  const factory = {
    backend,
    create (options) {
      const store = backend.create(suite, options)
      made.push(store)
      return store
    },
    async unreachable (options) {
      if (!backend.unreachable) throw new Error(`${backend.name} has no server to be unreachable`)
      const store = await backend.unreachable(options)
      made.push(store)
      return store
    },
    async closeAll () {
      await Promise.all(made.splice(0).map((s) => s.close()))
      await backend.cleanup(suite)
    }
  }
  return factory
}

/** An express-session-shaped session whose cookie lives `ms` more milliseconds. */
function sessionData (ms = 60000, data = {}) {
  return {
    cookie: { originalMaxAge: ms, expires: new Date(Date.now() + ms).toISOString(), httpOnly: true, path: '/' },
    ...data
  }
}

/**
 * Runs `body` in a fresh Node process with `store` bound to a store of `backend`, and returns the
 * JSON its last output line holds. For behaviour Jest's sandbox hides (uncaught exceptions).
 */
function runInNode (backend, body) {
  const script = `
    const { backends } = require(${JSON.stringify(__filename)})
    const store = backends[${JSON.stringify(backend.name)}].create('child')
    ${body}`
  const tmp = childTmp()
  let result
  try {
    result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15000, cwd: path.join(__dirname, '..', '..'), env: tmp.env })
  } finally {
    tmp.remove()
  }
  if (result.status !== 0) throw new Error(`child exited ${result.status}: ${result.stderr}`)
  const lines = result.stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1])
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A store method called with a callback, as a Promise. Not util.promisify: the anchors' methods
 * are async functions that also return a Promise when given a callback, which Node 22 reports
 * as a likely mistake (DEP0174) on every call.
 */
const call = (store, method, ...args) => new Promise((resolve, reject) => {
  store[method](...args, (err, value) => (err ? reject(err) : resolve(value)))
})

/** Fails every test of the file during which an unhandled rejection or uncaught exception escaped. */
function failOnEscapedErrors () {
  const escaped = []
  const onEscape = (err) => escaped.push(err)
  beforeAll(() => {
    process.on('unhandledRejection', onEscape)
    process.on('uncaughtException', onEscape)
  })
  afterAll(() => {
    process.off('unhandledRejection', onEscape)
    process.off('uncaughtException', onEscape)
  })
  afterEach(() => expect(escaped).toEqual([]))
}

/** The connect/disconnect events a store emits, in order; the store is added to `stores` (closed by the caller). */
function watchEvents (store, stores) {
  const events = []
  store.on('disconnect', () => events.push('disconnect'))
  store.on('connect', () => events.push('connect'))
  stores.push(store)
  return events
}

/**
 * An injected clock: fakes only `Date` (timers keep running), so a test moves time forward with
 * `tick(ms)` instead of sleeping. Every store reads "now" from Date.now() (the JS clock is the clock).
 */
function fakeDate (now = Date.now()) {
  const FakeTimers = require('@sinonjs/fake-timers')
  const clock = FakeTimers.install({ now, toFake: ['Date'] })
  return { tick: (ms) => clock.tick(ms), uninstall: () => clock.uninstall() }
}

/** all()'s answer as an array of sessions with their ids, whichever shape the store answers in. */
function sessionsOf (all) {
  return Array.isArray(all) ? all : Object.keys(all).map((id) => ({ ...all[id], id }))
}

module.exports = { sessionsOf, backends, mongoUrl, storeFactory, sessionData, sleep, call, failOnEscapedErrors, watchEvents, fakeDate, runInNode, childTmp, closedPort, mysqlServer, mysqlSql, RUN, REDIS_URL, DATABASE_URL, MYSQL_URL }
