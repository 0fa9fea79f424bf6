'use strict'
// express-session on real Express (5, and 4) over HTTP with supertest, against every backend:
// what a user of the app would notice, checked against what the store holds.

const request = require('supertest')
const session = require('express-session')
const cookieSignature = require('cookie-signature')
const { storeFactory, sleep, fakeDate } = require('./backends')
const { ownServer } = require('./servers')

const SECRET = 'keyboard cat'

/** The sid inside a `connect.sid=s%3A<sid>.<sig>` Set-Cookie header, or null. */
function sidOf (res) {
  const cookie = (res.headers['set-cookie'] || []).find((c) => c.startsWith('connect.sid='))
  if (!cookie) return null
  const value = decodeURIComponent(cookie.split(';')[0].slice('connect.sid='.length))
  return value.slice(2, value.lastIndexOf('.'))
}

function app (express, store, options = {}) {
  const a = express()
  a.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false, cookie: { maxAge: 60000 }, ...options }))
  a.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err)
      req.session.user = 'zoë'
      req.session.views = 0
      res.send('ok')
    })
  })
  a.get('/me', (req, res) => {
    if (!req.session) return res.json({ sessions: 'off' })
    if (req.session.user) req.session.views++
    res.json({ user: req.session.user || null, views: req.session.views || 0, id: req.sessionID })
  })
  a.get('/peek', (req, res) => res.json({ user: (req.session && req.session.user) || null }))
  a.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.send('bye'))))
  a.post('/forget', (req, res) => { req.session = null; res.send('forgotten') })
  a.get('/reload', (req, res, next) => req.session.reload((err) => (err ? next(err) : res.json({ user: req.session.user || null }))))
  a.use((err, req, res, _next) => res.status(500).send(err.message))
  return a
}

