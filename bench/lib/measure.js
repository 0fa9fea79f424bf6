'use strict'
// Drives any express-session store through its callback API (the path express-session uses) and
// measures one run: ops/s, latency percentiles, main-thread CPU per op, process CPU per op.

const fs = require('node:fs')

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`
const hasSchedstat = fs.existsSync(SCHEDSTAT)

/** Nanoseconds the main (JS) thread has spent on a CPU: exact, from the kernel's schedstat. */
function mainThreadCpuNs () {
  if (!hasSchedstat) return Number(process.cpuUsage().user) * 1000 // fallback: whole process
  return Number(fs.readFileSync(SCHEDSTAT, 'utf8').split(' ')[0])
}

/** Microseconds of CPU, all threads of this process (the tokio workers included). */
function processCpuUs () {
  const u = process.cpuUsage()
  return u.user + u.system
}

/**
 * Runs `inflight` callback chains of `op` against `store` for `durationMs`.
 * `pick(i)` gives the i-th request's sid; `payload(i)` the session for set/touch.
 */
function run (store, { op, inflight, durationMs, pick, payload }) {
  return new Promise((resolve, reject) => {
    const latencies = new Float64Array(2_000_000)
    let n = 0
    let done = 0
    let errors = 0
    let firstError = null
    let stopping = false
    let outstanding = 0
    const cpu0 = mainThreadCpuNs()
    const proc0 = processCpuUs()
    const t0 = process.hrtime.bigint()
    const deadline = Date.now() + durationMs
    // An app's 20 ms interval timer beside the load: how late the event loop lets it fire
    // (docs/design.md, "Fairness"). The worst lateness of the run is reported.
    let expected = performance.now() + TICK_MS
    let worstLateMs = 0
    const ticker = setInterval(() => {
      const now = performance.now()
      worstLateMs = Math.max(worstLateMs, now - expected)
      expected = now + TICK_MS
    }, TICK_MS)
    ticker.unref() // a run that throws must not keep the process alive

    const issue = () => {
      const i = n++
      const sid = pick(i)
      const started = process.hrtime.bigint()
      outstanding++
      const cb = (err) => {
        outstanding--
        if (err) { errors++; firstError = firstError || err }
        if (done < latencies.length) latencies[done] = Number(process.hrtime.bigint() - started) / 1000
        done++
        if (!stopping && (done & 63) === 0 && Date.now() >= deadline) stopping = true
        if (!stopping) issue()
        else if (outstanding === 0) finish()
      }
      if (op === 'get') store.get(sid, cb)
      else if (op === 'destroy') store.destroy(sid, cb)
      else store[op](sid, payload(i), cb)
    }

    const finish = () => {
      clearInterval(ticker)
      worstLateMs = Math.max(worstLateMs, performance.now() - expected) // a tick still owed
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      const lat = latencies.subarray(0, Math.min(done, latencies.length)).sort()
      const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]
      if (errors > done / 100) return reject(new Error(`${errors} of ${done} ${op} calls failed: ${firstError && firstError.message}`))
      resolve({
        ops: done,
        opsPerSec: done / seconds,
        p50: q(0.5),
        p99: q(0.99),
        mainCpuUsPerOp: (mainThreadCpuNs() - cpu0) / 1000 / done,
        procCpuUsPerOp: (processCpuUs() - proc0) / done,
        timerLateMs: Math.max(0, worstLateMs),
        errors
      })
    }

    for (let i = 0; i < inflight; i++) issue()
  })
}

/**
 * The A/B benchmarks' loop (bench/encryption.js, bench/metrics-cost.js): each store of `variants`
 * seeded with `KEYS` sessions of 2 KB, then `ops` at 64 in flight, the variants alternating within
 * every round (and which goes first alternating between rounds) so drift hits them alike. Resolves with { [op]: { [variant]: [run, ...] } }.
 */
async function interleaved (variants, { ops, rounds, ms }) {
  const KEYS = 1000
  const sessions = Array.from({ length: KEYS }, (_, i) => sessionOfSize(2048, i))
  for (const store of Object.values(variants)) await Promise.all(sessions.map((s, i) => store.set(`s${i}`, s)))
  const results = {}
  for (let round = 0; round < rounds; round++) {
    for (const op of ops) {
      // Who goes first swaps every round: the second run of a pair meets a warmer server.
      const order = Object.entries(variants)
      if (round % 2) order.reverse()
      for (const [name, store] of order) {
        if (global.gc) global.gc()
        const r = await run(store, { op, inflight: 64, durationMs: ms, pick: (i) => `s${i % KEYS}`, payload: (i) => sessions[i % KEYS] })
        ;((results[op] ??= {})[name] ??= []).push(r)
      }
    }
  }
  return results
}

/** The interval of the timer whose lateness each run reports. */
const TICK_MS = 20

/** An express-session-shaped session whose JSON is about `bytes` long. */
function sessionOfSize (bytes, i = 0) {
  const sess = {
    cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' },
    user: { id: i, name: `user ${i}` },
    data: ''
  }
  const base = JSON.stringify(sess).length
  sess.data = 'x'.repeat(Math.max(0, bytes - base))
  return sess
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

module.exports = { run, interleaved, sessionOfSize, median, mainThreadCpuNs, hasSchedstat }
