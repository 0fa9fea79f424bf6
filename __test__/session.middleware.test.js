'use strict'
// session(), ferrosession's drop-in for express-session's middleware: every behaviour below runs
// against express-session 1.19 itself and against ours, with the same assertions, so "the same
// as express-session" is checked, not assumed. (express-session's own suite, run outside this
// repository against ours, is the other half of the proof: see the README.)

const http = require('node:http')
const request = require('supertest')
const express = require('express')
const cookieParser = require('cookie-parser')
const cookieSignature = require('cookie-signature')
const expressSession = require('express-session')
const { session: ours, MemoryStore: OurMemoryStore, RedisStore } = require('..')
const { REDIS_URL } = require('./support/backends')

const implementations = [['express-session', expressSession], ['ferrosession', ours]]

// Some tests use deprecated paths on purpose (req.secret, a cookie only in req.cookies). depd
// prints nothing while the process has a 'deprecation' listener: collect them and check them.
const deprecations = []
const onDeprecation = (err) => deprecations.push(`${err.namespace} ${err.message}`)
beforeAll(() => process.on('deprecation', onDeprecation))
afterAll(() => process.off('deprecation', onDeprecation))
const min = 60 * 1000

/** An http server running `session(options)` of `impl`, then `handler` (default: end the response). */
function server (impl, options = {}, handler) {
  const mw = impl({ secret: 'keyboard cat', resave: true, saveUninitialized: true, ...options })
  return http.createServer((req, res) => {
    mw(req, res, (err) => {
      if (err) {
        res.statusCode = err.status || 500
        return res.end(err.message)
      }
      if (handler) return handler(req, res)
      res.end()
    })
  })
}

const setCookie = (res) => (res.headers['set-cookie'] || [])
const cookieOf = (res) => setCookie(res).map((c) => c.split(';')[0]).join('; ')
const sidOf = (res) => {
  const c = setCookie(res).find((x) => x.startsWith('connect.sid='))
  if (!c) return undefined
  const v = decodeURIComponent(c.split(';')[0].slice('connect.sid='.length))
  return v.slice(2, v.lastIndexOf('.'))
}
const attrs = (res) => (setCookie(res)[0] || '').split(';').map((x) => x.trim())
const storeSize = (store) => new Promise((resolve, reject) => store.length((err, n) => (err ? reject(err) : resolve(n))))
const storeGet = (store, sid) => new Promise((resolve, reject) => store.get(sid, (err, s) => (err ? reject(err) : resolve(s))))
const storeSet = (store, sid, sess) => new Promise((resolve, reject) => store.set(sid, sess, (err) => (err ? reject(err) : resolve())))

