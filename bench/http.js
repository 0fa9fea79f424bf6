'use strict'
// HTTP: the same Express app on each store, in its own process, loaded by autocannon from this
// process for a bounded time with a pool of existing session cookies; read-heavy (90% /read) and
// write-heavy (50% /write) mixes for every group, and the app without sessions as the ceiling.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const autocannon = require('autocannon')
const { median } = require('./lib/measure')

// Each contender is a middleware and a store, run as its own app process. A label without a
// ' · ' prefix runs under express-session.
const CONTENDERS = {
  'ferrosession redis': { store: 'ferrosession redis' },
  'connect-redis 10 + redis 6': { store: 'connect-redis 10 + redis 6' },
  'connect-redis 8.1 + ioredis 6': { store: 'connect-redis 8.1 + ioredis 6' },
  'ferrosession postgres': { store: 'ferrosession postgres' },
  'connect-pg-simple 10 + pg Pool(10)': { store: 'connect-pg-simple 10 + pg Pool(10)' },
  'ferrosession mysql': { store: 'ferrosession mysql' },
  'express-mysql-session 3 + mysql2': { store: 'express-mysql-session 3 + mysql2' },
  'ferrosession knex postgres': { store: 'ferrosession knex postgres' },
  'connect-session-knex 5 + pg': { store: 'connect-session-knex 5 + pg' },
  'ferrosession knex mysql': { store: 'ferrosession knex mysql' },
  'connect-session-knex 5 + mysql2': { store: 'connect-session-knex 5 + mysql2' },
  'ferrosession mongodb': { store: 'ferrosession mongodb' },
  'connect-mongo 6 + mongodb 7': { store: 'connect-mongo 6 + mongodb 7' },
  'ferrosession sqlite': { store: 'ferrosession sqlite' },
  'ferrosession memory': { store: 'ferrosession memory' },
  'express-session MemoryStore': { store: 'express-session MemoryStore' },
  'session() · ferrosession redis': { middleware: 'ferrosession', store: 'ferrosession redis' },
  'session() · ferrosession memory': { middleware: 'ferrosession', store: 'ferrosession memory' },
  'session() merge: false · ferrosession redis': { middleware: 'ferrosession', store: 'ferrosession redis', merge: false },
  none: { store: 'none' }
}

// Per group: our contender, the anchors its ratio is taken against (the best of each round), and
// contenders shown for context. Groups with `ceiling` also run the app without sessions in the
// same rotation, so each contender's share of the no-session ceiling comes from the same rounds.
const GROUPS = {
  redis: { ours: 'ferrosession redis', anchors: ['connect-redis 10 + redis 6', 'connect-redis 8.1 + ioredis 6'] },
  postgres: { ours: 'ferrosession postgres', anchors: ['connect-pg-simple 10 + pg Pool(10)'] },
  mysql: { ours: 'ferrosession mysql', anchors: ['express-mysql-session 3 + mysql2'] },
  'knex postgres': { ours: 'ferrosession knex postgres', anchors: ['connect-session-knex 5 + pg'] },
  'knex mysql': { ours: 'ferrosession knex mysql', anchors: ['connect-session-knex 5 + mysql2'] },
  // On SecantusDB (started for this group): see bench/lib/contenders.js on what its ratios mean.
  mongodb: { ours: 'ferrosession mongodb', anchors: ['connect-mongo 6 + mongodb 7'], server: 'mongodb' },
  embedded: { ours: 'ferrosession sqlite', anchors: ['express-session MemoryStore'], context: ['ferrosession memory'] },
  'middleware redis': {
    ours: 'session() · ferrosession redis',
    anchors: ['connect-redis 10 + redis 6', 'connect-redis 8.1 + ioredis 6'],
    context: ['ferrosession redis', 'session() merge: false · ferrosession redis'],
    ceiling: true
  },
  'middleware memory': {
    ours: 'session() · ferrosession memory',
    anchors: ['express-session MemoryStore'],
    context: ['ferrosession memory'],
    ceiling: true
  },
  ceiling: { ours: 'none', anchors: [] }
}
const MIXES = { 'read-heavy': 0.9, 'write-heavy': 0.5 }
const COOKIES = 200

function freePort () {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Nanoseconds the app's main (JS) thread has been on a CPU, from the kernel's schedstat. */
function eventLoopCpuNs (pid) {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0])
  } catch {
    return NaN
  }
}

async function startApp (label, sqliteFile, mongoUrl) {
  const { middleware = 'express-session', store, merge = true } = CONTENDERS[label]
  const port = await freePort()
  const child = spawn(process.execPath, [path.join(__dirname, 'http-app.js')], {
    env: { ...process.env, BENCH_ID: String(process.pid), MIDDLEWARE: middleware, STORE: store, MERGE: String(merge), PORT: String(port), SQLITE_FILE: sqliteFile, MONGO_URL: mongoUrl || '' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { if (String(d).includes('READY')) resolve() })
    child.once('exit', (code) => reject(new Error(`${store} app exited ${code}`)))
  })
  const base = `http://127.0.0.1:${port}`
  const cookies = []
  if (store !== 'none') {
    for (let i = 0; i < COOKIES; i++) {
      const res = await fetch(`${base}/login`, { method: 'POST' })
      cookies.push(res.headers.get('set-cookie').split(';')[0])
    }
  }
  return { child, base, cookies }
}

