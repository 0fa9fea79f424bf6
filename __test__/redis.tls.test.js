'use strict'
// rediss:// against a TLS-only redis-server of our own, with a throwaway CA.

const { createClient } = require('redis')
const { RedisStore } = require('..')
const { startRedis } = require('./support/servers')
const { sessionData } = require('./support/backends')

let server
const stores = []
const store = (options) => {
  const s = new RedisStore({ prefix: 'tls:', commandTimeout: 2000, ...options })
  stores.push(s)
  return s
}
beforeAll(async () => { server = await startRedis({ tls: true }) })
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()))
  await server.stop()
})

test('a rediss:// URL with the CA in tls.ca connects, verified, and stores sessions', async () => {
  const s = store({ url: server.url, tls: { ca: server.ca } })
  await s.set('secure', sessionData(60000, { over: 'tls' }))
  expect((await s.get('secure')).over).toBe('tls')
})

test('a node-redis client set up for TLS is read for its URL and CA', async () => {
  const client = createClient({ url: server.url, socket: { tls: true, ca: server.ca } })
  const s = store({ client })
  await s.set('from-client', sessionData())
  await client.connect()
  expect(await client.exists('tls:from-client')).toBe(1)
  await client.quit()
})

test('a certificate from an unknown CA is refused with a clear error', async () => {
  const s = store({ url: server.url })
  const err = await s.get('x').catch((e) => e)
  expect(err.code).toBe('ESESSION_UNAVAILABLE')
  expect(err.message).toMatch(/^ferrosession redis get: .*(certificate|UnknownIssuer)/)
})
