'use strict'
// What the package does to the Node process around it: it lets an idle process exit, frees stores
// nobody references (and their connections), tears down cleanly with worker threads, and keeps
// its thread count bounded under load. Each runs in a fresh Node process of its own.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { backends, childTmp } = require('./support/backends')

const root = path.join(__dirname, '..')
const support = JSON.stringify(path.join(__dirname, 'support', 'backends.js'))

/** Runs `script` in `node [flags] -e`, returning status, stdout's last JSON line and stderr. */
function node (script, { flags = [], timeout = 60000 } = {}) {
  const started = Date.now()
  const tmp = childTmp()
  const child = spawnSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8', cwd: root, timeout, env: tmp.env })
  tmp.remove()
  const lines = child.stdout.trim().split('\n')
  let out = null
  try { out = JSON.parse(lines[lines.length - 1]) } catch {}
  return { status: child.status, signal: child.signal, out, stderr: child.stderr, ms: Date.now() - started }
}

afterAll(async () => {
  for (const name of ['redis', 'postgres']) await backends[name].cleanup('child_process')
})

test('an idle store of every kind lets the process exit on its own, without close()', () => {
  const r = node(`
    const { backends } = require(${support})
    const sess = { cookie: { expires: new Date(Date.now() + 60000).toISOString() } }
    const run = async () => {
      for (const name of ['memory', 'sqlite', 'redis', 'postgres']) {
        const store = backends[name].create('child_process', name === 'postgres' ? { pruneSessionInterval: 1 } : {})
        await store.set('a', sess)
        await store.get('a')
      }
      console.log(JSON.stringify({ answered: true }))
    }
    run()`, { timeout: 15000 })
  expect(r.signal).toBeNull() // not killed by the timeout: it exited by itself
  expect(r.status).toBe(0)
  expect(r.out).toEqual({ answered: true })
})

test('stores that are never closed are collected and release their files and connections', () => {
  const r = node(`
    const fs = require('node:fs')
    const { backends } = require(${support})
    const fds = () => fs.readdirSync('/proc/self/fd').length
    const sess = { cookie: { expires: new Date(Date.now() + 60000).toISOString() } }
    const threads = () => fs.readdirSync('/proc/self/task').length
    // Collected stores close their files on their own threads: wait until those have ended.
    const settle = async () => {
      for (let i = 0; i < 200; i++) {
        global.gc()
        await new Promise((r) => setTimeout(r, 50))
        if (threads() < 20 && i > 3) return
      }
    }
    const run = async () => {
      const before = fds()
      // 1,000 SQLite stores, each used once and dropped (each would hold a file open for good).
      for (let i = 0; i < 1000; i++) {
        const s = backends.sqlite.create('child_process', { ownFile: i % 50 === 0, cleanupInterval: 60000 })
        await s.set('a', sess)
      }
      await settle()
      const afterSqlite = fds()
      // 120 PostgreSQL stores (the server allows 100 connections): each opens one and is dropped.
      let pgErrors = 0
      for (let i = 0; i < 120; i++) {
        const s = backends.postgres.create('child_process', { poolSize: 1, pruneSessionInterval: 600 })
        await s.set('a', sess).catch(() => pgErrors++)
        if (i % 25 === 24) await settle()
      }
      await settle()
      console.log(JSON.stringify({ before, afterSqlite, afterPg: fds(), pgErrors }))
    }
    run()`, { flags: ['--expose-gc'], timeout: 120000 })
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  console.log(`unclosed stores: ${JSON.stringify(r.out)}`)
  expect(r.out.pgErrors).toBe(0) // no "too many clients"
  expect(r.out.afterSqlite - r.out.before).toBeLessThan(100)
  expect(r.out.afterPg - r.out.before).toBeLessThan(100)
}, 150000)

test('loaded only in worker threads that are terminated mid-flight: no panic, no noise, a clean exit', () => {
  const r = node(`
    const { Worker } = require('node:worker_threads')
    const body = \`
      const { backends } = require(${support.replace(/\\/g, '\\\\')})
      const store = backends[require('node:worker_threads').workerData].create('child_process')
      const sess = { cookie: { expires: new Date(Date.now() + 60000).toISOString() } }
      const loop = () => { for (let i = 0; i < 50; i++) store.set('w' + i, sess, () => {}); store.get('w1', loop) }
      loop()
      require('node:worker_threads').parentPort.postMessage('running')\`
    const run = async () => {
      for (let round = 0; round < 8; round++) {
        const workers = ['sqlite', 'redis', 'postgres', 'memory'].map((name) => new Worker(body, { eval: true, workerData: name }))
        await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))))
        await new Promise((resolve) => setTimeout(resolve, 100))
        await Promise.all(workers.map((w) => w.terminate()))
      }
      console.log(JSON.stringify({ rounds: 8 }))
    }
    run()`, { timeout: 60000 })
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  expect(r.out).toEqual({ rounds: 8 })
})

test('SQLite with 256 requests in flight keeps a fixed, small number of threads', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-threads-'))
  try {
    const r = node(`
      const fs = require('node:fs')
      const { SqliteStore } = require('.')
      const store = new SqliteStore({ path: ${JSON.stringify(path.join(dir, 's.sqlite'))}, cleanupInterval: 0 })
      const threads = () => fs.readdirSync('/proc/self/task').length
      const sess = () => ({ cookie: { expires: new Date(Date.now() + 60000).toISOString() }, blob: 'x'.repeat(1000) })
      const run = async () => {
        await store.set('seed', sess())
        let most = threads()
        await new Promise((resolve) => {
          let left = 256 * 20
          let chains = 256
          const next = () => {
            most = Math.max(most, threads())
            if (left-- <= 0) { if (--chains === 0) resolve(); return }
            store.set('s' + (left % 1000), sess(), next)
          }
          for (let i = 0; i < 256; i++) next()
        })
        await store.close()
        console.log(JSON.stringify({ most }))
      }
      run()`)
    expect(r.status).toBe(0)
    console.log(`sqlite at 256 in flight: at most ${r.out.most} threads in the process`)
    expect(r.out.most).toBeLessThan(20) // node's own ~10, one runtime worker, two connection threads
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
