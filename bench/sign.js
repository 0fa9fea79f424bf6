'use strict'
// Signing: ferrosession's sign/unsign against cookie-signature, interleaved, on a typical
// express-session cookie value (a 32-character sid).

const cookieSignature = require('cookie-signature')
const { sign, unsign } = require('..')
const { median, mainThreadCpuNs } = require('./lib/measure')

function time (fn, n) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn(i)
  return n / (Number(process.hrtime.bigint() - t0) / 1e9)
}

function runSign ({ rounds, log }) {
  const sid = 'Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC'
  const secret = 'keyboard cat'
  const signed = cookieSignature.sign(sid, secret)
  const cases = {
    sign: { ferrosession: () => sign(sid, secret), 'cookie-signature': () => cookieSignature.sign(sid, secret) },
    unsign: { ferrosession: () => unsign(signed, secret), 'cookie-signature': () => cookieSignature.unsign(signed, secret) }
  }
  const rows = []
  for (const [op, impls] of Object.entries(cases)) {
    const samples = { ferrosession: [], 'cookie-signature': [] }
    for (const name of Object.keys(impls)) time(impls[name], 20000) // warm-up
    for (let r = 0; r < rounds; r++) {
      for (const name of r % 2 ? ['cookie-signature', 'ferrosession'] : ['ferrosession', 'cookie-signature']) {
        const cpu0 = mainThreadCpuNs()
        const n = 200000
        const opsPerSec = time(impls[name], n)
        samples[name].push({ opsPerSec, cpuUs: (mainThreadCpuNs() - cpu0) / 1000 / n })
      }
    }
    const ratios = samples.ferrosession.map((s, r) => s.opsPerSec / samples['cookie-signature'][r].opsPerSec)
    for (const [name, ms] of Object.entries(samples)) {
      const row = { op, contender: name, opsPerSec: median(ms.map((m) => m.opsPerSec)), usPerOp: median(ms.map((m) => 1e6 / m.opsPerSec)) }
      if (name === 'ferrosession') Object.assign(row, { ratio: median(ratios), ratioMin: Math.min(...ratios), ratioMax: Math.max(...ratios) })
      rows.push(row)
    }
    log(`  ${op}: ${median(ratios).toFixed(2)}x cookie-signature`)
  }
  return rows
}

module.exports = { runSign }
