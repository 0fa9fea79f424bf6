'use strict'
// Store operations, ours against the anchors of each backend: get/set/touch/destroy on sessions
// of ~200 B, 2 KB and 20 KB with 1, 64 and 256 operations in flight, against 10,000 existing
// sessions (fewer where a backend says so: `seeded`). Contenders alternate within every round (A B C, then B C A, ...) and each round's
// ratio compares ours with the best anchor of that same round.

const { backends } = require('./lib/contenders')
const { run, sessionOfSize, median } = require('./lib/measure')

const SEEDED = 10000

/** The cells measured by default: the ones the targets name, plus a few for context. */
const DEFAULT_PLAN = {
  redis: [
    ...cells(['get', 'set'], [200, 2048], [1, 64, 256]),
    ...cells(['touch', 'destroy'], [2048], [256]),
    ...cells(['get', 'set'], [20480], [64])
  ],
  postgres: [
    ...cells(['get', 'set', 'touch', 'destroy'], [2048], [64]),
    ...cells(['get', 'set'], [2048], [1, 256]),
    ...cells(['get'], [200, 20480], [64])
  ],
  mysql: [...cells(['get', 'set', 'touch', 'destroy'], [2048], [64]), ...cells(['get', 'set'], [2048], [1])],
  knex_postgres: cells(['get', 'set', 'touch'], [2048], [64]),
  knex_mysql: cells(['get', 'set', 'touch'], [2048], [64]),
  sqlite: cells(['get', 'set'], [2048], [1, 64]),
  mongodb: [...cells(['get', 'set', 'touch', 'destroy'], [2048], [64]), ...cells(['get', 'set'], [2048], [1])],
  memory: cells(['get', 'set'], [2048], [1, 256])
}
const FULL_PLAN = Object.fromEntries(Object.keys(DEFAULT_PLAN).map((b) =>
  [b, cells(['get', 'set', 'touch', 'destroy'], [200, 2048, 20480], [1, 64, 256])]))

function cells (ops, sizes, inflights) {
  const out = []
  for (const size of sizes) for (const inflight of inflights) for (const op of ops) out.push({ op, size, inflight })
  return out
}

async function seed (store, size, count) {
  const sess = sessionOfSize(size)
  const batch = []
  for (let i = 0; i < count; i++) {
    batch.push(new Promise((resolve, reject) => store.set(`s${i}`, sess, (err) => (err ? reject(err) : resolve()))))
    if (batch.length === 256) await Promise.all(batch.splice(0))
  }
  await Promise.all(batch)
}

async function runStoreOps ({ only, full, rounds, durationMs, log }) {
  const plan = full ? FULL_PLAN : DEFAULT_PLAN
  const rows = []
  for (const [name, backend] of Object.entries(backends)) {
    if (only.length && !only.includes(name)) continue
    if (backend.start) await backend.start()
    const names = Object.keys(backend.contenders)
    const seeded = backend.seeded || SEEDED
    const made = {}
    for (const c of names) made[c] = await backend.contenders[c]()
    const serverCpu = backend.serverCpu ? await backend.serverCpu() : null
    let seededSize = null
    for (const cell of plan[name]) {
      if (cell.size !== seededSize) {
        log(`  seeding ${seeded} sessions of ${cell.size} B for ${name}`)
        for (const c of backend.separateData ? names : [names[0]]) await seed(made[c].store, cell.size, seeded)
        seededSize = cell.size
      }
      const payload = sessionOfSize(cell.size)
      const samples = Object.fromEntries(names.map((c) => [c, []]))
      for (let r = 0; r < rounds; r++) {
        const order = names.map((_, k) => names[(k + r) % names.length])
        for (const c of order) {
          const opts = { op: cell.op, inflight: cell.inflight, durationMs, pick: (i) => `s${(i * 7919) % seeded}`, payload: () => payload }
          if (r === 0) await run(made[c].store, { ...opts, durationMs: 100 }) // warm-up, not recorded
          const server0 = serverCpu ? await serverCpu.read() : 0
          const m = await run(made[c].store, opts)
          m.serverCpuUsPerOp = serverCpu ? (await serverCpu.read() - server0) / m.ops : NaN
          samples[c].push(m)
          if (cell.op === 'destroy') await seed(made[c].store, cell.size, seeded) // put them back
        }
      }
      rows.push(...summarise(name, cell, samples))
      const ours = rows[rows.length - names.length]
      log(`  ${name} ${cell.op} ${cell.size} B x${cell.inflight}: ours ${Math.round(ours.opsPerSec)} ops/s, ` +
        `ratio ${ours.ratioOps.toFixed(2)} ops/s, ${ours.ratioMainCpu.toFixed(2)} main-thread CPU`)
    }
    for (const c of names) await made[c].close()
    if (serverCpu) await serverCpu.close()
    await backend.cleanup()
  }
  return rows
}

/** One row per contender; ours also gets per-round ratios against the best anchor of the round. */
function summarise (backend, cell, samples) {
  const [ours, ...anchors] = Object.keys(samples)
  const rounds = samples[ours].length
  const bestAnchorOps = (r) => Math.max(...anchors.map((a) => samples[a][r].opsPerSec))
  const bestAnchorCpu = (r) => Math.min(...anchors.map((a) => samples[a][r].mainCpuUsPerOp))
  const bestAnchorP50 = (r) => Math.min(...anchors.map((a) => samples[a][r].p50))
  const ratios = Array.from({ length: rounds }, (_, r) => samples[ours][r].opsPerSec / bestAnchorOps(r))
  const cpuRatios = Array.from({ length: rounds }, (_, r) => samples[ours][r].mainCpuUsPerOp / bestAnchorCpu(r))
  const p50Added = Array.from({ length: rounds }, (_, r) => samples[ours][r].p50 - bestAnchorP50(r))
  // Per-anchor medians of per-round ratios, for targets named against one anchor (e.g. ioredis).
  const vs = Object.fromEntries(anchors.map((a) => [a, {
    ops: median(Array.from({ length: rounds }, (_, r) => samples[ours][r].opsPerSec / samples[a][r].opsPerSec)),
    mainCpu: median(Array.from({ length: rounds }, (_, r) => samples[ours][r].mainCpuUsPerOp / samples[a][r].mainCpuUsPerOp))
  }]))
  return Object.entries(samples).map(([contender, ms]) => {
    const row = {
      backend,
      ...cell,
      contender,
      rounds,
      opsPerSec: median(ms.map((m) => m.opsPerSec)),
      opsMin: Math.min(...ms.map((m) => m.opsPerSec)),
      opsMax: Math.max(...ms.map((m) => m.opsPerSec)),
      p50: median(ms.map((m) => m.p50)),
      p99: median(ms.map((m) => m.p99)),
      mainCpuUsPerOp: median(ms.map((m) => m.mainCpuUsPerOp)),
      procCpuUsPerOp: median(ms.map((m) => m.procCpuUsPerOp)),
      serverCpuUsPerOp: median(ms.map((m) => m.serverCpuUsPerOp)),
      timerLateMs: Math.max(...ms.map((m) => m.timerLateMs))
    }
    if (contender === ours) {
      Object.assign(row, {
        ratioOps: median(ratios),
        ratioOpsMin: Math.min(...ratios),
        ratioOpsMax: Math.max(...ratios),
        ratioMainCpu: median(cpuRatios),
        vs,
        addedP50Us: median(p50Added)
      })
    }
    return row
  })
}

module.exports = { runStoreOps }
