'use strict'
// Outages with real servers of our own (redis-server, PostgreSQL, MariaDB, SecantusDB): killed under load,
// absent at start, hung, and (for PostgreSQL) an exhausted pool. The store must never crash or hang the process, every callback
// must fire exactly once, and it must come back by itself.

const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { RedisStore, PostgresStore, MySqlStore, MongoStore } = require('..')
const { ownServer, silentServer } = require('./support/servers')
const { sessionData, sleep, failOnEscapedErrors } = require('./support/backends')
const { STORES } = require('../lib/stores')
const { loadGenerator, summarise } = require('./support/load')

const COMMAND_TIMEOUT = 1000
const IN_FLIGHT = 200

// Any unhandled rejection or uncaught exception during these tests fails them.
failOnEscapedErrors()

// Every store that talks to a server (lib/stores.js), each against a private server of its own.
for (const backend of STORES.filter((s) => s.server).map((s) => s.backend)) {
  describe(`${backend}: outages`, () => {
    let own
    beforeAll(async () => { own = await ownServer(backend) })
    afterAll(() => own.server.stop())

    test('killed under load and restarted: no crash, no hang, every callback once, back by itself', async () => {
      const store = own.create({ commandTimeout: COMMAND_TIMEOUT, connectTimeout: 500, ...(backend === 'redis' ? {} : { poolSize: 10 }) })
      const events = []
      store.on('disconnect', () => events.push(['disconnect', Date.now()]))
      store.on('connect', () => events.push(['connect', Date.now()]))
      await store.ready()
      const load = loadGenerator(store, IN_FLIGHT)
      await sleep(1000)

      const killedAt = Date.now()
      await own.server.kill()
      await sleep(3000)
      // Figures after the restart count from the moment the server process is started again.
      const backAt = Date.now()
      await own.server.start()
      while (!events.some(([e]) => e === 'connect') && Date.now() - backAt < 5000) await sleep(20)
      await sleep(1000)
      await load.stop()

      const { ops } = load
      const report = summarise(ops, killedAt, backAt, events)
      console.log(`${backend} outage: ${JSON.stringify(report)}`)

      expect(ops.every((op) => op.calls === 1)).toBe(true) // every callback fired, exactly once
      expect(report.lostCallbacks).toBe(0)
      expect(report.okBefore).toBeGreaterThan(100)
      expect(report.failedWhileDown).toBeGreaterThan(0)
      expect(report.slowestFailureMs).toBeLessThanOrEqual(COMMAND_TIMEOUT + 500) // none hung
      expect(report.unclearErrors).toEqual([])
      expect(events.map(([e]) => e)).toEqual(['disconnect', 'connect'])
      expect(report.recoveryMs).toBeLessThan(2000) // first success after the server is back
      expect(report.okAfter).toBeGreaterThan(100)
      await store.close()
    }, 30000)

    test('absent at start: the store constructs, fails fast, and connects when the server appears', async () => {
      await own.server.kill()
      const store = own.create({ commandTimeout: COMMAND_TIMEOUT, connectTimeout: 500 })
      const events = []
      store.on('disconnect', () => events.push('disconnect'))
      store.on('connect', () => events.push('connect'))
      const started = Date.now()
      const err = await store.get('x').catch((e) => e)
      expect(Date.now() - started).toBeLessThan(COMMAND_TIMEOUT + 200)
      expect(err.code).toMatch(/ESESSION_(UNAVAILABLE|TIMEOUT)/)
      expect(events).toEqual(['disconnect'])
      await own.server.start()
      const deadline = Date.now() + 5000
      while (!events.includes('connect') && Date.now() < deadline) await sleep(20)
      expect(events).toEqual(['disconnect', 'connect'])
      await expect(store.set('x', sessionData())).resolves.toBeUndefined()
      await store.close()
    }, 20000)
  })
}

