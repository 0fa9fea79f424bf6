'use strict'
// Connections that die without closing: a NAT or load balancer that stops forwarding keeps the
// TCP connection open and silent. A store must stop trusting a connection whose request timed
// out and open a new one, its probe must not hang, and none of this may flap readiness.

const { RedisStore, PostgresStore } = require('..')
const { proxy } = require('./support/proxy')
const { silentServer } = require('./support/servers')
const { REDIS_URL, DATABASE_URL, sessionData, watchEvents } = require('./support/backends')

const redisPort = Number(new URL(REDIS_URL).port || 6379)
const pg = new URL(DATABASE_URL)
const schemaName = `ferrotest_frozen_${process.pid}`
const stores = []
const proxies = []

const track = (store) => watchEvents(store, stores)

/** Retries `get` until it succeeds; resolves with how long that took and how many failed. */
async function untilItWorks (store, sid, limitMs = 10000) {
  const started = Date.now()
  const failures = []
  while (Date.now() - started < limitMs) {
    const err = await store.get(sid).then(() => null, (e) => e)
    if (!err) return { ms: Date.now() - started, failures }
    failures.push(err)
  }
  throw new Error(`still failing after ${limitMs} ms: ${failures.slice(-1)[0] && failures.slice(-1)[0].message}`)
}

afterAll(async () => {
  for (const s of stores.splice(0)) await s.close()
  for (const p of proxies.splice(0)) await p.close()
  const { Client } = require('pg')
  const admin = new Client({ connectionString: DATABASE_URL })
  await admin.connect()
  await admin.query(`DROP SCHEMA IF EXISTS "${schemaName}" CASCADE`)
  await admin.end()
})

describe('redis: a connection that goes silent', () => {
  test('after a request times out the store opens a new connection, and requests work again at once', async () => {
    const p = await proxy(redisPort)
    proxies.push(p)
    const store = new RedisStore({ url: `redis://127.0.0.1:${p.port}`, prefix: `ferrotest:frozen:${process.pid}:`, commandTimeout: 300 })
    const events = track(store)
    await store.set('a', sessionData(60000, { v: 1 }))
    expect(p.accepted).toBe(1)

    p.freeze() // the open connection is black-holed; a new one would get through
    const recovery = await untilItWorks(store, 'a')
    console.log(`redis frozen connection: first success ${recovery.ms} ms after the freeze, ${recovery.failures.length} request(s) timed out`)
    expect(recovery.failures.map((e) => e.code)).toEqual(['ESESSION_TIMEOUT'])
    expect(recovery.failures[0].message).toMatch(/^ferrosession redis get: no answer within 300 ms/)
    expect(p.accepted).toBe(2) // a new socket, not more waiting on the dead one
    expect((await store.get('a')).v).toBe(1)
    expect(events).toEqual([]) // one slow connection is not an outage
    await store.destroy('a')
  })

  test('when new connections are black-holed too, the store reports the outage and the bounded probe brings it back', async () => {
    const p = await proxy(redisPort)
    proxies.push(p)
    const store = new RedisStore({ url: `redis://127.0.0.1:${p.port}`, prefix: `ferrotest:frozen:${process.pid}:`, commandTimeout: 300, connectTimeout: 300 })
    const events = track(store)
    await store.set('b', sessionData())
    p.freeze({ newConnections: true })
    const errors = []
    for (let i = 0; i < 4; i++) errors.push(await store.get('b').then(() => null, (e) => e))
    // The request on the frozen socket times out; the new connection cannot even be set up,
    // which is an unreachable server: the outage is announced once.
    expect(errors[0].code).toBe('ESESSION_TIMEOUT')
    expect(errors.some((e) => e.code === 'ESESSION_UNAVAILABLE' && /no connection within 300 ms \(connectTimeout\)/.test(e.message))).toBe(true)
    expect(events).toEqual(['disconnect'])
    p.thaw()
    const deadline = Date.now() + 5000
    while (!events.includes('connect') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25))
    expect(events).toEqual(['disconnect', 'connect'])
    await expect(store.get('b')).resolves.not.toBeNull()
    await store.destroy('b')
  })
})

describe('postgres: pooled connections that go silent', () => {
  test('timed-out connections are discarded, not recycled; requests work again and readiness never flaps', async () => {
    const p = await proxy(Number(pg.port || 5432), pg.hostname)
    proxies.push(p)
    const url = new URL(DATABASE_URL)
    url.port = String(p.port)
    url.hostname = '127.0.0.1'
    const store = new PostgresStore({
      conString: url.toString(),
      schemaName,
      tableName: 'frozen',
      createTableIfMissing: true,
      pruneSessionInterval: false,
      poolSize: 2,
      commandTimeout: 300,
      connectTimeout: 1000
    })
    const events = track(store)
    await Promise.all([store.set('a', sessionData(60000, { v: 1 })), store.set('b', sessionData())]) // two pooled connections
    const before = p.accepted
    p.freeze()
    const recovery = await untilItWorks(store, 'a')
    console.log(`postgres frozen pool: first success ${recovery.ms} ms after the freeze, ${recovery.failures.length} request(s) timed out`)
    expect(recovery.failures.length).toBeGreaterThan(0)
    expect(recovery.failures.every((e) => e.code === 'ESESSION_TIMEOUT')).toBe(true)
    expect(p.accepted).toBeGreaterThan(before)
    // Keep going for a while: no request may land on a frozen connection again.
    for (let i = 0; i < 20; i++) await expect(store.get('a')).resolves.toMatchObject({ v: 1 })
    expect(events).toEqual([])
  })
})

describe.each([
  ['redis', (port) => new RedisStore({ url: `redis://127.0.0.1:${port}`, connectTimeout: 300, commandTimeout: 2000 })],
  ['postgres', (port) => new PostgresStore({ conString: `postgres://postgres@127.0.0.1:${port}/x`, connectTimeout: 300, commandTimeout: 2000, pruneSessionInterval: false })]
])('%s: a server that accepts and then says nothing', (backend, make) => {
  test('the health check (startup handshake included) gives up within connectTimeout', async () => {
    const hung = await silentServer()
    const store = make(hung.port)
    stores.push(store)
    try {
      const started = Date.now()
      const err = await store.ready().then(() => null, (e) => e)
      expect(Date.now() - started).toBeLessThan(1500)
      expect(err && err.message).toMatch(new RegExp(`^ferrosession ${backend} ping: `))
      expect(err.code).toMatch(/ESESSION_(UNAVAILABLE|TIMEOUT)/)
    } finally {
      await hung.close()
    }
  })
})

test('redis: rediss:// to a plain-text port fails fast with an error that says TLS', async () => {
  const store = new RedisStore({ url: `rediss://127.0.0.1:${redisPort}`, connectTimeout: 500, commandTimeout: 3000 })
  stores.push(store)
  const started = Date.now()
  const err = await store.get('x').then(() => null, (e) => e)
  expect(Date.now() - started).toBeLessThan(1500)
  expect(err.code).toBe('ESESSION_UNAVAILABLE')
  expect(err.message).toMatch(/^ferrosession redis get: TLS connection to \S+ failed: .*TLS port/)
})
