'use strict'
// The shipped declarations must compile, with nothing skipped: index.d.ts as an app uses it, and
// binding.d.ts (generated from the Rust exports) on its own, and apps in either module system that
// import the package by name.

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc')

function compile (args) {
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', ...args], { cwd: root, stdio: 'pipe' })
  } catch (err) {
    throw new Error(`tsc rejected it:\n${err.stdout}`)
  }
}

test('the public types compile for typical app code', () => {
  compile(['--esModuleInterop', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck',
    path.join(__dirname, 'fixtures', 'usage.ts')])
}, 30000)

test('the shipped declaration files type-check themselves (no skipLibCheck)', () => {
  compile(['--types', 'node', 'binding.d.ts', 'index.d.ts'])
}, 30000)

/**
 * A scratch app that depends on ferrosession as an installed package would: `node_modules` holds
 * links to this checkout (as `ferrosession`) and to the dev dependencies, so 'ferrosession'
 * resolves through package.json's `exports`, as in a real app.
 */
function scratchApp (files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-types-'))
  const modules = path.join(dir, 'node_modules')
  fs.mkdirSync(modules)
  for (const name of fs.readdirSync(path.join(root, 'node_modules'))) {
    if (!name.startsWith('.')) fs.symlinkSync(path.join(root, 'node_modules', name), path.join(modules, name))
  }
  fs.symlinkSync(root, path.join(modules, 'ferrosession'))
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text)
  return dir
}

