'use strict'
// What only MemoryStore does: it stays within its bounds however much is written.

const { MemoryStore } = require('..')
const FakeTimers = require('@sinonjs/fake-timers')
const { sessionData, fakeDate } = require('./support/backends')

test('writing 10x max sessions keeps exactly max, the most recent ones', async () => {
  const store = new MemoryStore({ max: 1000 })
  for (let i = 0; i < 10000; i++) await store.set(`s${i}`, sessionData(60000, { i }))
  expect(await store.length()).toBe(1000)
  expect((await store.get('s9999')).i).toBe(9999)
  expect(await store.get('s8999')).toBeNull()
  expect((await store.get('s9000')).i).toBe(9000)
})

test('a read keeps a session from being the next one evicted', async () => {
  const store = new MemoryStore({ max: 3 })
  for (const sid of ['a', 'b', 'c']) await store.set(sid, sessionData())
  await store.get('a')
  await store.set('d', sessionData())
  expect((await store.ids()).sort()).toEqual(['a', 'c', 'd'])
})

test('maxBytes bounds the total size, and a session larger than it is refused', async () => {
  const store = new MemoryStore({ max: Infinity, maxBytes: 100000 })
  const sess = sessionData(60000, { blob: 'x'.repeat(900) })
  const each = JSON.stringify(sess).length + 'sid-0000'.length
  for (let i = 0; i < 10000; i++) await store.set(`sid-${String(i).padStart(4, '0')}`, sess)
  expect(await store.length()).toBe(Math.floor(100000 / each))
  await expect(store.set('huge', sessionData(60000, { blob: 'x'.repeat(200000) }))).rejects.toThrow(/maxBytes/)
})

test('expired sessions are removed by the checkPeriod sweep', async () => {
  // The sweep's timer and the clock are both faked: no waiting.
  const clock = FakeTimers.install({ toFake: ['Date', 'setTimeout', 'clearTimeout'] })
  try {
    const store = new MemoryStore({ checkPeriod: 50 })
    for (let i = 0; i < 5; i++) await store.set(`short${i}`, sessionData(30))
    await store.set('long', sessionData(60000))
    await clock.tickAsync(60) // past the sessions' expiry and one sweep
    await new Promise((resolve) => setImmediate(resolve)) // the sweep's answer
    expect(await store.prune()).toBe(0) // the sweep got there first
    expect(await store.ids()).toEqual(['long'])
    const unswept = new MemoryStore()
    for (let i = 0; i < 5; i++) await unswept.set(`short${i}`, sessionData(30))
    clock.tick(31)
    expect(await unswept.prune()).toBe(5)
    store.stopInterval()
  } finally {
    clock.uninstall()
  }
})

test('memorystore\'s ttl is in milliseconds and applies to sessions without a cookie expiry', async () => {
  const clock = fakeDate()
  try {
    const store = new MemoryStore({ ttl: 100 })
    await store.set('browser', { cookie: { originalMaxAge: null, expires: null } })
    clock.tick(99)
    expect(await store.get('browser')).not.toBeNull()
    clock.tick(1)
    expect(await store.get('browser')).toBeNull()
  } finally {
    clock.uninstall()
  }
})

test('a native batch answers every request of a store that runs inline (none is dropped)', async () => {
  const native = require('../lib/native')
  const store = new MemoryStore()
  const now = Date.now()
  const answers = await new Promise((resolve) => {
    const got = {}
    const answer = (label) => (err, value) => {
      got[label] = [err, value]
      if (Object.keys(got).length === 3) resolve(got)
    }
    const ids = ['set', 'get', 'nobody'].map((label) => native.request(answer(label)))
    const { OP_SET, OP_GET } = native.binding
    store._native.batch(ids, [OP_SET, OP_GET, OP_GET], ['a', 'a', 'b'], ['{"x":1}', '', ''], [now + 60000, NaN, NaN], [now, now, now])
  })
  expect(answers).toEqual({ set: [null, null], get: [null, '{"x":1}'], nobody: [null, null] })
  await store.close()
})