describe.each(implementations)('%s', (name, session) => {
  const Memory = () => name === 'ferrosession' ? new OurMemoryStore() : new expressSession.MemoryStore()

  describe('exports and setup', () => {
    test('exports Store, Cookie, Session and MemoryStore as constructors', () => {
      for (const key of ['Store', 'Cookie', 'Session', 'MemoryStore']) expect(typeof session[key]).toBe('function')
    })

    test.each([
      [{ genid: 'not a function' }, /genid option must be a function/],
      [{ unset: 'bogus' }, /unset option must be "destroy" or "keep"/],
      [{ secret: [] }, /secret option array must contain one or more strings/]
    ])('refuses bad options %p', (options, message) => {
      expect(() => session({ resave: true, saveUninitialized: true, ...options })).toThrow(message)
    })

    test('does nothing when req.session already exists', async () => {
      const mw = session({ secret: 'x', resave: true, saveUninitialized: true })
      const app = http.createServer((req, res) => {
        req.session = { existing: true }
        mw(req, res, () => res.end(JSON.stringify(req.session)))
      })
      const res = await request(app).get('/').expect(200, '{"existing":true}')
      expect(setCookie(res)).toEqual([])
    })

    test('without a secret: an error; with req.secret (cookie-parser): sessions work', async () => {
      await request(server(session, { secret: undefined })).get('/').expect(500, 'secret option required for sessions')
      const mw = session({ resave: true, saveUninitialized: true })
      const app = http.createServer((req, res) => { req.secret = 'from cookie-parser'; mw(req, res, () => res.end('ok')) })
      const res = await request(app).get('/').expect(200, 'ok')
      expect(sidOf(res)).toBeTruthy()
      expect(deprecations).toContain('express-session req.secret; provide secret option')
    })
  })

  describe('sessions and the store', () => {
    test('a first request creates a session, stores it and sets the cookie', async () => {
      const store = Memory()
      const res = await request(server(session, { store })).get('/').expect(200)
      expect(setCookie(res)).toHaveLength(1)
      expect(attrs(res)).toEqual([expect.stringMatching(/^connect\.sid=s%3A/), 'Path=/', 'HttpOnly'])
      expect(await storeSize(store)).toBe(1)
    })

    test('the cookie brings the session back; two clients have two sessions', async () => {
      const store = Memory()
      const app = server(session, { store }, (req, res) => { req.session.n = (req.session.n || 0) + 1; res.end(String(req.session.n)) })
      const a = await request(app).get('/').expect(200, '1')
      await request(app).get('/').set('Cookie', cookieOf(a)).expect(200, '2')
      await request(app).get('/').expect(200, '1')
      expect(await storeSize(store)).toBe(2)
    })

    test('a store error reaches next(err); ENOENT means "no session" and makes a new one', async () => {
      const store = Memory()
      const app = server(session, { store })
      const first = await request(app).get('/')
      store.get = (sid, cb) => { const e = new Error('boom!'); cb(e) }
      await request(app).get('/').set('Cookie', cookieOf(first)).expect(500, 'boom!')
      store.get = (sid, cb) => { const e = new Error('gone'); e.code = 'ENOENT'; cb(e) }
      const again = await request(app).get('/').set('Cookie', cookieOf(first)).expect(200)
      expect(sidOf(again)).toBeTruthy()
      expect(sidOf(again)).not.toBe(sidOf(first))
    })

    test('a sid the store does not know gets a new session with a new sid', async () => {
      const store = Memory()
      const app = server(session, { store })
      const first = await request(app).get('/')
      await new Promise((resolve) => store.clear(resolve))
      const second = await request(app).get('/').set('Cookie', cookieOf(first)).expect(200)
      expect(sidOf(second)).not.toBe(sidOf(first))
    })

    test('a cookie not properly signed: a new session, and the store is not asked', async () => {
      const store = Memory()
      const app = server(session, { store })
      const first = await request(app).get('/')
      let asked = 0
      const get = store.get
      store.get = function (...args) { asked++; return get.apply(this, args) }
      const forged = cookieOf(first).replace(/\.[^.]*$/, '.AAAA')
      const res = await request(app).get('/').set('Cookie', forged).expect(200)
      expect(sidOf(res)).not.toBe(sidOf(first))
      expect(asked).toBe(0)
      // Signed with another secret, or not signed at all: the same.
      const other = `connect.sid=${encodeURIComponent('s:' + cookieSignature.sign(sidOf(first), 'other'))}`
      await request(app).get('/').set('Cookie', other).expect(200)
      await request(app).get('/').set('Cookie', `connect.sid=${sidOf(first)}`).expect(200)
      expect(asked).toBe(0)
    })

    test('a session expired in the store is replaced by a new one', async () => {
      const store = Memory()
      const app = server(session, { store, cookie: { maxAge: 5 } })
      const first = await request(app).get('/')
      await new Promise((resolve) => setTimeout(resolve, 20))
      const second = await request(app).get('/').set('Cookie', cookieOf(first)).expect(200)
      expect(sidOf(second)).not.toBe(sidOf(first))
      expect(await storeGet(store, sidOf(first))).toBeFalsy()
    })

    test('a stored session without a cookie is an error from inflating it', async () => {
      const store = Memory()
      const app = server(session, { store })
      const first = await request(app).get('/')
      await storeSet(store, sidOf(first), { foo: 'bar' })
      const res = await request(app).get('/').set('Cookie', cookieOf(first))
      expect(res.status).toBe(500)
      expect(res.text).toMatch(/Cannot read prop/)
    })

    test('stored keys named like Session methods are ignored; only data is enumerable', async () => {
      const store = Memory()
      const app = server(session, { store }, (req, res) => res.end(JSON.stringify({ keys: Object.keys(req.session), save: typeof req.session.save })))
      const first = await request(app).get('/')
      const stored = await storeGet(store, sidOf(first))
      await storeSet(store, sidOf(first), { ...stored, save: 'nope', destroy: 'nope', data: 1 })
      const res = await request(app).get('/').set('Cookie', cookieOf(first)).expect(200)
      expect(JSON.parse(res.text)).toEqual({ keys: ['cookie', 'data'], save: 'function' })
    })

    test('a session id that is not a string is never saved', async () => {
      const store = Memory()
      const app = server(session, { store }, (req, res) => { req.sessionID = 42; req.session.x = 1; res.end() })
      const res = await request(app).get('/').expect(200)
      expect(setCookie(res)).toEqual([])
      expect(await storeSize(store)).toBe(0)
    })

    test('an empty req.url, res.end twice, and res.end(null) are handled', async () => {
      const mw = session({ secret: 'x', resave: true, saveUninitialized: true })
      const app = http.createServer((req, res) => {
        if (req.url === '/empty') req.url = ''
        mw(req, res, () => {
          if (req.url === '/null') return res.end(null)
          res.end('a')
          res.end('b')
        })
      })
      await request(app).get('/empty').expect(200, 'a')
      await request(app).get('/twice').expect(200, 'a')
      await request(app).get('/null').expect(200, '')
    })

    test('the session is saved before the response ends, whatever the response looks like', async () => {
      for (const handler of [
        (req, res) => { req.session.v = 1; res.end('done') },
        (req, res) => { req.session.v = 1; res.end() },
        (req, res) => { req.session.v = 1; res.write('a'); res.write('b'); res.end('c') },
        (req, res) => { req.session.v = 1; res.setHeader('Content-Length', '4'); res.end('done') }
      ]) {
        const store = Memory()
        let savedBeforeEnd = false
        const set = store.set
        store.set = function (sid, sess, cb) { set.call(this, sid, sess, (err) => { savedBeforeEnd = true; cb(err) }) }
        const res = await request(server(session, { store }, handler)).get('/').expect(200)
        expect(savedBeforeEnd).toBe(true)
        expect((await storeGet(store, sidOf(res))).v).toBe(1)
      }
    })

    test('a synchronous store works (set, destroy)', async () => {
      const sessions = {}
      const store = new session.Store()
      store.get = (sid, cb) => cb(null, sessions[sid] ? JSON.parse(sessions[sid]) : null)
      store.set = (sid, sess, cb) => { sessions[sid] = JSON.stringify(sess); cb() }
      store.destroy = (sid, cb) => { delete sessions[sid]; cb() }
      const app = server(session, { store }, (req, res) => (req.url === '/out' ? req.session.destroy(() => res.end('bye')) : res.end('hi')))
      const first = await request(app).get('/').expect(200, 'hi')
      expect(Object.keys(sessions)).toHaveLength(1)
      await request(app).get('/out').set('Cookie', cookieOf(first)).expect(200, 'bye')
      expect(Object.keys(sessions)).toHaveLength(0)
    })

    test('readiness: a store that emitted disconnect serves no sessions until connect', async () => {
      const store = Memory()
      const app = server(session, { store }, (req, res) => res.end(req.session ? 'session' : 'none'))
      store.emit('disconnect')
      const off = await request(app).get('/').expect(200, 'none')
      expect(setCookie(off)).toEqual([])
      store.emit('connect')
      await request(app).get('/').expect(200, 'session')
    })
  })

  describe('proxy option and secure cookies', () => {
    const secureServer = (proxy, setSecure) => {
      const mw = session({ secret: 'x', resave: true, saveUninitialized: true, proxy, cookie: { secure: true } })
      return http.createServer((req, res) => {
        if (setSecure !== undefined) req.secure = setSecure
        mw(req, res, () => res.end())
      })
    }
    test.each([
      [true, 'https', undefined, true], [true, 'https,http', undefined, true], [true, undefined, undefined, false],
      [false, 'https', undefined, false], [false, undefined, true, false],
      [undefined, 'https', undefined, false], [undefined, undefined, true, true]
    ])('proxy %p, X-Forwarded-Proto %p, req.secure %p: a secure cookie is set: %p', async (proxy, proto, secure, set) => {
      const r = request(secureServer(proxy, secure)).get('/')
      if (proto) r.set('X-Forwarded-Proto', proto)
      const res = await r.expect(200)
      expect(setCookie(res).length).toBe(set ? 1 : 0)
      if (set) expect(attrs(res)).toContain('Secure')
    })
  })

  describe('cookie option', () => {
    test('path: cookies only for requests under it, mounted apps included', async () => {
      const app = server(session, { cookie: { path: '/foo/bar' } })
      for (const [path, set] of [['/', false], ['/foo/bar', true], ['/foo/bar/baz', true], ['/foo/barbaz', true]]) {
        expect(setCookie(await request(app).get(path)).length).toBe(set ? 1 : 0)
      }
      const mounted = express()
      mounted.use('/foo', (req, res, next) => session({ secret: 'x', resave: true, saveUninitialized: true, cookie: { path: '/foo/bar' } })(req, res, next))
      mounted.use((req, res) => res.end())
      expect(setCookie(await request(mounted).get('/foo/bar')).length).toBe(1)
      expect(setCookie(await request(mounted).get('/foo/foo/bar')).length).toBe(0)
    })

    test("path '/': a request target that is not a path (OPTIONS *, absolute form) is judged by its parsed path", async () => {
      const app = server(session)
      await new Promise((resolve) => app.listen(0, '127.0.0.1', resolve))
      const cookiesFor = (target) => new Promise((resolve, reject) => {
        http.request({ host: '127.0.0.1', port: app.address().port, method: 'OPTIONS', path: target }, (res) => {
          res.resume()
          res.on('end', () => resolve((res.headers['set-cookie'] || []).length))
        }).on('error', reject).end()
      })
      try {
        expect([await cookiesFor('*'), await cookiesFor('http://127.0.0.1/x'), await cookiesFor('/x?y=1')]).toEqual([0, 1, 1])
      } finally {
        app.close()
      }
    })

    test('secure "auto" follows the connection (trusted proxy header)', async () => {
      const app = server(session, { proxy: true, cookie: { secure: 'auto' } })
      expect(attrs(await request(app).get('/').set('X-Forwarded-Proto', 'https'))).toContain('Secure')
      expect(attrs(await request(app).get('/'))).not.toContain('Secure')
    })

    test('a cookie function is called per request with req', async () => {
      const app = server(session, { cookie: (req) => ({ path: '/', maxAge: req.url === '/long' ? 10 * min : min }) })
      const long = await request(app).get('/long')
      const short = await request(app).get('/short')
      const expiresOf = (res) => Date.parse(attrs(res).find((a) => a.startsWith('Expires=')).slice(8))
      expect(expiresOf(long) - expiresOf(short)).toBeGreaterThan(8 * min)
    })

    test.each([
      [{ sameSite: 'auto' }, 'https', ['SameSite=None']], [{ sameSite: 'auto' }, undefined, ['SameSite=Lax']],
      [{ sameSite: 'auto', secure: 'auto' }, 'https', ['Secure', 'SameSite=None']],
      [{ sameSite: 'auto', secure: false }, 'https', ['SameSite=None']],
      [{ sameSite: 'auto', secure: false }, undefined, ['SameSite=Lax']],
      [{ sameSite: 'strict', priority: 'high', partitioned: true, secure: 'auto' }, 'https', ['Priority=High', 'SameSite=Strict', 'Partitioned', 'Secure']]
    ])('cookie %p, X-Forwarded-Proto %p: attributes %p', async (cookie, proto, expected) => {
      const r = request(server(session, { proxy: true, cookie })).get('/')
      if (proto) r.set('X-Forwarded-Proto', proto)
      const a = attrs(await r)
      for (const attr of expected) expect(a).toContain(attr)
      if (!expected.includes('Secure')) expect(a).not.toContain('Secure')
    })

    test('secure: true on an insecure connection sets no cookie', async () => {
      expect(setCookie(await request(server(session, { cookie: { secure: true } })).get('/'))).toEqual([])
    })

    test('maxAge gives Expires relative to now; no maxAge is a browser-session cookie, set once', async () => {
      const res = await request(server(session, { cookie: { maxAge: min } })).get('/')
      const expires = Date.parse(attrs(res).find((a) => a.startsWith('Expires=')).slice(8))
      expect(Math.abs(expires - (Date.now() + min))).toBeLessThan(2000)
      const app = server(session, {})
      const browser = await request(app).get('/')
      expect(attrs(browser).some((a) => a.startsWith('Expires='))).toBe(false)
      expect(setCookie(await request(app).get('/').set('Cookie', cookieOf(browser)))).toEqual([])
    })

    test('the app can change maxAge and expires; a changed cookie is sent again', async () => {
      const app = server(session, { cookie: { maxAge: min } }, (req, res) => {
        if (req.url === '/long') req.session.cookie.maxAge = 365 * 24 * 3600 * 1000
        if (req.url === '/date') req.session.cookie.expires = new Date(Date.now() + 5 * min)
        if (req.url === '/null') req.session.cookie.expires = null
        res.end(String(req.session.cookie.originalMaxAge))
      })
      // Setting maxAge sets originalMaxAge too (setting expires keeps the maxAge it implies).
      const year = await request(app).get('/long').expect(200, String(365 * 24 * 3600 * 1000))
      expect(Date.parse(attrs(year).find((a) => a.startsWith('Expires=')).slice(8))).toBeGreaterThan(Date.now() + 300 * 24 * 3600 * 1000)
      const date = await request(app).get('/date')
      expect(Date.parse(attrs(date).find((a) => a.startsWith('Expires=')).slice(8))).toBeLessThan(Date.now() + 6 * min)
      const nul = await request(app).get('/null')
      expect(attrs(nul).some((a) => a.startsWith('Expires='))).toBe(false)
    })

    test('originalMaxAge stays the configured value on every request', async () => {
      const store = Memory()
      const app = server(session, { store, cookie: { maxAge: 2000 } }, (req, res) => res.end(String(req.session.cookie.originalMaxAge)))
      const first = await request(app).get('/').expect(200, '2000')
      await request(app).get('/').set('Cookie', cookieOf(first)).expect(200, '2000')
      await request(app).get('/').set('Cookie', cookieOf(first)).expect(200, '2000')
    })

    test('cookies the app set before and inside writeHead are kept beside ours', async () => {
      const before = server(session, {}, (req, res) => { res.setHeader('Set-Cookie', 'previous=cookieset'); res.end() })
      expect(setCookie(await request(before).get('/'))).toEqual(['previous=cookieset', expect.stringMatching(/^connect\.sid=/)])
      const inside = server(session, {}, (req, res) => { res.writeHead(200, { 'Set-Cookie': 'previous=cookieset' }); res.end() })
      expect(setCookie(await request(inside).get('/'))).toEqual(['previous=cookieset', expect.stringMatching(/^connect\.sid=/)])
    })

    test('an invalid cookie setting is forwarded to next as an error (after the response started)', async () => {
      const errors = []
      const mw = session({ secret: 'x', resave: true, saveUninitialized: true, cookie: { domain: 'example.com\n' } })
      const app = http.createServer((req, res) => mw(req, res, (err) => { if (err) return errors.push(err.message); res.end() }))
      const res = await request(app).get('/').expect(200)
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(setCookie(res)).toEqual([])
      expect(errors).toEqual([expect.stringMatching(/option domain is invalid/)])
    })
  })

  describe('genid, name and key options', () => {
    test('ids: 32 url-safe characters by default; genid is used, gets req, and unsafe characters are encoded', async () => {
      const res = await request(server(session)).get('/')
      expect(sidOf(res)).toMatch(/^[A-Za-z0-9_-]{32}$/)
      const custom = await request(server(session, { genid: (req) => `%${req.url}` })).get('/foo')
      expect(setCookie(custom)[0]).toMatch(/^connect\.sid=s%3A%25%2Ffoo\./)
    })

    test('the cookie is connect.sid, unless name (or the old key) says otherwise', async () => {
      expect(setCookie(await request(server(session, { name: 'sessid' })).get('/'))[0]).toMatch(/^sessid=s%3A/)
      expect(setCookie(await request(server(session, { key: 'old' })).get('/'))[0]).toMatch(/^old=s%3A/)
    })
  })

  describe('rolling, resave, saveUninitialized', () => {
    /** The number of set/touch calls and Set-Cookie headers for `handler` on a returning client. */
    // The same store calls as express-session's: a loaded session is saved through `set` by both
    // (ours hands the store a merge patch alongside; docs/design.md, "Concurrent requests").
    const SAVE = 'set'
    async function observe (options, handler, { returning = true } = {}) {
      const store = Memory()
      const calls = []
      for (const m of ['set', 'touch', 'destroy']) {
        const orig = store[m]
        if (typeof orig === 'function') store[m] = function (...args) { calls.push(m); return orig.apply(this, args) }
      }
      const app = server(session, { store, ...options }, handler)
      let cookie
      if (returning) {
        const first = await request(server(session, { store, ...options }, (req, res) => { req.session.user = 'a'; res.end() })).get('/')
        cookie = cookieOf(first)
        calls.length = 0
      }
      const r = request(app).get('/')
      if (cookie) r.set('Cookie', cookie)
      const res = await r
      return { calls, cookie: setCookie(res).length }
    }
    const nothing = (req, res) => res.end()
    const modify = (req, res) => { req.session.x = Math.random(); res.end() }

    test.each([
      ['rolling false, resave true: saved, no cookie', { rolling: false, resave: true }, nothing, [SAVE], 0],
      ['rolling true: the cookie is sent on an unmodified session', { rolling: true, resave: false }, nothing, ['touch'], 1],
      ['resave false: an unmodified session is touched, not saved', { resave: false }, nothing, ['touch'], 0],
      ['resave false: a modified session is saved', { resave: false }, modify, [SAVE], 0]
    ])('%s', async (_label, options, handler, calls, cookies) => {
      expect(await observe(options, handler)).toEqual({ calls, cookie: cookies })
    })

    test.each([
      ['saveUninitialized true: a new, untouched session is saved and gets a cookie', { saveUninitialized: true }, nothing, ['set'], 1],
      ['saveUninitialized false: a new, untouched session is neither saved nor touched', { saveUninitialized: false }, nothing, [], 0],
      ['saveUninitialized false: a new, modified session is saved', { saveUninitialized: false }, modify, ['set'], 1],
      ['saveUninitialized false + rolling: no cookie for an uninitialized session', { saveUninitialized: false, rolling: true }, nothing, [], 0],
      ['saveUninitialized true + rolling: saved, with a cookie', { saveUninitialized: true, rolling: true }, nothing, ['set'], 1]
    ])('%s', async (_label, options, handler, calls, cookies) => {
      expect(await observe(options, handler, { returning: false })).toEqual({ calls, cookie: cookies })
    })

    test('a "cookie" key below the top level counts as a modification; the top-level cookie does not', async () => {
      expect((await observe({ resave: false }, (req, res) => { req.session.user = { cookie: 'changed' }; res.end() })).calls).toEqual([SAVE])
      expect((await observe({ resave: false }, (req, res) => { req.session.cookie.path = '/'; res.end() })).calls).toEqual(['touch'])
    })

    test('save and touch errors reach next after the response', async () => {
      for (const [method, options] of [[SAVE, {}], ['touch', { resave: false }]]) {
        const store = Memory()
        const app = server(session, { store, ...options })
        const first = await request(app).get('/')
        store[method] = (...args) => args.pop()(new Error(`${method} failed`)) // the callback is last
        const errors = []
        const mw = session({ secret: 'keyboard cat', resave: true, saveUninitialized: true, store, ...options })
        const failing = http.createServer((req, res) => mw(req, res, (err) => { if (err) return errors.push(err.message); res.end() }))
        await request(failing).get('/').set('Cookie', cookieOf(first))
        await new Promise((resolve) => setTimeout(resolve, 20))
        expect(errors).toEqual([`${method} failed`])
      }
    })
  })

  describe('secret option', () => {
    test('a string, a Buffer, or an array: new cookies are signed with the first, any of them is read', async () => {
      for (const secret of ['keyboard cat', Buffer.from('keyboard cat')]) {
        const app = server(session, { secret }, (req, res) => { req.session.n = (req.session.n || 0) + 1; res.end(String(req.session.n)) })
        const first = await request(app).get('/').expect(200, '1')
        await request(app).get('/').set('Cookie', cookieOf(first)).expect(200, '2')
      }
      const store = Memory()
      const old = server(session, { store, secret: 'old secret' }, (req, res) => { req.session.n = 1; res.end() })
      const rotated = server(session, { store, secret: ['new secret', 'old secret'] }, (req, res) => res.end(String(req.session.n || 0)))
      const first = await request(old).get('/')
      await request(rotated).get('/').set('Cookie', cookieOf(first)).expect(200, '1')
      const fresh = await request(rotated).get('/')
      const value = decodeURIComponent(cookieOf(fresh).slice('connect.sid='.length)).slice(2)
      expect(cookieSignature.unsign(value, 'new secret')).toBe(sidOf(fresh))
    })

    test('with rolling, a cookie signed with an old secret comes back signed with the first; one signed with the first comes back as it was', async () => {
      const store = Memory()
      const old = server(session, { store, secret: 'old secret' }, (req, res) => { req.session.n = 1; res.end() })
      const rotated = server(session, { store, secret: ['new secret', 'old secret'], rolling: true }, (req, res) => res.end(String(req.session.n || 0)))
      const first = await request(old).get('/')
      const sid = sidOf(first)
      const again = await request(rotated).get('/').set('Cookie', cookieOf(first)).expect(200, '1')
      expect(cookieOf(again)).toBe('connect.sid=' + encodeURIComponent('s:' + cookieSignature.sign(sid, 'new secret')))
      const third = await request(rotated).get('/').set('Cookie', cookieOf(again)).expect(200, '1')
      expect(cookieOf(third)).toBe(cookieOf(again))
      // A forged signature is not echoed back: the request gets a new session and a new cookie.
      const forged = 'connect.sid=' + encodeURIComponent('s:' + sid + '.' + 'A'.repeat(43))
      const refused = await request(rotated).get('/').set('Cookie', forged).expect(200, '0')
      expect(sidOf(refused)).not.toBe(sid)
    })
  })

  describe('unset option', () => {
    test('keep (default): req.session = null leaves the stored session; destroy removes it', async () => {
      for (const [unset, remaining] of [[undefined, 1], ['destroy', 0]]) {
        const store = Memory()
        const app = server(session, { store, unset }, (req, res) => { if (req.url === '/drop') req.session = null; res.end() })
        const first = await request(app).get('/')
        await request(app).get('/drop').set('Cookie', cookieOf(first)).expect(200)
        expect(await storeSize(store)).toBe(remaining)
      }
    })

    test('destroy: a session dropped on its first request sets no cookie; a destroy error reaches next', async () => {
      const store = Memory()
      const app = server(session, { store, unset: 'destroy' }, (req, res) => { req.session = null; res.end() })
      expect(setCookie(await request(app).get('/'))).toEqual([])
      store.destroy = (sid, cb) => cb(new Error('destroy failed'))
      const errors = []
      const mw = session({ secret: 'x', resave: true, saveUninitialized: true, store, unset: 'destroy' })
      const failing = http.createServer((req, res) => mw(req, res, (err) => { if (err) return errors.push(err.message); req.session = null; res.end() }))
      await request(failing).get('/')
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(errors).toEqual(['destroy failed'])
    })
  })

  describe('res.end patching', () => {
    test('works with res.write/res.end patched before or after it', async () => {
      for (const order of ['before', 'after']) {
        const mw = session({ secret: 'x', resave: true, saveUninitialized: true })
        const patched = []
        const patch = (res) => {
          const { end, write } = res
          res.end = function (...args) { patched.push('end'); return end.apply(this, args) }
          res.write = function (...args) { patched.push('write'); return write.apply(this, args) }
        }
        const app = http.createServer((req, res) => {
          if (order === 'before') patch(res)
          mw(req, res, () => {
            if (order === 'after') patch(res)
            res.end('hello')
          })
        })
        await request(app).get('/').expect(200, 'hello')
        expect(patched).toContain('end') // the patch was not bypassed
      }
    })

    test('the response completes only after the store has the session, body and headers intact', async () => {
      // An empty body with Content-Length: 0 is complete for the client as soon as express-session
      // sends the headers, before the store has answered; ours holds it like any other.
      const bodies = name === 'ferrosession' ? ['hello, world', Buffer.from('bytes'), ''] : ['hello, world', Buffer.from('bytes')]
      for (const body of bodies) {
        const store = Memory()
        const events = []
        const set = store.set.bind(store)
        store.set = (sid, sess, cb) => setTimeout(() => set(sid, sess, (err) => { events.push('stored'); cb(err) }), 30)
        const app = server(session, { store }, (req, res) => {
          res.setHeader('Content-Length', Buffer.byteLength(body))
          res.end(body)
          events.push(res.headersSent ? 'headers fixed at end()' : 'headers not yet fixed')
        })
        const res = await request(app).get('/').buffer(true).parse((r, cb) => {
          const chunks = []
          r.on('data', (c) => chunks.push(c))
          r.on('end', () => { events.push('response complete'); cb(null, Buffer.concat(chunks)) })
        })
        expect(res.body.toString()).toBe(body.toString())
        expect(events).toEqual(['headers fixed at end()', 'stored', 'response complete'])
        expect(sidOf(res)).toBeDefined()
      }
    })
  })

  describe('req.session methods', () => {
    const appFor = (store, handler) => server(session, { store, resave: false, saveUninitialized: false }, handler)

    test('methods are not enumerable; Set-Cookie only when the session changes', async () => {
      const store = Memory()
      const app = appFor(store, (req, res) => {
        if (req.url === '/set') req.session.v = 1
        res.end(JSON.stringify(Object.keys(req.session)))
      })
      const none = await request(app).get('/').expect(200, '["cookie"]')
      expect(setCookie(none)).toEqual([])
      const set = await request(app).get('/set')
      expect(setCookie(set)).toHaveLength(1)
      expect(setCookie(await request(app).get('/').set('Cookie', cookieOf(set)))).toEqual([])
    })

    test('destroy() removes it from the store; regenerate() replaces it with a new sid', async () => {
      const store = Memory()
      const app = appFor(store, (req, res) => {
        if (req.url === '/login') { req.session.user = 'a'; return res.end() }
        if (req.url === '/destroy') return req.session.destroy(() => res.end('destroyed'))
        if (req.url === '/regenerate') return req.session.regenerate(() => { req.session.user = 'b'; res.end() })
        res.end(req.session.user || '')
      })
      const login = await request(app).get('/login')
      const regen = await request(app).get('/regenerate').set('Cookie', cookieOf(login))
      expect(sidOf(regen)).not.toBe(sidOf(login))
      expect(await storeGet(store, sidOf(login))).toBeFalsy()
      await request(app).get('/').set('Cookie', cookieOf(regen)).expect(200, 'b')
      await request(app).get('/destroy').set('Cookie', cookieOf(regen)).expect(200, 'destroyed')
      expect(await storeSize(store)).toBe(0)
    })

    test('reload() reads the store again; it errors when the session is gone', async () => {
      const store = Memory()
      const app = appFor(store, (req, res) => {
        if (req.url === '/login') { req.session.user = 'a'; return res.end() }
        store.get(req.sessionID, (getErr, stored) => {
          if (getErr) return res.end(getErr.message)
          if (stored && req.url === '/change') stored.user = 'changed elsewhere'
          const then = () => req.session.reload((err) => res.end(err ? err.message : req.session.user))
          if (req.url === '/gone') return store.destroy(req.sessionID, then)
          if (stored) return store.set(req.sessionID, stored, then)
          then()
        })
      })
      const login = await request(app).get('/login')
      await request(app).get('/change').set('Cookie', cookieOf(login)).expect(200, 'changed elsewhere')
      await request(app).get('/gone').set('Cookie', cookieOf(login)).expect(200, 'failed to load session')
    })

    test('save() stores now and prevents the end-of-request save; touch() resets the expiry', async () => {
      const store = Memory()
      let sets = 0
      const set = store.set
      store.set = function (...args) { sets++; return set.apply(this, args) }
      const app = server(session, { store, resave: false, saveUninitialized: true, cookie: { maxAge: min } }, (req, res) => {
        req.session.v = 1
        req.session.save((err) => res.end(err ? 'error' : 'saved'))
      })
      await request(app).get('/').expect(200, 'saved')
      expect(sets).toBe(1)
      const touchApp = server(session, { store, resave: false, cookie: { maxAge: min } }, (req, res) => { req.session.hit = true; req.session.touch(); res.end() })
      const first = await request(touchApp).get('/')
      const before = (await storeGet(store, sidOf(first))).cookie.expires
      await new Promise((resolve) => setTimeout(resolve, 50))
      await request(touchApp).get('/').set('Cookie', cookieOf(first))
      expect(new Date((await storeGet(store, sidOf(first))).cookie.expires).getTime()).not.toBe(new Date(before).getTime())
    })
  })

  describe('cookie-parser', () => {
    test('a signed cookie in req.cookies (cookie-parser ran first) is read; an unsigned one is not', async () => {
      const mw = session({ secret: 'keyboard cat', resave: true, saveUninitialized: true })
      const app = express()
      app.use(cookieParser())
      app.use((req, res, next) => { delete req.headers.cookie; next() })
      app.use(mw)
      app.use((req, res) => { req.session.n = (req.session.n || 0) + 1; res.end(String(req.session.n)) })
      const first = await request(app).get('/')
      await request(app).get('/').set('Cookie', cookieOf(first)).expect(200, '2')
      await request(app).get('/').set('Cookie', `connect.sid=${sidOf(first)}`).expect(200, '1')
      expect(deprecations).toContain('express-session cookie should be available in req.headers.cookie')
    })
  })
})

