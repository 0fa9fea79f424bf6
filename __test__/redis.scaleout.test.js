'use strict'
// RedisStore on a Redis Cluster (3 masters, 3 replicas) and behind Sentinel (a master, a replica,
// three sentinels), servers of our own on free loopback ports: connect-redis's key format, every
// master scanned, failovers under 200 requests in flight, and connect-redis reading what we wrote.
// Also client certificates (mTLS), a demoted master's READONLY, and idle connections released.

const { createCluster, createClient } = require('redis')
const IORedis = require('ioredis')
const { RedisStore: ConnectRedis } = require('connect-redis')
const request = require('supertest')
const express = require('express')
const session = require('express-session')
const { RedisStore } = require('..')
const { startRedisCluster, startRedisSentinel, until } = require('./support/redis-servers')
const { startRedis } = require('./support/servers')
const { proxy } = require('./support/proxy')
const { loadGenerator } = require('./support/load')
const { sessionData, sleep, call, failOnEscapedErrors } = require('./support/backends')
const { callOrderTests } = require('./support/contract')

// Any unhandled rejection or uncaught exception during these tests fails them.
failOnEscapedErrors()

function watch (store) {
  const events = []
  store.on('disconnect', () => events.push(['disconnect', Date.now()]))
  store.on('connect', () => events.push(['connect', Date.now()]))
  return events
}

/** What the load saw around a failover at `switchedAt`. */
function failoverReport (ops, switchedAt, events) {
  const after = ops.filter((op) => op.issuedAt >= switchedAt)
  const failed = after.filter((op) => op.err)
  const lastFailure = failed.reduce((t, op) => Math.max(t, op.doneAt), switchedAt)
  return {
    issued: ops.length,
    failedDuringSwitch: failed.length,
    everyRequestSucceedsAgainAfterMs: lastFailure - switchedAt,
    okAfter: after.filter((op) => !op.err).length,
    errorCodes: [...new Set(failed.map((op) => op.err.code))],
    unclearErrors: failed.filter((op) => !/^ferrosession redis \w+: ./.test(op.err.message)).slice(0, 3).map((op) => op.err.message),
    lostOrRepeatedCallbacks: ops.filter((op) => op.calls !== 1).length,
    events: events.map(([e, t]) => `${e}@${t - switchedAt}ms`)
  }
}

