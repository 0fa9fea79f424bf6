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