describe('the same bytes as express-session', () => {
  test('Set-Cookie and the stored session are identical for the same sid, secrets and options', async () => {
    const options = { secret: ['keyboard cat', 'nyan cat'], genid: () => 'Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC', cookie: { maxAge: min, sameSite: 'lax', priority: 'high' }, resave: false, saveUninitialized: true }
    const results = []
    // Cookie derives originalMaxAge from expires - Date.now(): a millisecond tick between the two
    // reads makes it 59999 in either implementation, so the clock stands still for this test.
    const now = jest.spyOn(Date, 'now').mockReturnValue(Date.parse('2026-03-01T12:00:00Z'))
    try {
      for (const [, session] of implementations) {
        const stored = {}
        const store = new session.Store()
        store.get = (sid, cb) => cb(null, stored[sid] ? JSON.parse(stored[sid]) : null)
        store.set = (sid, sess, cb) => { stored[sid] = JSON.stringify(sess); cb() }
        store.destroy = (sid, cb) => { delete stored[sid]; cb() }
        const mw = session({ ...options, store })
        const app = http.createServer((req, res) => mw(req, res, () => { req.session.user = { name: 'Zoë', n: 1.5 }; res.end() }))
        const res = await request(app).get('/')
        results.push({ cookie: setCookie(res)[0], stored: stored[Object.keys(stored)[0]] })
      }
    } finally {
      now.mockRestore()
    }
    expect(results[1]).toEqual(results[0])
    expect(results[0].cookie).toBe('connect.sid=s%3AZo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC.J1%2FgN9LiujZdKp0yB%2F9J86Yx5zf42sXSXmE0ZIpqYE4; Path=/; Expires=Sun, 01 Mar 2026 12:01:00 GMT; HttpOnly; Priority=High; SameSite=Lax')
    expect(results[0].stored).toBe('{"cookie":{"originalMaxAge":60000,"priority":"high","expires":"2026-03-01T12:01:00.000Z","httpOnly":true,"path":"/","sameSite":"lax"},"user":{"name":"Zoë","n":1.5}}')
  })
})

