'use strict'
// Renders bench results as RESULTS.md: targets first (each with its measured ratio, met or not),
// then every table.

const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–')
const k = (x) => (Number.isFinite(x) ? (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0)) : '–')

function targets (results) {
  const out = []
  const store = results.store || []
  const ours = (backend, op, size, inflight) => store.find((r) => r.backend === backend && r.op === op && r.size === size &&
    r.inflight === inflight && r.contender === 'ferrosession')
  const add = (what, target, measured, met, note = '') => out.push({ what, target, measured, met, note })
  const IOREDIS = 'connect-redis 8.1 + ioredis 6'
  for (const op of ['get', 'set', 'touch']) {
    const r = ours('redis', op, 2048, 256)
    if (!r || !r.vs || !r.vs[IOREDIS]) continue
    const want = op === 'touch' ? 1 : 1.3
    add(`Redis ${op} 2 KB, 256 in flight: ops/s vs connect-redis + ioredis`, `≥ ${want.toFixed(2)}x`, `${f(r.vs[IOREDIS].ops, 2)}x`, r.vs[IOREDIS].ops >= want)
    add(`Redis ${op} 2 KB, 256 in flight: main-thread CPU/op vs connect-redis + ioredis`, '≤ 0.60x', `${f(r.vs[IOREDIS].mainCpu, 2)}x`, r.vs[IOREDIS].mainCpu <= 0.6)
  }
  for (const size of [200, 2048]) {
    for (const op of ['get', 'set']) {
      const r = ours('redis', op, size, 1)
      if (!r || !r.vs || !r.vs[IOREDIS]) continue
      add(`Redis ${op} ${size} B, one at a time: ops/s vs connect-redis + ioredis`, '≥ 0.90x', `${f(r.vs[IOREDIS].ops, 2)}x`, r.vs[IOREDIS].ops >= 0.9)
    }
  }
  for (const op of ['get', 'set', 'touch', 'destroy']) {
    const r = ours('postgres', op, 2048, 64)
    if (!r) continue
    const anchor = store.find((x) => x.backend === 'postgres' && x.op === op && x.size === 2048 && x.inflight === 64 && x.contender !== 'ferrosession')
    add(`PostgreSQL ${op} 2 KB, 64 in flight: ops/s`, '≥ 2.00x', `${f(r.ratioOps, 2)}x (${f(r.ratioOpsMin, 2)}–${f(r.ratioOpsMax, 2)})`, r.ratioOps >= 2)
    add(`PostgreSQL ${op} 2 KB, 64 in flight: main-thread CPU/op`, '≤ 0.30x', `${f(r.ratioMainCpu, 2)}x`, r.ratioMainCpu <= 0.3)
    if (anchor) {
      const ratio = r.serverCpuUsPerOp / anchor.serverCpuUsPerOp
      add(`PostgreSQL ${op} 2 KB, 64 in flight: server CPU/op`, '< 1.00x', `${f(ratio, 2)}x (${f(r.serverCpuUsPerOp, 1)} vs ${f(anchor.serverCpuUsPerOp, 1)} µs)`, ratio < 1)
    }
  }
  for (const [backend, label] of [['mysql', 'MySqlStore vs express-mysql-session'], ['knex_postgres', 'knex layout on PostgreSQL vs connect-session-knex'], ['knex_mysql', 'knex layout on MariaDB vs connect-session-knex']]) {
    for (const op of ['get', 'set']) {
      const r = ours(backend, op, 2048, 64)
      if (!r) continue
      add(`${label}, ${op} 2 KB, 64 in flight: ops/s`, '≥ 2.00x', `${f(r.ratioOps, 2)}x (${f(r.ratioOpsMin, 2)}–${f(r.ratioOpsMax, 2)})`, r.ratioOps >= 2)
      add(`${label}, ${op} 2 KB, 64 in flight: main-thread CPU/op`, '≤ 0.30x', `${f(r.ratioMainCpu, 2)}x`, r.ratioMainCpu <= 0.3)
    }
  }
  // End to end (issue 23): ferrosession at least 1.5x the requests per second of express-session
  // on the best anchor store, in both mixes, at no more than 0.6x its event-loop CPU per request.
  // Two groups compare something else and keep their own bar: express-session on our RedisStore
  // (a store swap, not our middleware) and SQLite against express-session's in-process MemoryStore.
  const http = results.http || []
  for (const [group, label, want = 1.5, cpuBound = 0.6] of [
    ['middleware redis', 'session() + RedisStore vs express-session + connect-redis'],
    ['middleware memory', 'session() + MemoryStore vs express-session + its MemoryStore'],
    ['postgres', 'PostgreSQL vs connect-pg-simple'],
    ['mysql', 'MySqlStore vs express-mysql-session'],
    ['knex postgres', 'knex layout on PostgreSQL vs connect-session-knex'],
    ['knex mysql', 'knex layout on MariaDB vs connect-session-knex'],
    ['mongodb', 'MongoStore vs connect-mongo (on SecantusDB)'],
    ['redis', 'express-session + RedisStore vs + connect-redis', 1.1, Infinity],
    ['embedded', 'SqliteStore vs express-session MemoryStore', 0.9, Infinity]]) {
    for (const mix of ['read-heavy', 'write-heavy']) {
      const r = http.find((x) => x.group === group && x.mix === mix && x.ratio !== undefined)
      if (!r) continue
      const share = r.ceilingShare !== undefined ? `, ${f(100 * r.ceilingShare)}% of the no-session ceiling` : ''
      const bar = cpuBound === Infinity ? `≥ ${want.toFixed(2)}x` : `≥ ${want.toFixed(2)}x, CPU ≤ ${cpuBound.toFixed(2)}x`
      add(`HTTP ${mix}, ${label}: req/s, event-loop CPU/request`, bar, `${f(r.ratio, 2)}x (${f(r.ratioMin, 2)}–${f(r.ratioMax, 2)})${share}; CPU ${f(r.cpuRatio, 2)}x`, r.ratio >= want && r.cpuRatio <= cpuBound)
    }
  }
  for (const op of ['get', 'set']) {
    for (const inflight of [1, 256]) {
      const r = store.find((x) => x.backend === 'memory' && x.op === op && x.size === 2048 && x.inflight === inflight && x.contender === 'ferrosession')
      const es = store.find((x) => x.backend === 'memory' && x.op === op && x.size === 2048 && x.inflight === inflight && x.contender === 'express-session MemoryStore')
      if (r && es) {
        const ratio = r.opsPerSec / es.opsPerSec
        add(`MemoryStore ${op} 2 KB, ${inflight} in flight: ops/s vs express-session's`, '≥ 1.00x', `${f(ratio, 2)}x`, ratio >= 1)
      }
    }
  }
  const mem = results.memory || []
  const ourMem = mem.find((r) => r.contender === 'ferrosession MemoryStore')
  const ms = mem.find((r) => r.contender === 'memorystore 1.6')
  if (ourMem && ms) add('MemoryStore RSS, 100,000 sessions of 2 KB, vs memorystore', '≤ 0.50x', `${f(ourMem.rssMb / ms.rssMb, 2)}x (${f(ourMem.rssMb)} vs ${f(ms.rssMb)} MB)`, ourMem.rssMb / ms.rssMb <= 0.5)
  for (const r of results.encryption || []) {
    add(`Encryption at rest, RedisStore ${r.op} 2 KB, 64 in flight: ops/s vs unencrypted`, '≥ 0.90x', `${f(r.ratio, 2)}x (${f(r.ratioMin, 2)}–${f(r.ratioMax, 2)})`, r.ratio >= 0.9)
  }
  for (const r of (results.sign || []).filter((x) => x.ratio !== undefined)) {
    add(`${r.op} vs cookie-signature: ops/s`, '≥ 3.00x', `${f(r.ratio, 2)}x (${f(r.ratioMin, 2)}–${f(r.ratioMax, 2)})`, r.ratio >= 3)
  }
  for (const r of store.filter((x) => x.inflight === 1 && x.contender === 'ferrosession')) {
    add(`${r.backend} ${r.op} ${r.size} B, one at a time: added p50 latency over the best anchor`, '< 30 µs', `${f(r.addedP50Us, 1)} µs`, r.addedP50Us < 30)
  }
  return out
}