function load (app, readShare, seconds) {
  let i = 0
  return new Promise((resolve, reject) => {
    autocannon({
      url: app.base,
      connections: 64,
      duration: seconds,
      requests: [{
        setupRequest (req) {
          const n = i++
          req.path = (n % 100) / 100 < readShare ? '/read' : '/write'
          if (app.cookies.length) req.headers = { ...req.headers, cookie: app.cookies[n % app.cookies.length] }
          return req
        }
      }]
    }, (err, result) => (err ? reject(err) : resolve(result)))
  })
}

/** Deletes the sessions the apps of this run created: their Redis keys and their table. */
async function removeBenchData () {
  const ferro = require('..')
  const redis = new ferro.RedisStore({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379', prefix: `benchhttp:${process.pid}:` })
  await redis.clear().catch(() => {})
  await redis.close()
  const pg = require('pg')
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test' })
  await client.connect()
  await client.query(`DROP TABLE IF EXISTS "bench_http_${process.pid}"`)
  await client.query(`DROP TABLE IF EXISTS "bench_http_${process.pid}_knex"`)
  await client.end()
  const mysql = await require('mysql2/promise').createConnection({ uri: process.env.MYSQL_URL || 'mysql://root@127.0.0.1:3306/test' })
  await mysql.query(`DROP TABLE IF EXISTS \`bench_http_${process.pid}\`, \`bench_http_${process.pid}_knex\``)
  await mysql.end()
}

async function runHttp ({ only, rounds, seconds, log }) {
  const rows = []
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-bench-http-'))
  let mongo = null // the MongoDB-compatible server, while a group that needs it runs
  try {
    for (const [group, { ours, anchors, context = [], ceiling = false, server }] of Object.entries(GROUPS)) {
      if (only.length && !only.some((o) => group.split(' ').includes(o)) && group !== 'ceiling') continue
      const stores = [ours, ...anchors, ...context, ...(ceiling ? ['none'] : [])]
      // Its data lives in memory: stopping it afterwards removes what the apps stored.
      if (server === 'mongodb') mongo = await require('../scripts/mongo-server').startMongoServer()
      const apps = {}
      for (const s of stores) apps[s] = await startApp(s, path.join(dir, `${s.replace(/\W/g, '_')}.sqlite`), mongo && mongo.url)
      for (const mix of Object.keys(MIXES)) {
        const readShare = MIXES[mix]
        const samples = Object.fromEntries(stores.map((s) => [s, []]))
        for (let r = 0; r < rounds; r++) {
          for (let k = 0; k < stores.length; k++) {
            const s = stores[(k + r) % stores.length]
            const cpu0 = eventLoopCpuNs(apps[s].child.pid)
            const result = await load(apps[s], readShare, seconds)
            const cpuUsPerRequest = (eventLoopCpuNs(apps[s].child.pid) - cpu0) / 1000 / result.requests.total
            if (result.non2xx || result.errors) log(`  warning: ${s} ${mix}: ${result.non2xx} non-2xx, ${result.errors} errors`)
            samples[s].push({ rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, cpuUsPerRequest })
          }
        }
        const ratios = Array.from({ length: rounds }, (_, r) => samples[ours][r].rps / Math.max(...anchors.map((a) => samples[a][r].rps)))
        for (const s of stores) {
          const row = {
            group,
            mix,
            contender: s,
            rps: median(samples[s].map((x) => x.rps)),
            p50: median(samples[s].map((x) => x.p50)),
            p99: median(samples[s].map((x) => x.p99)),
            cpuUsPerRequest: median(samples[s].map((x) => x.cpuUsPerRequest))
          }
          if (ceiling) row.ceilingShare = median(samples[s].map((x, r) => x.rps / samples.none[r].rps))
          if (s === ours && anchors.length) {
            const cpuRatios = Array.from({ length: rounds }, (_, r) => samples[ours][r].cpuUsPerRequest / Math.min(...anchors.map((a) => samples[a][r].cpuUsPerRequest)))
            Object.assign(row, { ratio: median(ratios), ratioMin: Math.min(...ratios), ratioMax: Math.max(...ratios), cpuRatio: median(cpuRatios) })
          }
          rows.push(row)
        }
        log(`  http ${group} ${mix}: ` + stores.map((s) => `${s} ${Math.round(rows.find((x) => x.group === group && x.mix === mix && x.contender === s).rps)} req/s`).join(', '))
      }
      for (const s of stores) {
        apps[s].child.kill('SIGTERM')
        await new Promise((resolve) => apps[s].child.once('exit', resolve))
      }
      if (mongo) await mongo.stop()
      mongo = null
    }
  } finally {
    if (mongo) await mongo.stop()
    fs.rmSync(dir, { recursive: true, force: true })
    await removeBenchData()
  }
  return rows
}

module.exports = { runHttp }