describe('ferrosession\'s session() with ferrosession\'s stores', () => {
  test('the session is serialised once per request: the store writes the text the middleware compared', async () => {
    const store = new RedisStore({ url: REDIS_URL, prefix: `ferrotest:mw:${process.pid}:` })
    const stringify = JSON.stringify
    let wholeSessionStringified = 0
    JSON.stringify = function (value, ...rest) {
      if (value && value.cookie && typeof value.save === 'function') wholeSessionStringified++
      return stringify.call(this, value, ...rest)
    }
    try {
      const app = server(ours, { store, resave: false, saveUninitialized: false }, (req, res) => { req.session.user = 'zoë'; res.end() })
      const res = await request(app).get('/').expect(200)
      expect(wholeSessionStringified).toBe(0) // the state without the cookie was reused
      expect((await store.get(sidOf(res))).user).toBe('zoë')
    } finally {
      JSON.stringify = stringify
      await store.clear()
      await store.close()
    }
  })

  test('the default store is ferrosession\'s bounded MemoryStore', () => {
    const mw = ours({ secret: 'x', resave: false, saveUninitialized: false })
    expect(typeof mw).toBe('function')
    expect(ours.MemoryStore).toBe(OurMemoryStore)
  })
})

describe.each(implementations)('%s Cookie', (_name, session) => {
  const { Cookie } = session
  afterEach(() => jest.restoreAllMocks())
  test('defaults: path /, httpOnly, a browser-session cookie', () => {
    const c = new Cookie()
    expect([c.path, c.httpOnly, c.expires, c.maxAge, c.originalMaxAge]).toEqual(['/', true, null, null, null])
    expect(c.toJSON()).toEqual({ originalMaxAge: null, partitioned: undefined, priority: undefined, expires: null, secure: undefined, httpOnly: true, domain: undefined, path: '/', sameSite: undefined })
  })

  test('options are copied; a non-object is refused', () => {
    const c = new Cookie({ path: '/foo', httpOnly: false, secure: true, domain: 'example.com', sameSite: 'strict', partitioned: true, priority: 'low' })
    expect(c.serialize('n', 'v')).toBe('n=v; Domain=example.com; Path=/foo; Secure; Partitioned; Priority=Low; SameSite=Strict')
    expect(() => new Cookie('foo')).toThrow('argument options must be a object')
    expect(() => new Cookie(42)).toThrow('argument options must be a object')
  })

  test('maxAge sets expires and originalMaxAge; expires keeps what maxAge implies; bad maxAge throws', () => {
    // A clock that stands still: express-session reads it twice in the maxAge setter, so a tick in
    // between would make its originalMaxAge 999 (the CI flake this pins down; ours reads it once).
    jest.spyOn(Date, 'now').mockReturnValue(Date.UTC(2026, 0, 1))
    const c = new Cookie({ maxAge: 1000 })
    expect(c.originalMaxAge).toBe(1000)
    expect(c.maxAge).toBeGreaterThan(900)
    expect(c.expires).toBeInstanceOf(Date)
    c.expires = new Date(Date.now() + 5000)
    expect(c.originalMaxAge).toBeGreaterThan(4000)
    c.maxAge = null
    expect(c.expires).toBeNull()
    expect(() => { c.maxAge = '1000' }).toThrow('maxAge must be a number or Date')
    const restored = new Cookie({ maxAge: 2000, originalMaxAge: 60000 })
    expect(restored.originalMaxAge).toBe(60000)
  })

  if (_name !== 'express-session') {
    test('originalMaxAge is the configured lifetime even when the clock ticks inside the setter', () => {
      let t = Date.UTC(2026, 0, 1)
      jest.spyOn(Date, 'now').mockImplementation(() => t++)
      expect(new Cookie({ maxAge: 1000 }).originalMaxAge).toBe(1000)
    })
  }

  test('JSON is what stores keep: expires as an ISO string, undefined members gone', () => {
    const c = new Cookie({ maxAge: 60000 })
    const json = JSON.parse(JSON.stringify(c))
    expect(Object.keys(json)).toEqual(['originalMaxAge', 'expires', 'httpOnly', 'path'])
    expect(json.expires).toBe(c.expires.toISOString())
  })
})