describe('Redis Cluster', () => {
  let cluster
  const stores = []
  const make = (options = {}) => {
    const s = new RedisStore({ cluster: { rootNodes: cluster.rootNodes }, prefix: `cl${stores.length}:`, commandTimeout: 1500, ...options })
    stores.push(s)
    return s
  }
  beforeAll(async () => { cluster = await startRedisCluster() }, 60000)
  afterAll(async () => {
    for (const s of stores) await s.close()
    await cluster.stop()
  })

  test('sessions spread over every master; ids, all, length and clear see them all; nothing fails with CROSSSLOT', async () => {
    const s = make()
    await Promise.all(Array.from({ length: 600 }, (_, i) => s.set(`sid-${i}`, sessionData(60000, { i }))))
    const perMaster = cluster.masters().map((port) => Number(require('node:child_process').execFileSync('redis-cli', ['-p', String(port), 'dbsize']).toString()))
    expect(perMaster.every((n) => n > 100)).toBe(true) // really spread across the three
    expect(await s.length()).toBe(600)
    expect((await s.ids()).length).toBe(600)
    expect((await s.all()).map((x) => x.i).sort((a, b) => a - b)).toEqual(Array.from({ length: 600 }, (_, i) => i))
    expect((await s.get('sid-7')).i).toBe(7)
    expect(await s.clear()).toBe(600)
    expect(await s.length()).toBe(0)
  })

  // The same-sid sequences of the contract suite, on a cluster: batches span masters.
  describe('call order per session id', () => callOrderTests((options) => make(options)))

  test('connect-redis with a node-redis cluster client reads what we write, and we read what it writes', async () => {
    const client = await createCluster({ rootNodes: cluster.rootNodes }).connect()
    try {
      const prefix = 'interop:'
      const theirs = new ConnectRedis({ client, prefix })
      const ours = make({ prefix })
      const sess = sessionData(60000, { who: 'ours' })
      await ours.set('a', sess)
      expect(await call(theirs, 'get', 'a')).toEqual(JSON.parse(JSON.stringify(sess)))
      await call(theirs, 'set', 'b', sessionData(60000, { who: 'theirs' }))
      expect((await ours.get('b')).who).toBe('theirs')
      expect(await client.get(`${prefix}a`)).toBe(JSON.stringify(sess)) // the same key, the same bytes
      expect((await ours.ids()).sort()).toEqual(['a', 'b'])
      expect((await call(theirs, 'ids')).sort()).toEqual(['a', 'b'])
      await ours.clear()
      // The app's own cluster client, passed as `client`, works the same way.
      const viaClient = make({ client, prefix: 'viaclient:' })
      await viaClient.set('c', sessionData())
      expect(await client.exists('viaclient:c')).toBe(1)
    } finally {
      await client.quit()
    }
  })

  test('an ioredis Cluster passed as client is read too', async () => {
    const io = new IORedis.Cluster(cluster.rootNodes.map(({ url }) => url), { lazyConnect: true })
    try {
      const s = make({ client: io, prefix: 'io:' })
      await s.set('x', sessionData(60000, { via: 'ioredis cluster' }))
      expect((await s.get('x')).via).toBe('ioredis cluster')
    } finally {
      io.disconnect()
    }
  })

  test('through Express: a login on the cluster is there on the next request', async () => {
    const s = make()
    const app = express()
    app.use(session({ store: s, secret: 'cluster', resave: false, saveUninitialized: false }))
    app.post('/login', (req, res) => { req.session.user = 'zoë'; res.send('ok') })
    app.get('/me', (req, res) => res.json({ user: (req.session && req.session.user) || null }))
    const agent = request.agent(app)
    await agent.post('/login').expect(200)
    await agent.get('/me').expect(200, { user: 'zoë' })
  })

  test('a master SIGKILLed under 200 requests in flight: its replica takes over, no callback lost, no outage event', async () => {
    const s = make({ commandTimeout: 1000 })
    const events = watch(s)
    await s.set('warm', sessionData())
    const load = loadGenerator(s, 200)
    await sleep(1000)
    const [victim] = cluster.masters()
    const switchedAt = Date.now()
    await cluster.node(victim).kill()
    await until(() => !cluster.masters().includes(victim), 'the replica to take over', 15000)
    await sleep(2000)
    await load.stop()
    const report = failoverReport(load.ops, switchedAt, events)
    console.log(`cluster master killed: ${JSON.stringify(report)}`)
    expect(report.lostOrRepeatedCallbacks).toBe(0)
    expect(report.unclearErrors).toEqual([])
    expect(report.okAfter).toBeGreaterThan(1000)
    // One master is not the cluster: the store never switched sessions off for everyone.
    expect(events).toEqual([])
    // After the switch, every key is reachable again.
    const tail = load.ops.filter((op) => op.issuedAt > Date.now() - 1000)
    expect(tail.filter((op) => op.err)).toEqual([])
    await cluster.node(victim).start() // back as a replica, for the tests that follow
    await cluster.waitHealthy()
  }, 60000)
})

describe('Redis Sentinel', () => {
  let setup
  const stores = []
  const make = (options = {}) => {
    const s = new RedisStore({ sentinel: { sentinels: setup.sentinels, name: setup.name }, prefix: `sn${stores.length}:`, commandTimeout: 1500, ...options })
    stores.push(s)
    return s
  }
  beforeAll(async () => { setup = await startRedisSentinel() }, 60000)
  afterAll(async () => {
    for (const s of stores) await s.close()
    await setup.stop()
  })

  test('the master is found through the sentinels; node-redis and ioredis sentinel clients are read', async () => {
    const s = make()
    await s.set('a', sessionData(60000, { v: 1 }))
    const direct = await createClient({ url: `redis://127.0.0.1:${setup.masterPort()}` }).connect()
    expect(JSON.parse(await direct.get('sn0:a')).v).toBe(1)
    await direct.quit()
    const io = new IORedis({ sentinels: setup.sentinels, name: setup.name, lazyConnect: true })
    const viaIo = make({ client: io, prefix: 'sn0:' })
    expect((await viaIo.get('a')).v).toBe(1)
    io.disconnect()
  })

  test('SENTINEL FAILOVER under 200 requests in flight: the new master is used, no callback lost', async () => {
    const s = make({ commandTimeout: 1000 })
    const events = watch(s)
    await s.set('warm', sessionData())
    const load = loadGenerator(s, 200)
    await sleep(1000)
    const before = setup.masterPort()
    const switchedAt = Date.now()
    setup.failover()
    await until(() => setup.masterPort() !== before, 'the sentinels to name a new master', 15000)
    await sleep(3000)
    await load.stop()
    const report = failoverReport(load.ops, switchedAt, events)
    console.log(`sentinel failover: ${JSON.stringify(report)}`)
    expect(report.lostOrRepeatedCallbacks).toBe(0)
    expect(report.unclearErrors).toEqual([])
    expect(report.okAfter).toBeGreaterThan(1000)
    // Writes now land on the new master (not on the demoted one, whose writes would be lost).
    await s.set('after-failover', sessionData(60000, { v: 2 }))
    const master = await createClient({ url: `redis://127.0.0.1:${setup.masterPort()}` }).connect()
    expect(JSON.parse(await master.get(`${s.prefix}after-failover`)).v).toBe(2)
    expect(await master.sendCommand(['ROLE'])).toEqual(expect.arrayContaining(['master']))
    await master.quit()
    // The sentinels announced the switch: the store moved without ever being unreachable.
    expect(events).toEqual([])
  }, 60000)

  test('through Express, on the master the sentinels name after the failover', async () => {
    const s = make()
    const app = express()
    app.use(session({ store: s, secret: 'sentinel', resave: false, saveUninitialized: false }))
    app.post('/login', (req, res) => { req.session.user = 'zoë'; res.send('ok') })
    app.get('/me', (req, res) => res.json({ user: (req.session && req.session.user) || null }))
    const agent = request.agent(app)
    await agent.post('/login').expect(200)
    await agent.get('/me').expect(200, { user: 'zoë' })
  })
})

