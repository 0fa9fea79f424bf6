'use strict'
// The `ferrosession` command as a user runs it (a child process): inspect a store, migrate
// 100,000 sessions from SQLite to Redis with their expiries (after a dry run that writes nothing),
// a migration whose target goes down mid-run (it stops saying how to go on; run again, it copies
// only what is missing), and pairs of real backends, never overwriting what the target has.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { SqliteStore, RedisStore, PostgresStore, MongoStore } = require('..')
const { REDIS_URL, DATABASE_URL, MYSQL_URL, RUN, sessionData, mongoUrl, closedPort } = require('./support/backends')
const { startRedis } = require('./support/servers')

const BIN = path.join(__dirname, '..', 'bin', 'ferrosession.js')
let dir

/** Runs the command in `dir`; resolves with { code, stdout, stderr }. `onStderr` sees each chunk. */
function cli (args, { onStderr = () => {} } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d; onStderr(String(d), child) })
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

/** A SQLite file holding `n` sessions `s<i>`, expiring 1 to 10 minutes from now. */
async function sqliteWith (n, name) {
  const file = path.join(dir, name)
  const store = new SqliteStore({ path: file, cleanupInterval: 0 })
  for (let i = 0; i < n; i += 2000) {
    await Promise.all(Array.from({ length: Math.min(2000, n - i) }, (_, k) =>
      store.set(`s${String(i + k).padStart(6, '0')}`, sessionData(60000 * (1 + ((i + k) % 10)), { n: i + k }))))
  }
  await store.close()
  return file
}

beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-cli-')) })
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

test('inspect reports counts, near expiries and size percentiles; bad usage is one clear line and exit 1', async () => {
  const file = await sqliteWith(30, 'inspect.sqlite')
  const { code, stdout } = await cli(['inspect', `sqlite:${file}`])
  expect(code).toBe(0)
  const report = JSON.parse(stdout)
  // sqliteWith: expiries of 1 to 10 minutes, all within the hour.
  expect(report).toMatchObject({ store: `sqlite:${file}`, sessions: 30, unreadable: 0, expiringWithinHour: 30, expiringWithinDay: 30 })
  expect(report.lookedIn).toBe(`the table "sessions" of ${file} (options path, tableName)`)
  expect(report.bytes.p50).toBeGreaterThan(50)
  expect(report.bytes.max).toBeGreaterThanOrEqual(report.bytes.p99)
  const wrong = await cli(['migrate', `sqlite:${file}`])
  expect(wrong.code).toBe(1)
  expect(wrong.stderr.split('\n')[0]).toBe('ferrosession: migrate takes --from <url> and --to <url> (--from is missing; "" is the embedded SQLite store)')
  // --to without --from never reads ./sessions.sqlite silently.
  const noFrom = await cli(['migrate', '--to', 'memory:'])
  expect(noFrom.code).toBe(1)
  expect(noFrom.stderr.split('\n')[0]).toMatch(/--from is missing/)
  const typo = await cli(['migrate', '--form', `sqlite:${file}`, '--to', 'memory:'])
  expect(typo.code).toBe(1)
  expect(typo.stderr.split('\n')[0]).toBe("ferrosession: Unknown option '--form'; did you mean --from?")
  // inspect takes migrate's spelling of the store options too, and says where it looked.
  const other = JSON.parse((await cli(['inspect', `sqlite:${file}`, '--from-options', '{"tableName":"elsewhere"}'])).stdout)
  expect(other).toMatchObject({ sessions: 0, lookedIn: `the table "elsewhere" of ${file} (options path, tableName)` })
})

test('100,000 sessions from SQLite to Redis: a dry run writes nothing, the migration copies each with its expiry', async () => {
  const file = await sqliteWith(100000, 'many.sqlite')
  const prefix = `ferrotest:cli:${RUN}:`
  const target = new RedisStore({ url: REDIS_URL, prefix })
  try {
    const args = ['migrate', '--from', `sqlite:${file}`, '--to', REDIS_URL, '--to-options', JSON.stringify({ prefix })]
    const dry = await cli([...args, '--dry-run'])
    expect(dry.code).toBe(0)
    expect(dry.stderr).toMatch(/dry run: would copy up to 100000 sessions in/)
    expect(await target.length()).toBe(0)

    const run = await cli(args)
    expect(run.code).toBe(0)
    expect(run.stderr).toContain('migrate: 100000/100000 sessions (100%)')
    expect(run.stderr).toMatch(/copied 100000 sessions in [\d.]+ s \(\d+\/s\); skipped 0 the target already had and 0 that expired during the run; failed 0/)
    expect(await target.length()).toBe(100000)
    const source = new SqliteStore({ path: file, cleanupInterval: 0 })
    for (const sid of ['s000000', 's012345', 's099999']) {
      const [theirs, ours] = await Promise.all([source.get(sid), target.get(sid)])
      expect(ours).toEqual(theirs)
    }
    await source.close()
  } finally {
    await target.clear()
    await target.close()
  }
}, 120000)

