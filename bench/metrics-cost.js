'use strict'
// What the per-store counting behind store.metrics() costs: the same store with its counters and
// with them replaced by no-ops, MemoryStore (no I/O, so the counting is the largest share it can
// be) and RedisStore, 2 KB sessions, 64 requests in flight, rounds interleaved so drift hits both
// alike. Reports ops/s and main-thread (event-loop) CPU per op, and their ratios.
//   node --expose-gc bench/metrics-cost.js [rounds] [ms per run]

const { MemoryStore, RedisStore } = require('..')
const { interleaved, median } = require('./lib/measure')

const ROUNDS = Number(process.argv[2] || 5)
const MS = Number(process.argv[3] || 2000)
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379'

/** Counters with the same methods that count nothing. */
const uncounted = { started: () => 0, finished () {}, sent () {}, outage () {} }

async function main () {
  const prefix = `ferrobench:metrics:${process.pid}:`
  const stores = {
    memory: { counted: new MemoryStore(), uncounted: new MemoryStore() },
    redis: { counted: new RedisStore({ url, prefix: `${prefix}a:` }), uncounted: new RedisStore({ url, prefix: `${prefix}b:` }) }
  }
  const results = {}
  for (const [backend, pair] of Object.entries(stores)) {
    pair.uncounted._metrics = uncounted
    results[backend] = await interleaved(pair, { ops: ['get', 'set'], rounds: ROUNDS, ms: MS })
  }
  const lines = ['| store | op | uncounted ops/s | counted ops/s | ratio | main CPU µs/op uncounted → counted |', '|---|---|---|---|---|---|']
  for (const [backend, byOp] of Object.entries(results)) {
    for (const [op, byVariant] of Object.entries(byOp)) {
      const m = (variant, key) => median(byVariant[variant].map((r) => r[key]))
      lines.push(`| ${backend} | ${op} | ${m('uncounted', 'opsPerSec').toFixed(0)} | ${m('counted', 'opsPerSec').toFixed(0)} | ` +
        `${(m('counted', 'opsPerSec') / m('uncounted', 'opsPerSec')).toFixed(3)}x | ${m('uncounted', 'mainCpuUsPerOp').toFixed(2)} → ${m('counted', 'mainCpuUsPerOp').toFixed(2)} |`)
    }
  }
  console.log(`metrics cost, 2 KB sessions, 64 in flight, median of ${ROUNDS} interleaved rounds of ${MS} ms`)
  console.log(lines.join('\n'))
  for (const pair of Object.values(stores)) {
    for (const store of Object.values(pair)) {
      await store.clear()
      await store.close()
    }
  }
}

main().catch((err) => { console.error(err); process.exit(1) })