describe('the Set-Cookie value', () => {
  const fc = require('fast-check')
  const cookie = require('cookie')
  const { serialize } = require('../lib/session/set-cookie')
  const outcome = (fn) => {
    try {
      return { value: fn() }
    } catch (err) {
      return { error: `${err.constructor.name}: ${err.message}` }
    }
  }

  test('is cookie.serialize\'s, value or error, for any cookie data a session can hold', () => {
    const text = fc.oneof(fc.constantFrom('/', '/app', 'example.com', '.a.b', 'a;b', 'x y', 'é', ''), fc.string({ maxLength: 8 }))
    const either = (arb) => fc.option(arb, { nil: undefined })
    const data = fc.record({
      path: either(text),
      domain: either(text),
      expires: either(fc.oneof(fc.date({ noInvalidDate: false }), fc.constant('2026-01-01'), fc.constant(null))),
      httpOnly: either(fc.boolean()),
      secure: either(fc.boolean()),
      partitioned: either(fc.boolean()),
      priority: either(fc.constantFrom('low', 'Medium', 'HIGH', 'urgent', 'constructor', 1)),
      sameSite: either(fc.constantFrom(true, false, 'lax', 'Strict', 'none', 'auto', 'toString', 0))
    })
    const name = fc.constantFrom('connect.sid', 'sid', 'bad name', 'a;b')
    fc.assert(fc.property(name, fc.string(), data, (n, value, opts) => {
      expect(outcome(() => serialize(n, value, opts))).toEqual(outcome(() => cookie.serialize(n, value, opts)))
    }), { numRuns: 3000 })
  })
})