test('the target goes down mid-run: the command stops with status 2; run again, it copies only what is missing', async () => {
  const file = await sqliteWith(20000, 'resume.sqlite')
  const redis = await startRedis({ appendOnly: true })
  const target = new RedisStore({ url: redis.url })
  try {
    const args = ['migrate', '--from', `sqlite:${file}`, '--to', redis.url, '--chunk', '200', '--retry-for', '2']
    let killed = null
    const first = await cli(args, {
      onStderr: (text) => {
        if (!killed && /migrate: [1-9]\d*\/20000/.test(text)) killed = redis.kill()
      }
    })
    await killed
    expect(first.code).toBe(2)
    expect(first.stderr).toMatch(/store failed: .*; gave up after 2 s\. Run the same command again: it copies only what is missing\./)
    await redis.start()
    const partial = await target.length()
    expect(partial).toBeGreaterThan(0)
    expect(partial).toBeLessThan(20000)

    const second = await cli(args)
    expect(second.code).toBe(0)
    expect(second.stderr).toContain(`copied ${20000 - partial} sessions`)
    expect(second.stderr).toContain(`skipped ${partial} the target already had`)
    // Every session whole: none half-written by the interrupted run.
    const all = await target.all()
    expect(all.map((sess) => sess.n).sort((a, b) => a - b)).toEqual(Array.from({ length: 20000 }, (_, i) => i))
  } finally {
    await target.close()
    await redis.stop()
  }
}, 120000)

test('a session that cannot be read fails alone: the rest are copied, the summary names it, exit 1', async () => {
  const prefix = `ferrotest:cli3:${RUN}:`
  const source = new RedisStore({ url: REDIS_URL, prefix })
  const { createClient } = require('redis')
  const raw = await createClient({ url: REDIS_URL }).connect()
  const file = path.join(dir, 'partial-target.sqlite')
  try {
    await Promise.all(Array.from({ length: 50 }, (_, i) => source.set(`ok${i}`, sessionData(600000, { i }))))
    await raw.hSet(`${prefix}wrong-type`, 'a', 'b') // listed under the prefix, but GET fails (WRONGTYPE)
    const run = await cli(['migrate', '--from', REDIS_URL, '--from-options', JSON.stringify({ prefix }), '--to', `sqlite:${file}`])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/copied 50 sessions .*failed 1\n {2}failed: wrong-type: ferrosession redis get: "WRONGTYPE": Operation against a key holding the wrong kind of value/)
    const target = new SqliteStore({ path: file, cleanupInterval: 0 })
    expect(await target.length()).toBe(50)
    await target.close()
  } finally {
    await source.clear()
    await raw.del(`${prefix}wrong-type`)
    await Promise.all([source.close(), raw.quit()])
  }
})

