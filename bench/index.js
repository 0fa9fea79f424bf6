'use strict'
// npm run bench: ferrosession against the anchor stores, measured side by side in one run, with
// results as ratios to the best anchor. Writes bench/RESULTS.md.
//   node --expose-gc bench/index.js [--sections=store,http,encryption,sign,memory]
//                                   [--only=redis,postgres,mysql,knex_postgres,knex_mysql,sqlite,mongodb,memory]
//                                   [--rounds=N] [--full] [--quick]

const { execSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { runStoreOps } = require('./store-ops')
const { runHttp } = require('./http')
const { runSign } = require('./sign')
const { runMemoryFootprint } = require('./memory-footprint')
const { runEncryption } = require('./encryption')
const { hasSchedstat } = require('./lib/measure')

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const [k, v] = a.replace(/^--/, '').split('=')
  return [k, v === undefined ? true : v]
}))
const list = (v) => (typeof v === 'string' ? v.split(',') : [])
const quick = Boolean(args.quick)
const opts = {
  only: list(args.only),
  full: Boolean(args.full),
  rounds: Number(args.rounds || (quick ? 3 : 5)),
  durationMs: quick ? 200 : 400,
  seconds: quick ? 2 : 4,
  log: (line) => console.log(line)
}
const sections = args.sections ? list(args.sections) : ['store', 'http', 'encryption', 'sign', 'memory']

function machine () {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [0, os.cpus()[0].model])[1]
  const version = (cmd) => { try { return execSync(cmd, { encoding: 'utf8' }).trim().split('\n')[0] } catch { return 'unknown' } }
  return {
    cpu: `${cpu}, ${os.cpus().length} cores`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    redis: version('redis-server --version'),
    postgres: version('psql --version'),
    mariadb: version('mariadb --version'),
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' ')
  }
}

async function main () {
  if (!global.gc) console.log('(run with node --expose-gc for steadier numbers: npm run bench does)')
  const started = new Date()
  const env = machine()
  const results = {}
  if (sections.includes('sign')) { console.log('signing'); results.sign = runSign(opts) }
  if (sections.includes('store')) { console.log('store operations'); results.store = await runStoreOps(opts) }
  if (sections.includes('memory')) { console.log('memory footprint'); results.memory = runMemoryFootprint(opts) }
  if (sections.includes('http')) { console.log('http'); results.http = await runHttp(opts) }
  if (sections.includes('encryption')) { console.log('encryption at rest'); results.encryption = await runEncryption({ rounds: opts.rounds, ms: quick ? 1000 : 2000 }) }
  const command = `node --expose-gc bench/index.js ${process.argv.slice(2).join(' ')}`.trim()
  const md = require('./report').render({ started, env, command, results, opts, hasSchedstat })
  const file = path.resolve(__dirname, args.out || 'RESULTS.md')
  fs.writeFileSync(file, md)
  fs.writeFileSync(file.replace(/\.md$/, '.json'), JSON.stringify({ started, env, command, results }, null, 1))
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