describe('ferrosession only: where express-session is unsafe', () => {
  test.each([
    ['', /secret option must not be empty/],
    [['real secret', ''], /secret option must not be empty/],
    [[Buffer.alloc(0)], /secret option must not be empty/]
  ])('an empty secret is refused at construction: %p', (secret, message) => {
    expect(() => ours({ secret, resave: false, saveUninitialized: false })).toThrow(message)
  })

  test('a cookie signed with an empty secret is never accepted', async () => {
    const store = new OurMemoryStore()
    await storeSet(store, 'known-sid', { cookie: { originalMaxAge: min, expires: new Date(Date.now() + min) }, user: 'zoë' })
    const app = server(ours, { store, secret: 'real secret' }, (req, res) => res.end(String(req.session.user)))
    const forged = 'connect.sid=' + encodeURIComponent('s:' + cookieSignature.sign('known-sid', ''))
    await request(app).get('/').set('Cookie', forged).expect(200, 'undefined')
  })

  const deep = () => {
    const top = {}
    let at = top
    for (let i = 0; i < 100000; i++) at = at.next = {}
    return top
  }
  const circular = () => { const o = {}; o.self = o; return o }
  test.each([
    ['a BigInt', () => 10n, /session cannot be serialised: Do not know how to serialize a BigInt/],
    ['a circular reference', circular, /session cannot be serialised: Converting circular structure to JSON$/],
    ['100,000 levels of nesting', deep, /session cannot be serialised: Maximum call stack size exceeded/]
  ])('a session holding %s fails its request through next(err), on every path', async (_, value, message) => {
    const store = new OurMemoryStore()
    // Saved at the end of the request, set with an explicit save(), and the store's own set.
    const atEnd = server(ours, { store }, (req, res) => { req.session.bad = value(); res.end('sent') })
    await request(atEnd).get('/').expect(500).expect((res) => expect(res.text).toMatch(message))
    const explicit = server(ours, { store }, (req, res) => {
      req.session.bad = value()
      req.session.save((err) => { res.statusCode = err ? 500 : 200; res.end(err ? err.message : 'saved') })
    })
    await request(explicit).get('/').expect(500).expect((res) => expect(res.text).toMatch(message))
    const viaExpress = express()
    viaExpress.use(ours({ store, secret: 'x', resave: false, saveUninitialized: false }))
    viaExpress.get('/', (req, res) => { req.session.bad = value(); res.send('sent') })
    viaExpress.use((err, req, res, next) => res.status(500).send(err.message))
    await request(viaExpress).get('/').expect(500).expect((res) => expect(res.text).toMatch(message))
    const err = await store.set('s', { cookie: { originalMaxAge: min, expires: new Date(Date.now() + min) }, bad: value() }).catch((e) => e)
    expect(err.code).toBe('ESESSION_INVALID')
    expect(err.message.split('\n')).toHaveLength(1)
    expect(await storeSize(store)).toBe(0)
  }, 30000)
})