describe.each([
  ['redis', (port) => new RedisStore({ url: `redis://127.0.0.1:${port}`, commandTimeout: 500, connectTimeout: 300 })],
  ['postgres', (port) => new PostgresStore({ conString: `postgres://postgres@127.0.0.1:${port}/x`, commandTimeout: 500, connectTimeout: 300, pruneSessionInterval: false })],
  ['mysql', (port) => new MySqlStore({ host: '127.0.0.1', port, user: 'root', commandTimeout: 500, connectTimeout: 300, clearExpired: false })],
  ['mongodb', (port) => new MongoStore({ mongoUrl: `mongodb://127.0.0.1:${port}/`, commandTimeout: 500, connectTimeout: 300 })]
])('%s: a server that accepts connections but never answers', (backend, make) => {
  test('every call ends within the timeouts with a clear error', async () => {
    const hung = await silentServer()
    const store = make(hung.port)
    try {
      const started = Date.now()
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.get(`s${i}`).catch((e) => e)))
      expect(Date.now() - started).toBeLessThan(1500)
      for (const err of results) {
        expect(err.code).toMatch(/ESESSION_(TIMEOUT|UNAVAILABLE)/)
        expect(err.message).toMatch(new RegExp(`^ferrosession ${backend} get: `))
      }
    } finally {
      await store.close()
      await hung.close()
    }
  })
})

describe('postgres: an exhausted pool', () => {
  test('a request waits for a connection up to the timeout; a timed-out connection is discarded, not handed on', async () => {
    const { DATABASE_URL } = require('./support/backends')
    const pg = require('pg')
    const schemaName = `ferrotest_pool_${process.pid}`
    const admin = new pg.Client({ connectionString: DATABASE_URL })
    await admin.connect()
    await admin.query(`CREATE SCHEMA IF NOT EXISTS "${schemaName}"`)
    const store = new PostgresStore({ conString: DATABASE_URL, schemaName, createTableIfMissing: true, poolSize: 1, commandTimeout: 800, pruneSessionInterval: false })
    try {
      await store.set('locked', sessionData())
      await admin.query('BEGIN')
      await admin.query(`SELECT * FROM "${schemaName}".session WHERE sid = 'locked' FOR UPDATE`)
      const started = Date.now()
      const [blocked, waiting] = await Promise.all([
        store.set('locked', sessionData()).catch((e) => e), // holds the only connection, stuck on the lock
        // Waits for the pool; gets a fresh connection once the first one is discarded at its
        // deadline (the stuck one is never handed on), and is stuck on the lock in turn.
        sleep(50).then(() => store.set('locked', sessionData()).catch((e) => e))
      ])
      expect(Date.now() - started).toBeLessThan(2000)
      expect(blocked.code).toBe('ESESSION_TIMEOUT')
      expect(waiting.code).toBe('ESESSION_TIMEOUT')
      expect(waiting.message).toMatch(/^ferrosession postgres set: no answer within 800 ms/)
      await admin.query('ROLLBACK')
      await expect(store.set('locked', sessionData())).resolves.toBeUndefined()
      await expect(store.get('other')).resolves.toBeNull()
    } finally {
      await store.close()
      await admin.query('ROLLBACK') // a no-op unless an expectation failed inside the transaction
      await admin.query(`DROP SCHEMA "${schemaName}" CASCADE`)
      await admin.end()
    }
  })
})

test('a panic inside a spawned task, or inline, becomes an error; the store and the process live on', () => {
  // The panic hook is off unless the process starts with FERROSESSION_TEST_HOOKS=1, so this runs
  // in a child process of its own (which also keeps the deliberate panic's report out of the log).
  const script = `
    const { MemoryStore, SqliteStore } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const results = []
    const run = async () => {
      // SQLite runs on the runtime (the spawned path); memory runs inline on the JS thread.
      for (const store of [new SqliteStore({ path: ':memory:', cleanupInterval: 0 }), new MemoryStore()]) {
        const err = await new Promise((resolve) => store._call('panicInTask', resolve))
        await store.set('after', { cookie: { expires: new Date(Date.now() + 60000).toISOString() }, ok: true })
        const after = await store.get('after')
        results.push({ code: err && err.code, message: err && err.message, after: after && after.ok })
        await store.close()
      }
      console.log(JSON.stringify(results))
    }
    run()`
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, FERROSESSION_TEST_HOOKS: '1' } })
  expect(child.status).toBe(0)
  const results = JSON.parse(child.stdout.trim().split('\n').pop())
  expect(results).toHaveLength(2)
  for (const r of results) {
    expect(r.code).toBe('ESESSION_PANIC')
    expect(r.message).toMatch(/^ferrosession (sqlite|memory) panic test: native panic: deliberate panic/)
    expect(r.after).toBe(true)
  }
})

test('the panic hook is refused without the test switch', async () => {
  const { MemoryStore } = require('..')
  const store = new MemoryStore()
  const err = await new Promise((resolve) => store._call('panicInTask', resolve))
  expect(err.code).toBe('ESESSION_INVALID')
  expect(err.message).toMatch(/test hooks are off/)
  await store.close()
})