test('a connection to a server that became read-only (a demoted master) is dropped, not kept', async () => {
  const primary = await startRedis()
  const replica = await startRedis({ replicaOf: primary.port })
  const p = await proxy(replica.port)
  const s = new RedisStore({ url: `redis://127.0.0.1:${p.port}`, prefix: 'ro:' })
  try {
    const err = await s.set('x', sessionData()).then(() => null, (e) => e)
    expect(err.message).toMatch(/^ferrosession redis set: ReadOnly: You can't write against a read only replica/)
    expect(err.code).toBe('ESESSION_BACKEND')
    await s.get('x')
    expect(p.accepted).toBe(2) // the read-only connection was not trusted again
  } finally {
    await s.close()
    await p.close()
    await replica.stop()
    await primary.stop()
  }
})

describe('client certificates (rediss:// to a server that requires them)', () => {
  let server
  beforeAll(async () => { server = await startRedis({ tls: true, clientCertificates: true }) })
  afterAll(() => server.stop())

  test('tls: { ca, cert, key } connects; without the certificate the server refuses', async () => {
    const { ca, clientCert: cert, clientKey: key } = server.certs
    const good = new RedisStore({ url: server.url, tls: { ca, cert, key }, prefix: 'mtls:' })
    await good.set('a', sessionData(60000, { over: 'mtls' }))
    expect((await good.get('a')).over).toBe('mtls')
    await good.close()
    const bad = new RedisStore({ url: server.url, tls: { ca }, prefix: 'mtls:', commandTimeout: 1500 })
    const err = await bad.get('a').then(() => null, (e) => e)
    expect(err && err.code).toMatch(/ESESSION_(UNAVAILABLE|TIMEOUT)/)
    await bad.close()
  })

  test('read from a node-redis client (socket.ca/cert/key) and an ioredis client (tls)', async () => {
    const { ca, clientCert: cert, clientKey: key } = server.certs
    const nodeRedis = createClient({ url: server.url, socket: { tls: true, ca, cert, key } })
    const io = new IORedis(server.port, '127.0.0.1', { tls: { ca, cert, key }, lazyConnect: true })
    for (const client of [nodeRedis, io]) {
      const s = new RedisStore({ client, prefix: 'mtls-client:' })
      await s.set('b', sessionData())
      expect(await s.get('b')).not.toBeNull()
      await s.close()
    }
    io.disconnect()
  })
})

test('an idle connection is released after idleTimeout and reopened on the next request', async () => {
  const server = await startRedis()
  const admin = await createClient({ url: server.url }).connect()
  const adminId = await admin.sendCommand(['CLIENT', 'ID'])
  /** Connections other than our own inspecting one. */
  const others = async () => (await admin.sendCommand(['CLIENT', 'LIST'])).trim().split('\n').filter((l) => !l.startsWith(`id=${adminId} `)).length
  const s = new RedisStore({ url: server.url, idleTimeout: 300 })
  try {
    await s.set('a', sessionData())
    expect(await others()).toBe(1)
    const deadline = Date.now() + 5000
    while ((await others()) > 0 && Date.now() < deadline) await sleep(50)
    expect(await others()).toBe(0)
    expect(await s.get('a')).not.toBeNull()
    expect(await others()).toBe(1)
  } finally {
    await s.close()
    await admin.quit()
    await server.stop()
  }
})