test('express-session aliased to ferrosession\'s middleware (npm alias, overrides) loads and serves sessions', async () => {
  // An app whose node_modules has ferrosession, and an express-session that re-exports its
  // session(): the two require each other while loading.
  const fs = require('node:fs')
  const os = require('node:os')
  const path = require('node:path')
  const { spawnSync } = require('node:child_process')
  const root = path.join(__dirname, '..')
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-alias-'))
  try {
    const modules = path.join(app, 'node_modules')
    fs.mkdirSync(modules)
    for (const name of fs.readdirSync(path.join(root, 'node_modules'))) {
      if (name !== 'express-session' && !name.startsWith('.')) fs.symlinkSync(path.join(root, 'node_modules', name), path.join(modules, name))
    }
    const own = path.join(modules, 'ferrosession')
    fs.mkdirSync(own)
    for (const entry of fs.readdirSync(root)) {
      if (['index.js', 'binding.js', 'package.json', 'lib'].includes(entry) || entry.endsWith('.node')) fs.symlinkSync(path.join(root, entry), path.join(own, entry))
    }
    fs.mkdirSync(path.join(modules, 'express-session'))
    fs.writeFileSync(path.join(modules, 'express-session', 'package.json'), '{"name":"express-session","main":"index.js"}')
    fs.writeFileSync(path.join(modules, 'express-session', 'index.js'), "module.exports = require('ferrosession').session\n")
    const script = `
      const session = require('express-session')
      const express = require('express')
      const store = new session.MemoryStore()
      const server = express().use(session({ secret: 'x', resave: false, saveUninitialized: false, store }))
        .get('/', (req, res) => { req.session.n = (req.session.n || 0) + 1; res.send(String(req.session.n)) })
        .listen(0, async () => {
          const url = 'http://127.0.0.1:' + server.address().port
          const first = await fetch(url)
          const cookie = first.headers.get('set-cookie').split(';')[0]
          const second = await fetch(url, { headers: { cookie } })
          console.log(JSON.stringify([await first.text(), await second.text(), store instanceof session.Store]))
          server.close(() => store.close())
        })`
    const run = spawnSync(process.execPath, ['--preserve-symlinks', '-e', script], { cwd: app, encoding: 'utf8', timeout: 20000 })
    expect(run.stderr).toBe('')
    expect(JSON.parse(run.stdout.trim())).toEqual(['1', '2', true])
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
  }
})
