'use strict'
// The JS clock is the clock. Apps test their Express code with sinon's or Jest's fake timers
// (connect-pg-simple's own suite does): under them every request must still call back, and expiry
// must follow the faked Date.now(), on every backend.

const path = require('node:path')
const { spawnSync } = require('node:child_process')
const FakeTimers = require('@sinonjs/fake-timers')
const request = require('supertest')
const express = require('express')
const session = require('express-session')
const { backends, storeFactory, sessionData, childTmp, sessionsOf } = require('./support/backends')

const Y2017 = new Date('2017-06-01T12:00:00.000Z').getTime()
const prunes = { redis: false, postgres: true, sqlite: true, memory: true } // Redis expires keys itself
// MongoDB's TTL monitor runs on the server's real clock (every 60 s): it may delete a session that
// expires in 2017 between the test's set and get. With fake timers an app's sessions live on the
// faked clock only if the server does not remove them by its own, so the test turns it off.
const storeOptions = { mongodb: { autoRemove: 'disabled' } }

// A test that fails while fake timers are installed must not leave them to the next one.
let installed = null
afterEach(() => {
  if (installed) installed.uninstall()
  installed = null
})

/** The two ways apps fake time, each installed after the store module was loaded. */
const modes = {
  'sinon fake-timers (default install)': {
    install: (now) => {
      const clock = FakeTimers.install({ now })
      installed = { tick: (ms) => clock.tick(ms), uninstall: () => { clock.uninstall(); installed = null } }
      return installed
    }
  },
  'jest.useFakeTimers() (nextTick and queueMicrotask faked too)': {
    install: (now) => {
      jest.useFakeTimers({ now })
      installed = { tick: (ms) => jest.advanceTimersByTime(ms), uninstall: () => { jest.useRealTimers(); installed = null } }
      return installed
    }
  }
}

for (const backend of Object.values(backends)) {
  describe(`${backend.name} under fake timers`, () => {
    const stores = storeFactory(backend, `faketimers_${backend.name}`)
    beforeAll(() => stores.create().ready())
    afterAll(() => stores.closeAll())

    for (const [mode, { install }] of Object.entries(modes)) {
      test(`${mode}: every request calls back, and expiry follows the faked clock`, async () => {
        const store = stores.create(storeOptions[backend.name])
        const clock = install(Y2017)
        try {
          expect(Date.now()).toBe(Y2017)
          // A session stored with the clock at 2017 is readable at 2017.
          await store.set('s', sessionData(60000, { v: 1 }))
          await store.set('other', sessionData(3600000))
          expect((await store.get('s')).v).toBe(1)
          expect(await store.length()).toBe(2)
          // Callbacks too, several in one turn (they go to the native side as one batch).
          const viaCallbacks = await Promise.all(['s', 'other', 'none'].map((sid) =>
            new Promise((resolve, reject) => store.get(sid, (err, sess) => (err ? reject(err) : resolve(sess))))))
          expect(viaCallbacks.map((s) => s && s.cookie.originalMaxAge)).toEqual([60000, 3600000, null])
          // Past its expiry on the faked clock, it is gone, and pruning removes it.
          clock.tick(60001)
          if (prunes[backend.name]) {
            expect(await store.prune()).toBe(1)
            expect(await store.length()).toBe(1)
          }
          expect(await store.get('s')).toBeNull()
          expect(sessionsOf(await store.all())).toEqual([expect.objectContaining({ id: 'other' })])
          expect(await store.get('other')).not.toBeNull()
        } finally {
          clock.uninstall()
        }
      })
    }

    test('an Express + supertest round trip under fake timers', async () => {
      const store = stores.create(storeOptions[backend.name])
      const app = express()
      app.use(session({ store, secret: 'x', resave: false, saveUninitialized: false, cookie: { maxAge: 60000 } }))
      app.get('/login', (req, res) => { req.session.user = 'zoë'; res.send('ok') })
      app.get('/me', (req, res) => res.json({ user: req.session.user || null }))
      const clock = FakeTimers.install({ now: Y2017 })
      try {
        const login = await request(app).get('/login').expect(200)
        const cookie = login.headers['set-cookie'][0].split(';')[0]
        await request(app).get('/me').set('Cookie', cookie).expect(200, { user: 'zoë' })
        clock.tick(61000)
        await request(app).get('/me').set('Cookie', cookie).expect(200, { user: null })
      } finally {
        clock.uninstall()
      }
    })
  })
}

test('fake timers installed before the package is loaded: requests are still answered, nothing is dropped', async () => {
  // In a process of its own, so that the package really loads under fake timers.
  const script = `
    const FakeTimers = require('@sinonjs/fake-timers')
    FakeTimers.install({ now: ${Y2017} })
    const { backends } = require(${JSON.stringify(path.join(__dirname, 'support', 'backends.js'))})
    const results = {}
    const sess = (ms) => ({ cookie: { originalMaxAge: ms, expires: new Date(Date.now() + ms).toISOString() }, n: 1 })
    const run = async () => {
      for (const name of ['memory', 'sqlite', 'redis', 'postgres']) {
        const store = backends[name].create('child_faketimers')
        await Promise.all([store.set('a', sess(60000)), store.set('b', sess(60000))])
        const [a, b, none] = await Promise.all([store.get('a'), store.get('b'), store.get('none')])
        results[name] = [a && a.n, b && b.n, none]
        await store.clear()
        await store.close()
      }
      console.log(JSON.stringify(results))
    }
    run()`
  const tmp = childTmp()
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: path.join(__dirname, '..'), timeout: 20000, env: tmp.env })
  tmp.remove()
  for (const name of ['redis', 'postgres']) await backends[name].cleanup('child_faketimers')
  expect(child.stderr).toBe('')
  expect(child.status).toBe(0)
  const out = JSON.parse(child.stdout.trim().split('\n').pop())
  expect(out).toEqual({ memory: [1, 1, null], sqlite: [1, 1, null], redis: [1, 1, null], postgres: [1, 1, null] })
})

test('express-session\'s own MemoryStore under the same fake timers, for reference', async () => {
  const store = new session.MemoryStore()
  const clock = FakeTimers.install({ now: Y2017 })
  try {
    await new Promise((resolve, reject) => store.set('s', sessionData(60000), (err) => (err ? reject(err) : resolve())))
    const got = await new Promise((resolve, reject) => store.get('s', (err, s) => (err ? reject(err) : resolve(s))))
    expect(got).not.toBeNull()
  } finally {
    clock.uninstall()
  }
})
