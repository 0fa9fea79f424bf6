'use strict'
// Runs express-session's own test suite (test/session.js and test/cookie.js of a checkout the
// caller provides, e.g. tag v1.19.0 of github.com/expressjs/session) through ferrosession's
// session() on every backend: `require('../')` in those tests gets a shim whose MemoryStore, and
// whose default store, is the backend under test. Nothing of express-session is kept in this
// repository; the suite is copied to a temporary directory with its pinned dev dependencies.
//
//   node scripts/express-session-suite.js /path/to/expressjs-session [backend ...]
//
// Backends: memory sqlite redis postgres mysql mongodb (default: all). Servers as for npm test.

const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { serviceUrl } = require('./services')

const root = path.join(__dirname, '..')
const ALL = ['memory', 'sqlite', 'redis', 'postgres', 'mysql', 'mongodb']

// The suite's `require('../')`: ferrosession's middleware, with the backend under test as
// `MemoryStore` and as the store of every session() given none. Each store gets its own
// namespace, removed when the run ends.
const SHIM = `'use strict'
const ferro = require(${JSON.stringify(root)})
const backend = process.env.FERRO_STORE
let made = 0
const stores = []
function makeStore () {
  const n = made++
  const ns = 'esuite_' + process.pid + '_' + n
  const store = {
    memory: () => new ferro.MemoryStore(),
    sqlite: () => new ferro.SqliteStore({ path: ':memory:', cleanupInterval: 0 }),
    redis: () => new ferro.RedisStore({ url: process.env.REDIS_URL, prefix: 'ferrotest:' + ns + ':' }),
    postgres: () => new ferro.PostgresStore({ conString: process.env.DATABASE_URL, schemaName: 'ferrotest_esuite_' + process.pid, tableName: 't' + n, createTableIfMissing: true, pruneSessionInterval: false }),
    mysql: () => new ferro.MySqlStore({ uri: process.env.MYSQL_URL, schema: { tableName: 'ferrotest_' + ns }, clearExpired: false }),
    mongodb: () => new ferro.MongoStore({ mongoUrl: process.env.MONGO_URL, dbName: 'ferrotest_esuite', collectionName: ns })
  }[backend]()
  stores.push(store)
  return store
}
function MemoryStore () { return makeStore() }
function session (options = {}) {
  return ferro.session(options.store ? options : { ...options, store: makeStore() })
}
Object.assign(session, ferro.session, { MemoryStore })
module.exports = session
after(async function () {
  this.timeout(30000)
  for (const store of stores) {
    await new Promise((resolve) => store.clear(() => resolve()))
    await new Promise((resolve) => store.close(() => resolve()))
  }
  if (backend === 'postgres') {
    const { Client } = require(require.resolve('pg', { paths: [${JSON.stringify(root)}] }))
    const client = new Client({ connectionString: process.env.DATABASE_URL })
    await client.connect()
    await client.query('DROP SCHEMA IF EXISTS "ferrotest_esuite_' + process.pid + '" CASCADE')
    await client.end()
  }
  if (backend === 'mysql') {
    const mysql = require(require.resolve('mysql2/promise', { paths: [${JSON.stringify(root)}] }))
    const c = await mysql.createConnection({ uri: process.env.MYSQL_URL })
    const [tables] = await c.query("SELECT table_name AS t FROM information_schema.tables WHERE table_name LIKE 'ferrotest_esuite_" + process.pid + "_%'")
    for (const { t } of tables) await c.query('DROP TABLE \`' + t + '\`')
    await c.end()
  }
})
`

async function main () {
  const [checkout, ...chosen] = process.argv.slice(2)
  if (!checkout || !fs.existsSync(path.join(checkout, 'test', 'session.js'))) {
    console.error('usage: node scripts/express-session-suite.js /path/to/expressjs-session [backend ...]')
    process.exit(2)
  }
  const backends = chosen.length ? chosen : ALL
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-esuite-'))
  let mongo = null
  try {
    fs.cpSync(path.join(checkout, 'test'), path.join(dir, 'test'), { recursive: true })
    const pkg = JSON.parse(fs.readFileSync(path.join(checkout, 'package.json'), 'utf8'))
    const wanted = ['after', 'cookie-parser', 'express', 'mocha', 'supertest'].map((name) => `${name}@${pkg.devDependencies[name]}`)
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'esuite', private: true }))
    console.log(`express-session ${pkg.version}'s suite, through ferrosession's session(): installing ${wanted.join(' ')}`)
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--silent', ...wanted], { cwd: dir, stdio: 'inherit' })
    fs.writeFileSync(path.join(dir, 'index.js'), SHIM)
    // Its `npm test` makes a self-signed certificate first (the secure-cookie tests serve HTTPS).
    execFileSync('sh', [path.join('test', 'support', 'gencert.sh')], { cwd: dir, stdio: 'ignore' })
    // The suite builds cookies with express-session's Cookie class: ours.
    fs.mkdirSync(path.join(dir, 'session'))
    fs.writeFileSync(path.join(dir, 'session', 'cookie.js'), `module.exports = require(${JSON.stringify(root)}).session.Cookie\n`)
    const env = { ...process.env, REDIS_URL: serviceUrl('REDIS_URL'), DATABASE_URL: serviceUrl('DATABASE_URL'), MYSQL_URL: serviceUrl('MYSQL_URL') }
    if (backends.includes('mongodb')) {
      mongo = await require('./mongo-server').startMongoServer()
      env.MONGO_URL = mongo.url
    }
    const results = []
    for (const backend of backends) {
      const mocha = path.join(dir, 'node_modules', 'mocha', 'bin', 'mocha.js')
      const run = spawnSync(process.execPath, [mocha, '--require', 'test/support/env', '--exit', '--reporter', 'json', '--timeout', '10000', 'test/session.js', 'test/cookie.js'],
        { cwd: dir, env: { ...env, FERRO_STORE: backend }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
      let report
      try {
        report = JSON.parse(run.stdout.slice(run.stdout.indexOf('{')))
      } catch {
        throw new Error(`mocha's report for ${backend} could not be read:\n${run.stderr}`)
      }
      const { passes, failures, pending } = report.stats
      results.push({ backend, passes, failures, pending })
      console.log(`${backend}: ${passes} passed, ${failures} failed, ${pending} pending`)
      for (const f of report.failures) console.log(`  FAILED ${f.fullTitle}: ${String(f.err.message).split('\n')[0]}`)
    }
    if (results.some((r) => r.failures > 0)) process.exitCode = 1
  } finally {
    if (mongo) await mongo.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(`express-session-suite: ${err.message}`)
  process.exit(1)
})
