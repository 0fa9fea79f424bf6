'use strict'
// The cost of encryption at rest: RedisStore with and without `encryption` (a raw 32-byte key),
// 2 KB sessions, 64 requests in flight, rounds interleaved (the order alternating) so drift hits
// both alike. Reports ops/s, main-thread (event-loop) CPU per op and process CPU per op, and the
// ratios. Part of `npm run bench` (section `encryption`), or alone:
//   node --expose-gc bench/encryption.js [rounds] [ms per run]

const { RedisStore } = require('..')
const { interleaved, median } = require('./lib/measure')

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379'

/** One row per op: medians for plain and encrypted, and encrypted / plain of each. */
async function runEncryption ({ rounds = 5, ms = 2000 } = {}) {
  const prefix = `ferrobench:enc:${process.pid}:`
  const variants = {
    plain: new RedisStore({ url, prefix: `${prefix}plain:` }),
    encrypted: new RedisStore({ url, prefix: `${prefix}enc:`, encryption: { keys: [Buffer.alloc(32, 1)] } })
  }
  try {
    const results = await interleaved(variants, { ops: ['get', 'set'], rounds, ms })
    return Object.entries(results).map(([op, byName]) => {
      const m = (name, key) => median(byName[name].map((r) => r[key]))
      const ratios = byName.encrypted.map((r, i) => r.opsPerSec / byName.plain[i].opsPerSec)
      return {
        op,
        rounds,
        ms,
        plainOps: m('plain', 'opsPerSec'),
        encryptedOps: m('encrypted', 'opsPerSec'),
        ratio: median(ratios),
        ratioMin: Math.min(...ratios),
        ratioMax: Math.max(...ratios),
        plainMainCpu: m('plain', 'mainCpuUsPerOp'),
        encryptedMainCpu: m('encrypted', 'mainCpuUsPerOp'),
        plainProcCpu: m('plain', 'procCpuUsPerOp'),
        encryptedProcCpu: m('encrypted', 'procCpuUsPerOp')
      }
    })
  } finally {
    for (const store of Object.values(variants)) {
      await store.clear()
      await store.close()
    }
  }
}

module.exports = { runEncryption }

if (require.main === module) {
  const rounds = Number(process.argv[2] || 5)
  const ms = Number(process.argv[3] || 2000)
  runEncryption({ rounds, ms }).then((rows) => {
    console.log(`encryption cost, RedisStore, 2 KB sessions, 64 in flight, median of ${rounds} interleaved rounds of ${ms} ms`)
    console.log(require('./report').encryptionTable(rows).join('\n'))
  }).catch((err) => { console.error(err); process.exit(1) })
}
