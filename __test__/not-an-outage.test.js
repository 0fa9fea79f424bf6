'use strict'
// Only an unreachable server is an outage. A `disconnect` switches sessions off for every user of
// the app, so bad stored data, a wrong schema, a busy or read-only file, or one huge request must
// fail that request alone, with a message in the user's terms, and never emit an event.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync, spawn } = require('node:child_process')
const pg = require('pg')
const { createClient } = require('redis')
const Redis = require('ioredis')
const { RedisStore, PostgresStore, SqliteStore } = require('..')
const { REDIS_URL, DATABASE_URL, sessionData, sleep, watchEvents } = require('./support/backends')
const { startRedis } = require('./support/servers')

const schemaName = `ferrotest_notoutage_${process.pid}`
const prefix = `ferrotest:notoutage:${process.pid}:`
// Named now, made by the first hook: a run that filters out every test here (jest -t) runs no
// hook, so it must not leave a directory behind either.
const dir = path.join(os.tmpdir(), `ferrotest-notoutage-${process.pid}-${Date.now().toString(36)}`)
const q = (name) => '"' + name.replace(/"/g, '""') + '"'
let pool, redis
const stores = []

const watched = (store) => watchEvents(store, stores)

const pgStore = (options) => new PostgresStore({ conString: DATABASE_URL, schemaName, pruneSessionInterval: false, poolSize: 2, ...options })

beforeAll(async () => {
  fs.mkdirSync(dir)
  pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 })
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${q(schemaName)}`)
  redis = await createClient({ url: REDIS_URL }).connect()
})
afterAll(async () => {
  for (const s of stores.splice(0)) await s.close()
  await pool.query(`DROP SCHEMA ${q(schemaName)} CASCADE`)
  await pool.end()
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*` })) if (keys.length) await redis.del(keys)
  await redis.quit()
  fs.rmSync(dir, { recursive: true, force: true })
})

describe('redis', () => {
  test('a stored value that is not UTF-8 is treated as absent, reported once, left as it is, and is no outage', async () => {
    const logged = []
    const store = new RedisStore({ url: REDIS_URL, prefix, errorLog: (err) => logged.push(err) })
    const events = watched(store)
    const bytes = Buffer.from([0x7b, 0xff, 0x7d])
    await redis.set(prefix + 'bad', bytes)
    await store.set('good', sessionData(60000, { v: 1 }))
    expect(await store.get('bad')).toBeNull()
    expect(await store.get('bad')).toBeNull()
    expect(logged).toHaveLength(1)
    expect(logged[0].message).toMatch(/^ferrosession redis get: the stored session "bad" cannot be read \(.*not UTF-8.*\); it is treated as absent/)
    expect((await store.get('good')).v).toBe(1) // everybody else is unaffected
    expect(events).toEqual([])
    const raw = new Redis(REDIS_URL)
    expect(Buffer.compare(await raw.getBuffer(prefix + 'bad'), bytes)).toBe(0) // untouched
    raw.disconnect()
    expect((await store.all()).map((s) => s.id)).toEqual(['good']) // all() skips it too
  })
})

