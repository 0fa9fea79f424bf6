'use strict'
// The cost of encryption at rest: RedisStore with and without `encryption` (a raw 32-byte key),
// 2 KB sessions, 64 requests in flight, rounds interleaved so drift hits both alike. Reports
// ops/s, main-thread (event-loop) CPU per op and process CPU per op, and their ratios.
//   node --expose-gc bench/encryption.js [rounds] [ms per run]

const { RedisStore } = require('..')
const { interleaved, median } = require('./lib/measure')

const ROUNDS = Number(process.argv[2] || 5)
const MS = Number(process.argv[3] || 2000)
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379'

async function main () {
  const prefix = `ferrobench:enc:${process.pid}:`
  const variants = {
    plain: new RedisStore({ url, prefix: `${prefix}plain:` }),
    encrypted: new RedisStore({ url, prefix: `${prefix}enc:`, encryption: { keys: [Buffer.alloc(32, 1)] } })
  }
  const results = await interleaved(variants, { ops: ['get', 'set'], rounds: ROUNDS, ms: MS })
  const lines = ['| op | plain ops/s | encrypted ops/s | ratio | main CPU µs/op plain → encrypted | process CPU µs/op plain → encrypted |', '|---|---|---|---|---|---|']
  for (const [op, byName] of Object.entries(results)) {
    const m = (name, key) => median(byName[name].map((r) => r[key]))
    lines.push(`| ${op} | ${m('plain', 'opsPerSec').toFixed(0)} | ${m('encrypted', 'opsPerSec').toFixed(0)} | ${(m('encrypted', 'opsPerSec') / m('plain', 'opsPerSec')).toFixed(2)}x | ` +
      `${m('plain', 'mainCpuUsPerOp').toFixed(1)} → ${m('encrypted', 'mainCpuUsPerOp').toFixed(1)} | ${m('plain', 'procCpuUsPerOp').toFixed(1)} → ${m('encrypted', 'procCpuUsPerOp').toFixed(1)} |`)
  }
  console.log(`encryption cost, RedisStore, 2 KB sessions, 64 in flight, median of ${ROUNDS} interleaved rounds of ${MS} ms`)
  console.log(lines.join('\n'))
  for (const store of Object.values(variants)) {
    await store.clear()
    await store.close()
  }
}

main().catch((err) => { console.error(err); process.exit(1) })
