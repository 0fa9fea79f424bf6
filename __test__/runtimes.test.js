'use strict'
// ferrosession under Bun and Deno (the versions pinned in devDependencies), and under Node for
// reference: __test__/runtimes/smoke.cjs uses every backend, session() under Express and
// sign/unsign, then must exit by itself. Each runtime runs it as a child process against the same
// servers as the rest of the suite.

const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { REDIS_URL, DATABASE_URL, MYSQL_URL, RUN, childTmp, mongoUrl, mysqlServer } = require('./support/backends')

const root = path.join(__dirname, '..')
const bin = (name) => path.join(root, 'node_modules', '.bin', name)
const SMOKE = path.join(__dirname, 'runtimes', 'smoke.cjs')

const RUNTIMES = {
  node: () => [process.execPath, [SMOKE]],
  bun: () => [bin('bun'), [SMOKE]],
  // -A: the addon is loaded through Node-API (--allow-ffi), and the stores open sockets and files.
  deno: () => [bin('deno'), ['run', '-A', '--quiet', SMOKE]]
}

/** What the script made beside the data it cleared itself: the table, the database, the keys. */
async function removeWhatSmokeMade (name) {
  const { createClient } = require('redis')
  const redis = await createClient({ url: REDIS_URL }).connect()
  const keys = await redis.keys(`${name}:*`)
  if (keys.length) await redis.del(keys)
  await redis.quit()
  const pg = new (require('pg').Client)({ connectionString: DATABASE_URL })
  await pg.connect()
  await pg.query(`DROP TABLE IF EXISTS "${name}"`)
  await pg.end()
  const mysql = await require('mysql2/promise').createConnection({ ...mysqlServer(), password: mysqlServer().password || undefined, database: new URL(MYSQL_URL).pathname.slice(1) })
  await mysql.query(`DROP TABLE IF EXISTS \`${name}\``)
  await mysql.end()
  const { MongoClient } = require('mongodb')
  const mongo = await MongoClient.connect(mongoUrl())
  await mongo.db(name).dropDatabase()
  await mongo.close()
}

const expected = {
  ...Object.fromEntries(['memory', 'sqlite', 'redis', 'postgres', 'mysql', 'mongodb'].map((b) => [b, { user: 'zoë', length: 3, gone: null, after: 0 }])),
  middleware: [1, 2]
}

for (const [runtime, command] of Object.entries(RUNTIMES)) {
  test(`${runtime}: every backend, session() under Express and signing work, and the process exits by itself`, async () => {
    const [file, args] = command()
    const tmp = childTmp()
    let run
    try {
      run = spawnSync(file, args, {
        cwd: root,
        encoding: 'utf8',
        timeout: 60000, // a runtime kept alive by a store would otherwise hang here
        env: { ...tmp.env, SMOKE_RUNTIME: runtime, REDIS_URL, DATABASE_URL, MYSQL_URL, MONGO_URL: mongoUrl(), NO_COLOR: '1' }
      })
    } finally {
      tmp.remove()
      await removeWhatSmokeMade(`ferrotest_smoke_${runtime}_${RUN}`)
    }
    expect(run.error).toBeUndefined()
    expect({ status: run.status, signal: run.signal, stderr: run.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
    const results = JSON.parse(run.stdout.trim().split('\n').pop())
    const signed = require('cookie-signature').sign('hello', 'secret')
    expect(results).toEqual({ ...expected, signing: [signed, 'hello', false] })
  }, 90000)
}

test('the runtimes tested are the ones the README names', () => {
  const readme = require('node:fs').readFileSync(path.join(root, 'README.md'), 'utf8')
  const { devDependencies } = require('../package.json')
  for (const runtime of ['bun', 'deno']) {
    const version = devDependencies[runtime].replace(/^[\^~]/, '')
    expect(readme).toContain(`${runtime === 'bun' ? 'Bun' : 'Deno'} ${version}`)
  }
})