describe('both stores are checked before the first session moves', () => {
  const table = `cli_check_${RUN}`
  afterAll(async () => {
    const pg = new (require('pg').Client)({ connectionString: DATABASE_URL })
    await pg.connect()
    await pg.query(`DROP TABLE IF EXISTS "${table}"`)
    await pg.end()
  })

  test('a wrong password on the target: one message naming the store and the fix, nothing copied, exit 1', async () => {
    const file = await sqliteWith(300, 'check-password.sqlite')
    const url = new URL(MYSQL_URL)
    url.password = 'not the password'
    const run = await cli(['migrate', '--from', `sqlite:${file}`, '--to', url.href])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^ferrosession: cannot use the store mysql:\/\/[^ ]* \(--to\): ferrosession mysql get: .*Access denied.*\n {2}fix: check the user and password in --to \(or --to-options\)\n$/)
    expect(run.stderr).not.toContain('not the password')
    expect(run.stderr).not.toContain(url.password) // as the URL holds it: not%20the%20password
  })

  test('a missing table: the fix in the command\'s spelling, which then works', async () => {
    const file = await sqliteWith(300, 'check-table.sqlite')
    const args = ['migrate', '--from', `sqlite:${file}`, '--to', DATABASE_URL]
    const first = await cli([...args, '--to-options', JSON.stringify({ tableName: table })])
    expect(first.code).toBe(1)
    // The options the user passed are not echoed (they may hold a password): only what to add.
    expect(first.stderr).toMatch(/\n {2}fix: add "createTableIfMissing": true to the JSON of --to-options\n$/)
    expect(first.stderr).not.toMatch(/copied|failed \d/)
    const second = await cli([...args, '--to-options', JSON.stringify({ tableName: table, createTableIfMissing: true })])
    expect(second.code).toBe(0)
    expect(second.stderr).toMatch(/copied 300 sessions/)
  })

  test('a source nobody listens on fails at once, without retrying as an outage', async () => {
    const run = await cli(['migrate', '--from', `redis://127.0.0.1:${await closedPort()}`, '--to', 'memory:'])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^ferrosession: cannot use the store redis:\/\/127\.0\.0\.1:\d+ \(--from\): .*\n {2}fix: check the host and port in --from/)
    expect(run.stderr).not.toMatch(/retrying|Run the same command again/)
  })

  test('inspect says the same of a store it cannot use', async () => {
    const run = await cli(['inspect', `redis://127.0.0.1:${await closedPort()}`])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^ferrosession: cannot use the store redis:\/\/127\.0\.0\.1:\d+ \(the URL\): .*\n {2}fix: check the host and port in the URL/)
  })
})

describe('across backends', () => {
  const prefix = `ferrotest:cli2:${RUN}:`
  const table = `cli_${RUN}`
  const db = `ferrotest_cli_${RUN}`

  afterAll(async () => {
    const redis = new RedisStore({ url: REDIS_URL, prefix })
    await redis.clear()
    await redis.close()
    const pg = new (require('pg').Client)({ connectionString: DATABASE_URL })
    await pg.connect()
    await pg.query(`DROP TABLE IF EXISTS "${table}"`)
    await pg.end()
    const { MongoClient } = require('mongodb')
    const client = await MongoClient.connect(mongoUrl())
    await client.db(db).dropDatabase()
    await client.close()
  })

  test('Redis to PostgreSQL keeps the session the target already has; MongoDB (connect-mongo) to Redis', async () => {
    const redis = new RedisStore({ url: REDIS_URL, prefix })
    const pg = new PostgresStore({ conString: DATABASE_URL, tableName: table, createTableIfMissing: true })
    const mongo = new MongoStore({ mongoUrl: mongoUrl(), dbName: db, collectionName: 'sessions' })
    try {
      await Promise.all(Array.from({ length: 2000 }, (_, i) => redis.set(`r${i}`, sessionData(600000, { from: 'redis', i }))))
      await pg.set('r7', sessionData(600000, { from: 'already in postgres' }))
      const toPg = await cli(['migrate', '--from', REDIS_URL, '--from-options', JSON.stringify({ prefix }),
        '--to', DATABASE_URL, '--to-options', JSON.stringify({ tableName: table })])
      expect(toPg.code).toBe(0)
      expect(toPg.stderr).toMatch(/copied 1999 sessions .*skipped 1 the target already had/)
      expect(await pg.length()).toBe(2000)
      expect((await pg.get('r7')).from).toBe('already in postgres')
      expect(await pg.get('r1999')).toEqual(await redis.get('r1999'))
      await redis.clear()

      await Promise.all(Array.from({ length: 500 }, (_, i) => mongo.set(`m${i}`, sessionData(600000, { from: 'mongo', i }))))
      const toRedis = await cli(['migrate', '--from', mongoUrl(), '--from-options', JSON.stringify({ dbName: db, collectionName: 'sessions' }),
        '--to', REDIS_URL, '--to-options', JSON.stringify({ prefix })])
      expect(toRedis.code).toBe(0)
      expect(await redis.length()).toBe(500)
      expect(await redis.get('m499')).toEqual(await mongo.get('m499'))
    } finally {
      await Promise.all([redis.close(), pg.close(), mongo.close()])
    }
  }, 120000)
})

test('--help names every store URL createStore takes (one list)', async () => {
  const { SCHEMES } = require('../lib/create-store')
  const { code, stdout, stderr } = await cli(['--help'])
  const text = stdout + stderr
  expect(code).toBe(0)
  for (const scheme of SCHEMES) expect(text).toContain(scheme)
})