describe('redis, on a private server', () => {
  let server
  const configure = async (...pairs) => {
    const c = await createClient({ url: server.url }).connect()
    for (const [name, value] of pairs) await c.configSet(name, value)
    await c.quit()
  }
  beforeAll(async () => {
    server = await startRedis()
    await configure(['proto-max-bulk-len', '1mb'])
  })
  afterAll(() => server.stop())

  test('a session over proto-max-bulk-len is refused before it is sent (ESESSION_TOO_LARGE), fails alone and is no outage', async () => {
    const store = new RedisStore({ url: server.url, prefix })
    const events = watched(store)
    await store.set('small', sessionData(60000, { v: 1 }))
    const big = sessionData(60000, { blob: 'x'.repeat(1.5 * 1024 * 1024) })
    const [err, alongside] = await Promise.all([store.set('big', big).catch((e) => e), store.get('small')])
    expect(err.code).toBe('ESESSION_TOO_LARGE')
    expect(err.message).toMatch(/^ferrosession redis set: the session is \d+ bytes, more than the server accepts \(1048576 bytes\); raise the server's proto-max-bulk-len/)
    expect(alongside.v).toBe(1)
    expect(await store.get('big')).toBeNull()
    await sleep(300)
    expect(events).toEqual([])
  })

  test('keys under the prefix that are not UTF-8 are skipped by ids/length/all, reported once, and removed by clear', async () => {
    const logged = []
    const store = new RedisStore({ url: server.url, prefix: 'utf8test:', errorLog: (err) => logged.push(err.message) })
    watched(store)
    await store.set('good', sessionData())
    const raw = new Redis(server.url)
    await raw.set(Buffer.concat([Buffer.from('utf8test:'), Buffer.from([0xff, 0xfe])]), '{}')
    expect(await store.ids()).toEqual(['good'])
    expect(await store.length()).toBe(1)
    expect((await store.all()).map((s) => s.id)).toEqual(['good'])
    expect(logged).toEqual(['ferrosession redis ids: 1 key(s) under this store\'s prefix are not UTF-8 text, so no session id of ours: skipped (clear() removes them)'])
    await store.clear()
    expect(await raw.keys('utf8test:*')).toEqual([])
    raw.disconnect()
  })

  test('a wrong password fails each request with an error that says so, and is no outage', async () => {
    await configure(['requirepass', 'right password'])
    const store = new RedisStore({ url: server.url.replace('redis://', 'redis://:wrong@'), prefix })
    const events = watched(store)
    for (let i = 0; i < 3; i++) {
      const err = await store.get('x').catch((e) => e)
      expect(err.code).toBe('ESESSION_BACKEND')
      expect(err.message).toMatch(/^ferrosession redis get: the server refused the login: .*check the username and password/)
    }
    await sleep(300)
    expect(events).toEqual([])
  })
})

describe('postgres', () => {
  test.each([
    ['sid integer', 'sid integer PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL', /column "sid" of table .* has type int4, but ferrosession needs varchar or text/],
    ['sess bytea', 'sid varchar PRIMARY KEY, sess bytea NOT NULL, expire timestamp(6) NOT NULL', /column "sess" of table .* has type bytea, but ferrosession needs json, jsonb or text/]
  ])('a table with %s fails each request with a message naming the column, and is no outage', async (label, columns, message) => {
    const table = `wrong_${label.replace(/\W/g, '_')}`
    await pool.query(`CREATE TABLE ${q(schemaName)}.${q(table)} (${columns})`)
    const store = pgStore({ tableName: table })
    const events = watched(store)
    for (const attempt of [store.set('x', sessionData()), store.get('x'), store.touch('x', sessionData())]) {
      const err = await attempt.then(() => null, (e) => e)
      expect(err.code).toBe('ESESSION_BACKEND')
      expect(err.message).toMatch(message)
    }
    expect(events).toEqual([])
  })

  test('after ALTER TABLE ... TYPE jsonb while the app runs, requests keep working', async () => {
    const store = pgStore({ tableName: 'altered', createTableIfMissing: true })
    const events = watched(store)
    await store.set('s', sessionData(60000, { v: 1 }))
    expect((await store.get('s')).v).toBe(1) // the statements are now prepared on the pooled connection
    await pool.query(`ALTER TABLE ${q(schemaName)}.altered ALTER sess TYPE jsonb USING sess::jsonb`)
    expect((await store.get('s')).v).toBe(1)
    await store.set('s', sessionData(60000, { v: 2 }))
    expect((await store.get('s')).v).toBe(2)
    expect((await pool.query(`SELECT pg_typeof(sess)::text AS t FROM ${q(schemaName)}.altered`)).rows[0].t).toBe('jsonb')
    expect(events).toEqual([])
  })

  test('several huge sessions that miss the deadline fail alone, within commandTimeout of the call, and are no outage', async () => {
    const store = pgStore({ tableName: 'huge', createTableIfMissing: true, commandTimeout: 250 })
    const events = watched(store)
    await store.set('warm', sessionData())
    const huge = sessionData(60000, { blob: 'x'.repeat(16 * 1024 * 1024) })
    // The table is locked meanwhile, so they miss it however fast the server is.
    const locker = await pool.connect()
    await locker.query(`BEGIN; LOCK TABLE ${q(schemaName)}.huge IN ACCESS EXCLUSIVE MODE`)
    const late = await Promise.all(Array.from({ length: 4 }, (_, i) => {
      const calledAt = Date.now()
      return store.set(`huge-${i}`, huge).then(() => null, (e) => e).then((err) => ({ err, ms: Date.now() - calledAt }))
    }))
    await locker.query('ROLLBACK')
    locker.release()
    for (const { err, ms } of late) {
      expect(err && err.code).toBe('ESESSION_TIMEOUT')
      expect(ms).toBeLessThan(250 + 1500) // from the call, with room for a busy machine
    }
    await expect(store.get('warm')).resolves.not.toBeNull()
    expect(events).toEqual([])
  }, 30000)
})

describe('sqlite', () => {
  test('a read-only database file fails writes with a clear error and is no outage', async () => {
    const file = path.join(dir, 'readonly.sqlite')
    const setup = new SqliteStore({ path: file, cleanupInterval: 0 })
    await setup.set('kept', sessionData(60000, { v: 1 }))
    await setup.close()
    execFileSync('chattr', ['+i', file]) // read-only even for root
    try {
      const store = new SqliteStore({ path: file, cleanupInterval: 0 })
      const events = watched(store)
      expect((await store.get('kept')).v).toBe(1)
      const err = await store.set('new', sessionData()).then(() => null, (e) => e)
      expect(err.code).toBe('ESESSION_BACKEND')
      expect(err.message).toMatch(/^ferrosession sqlite set: .*read-only/)
      expect(events).toEqual([])
      await store.close()
    } finally {
      execFileSync('chattr', ['-i', file])
    }
  })

  test('a file another process keeps locked fails that request (SQLITE_BUSY) and is no outage', async () => {
    const file = path.join(dir, 'busy.sqlite')
    const store = new SqliteStore({ path: file, cleanupInterval: 0, busyTimeout: 100 })
    const events = watched(store)
    await store.set('a', sessionData())
    // Another process: two SQLite libraries in one process do not see each other's locks.
    const locker = spawn(process.execPath, ['-e', `
      const db = new (require('better-sqlite3'))(${JSON.stringify(file)})
      db.exec('BEGIN EXCLUSIVE')
      db.prepare("INSERT INTO sessions VALUES ('other', '{}', '2999-01-01T00:00:00.000Z')").run()
      console.log('locked')
      process.stdin.on('data', () => { db.exec('ROLLBACK'); db.close(); process.exit(0) })`], { stdio: ['pipe', 'pipe', 'inherit'] })
    await new Promise((resolve) => locker.stdout.once('data', resolve))
    try {
      const err = await store.set('b', sessionData()).then(() => null, (e) => e)
      expect(err && err.code).toBe('ESESSION_TIMEOUT')
      expect(err.message).toMatch(/^ferrosession sqlite set: database is locked .*another writer/)
      expect(events).toEqual([])
    } finally {
      locker.stdin.write('done\n')
      await new Promise((resolve) => locker.once('exit', resolve))
    }
    await expect(store.set('b', sessionData())).resolves.toBeUndefined()
  })
})