/** The encryption section's table (also what `node bench/encryption.js` prints). */
function encryptionTable (rows) {
  const out = ['| op | plain ops/s | encrypted ops/s | encrypted / plain (min–max) | main CPU µs/op plain → encrypted | process CPU µs/op plain → encrypted |', '| --- | --- | --- | --- | --- | --- |']
  for (const r of rows) {
    out.push(`| ${r.op} | ${k(r.plainOps)} | ${k(r.encryptedOps)} | **${f(r.ratio, 2)}x** (${f(r.ratioMin, 2)}–${f(r.ratioMax, 2)}) | ` +
      `${f(r.plainMainCpu, 1)} → ${f(r.encryptedMainCpu, 1)} | ${f(r.plainProcCpu, 1)} → ${f(r.encryptedProcCpu, 1)} |`)
  }
  return out
}

function render ({ started, env, command, results, opts, hasSchedstat }) {
  const lines = []
  const p = (s = '') => lines.push(s)
  p('# Benchmarks: ferrosession against the anchor stores')
  p()
  p(`Run ${started.toISOString()} with \`${command}\` (${opts.rounds} interleaved rounds per cell).`)
  p()
  p(`Machine: ${env.cpu}, ${env.memory}, ${env.os}; Node ${env.node}; ${env.redis}; ${env.postgres}; ${env.mariadb || ''}; load average at start ${env.loadavg}.`)
  p('The machine is small and shared, so the ratios (ours / the best anchor of the same round, median and range over rounds) are the result; absolute numbers are context.')
  p(`Main-thread CPU is ${hasSchedstat ? 'the JS thread\'s own on-CPU time from /proc/self/task/<pid>/schedstat' : 'process user CPU (no schedstat here)'}; process CPU is all threads (our tokio worker included); server CPU is Redis's INFO cpu, the summed CPU of the postgres or mariadbd processes, or that of the MongoDB-compatible test server (SecantusDB, a Python server far slower than mongod: the MongoDB rows show client-side cost against a slow server, not what a real MongoDB would reach).`)
  p()
  const t = targets(results)
  if (t.length) {
    p('## Targets')
    p()
    p('| what | target | measured | met |')
    p('| --- | --- | --- | --- |')
    for (const x of t) p(`| ${x.what} | ${x.target} | ${x.measured} | ${x.met ? 'yes' : '**no**'} |`)
    p()
  }
  if (results.store) {
    p('## Store operations')
    p()
    p('Each store driven through its callback API, as express-session calls it, against 10,000 existing sessions.')
    p()
    p('"timer late" is the worst lateness, over all rounds, of a 20 ms interval timer running in the same process during the run: how long the load kept the event loop from an app\'s timers.')
    p()
    p('| backend | op | size | in flight | store | ops/s (min–max) | p50 µs | p99 µs | main-thread CPU µs/op | process CPU µs/op | server CPU µs/op | timer late ms | ours / best anchor: ops/s, main CPU |')
    p('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for (const r of results.store) {
      const ratio = r.ratioOps !== undefined ? `**${f(r.ratioOps, 2)}x** (${f(r.ratioOpsMin, 2)}–${f(r.ratioOpsMax, 2)}), ${f(r.ratioMainCpu, 2)}x` : ''
      p(`| ${r.backend} | ${r.op} | ${r.size} B | ${r.inflight} | ${r.contender} | ${k(r.opsPerSec)} (${k(r.opsMin)}–${k(r.opsMax)}) | ${f(r.p50)} | ${f(r.p99)} | ${f(r.mainCpuUsPerOp, 1)} | ${f(r.procCpuUsPerOp, 1)} | ${f(r.serverCpuUsPerOp, 1)} | ${f(r.timerLateMs, 1)} | ${ratio} |`)
    }
    p()
  }
  if (results.http) {
    p('## HTTP')
    p()
    p('Express 5 with a session middleware (`resave: false`, `saveUninitialized: false`, `rolling: true`, `cookie.maxAge` one hour) in its own process, loaded by autocannon (64 connections) from the benchmark process with 200 existing session cookies. Contenders named after a store run express-session; `session() · …` is ferrosession\'s middleware. read-heavy: 90% of requests only read the session (the middleware touches it); write-heavy: 50% change it (it saves it). `none` is the same app without session middleware; the middleware groups run it in the same rotation, giving each contender\'s share of that ceiling. Event-loop CPU is the app process\'s main thread, per request.')
    p()
    p('| group | mix | contender | req/s | share of ceiling | event-loop CPU µs/req | p50 ms | p99 ms | ours / best anchor: req/s, CPU/req |')
    p('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for (const r of results.http) {
      const ratio = r.ratio !== undefined ? `**${f(r.ratio, 2)}x** (${f(r.ratioMin, 2)}–${f(r.ratioMax, 2)}), ${f(r.cpuRatio, 2)}x` : ''
      const share = r.ceilingShare !== undefined ? `${f(100 * r.ceilingShare)}%` : ''
      p(`| ${r.group} | ${r.mix} | ${r.contender} | ${k(r.rps)} | ${share} | ${f(r.cpuUsPerRequest, 1)} | ${f(r.p50, 1)} | ${f(r.p99, 1)} | ${ratio} |`)
    }
    p()
  }
  if (results.encryption) {
    p('## Encryption at rest')
    p()
    const [first = {}] = results.encryption
    p(`RedisStore with and without \`encryption\` (AES-256-GCM, one 32-byte key), 2 KB sessions, 64 in flight, ${first.rounds} interleaved rounds of ${f(first.ms / 1000, 1)} s.`)
    p()
    for (const line of encryptionTable(results.encryption)) p(line)
    p()
  }
  if (results.sign) {
    p('## Signing')
    p()
    p('| op | implementation | ops/s | µs/op | ratio |')
    p('| --- | --- | --- | --- | --- |')
    for (const r of results.sign) p(`| ${r.op} | ${r.contender} | ${k(r.opsPerSec)} | ${f(r.usPerOp, 2)} | ${r.ratio !== undefined ? `**${f(r.ratio, 2)}x** (${f(r.ratioMin, 2)}–${f(r.ratioMax, 2)})` : ''} |`)
    p()
  }
  if (results.memory) {
    p('## Memory footprint')
    p()
    p('RSS growth of a fresh Node process after storing 100,000 distinct sessions of 2 KB (after a forced GC).')
    p()
    p('| store | RSS growth |')
    p('| --- | --- |')
    for (const r of results.memory) p(`| ${r.contender} | ${f(r.rssMb)} MB |`)
    p()
  }
  return lines.join('\n')
}

module.exports = { render, targets, encryptionTable }
