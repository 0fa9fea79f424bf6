'use strict'
// connect-redis 10 (with node-redis 6, and ioredis) and RedisStore on the same keys: raw values,
// TTLs and each store reading, touching and destroying what the other wrote.

const { createClient } = require('redis')
const { RedisStore: ConnectRedis } = require('connect-redis')
const { RedisStore } = require('..')
const { REDIS_URL, sessionData, call } = require('./support/backends')

const prefix = `ferrotest:interop:${process.pid}:`
let client, theirs, ours

/** Calls connect-redis with a callback, as express-session does. */

beforeAll(async () => {
  client = await createClient({ url: REDIS_URL }).connect()
  theirs = new ConnectRedis({ client, prefix })
  ours = new RedisStore({ client, prefix }) // reads the node-redis client's settings
})
afterAll(async () => {
  await ours.clear()
  await ours.close()
  await client.quit()
})

// Awkward but legal content: raw U+2028, exponent formatting, astral characters, Dates.
const tricky = (ms) => sessionData(ms, { user: { name: 'Zoë\u2028', n: 1.5, big: 1e21, neg0: -0, when: new Date(0) }, emoji: '👩‍💻' })

test('keeps the node-redis client it was given, as connect-redis does', () => {
  expect(ours.client).toBe(client)
  expect(ours.prefix).toBe(prefix)
  expect([ours.ttl, ours.scanCount, ours.disableTTL, ours.disableTouch]).toEqual([86400, 100, false, false])
  expect(ours.serializer).toBe(JSON)
})

test('a session written by connect-redis is read, touched and destroyed by RedisStore', async () => {
  const sess = tricky(3600000)
  await call(theirs, 'set', 'theirs-1', sess)
  expect(await ours.get('theirs-1')).toEqual(JSON.parse(JSON.stringify(sess)))

  const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 7200000).toISOString(), originalMaxAge: 7200000 } }
  await ours.touch('theirs-1', later)
  expect((await call(theirs, 'get', 'theirs-1')).cookie.expires).toBe(later.cookie.expires)
  expect(await client.ttl(prefix + 'theirs-1')).toBeGreaterThan(7190)

  await ours.destroy('theirs-1')
  expect(await call(theirs, 'get', 'theirs-1')).toBeNull()
  expect(await client.exists(prefix + 'theirs-1')).toBe(0)
})

test('a session connect-redis touched (EXPIRE only, the stored cookie unchanged) is read with its real expiry', async () => {
  const sess = sessionData(60000, { v: 1 })
  await call(theirs, 'set', 'touched-by-them', sess)
  const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 3600000).toISOString() } }
  await call(theirs, 'touch', 'touched-by-them', later)
  expect(JSON.parse(await client.get(prefix + 'touched-by-them')).cookie.expires).toBe(sess.cookie.expires)
  const got = await ours.get('touched-by-them')
  // PTTL in the same round trip: the expiry Redis holds, within connect-redis's whole seconds.
  expect(Math.abs(Date.parse(got.cookie.expires) - Date.parse(later.cookie.expires))).toBeLessThan(1100)
})

test('our touch sends only the new expiry and updates the stored cookie in place, as connect-redis reads it', async () => {
  const sess = sessionData(60000, { v: 1, user: 'zoë\u2028' })
  await ours.set('touched-by-us', sess)
  const raw = await client.get(prefix + 'touched-by-us')
  const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 3600000).toISOString() } }
  await ours.touch('touched-by-us', later)
  const after = await client.get(prefix + 'touched-by-us')
  expect(after).toBe(raw.replace(sess.cookie.expires, later.cookie.expires)) // the same bytes but the 24 of expires
  expect(await client.pTTL(prefix + 'touched-by-us')).toBeGreaterThan(3590000)
  expect((await call(theirs, 'get', 'touched-by-us')).cookie.expires).toBe(later.cookie.expires)
})

test('RedisStore writes the same bytes and TTL as connect-redis, and connect-redis reads them', async () => {
  for (const sess of [tricky(3600000), { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, v: 1 }]) {
    await call(theirs, 'set', 'pair-theirs', sess)
    await ours.set('pair-ours', sess)
    const [rawTheirs, rawOurs] = await Promise.all([client.get(prefix + 'pair-theirs'), client.get(prefix + 'pair-ours')])
    expect(rawOurs).toBe(rawTheirs)
    expect(rawOurs).toBe(JSON.stringify(sess))
    expect(await client.type(prefix + 'pair-ours')).toBe('string')
    const [ttlTheirs, ttlOurs] = await Promise.all([client.ttl(prefix + 'pair-theirs'), client.ttl(prefix + 'pair-ours')])
    expect(Math.abs(ttlOurs - ttlTheirs)).toBeLessThanOrEqual(1)
    expect(await call(theirs, 'get', 'pair-ours')).toEqual(JSON.parse(rawTheirs))
  }
})

test('both see the same ids, count and sessions', async () => {
  await ours.clear()
  await call(theirs, 'set', 'a', sessionData())
  await ours.set('b', sessionData())
  expect((await call(theirs, 'ids')).sort()).toEqual(['a', 'b'])
  expect((await ours.ids()).sort()).toEqual(['a', 'b'])
  expect(await call(theirs, 'length')).toBe(2)
  expect((await ours.all()).map((s) => s.id).sort()).toEqual((await call(theirs, 'all')).map((s) => s.id).sort())
  await call(theirs, 'clear')
  expect(await ours.length()).toBe(0)
})

test('an expired cookie deletes the key in both, instead of writing it', async () => {
  await ours.set('dead', sessionData(60000))
  await ours.set('dead', sessionData(-5000))
  expect(await client.exists(prefix + 'dead')).toBe(0)
  await call(theirs, 'set', 'dead-theirs', sessionData(60000))
  await call(theirs, 'set', 'dead-theirs', sessionData(-5000))
  expect(await client.exists(prefix + 'dead-theirs')).toBe(0)
})

test('an ioredis client is accepted too: its host, port and db are used', async () => {
  const Redis = require('ioredis')
  const url = new URL(REDIS_URL)
  const io = new Redis({ host: url.hostname, port: Number(url.port || 6379), db: 3, lazyConnect: true })
  const store = new RedisStore({ client: io, prefix })
  try {
    await store.set('io', sessionData(60000, { via: 'ioredis' }))
    await io.connect()
    expect(JSON.parse(await io.get(prefix + 'io')).via).toBe('ioredis')
    expect(await client.exists(prefix + 'io')).toBe(0) // not in db 0
  } finally {
    await store.clear()
    await store.close()
    io.disconnect()
  }
})

test('a merged save (session()\'s patch) of a session connect-redis wrote stores JSON.stringify of the merged object, which connect-redis reads', async () => {
  const sess = tricky(3600000)
  await call(theirs, 'set', 'merged', sess)
  const merged = JSON.parse(JSON.stringify(sess))
  merged.user.name = 'Zoë, again'
  delete merged.emoji
  merged.cart = [1, { two: 2 }]
  await ours.patch('merged', { user: { name: 'Zoë, again' }, emoji: null, cart: [1, { two: 2 }] }, sess)
  expect(await client.get(prefix + 'merged')).toBe(JSON.stringify(merged))
  expect(await call(theirs, 'get', 'merged')).toEqual(merged)
})
