'use strict'
// What only RedisStore does: reading the connection settings of every kind of client an app may
// pass (a single server, a Cluster, a Sentinel; node-redis or ioredis), and refusing what it
// cannot honour. Cluster and Sentinel against real servers are in redis.scaleout.test.js.

const { createClient, createCluster, createSentinel } = require('redis')
const IORedis = require('ioredis')
const { RedisStore } = require('..')
const { connectionOf } = require('../lib/redis-settings')

const closeAll = []
afterAll(async () => {
  for (const c of closeAll) await Promise.resolve(c.disconnect ? c.disconnect() : undefined).catch(() => {})
})
const keep = (client) => { closeAll.push(client); return client }

describe('the settings of the client an app passes are read, not ignored', () => {
  test('node-redis single: url, database, credentials, TLS material', () => {
    const c = connectionOf({ client: keep(createClient({ url: 'rediss://u:p%40ss@db.example:6380', database: 4, socket: { ca: 'CA', cert: 'CERT', key: 'KEY' } })) })
    expect(c).toMatchObject({ url: 'rediss://u:p%40ss@db.example:6380/4', tls: { ca: 'CA', cert: 'CERT', key: 'KEY' } })
  })

  test('ioredis single: host, port, db, credentials, tls, keyPrefix', () => {
    const c = connectionOf({ client: keep(new IORedis({ host: 'h', port: 7, db: 3, username: 'u', password: 'p', tls: { ca: 'CA' }, keyPrefix: 'app:', lazyConnect: true })) })
    expect(c).toEqual({ url: 'rediss://u:p@h:7/3', tls: { ca: 'CA', cert: undefined, key: undefined }, keyPrefix: 'app:' })
  })

  test('node-redis createCluster: root nodes and the defaults every node is reached with', () => {
    const c = connectionOf({ client: keep(createCluster({ rootNodes: [{ url: 'redis://10.0.0.1:7000' }, { socket: { host: '10.0.0.2', port: 7001 } }], defaults: { password: 'pw' } })) })
    expect(c.cluster).toEqual(['redis://10.0.0.1:7000', 'redis://:pw@10.0.0.2:7001/0'])
  })

  test('ioredis Cluster: startup nodes and redisOptions', () => {
    const c = connectionOf({ client: keep(new IORedis.Cluster([{ host: '10.0.0.1', port: 7000 }, 'redis://10.0.0.2:7001'], { redisOptions: { password: 'pw' }, lazyConnect: true })) })
    expect(c.cluster).toEqual(['redis://:pw@10.0.0.1:7000/0', 'redis://10.0.0.2:7001'])
  })

  test('node-redis createSentinel and ioredis { sentinels, name }: the sentinels, the master name, the node credentials', () => {
    const nr = connectionOf({ client: keep(createSentinel({ name: 'mymaster', sentinelRootNodes: [{ host: '10.0.0.9', port: 26379 }], nodeClientOptions: { password: 'pw', database: 2 } })) })
    expect(nr.sentinel).toEqual({ sentinels: ['redis://10.0.0.9:26379/0'], name: 'mymaster', sentinelUsername: undefined, sentinelPassword: undefined })
    expect(nr.url).toBe('redis://:pw@sentinel-master:6379/2')
    const io = connectionOf({ client: keep(new IORedis({ sentinels: [{ host: '10.0.0.9', port: 26380 }], name: 'other', password: 'pw', sentinelPassword: 'sp', lazyConnect: true })) })
    expect(io.sentinel).toEqual({ sentinels: ['redis://10.0.0.9:26380/0'], name: 'other', sentinelUsername: undefined, sentinelPassword: 'sp' })
  })

  test('settings that cannot be honoured are refused, naming them', () => {
    expect(() => new RedisStore({ url: 'rediss://h:1', tls: { ca: 'x', passphrase: 'p' } })).toThrow(/option tls\.passphrase is not supported/)
    expect(() => new RedisStore({ url: 'rediss://h:1', tls: { rejectUnauthorized: false } })).toThrow(/rejectUnauthorized: false is not supported/)
    expect(() => new RedisStore({ url: 'redis://h:1', cluster: { rootNodes: [{ url: 'redis://h:2' }] } })).toThrow(/options url and cluster name two places/)
    expect(() => new RedisStore({ url: 'redis://h:1', tls: { ca: 'x' } })).toThrow(/TLS certificates were given for a redis:\/\/ URL/)
    expect(() => new RedisStore({ sentinel: { sentinels: [{ host: 'h', port: 1 }] } })).toThrow(/sentinel\.name is required/)
  })
})

describe('pointed at something that is not Redis', () => {
  test('an HTTP server on the port: one line that says it does not speak Redis', async () => {
    const http = require('node:http')
    const server = http.createServer((req, res) => res.end('not redis'))
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const store = new RedisStore({ url: `redis://127.0.0.1:${server.address().port}`, commandTimeout: 2000 })
    try {
      const err = await store.get('x').catch((e) => e)
      expect(err.code).toBe('ESESSION_UNAVAILABLE')
      expect(err.message).toBe(`ferrosession redis get: the server at 127.0.0.1:${server.address().port} does not speak the Redis protocol ` +
        "(its reply is not RESP); check the URL's port: Redis listens on 6379 unless configured otherwise")
    } finally {
      await store.close()
      server.close()
    }
  })
})

describe('objects that name a connection are read or refused, never ignored', () => {
  test.each([[{}], [{ connect () {} }]])('client: %p is a TypeError, not a connection to 127.0.0.1:6379', (client) => {
    expect(() => new RedisStore({ client })).toThrow(/option client is not a node-redis or ioredis client/)
  })

  test('the client the app passed is the store\'s client property, as in connect-redis', () => {
    const client = keep(createClient({ url: 'redis://127.0.0.2:6399' }))
    const store = new RedisStore({ client })
    expect(store.client).toBe(client)
    return store.close()
  })
})