function compileApp (files, entry) {
  const dir = scratchApp(files)
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', entry], { cwd: dir, stdio: 'pipe' })
  } catch (err) {
    throw new Error(`tsc rejected ${entry}:\n${err.stdout}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// What an app writes, whichever module system: default and named imports, a node-redis client
// handed over as `client:`, and createStore's result used as a store.
const APP_BODY = `
const client = createClient({ url: 'redis://127.0.0.1:6379' })
const byDefault: RedisStore = new RedisStore({ client, prefix: 'app:' })
const byName = new Named.RedisStore({ url: 'redis://127.0.0.1:6379' })
const store = createStore(process.env.SESSION_STORE_URL)
store.get('sid', (err: Error | null, sess) => { if (!err) console.log(sess?.cookie.maxAge) })
const count: Promise<number> = byName.length()
session({ store: byDefault, secret: 'x', resave: false, saveUninitialized: false })
new MemoryStore({ max: 10 }).close()
export { count, store }
`

test('an ESM TypeScript app (nodenext, "type": "module") type-checks default and named imports', () => {
  compileApp({
    'package.json': JSON.stringify({ name: 'esm-app', type: 'module' }),
    'app.ts': `import RedisStore, { createStore, MemoryStore, session } from 'ferrosession'
import * as Named from 'ferrosession'
import { createClient } from 'redis'
${APP_BODY}`
  }, 'app.ts')
}, 60000)

test('a CommonJS TypeScript app (nodenext) type-checks default and named imports', () => {
  compileApp({
    'package.json': JSON.stringify({ name: 'cjs-app' }),
    'app.cts': `import Named = require('ferrosession')
import { createClient } from 'redis'
const { createStore, MemoryStore, session } = Named
const RedisStore = Named.default
type RedisStore = Named.RedisStore
${APP_BODY}`
  }, 'app.cts')
}, 60000)

test('a Fastify TypeScript app (ESM) passes our stores to @fastify/session', () => {
  compileApp({
    'package.json': JSON.stringify({ name: 'fastify-app', type: 'module' }),
    'app.ts': `import Fastify from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import { RedisStore, SqliteStore, createStore } from 'ferrosession'
const app = Fastify()
await app.register(fastifyCookie)
await app.register(fastifySession, { secret: 'a secret with at least 32 characters in it', store: new RedisStore({ url: 'redis://127.0.0.1:6379' }) })
await app.register(fastifySession, { secret: 'a secret with at least 32 characters in it', store: createStore(process.env.SESSION_STORE_URL) })
await app.register(fastifySession, { secret: 'a secret with at least 32 characters in it', store: new SqliteStore() })
`
  }, 'app.ts')
}, 60000)

/**
 * What each kind of store hands its native factory (`openNative`), captured from real
 * constructions (no connection is opened: stores connect on first use), across the settings
 * that shape those objects most: layouts, TLS, clusters and sentinels, client objects.
 */
function capturedOpenings () {
  const native = require('../lib/native')
  const ferro = require('..')
  const seen = []
  const real = native.openNative
  native.openNative = (backend, storeId, common, settings) => {
    seen.push({ backend, common, settings })
    return real(backend, storeId, common, settings)
  }
  const stores = []
  try {
    const make = (Class, options) => stores.push(new Class(options))
    make(ferro.MemoryStore, { max: 10, maxBytes: 1e6 })
    make(ferro.SqliteStore, { path: ':memory:', tableName: 't', busyTimeout: 100 })
    make(ferro.RedisStore, { url: 'rediss://u:p@127.0.0.2:7000/2', prefix: 'p:', scanCount: 10, idleTimeout: 0 })
    make(ferro.RedisStore, { cluster: { rootNodes: [{ url: 'redis://127.0.0.2:7001' }] } })
    make(ferro.RedisStore, { sentinel: { sentinels: [{ host: '127.0.0.2', port: 26379 }], name: 'm', sentinelPassword: 'x' } })
    make(ferro.PostgresStore, { conString: 'postgres://u@127.0.0.2/db?sslmode=require', schemaName: 's', statementTimeout: 500, createTableIfMissing: true })
    make(ferro.PostgresStore, { conObject: { host: '127.0.0.2', ssl: { rejectUnauthorized: false }, application_name: 'a' } })
    make(ferro.ConnectSessionKnexStore, { knex: require('knex')({ client: 'pg', connection: 'postgres://127.0.0.2/db' }), createTable: false })
    make(ferro.MySqlStore, { host: '127.0.0.2', user: 'u', password: 'p', database: 'd', ssl: { rejectUnauthorized: true }, createDatabaseTable: false })
    make(ferro.ConnectSessionKnexStore, { knex: require('knex')({ client: 'mysql2', connection: { host: '127.0.0.2' } }), createTable: false })
    make(ferro.MongoStore, { mongoUrl: 'mongodb://127.0.0.2:27017/db', autoRemove: 'interval', touchAfter: 60, writeOperationOptions: { w: 'majority', j: true } })
  } finally {
    native.openNative = real
    for (const store of stores) store.close?.(() => {})
  }
  return seen
}

const OPTION_TYPES = { memory: 'MemoryOptions', sqlite: 'SqliteOptions', redis: 'RedisOptions', postgres: 'PostgresOptions', mysql: 'MysqlOptions', mongodb: 'MongoOptions' }

test('the option objects lib/ hands to Rust type-check against binding.d.ts (no field misspelt, missing or mistyped)', () => {
  const seen = capturedOpenings()
  expect(new Set(seen.map((s) => s.backend))).toEqual(new Set(Object.keys(OPTION_TYPES)))
  // As object literals, so a field binding.d.ts does not declare is an error too.
  const literal = (value) => JSON.stringify(value, (_key, v) => (v === undefined ? undefined : v))
  const lines = seen.map(({ backend, common, settings }, i) =>
    `const common${i}: CommonOptions = ${literal(common)}\nconst settings${i}: ${OPTION_TYPES[backend]} = ${literal(settings)}`)
  const names = ['CommonOptions', ...new Set(Object.values(OPTION_TYPES))]
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-boundary-'))
  try {
    const file = path.join(dir, 'boundary.ts')
    fs.writeFileSync(file, `import type { ${names.join(', ')} } from '${path.join(root, 'binding')}'\n${lines.join('\n')}\nexport {}\n`)
    compile(['--types', 'node', '--noUnusedLocals', 'false', file])
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}, 60000)