function runExpress (backend, express, expressName) {
  const suite = `express_${expressName.replace(/\W/g, '')}_${backend.name}`
  describe(`${backend.name} store under express-session on ${expressName}`, () => {
    const stores = storeFactory(backend, suite)
    let store

    beforeAll(() => stores.create().ready())
    beforeEach(() => { store = stores.create() })
    afterAll(() => stores.closeAll())

    test('login creates a session in the store and later requests read it', async () => {
      const agent = request.agent(app(express, store))
      const login = await agent.post('/login').expect(200)
      const sid = sidOf(login)
      expect(sid).toBeTruthy()
      expect((await store.get(sid)).user).toBe('zoë')
      await agent.get('/me').expect(200, { user: 'zoë', views: 1, id: sid })
      await agent.get('/me').expect(200, { user: 'zoë', views: 2, id: sid })
      expect((await store.get(sid)).views).toBe(2)
    })

    test('regenerate issues a new sid and destroys the old session', async () => {
      const agent = request.agent(app(express, store))
      const first = sidOf(await agent.post('/login'))
      const second = sidOf(await agent.post('/login'))
      expect(second).not.toBe(first)
      expect(await store.get(first)).toBeNull()
      expect(await store.ids()).toEqual([second])
    })

    test('logout destroys the session in the store', async () => {
      const agent = request.agent(app(express, store))
      const sid = sidOf(await agent.post('/login'))
      await agent.post('/logout').expect(200)
      expect(await store.get(sid)).toBeNull()
      expect((await agent.get('/me').expect(200)).body.user).toBeNull()
    })

    test('saveUninitialized: false stores nothing for anonymous visits', async () => {
      const res = await request(app(express, store)).get('/peek').expect(200)
      expect(res.headers['set-cookie']).toBeUndefined()
      expect(await store.length()).toBe(0)
    })

    test('resave: false touches an unmodified session, moving the stored expiry', async () => {
      const agent = request.agent(app(express, store))
      const sid = sidOf(await agent.post('/login'))
      const before = (await store.get(sid)).cookie.expires
      const clock = fakeDate()
      try {
        clock.tick(2000) // more than any backend's granularity (PostgreSQL keeps whole seconds)
        await agent.get('/peek').expect(200, { user: 'zoë' })
        const after = (await store.get(sid)).cookie.expires
        expect(Date.parse(after)).toBeGreaterThanOrEqual(Date.parse(before) + 2000)
      } finally {
        clock.uninstall()
      }
    })

    test('rolling sends a fresh cookie on every response', async () => {
      const agent = request.agent(app(express, store, { rolling: true }))
      const sid = sidOf(await agent.post('/login'))
      expect(sidOf(await agent.get('/peek'))).toBe(sid)
      expect(sidOf(await agent.get('/peek'))).toBe(sid)
    })

    test('unset: destroy removes the session when the app drops it', async () => {
      const agent = request.agent(app(express, store, { unset: 'destroy' }))
      const sid = sidOf(await agent.post('/login'))
      await agent.post('/forget').expect(200)
      expect(await store.get(sid)).toBeNull()
    })

    test('a short-lived session expires in the store: its cookie no longer opens it', async () => {
      // The cookie is replayed by hand: a browser would drop it itself, which tests nothing here.
      const server = app(express, store, { cookie: { maxAge: 300 } })
      const clock = fakeDate()
      try {
        const login = await request(server).post('/login').expect(200)
        const cookie = login.headers['set-cookie'][0].split(';')[0]
        await request(server).get('/peek').set('Cookie', cookie).expect(200, { user: 'zoë' })
        clock.tick(301 + (backend.granularityMs || 0))
        await request(server).get('/peek').set('Cookie', cookie).expect(200, { user: null })
      } finally {
        clock.uninstall()
      }
    })

    test('req.session.reload reads what the store holds now', async () => {
      const agent = request.agent(app(express, store))
      const sid = sidOf(await agent.post('/login'))
      const stored = await store.get(sid)
      await store.set(sid, { ...stored, user: 'changed elsewhere' })
      await agent.get('/reload').expect(200, { user: 'changed elsewhere' })
    })

    test('a cookie signed with another secret is ignored', async () => {
      const server = app(express, store)
      const sid = sidOf(await request(server).post('/login'))
      // The right sid, signed correctly, but with a secret this app does not know.
      const forged = encodeURIComponent('s:' + cookieSignature.sign(sid, 'other secret'))
      const res = await request(server).get('/me').set('Cookie', `connect.sid=${forged}`).expect(200)
      expect(res.body.user).toBeNull()
      expect(res.body.id).not.toBe(sid)
      expect((await store.get(sid)).user).toBe('zoë') // the real session is untouched
    })
  })
}

/**
 * The readiness switch, with a real outage: while the server is down requests are answered
 * without a session (never hang), and sessions come back by themselves when it returns.
 */
function runReadiness (backend, express) {
  describe(`${backend.name} outage under express-session`, () => {
    let own, store
    beforeAll(async () => {
      own = await ownServer(backend.name)
      store = own.create({ commandTimeout: 1000, connectTimeout: 500 })
      await store.ready()
    })
    afterAll(async () => {
      await store.close()
      await own.server.stop()
    })

    test('disconnect turns sessions off, connect turns them back on', async () => {
      const events = []
      store.on('disconnect', () => events.push('disconnect'))
      store.on('connect', () => events.push('connect'))
      const agent = request.agent(app(express, store))
      await agent.post('/login').expect(200)
      await agent.get('/peek').expect(200, { user: 'zoë' })

      await own.server.kill()
      // The first request meets the outage: a fast 500, never a hang.
      const failed = await agent.get('/peek')
      expect(failed.status).toBe(500)
      expect(failed.text).toMatch(new RegExp(`ferrosession ${backend.errorName || backend.name} get`))
      expect(events).toEqual(['disconnect'])
      // From then on express-session skips sessions instead of failing.
      await agent.get('/me').expect(200, { sessions: 'off' })

      await own.server.start()
      const deadline = Date.now() + 5000
      while (!events.includes('connect') && Date.now() < deadline) await sleep(50)
      expect(events).toEqual(['disconnect', 'connect'])
      // Redis keeps nothing on disk here, so the session may be gone; PostgreSQL keeps it.
      const back = await agent.get('/me').expect(200)
      expect(back.body.sessions).toBeUndefined()
    })
  })
}

module.exports = { runExpress, runReadiness, sidOf }
