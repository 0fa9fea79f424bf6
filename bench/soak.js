'use strict'
// Soak: 1,000,000 mixed operations (60% get, 25% set, 10% touch, 5% destroy; 256 in flight, over
// 10,000 sessions of ~1 KB) against each backend, sampling RSS. RSS must level off: it is
// reported before, every 100,000 operations, and after close. Not a test: run it by hand.
//   node --expose-gc bench/soak.js [redis postgres sqlite memory] [--ops N]
// Addresses come from REDIS_URL and DATABASE_URL, as in the tests.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { RedisStore, PostgresStore, SqliteStore, MemoryStore } = require('..')

const args = process.argv.slice(2)
const OPS = Number((args.find((a) => a.startsWith('--ops=')) || '--ops=1000000').slice(6))
const IN_FLIGHT = 256
const SESSIONS = 10000
const chosen = args.filter((a) => !a.startsWith('--'))
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-soak-'))

const makers = {
  redis: () => new RedisStore({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379', prefix: `soak:${process.pid}:` }),
  postgres: () => new PostgresStore({
    conString: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
    tableName: `soak_${process.pid}`,
    createTableIfMissing: true,
    pruneSessionInterval: false
  }),
  sqlite: () => new SqliteStore({ path: path.join(dir, 'soak.sqlite'), cleanupInterval: 0 }),
  memory: () => new MemoryStore({ max: SESSIONS * 2 })
}

const mb = () => Math.round(process.memoryUsage().rss / 1048576)
const gc = () => global.gc && global.gc()

function session (i) {
  return {
    cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' },
    user: { id: i, name: `user ${i}`, roles: ['reader', 'writer'] },
    cart: Array.from({ length: 8 }, (_, k) => ({ sku: `SKU-${i}-${k}`, qty: k + 1, price: 9.99 + k })),
    note: 'x'.repeat(300)
  }
}

async function soak (name) {
  const store = makers[name]()
  gc()
  const before = mb()
  const samples = []
  let issued = 0
  let errors = 0
  const started = Date.now()
  await new Promise((resolve) => {
    let done = 0
    const next = () => {
      if (issued >= OPS) return
      const n = issued++
      const sid = `s${n % SESSIONS}`
      const roll = n % 20
      const cb = (err) => {
        if (err) errors++
        if (++done % 100000 === 0) { gc(); samples.push(mb()) }
        if (done === OPS) resolve()
        else next()
      }
      if (roll < 12) store.get(sid, cb)
      else if (roll < 17) store.set(sid, session(n), cb)
      else if (roll < 19) store.touch(sid, session(n), cb)
      else store.destroy(sid, cb)
    }
    for (let i = 0; i < IN_FLIGHT; i++) next()
  })
  const seconds = (Date.now() - started) / 1000
  await store.clear()
  await store.close()
  gc()
  await new Promise((resolve) => setTimeout(resolve, 200))
  gc()
  const result = { backend: name, ops: OPS, errors, seconds, opsPerSec: Math.round(OPS / seconds), rssBeforeMb: before, rssSamplesMb: samples, rssAfterMb: mb() }
  const half = samples.slice(Math.floor(samples.length / 2))
  result.secondHalfGrowthMb = half.length ? half[half.length - 1] - half[0] : 0
  console.log(JSON.stringify(result))
  return result
}

async function main () {
  if (!global.gc) console.error('soak: run with node --expose-gc for steadier RSS samples')
  const names = chosen.length ? chosen : Object.keys(makers)
  const results = []
  for (const name of names) results.push(await soak(name))
  console.log('\n| backend | ops | errors | ops/s | RSS before | RSS every 100k ops (MB) | RSS after close | growth over the second half |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const r of results) {
    console.log(`| ${r.backend} | ${r.ops} | ${r.errors} | ${r.opsPerSec} | ${r.rssBeforeMb} MB | ${r.rssSamplesMb.join(' ')} | ${r.rssAfterMb} MB | ${r.secondHalfGrowthMb} MB |`)
  }
  fs.rmSync(dir, { recursive: true, force: true })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
