'use strict'
// The store contract, written once and run against every backend: express-session's callback
// contract, promises, expiry, touch, all/length/clear/ids, isolation, events and bad input.

const { Store } = require('express-session')
const { storeFactory, sessionData, sleep, runInNode } = require('./backends')

/** Calls `fn(cb)` and resolves with the callback's arguments once it has fired, checking that
 *  it fires exactly once (a second call within `settle` ms fails the test). */
function callbackOnce (fn, settle = 30) {
  return new Promise((resolve, reject) => {
    let calls = 0
    let args
    fn((...a) => {
      calls++
      args = a
      if (calls === 1) {
        setTimeout(() => (calls === 1 ? resolve(args) : reject(new Error(`callback fired ${calls} times`))), settle)
      }
    })
  })
}

function runContract (backend) {
  const suite = `contract_${backend.name}`
  describe(`${backend.name} store contract`, () => {
    const stores = storeFactory(backend, suite)
    let store

    beforeAll(async () => {
      // A backend test must fail, not pass, when its server is missing.
      await stores.create().ready()
    })
    beforeEach(() => { store = stores.create() })
    afterAll(() => stores.closeAll())

    describe('shape', () => {
      test('is an express-session Store and EventEmitter, extensible, with touch on the prototype', () => {
        expect(store).toBeInstanceOf(Store)
        expect(typeof store.on).toBe('function')
        expect(typeof Object.getPrototypeOf(store).touch).toBe('function')
        store.generate = () => {}
        expect(Object.isExtensible(store)).toBe(true)
      })
    })

    describe('callbacks', () => {
      test('set then get returns the data, each callback once', async () => {
        const sess = sessionData(60000, { user: 'zoë', n: 1.5, nested: { list: [1, 'two', null] } })
        const [setErr] = await callbackOnce((cb) => store.set('sid-1', sess, cb))
        expect(setErr).toBeNull()
        const [err, got] = await callbackOnce((cb) => store.get('sid-1', cb))
        expect(err).toBeNull()
        expect(got).toEqual(sess)
      })

      test('get hands out a fresh object every time', async () => {
        await store.set('fresh', sessionData(60000, { a: 1 }))
        const first = await store.get('fresh')
        first.a = 2
        first.cookie.path = '/changed'
        const second = await store.get('fresh')
        expect(second.a).toBe(1)
        expect(second.cookie.path).toBe('/')
      })

      test('get of an unknown sid is (null, null), not an error', async () => {
        const [err, got] = await callbackOnce((cb) => store.get('no-such-sid', cb))
        expect(err).toBeNull()
        expect(got == null).toBe(true)
      })

      test('destroy of an unknown sid succeeds, with or without a callback', async () => {
        const [err] = await callbackOnce((cb) => store.destroy('never-stored', cb))
        expect(err == null).toBe(true)
        await expect(store.destroy('never-stored')).resolves.toBeUndefined()
      })

      test('destroy removes the session', async () => {
        await store.set('bye', sessionData())
        await store.destroy('bye')
        expect(await store.get('bye')).toBeNull()
      })

      test('a second set replaces the first', async () => {
        await store.set('twice', sessionData(60000, { v: 1 }))
        await store.set('twice', sessionData(60000, { v: 2 }))
        expect((await store.get('twice')).v).toBe(2)
        expect(await store.length()).toBe(1)
      })

      test('a callback that throws surfaces as an uncaught exception and is called once', () => {
        // Jest intercepts uncaught exceptions in its sandbox, so this runs in a plain Node process.
        const out = runInNode(backend, `
          let calls = 0
          process.on('uncaughtException', (err) => {
            setTimeout(() => { console.log(JSON.stringify({ message: err.message, calls })); store.close() }, 50)
          })
          store.get('whatever', () => { calls++; throw new Error('user bug') })
        `)
        expect(out).toEqual({ message: 'user bug', calls: 1 })
      })
    })

    describe('promises', () => {
      test('every method returns a Promise when no callback is given', async () => {
        const sess = sessionData(60000, { p: true })
        await expect(store.set('p', sess)).resolves.toBeUndefined()
        await expect(store.get('p')).resolves.toEqual(sess)
        await expect(store.touch('p', sess)).resolves.toBeUndefined()
        await expect(store.length()).resolves.toBe(1)
        await expect(store.ids()).resolves.toEqual(['p'])
        await expect(store.all()).resolves.toHaveLength(1)
        await expect(store.destroy('p')).resolves.toBeUndefined()
        await expect(store.clear()).resolves.toBeDefined()
      })

      test('returns undefined, not a Promise, when a callback is given', async () => {
        const ret = store.get('x', () => {})
        expect(ret).toBeUndefined()
        await sleep(20)
      })

      const ifServer = backend.unreachable ? test : test.skip
      ifServer('a failed operation without a callback rejects, and an ignored rejection is not unhandled', async () => {
        const unhandled = []
        const onUnhandled = (r) => unhandled.push(r)
        process.on('unhandledRejection', onUnhandled)
        const dead = await stores.unreachable({ commandTimeout: 500 })
        dead.destroy('sid') // express-session does this when req.session.destroy() has no callback
        await expect(dead.get('sid')).rejects.toThrow(backend.name)
        await sleep(50)
        process.off('unhandledRejection', onUnhandled)
        expect(unhandled).toEqual([])
      })
    })

    describe('expiry', () => {
      test('a session whose cookie has expired is not written (and an old copy is removed)', async () => {
        await store.set('old', sessionData(60000, { v: 1 }))
        await store.set('old', sessionData(-1000, { v: 2 }))
        expect(await store.get('old')).toBeNull()
        expect(await store.length()).toBe(0)
      })

      test('get never returns a session past cookie.expires, to the millisecond', async () => {
        await store.set('short', sessionData(300))
        expect(await store.get('short')).not.toBeNull()
        await sleep(350)
        expect(await store.get('short')).toBeNull()
        expect(await store.all()).toEqual([])
      })

      test('a browser-session cookie (expires null) is kept for the default ttl', async () => {
        const sess = { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, v: 1 }
        await store.set('browser', sess)
        expect(await store.get('browser')).toEqual(sess)
      })

      test('an unparsable cookie.expires falls back to the default ttl instead of failing', async () => {
        const sess = { cookie: { originalMaxAge: 1000, expires: 'not a date', path: '/' } }
        await store.set('weird', sess)
        expect(await store.get('weird')).toEqual(sess)
      })

      test('a ttl function decides the lifetime', async () => {
        const s = stores.create({ ttl: () => 1 * (backend.ttlScale || 1) })
        await s.set('fn', { cookie: { originalMaxAge: null, expires: null } })
        expect(await s.get('fn')).not.toBeNull()
        await sleep(2100)
        expect(await s.get('fn')).toBeNull()
      })
    })

    describe('touch', () => {
      test('rewrites the stored cookie, so cookie.expires in the store is current', async () => {
        const sess = sessionData(1000, { keep: 'me' })
        await store.set('t', sess)
        const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 60000).toISOString(), originalMaxAge: 60000 } }
        await store.touch('t', later)
        const got = await store.get('t')
        expect(got.cookie.expires).toBe(later.cookie.expires)
        expect(got.keep).toBe('me')
        await sleep(1100)
        expect(await store.get('t')).not.toBeNull() // alive past the first expiry
      })

      test('never recreates a session that was destroyed meanwhile', async () => {
        const sess = sessionData()
        await store.set('gone', sess)
        await store.destroy('gone')
        await store.touch('gone', sess)
        expect(await store.get('gone')).toBeNull()
      })

      test('with disableTouch, touch changes nothing', async () => {
        const s = stores.create({ disableTouch: true })
        const sess = sessionData(60000)
        await s.set('dt', sess)
        await s.touch('dt', { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 120000).toISOString() } })
        expect((await s.get('dt')).cookie.expires).toBe(sess.cookie.expires)
      })
    })

    describe('all, length, ids, clear', () => {
      test('see exactly this store\'s sessions', async () => {
        await store.set('a', sessionData(60000, { n: 1 }))
        await store.set('b', sessionData(60000, { n: 2 }))
        await store.set('c', sessionData(60000, { n: 3 }))
        expect(await store.length()).toBe(3)
        expect((await store.ids()).sort()).toEqual(['a', 'b', 'c'])
        const all = await store.all()
        expect(all.map((s) => [s.id, s.n]).sort()).toEqual([['a', 1], ['b', 2], ['c', 3]])
        await store.clear()
        expect(await store.length()).toBe(0)
        expect(await store.all()).toEqual([])
      })

      test('two stores never see each other\'s sessions', async () => {
        const other = stores.create()
        await store.set('mine', sessionData())
        await other.set('theirs', sessionData())
        expect(await store.ids()).toEqual(['mine'])
        await other.clear()
        expect(await store.ids()).toEqual(['mine'])
      })

      test('callback forms work too', async () => {
        await store.set('cb', sessionData())
        const [err, n] = await callbackOnce((cb) => store.length(cb))
        expect([err, n]).toEqual([null, 1])
        const [err2, ids] = await callbackOnce((cb) => store.ids(cb))
        expect([err2, ids]).toEqual([null, ['cb']])
        const [err3] = await callbackOnce((cb) => store.clear(cb))
        expect(err3).toBeNull()
      })
    })

    describe('session ids and data', () => {
      test.each([
        ['unicode', 'zoë-🎉-✓'],
        ['spaces and glob characters', 'a b*c?[d]\\e'],
        ['dots and slashes', 's:abc.def/ghi+jk='],
        ['long', 'x'.repeat(2000)],
        ['empty', '']
      ])('a %s sid round-trips', async (_label, sid) => {
        await store.set(sid, sessionData(60000, { sid }))
        expect((await store.get(sid)).sid).toBe(sid)
        expect(await store.ids()).toEqual([sid])
        await store.destroy(sid)
        expect(await store.get(sid)).toBeNull()
      })

      test('numbers, Unicode and Dates come back as JSON made them', async () => {
        const sess = sessionData(60000, { big: 1e21, neg0: -0, sep: 'a\u2028b', when: new Date(0), emoji: '💥' })
        await store.set('data', sess)
        expect(await store.get('data')).toEqual(JSON.parse(JSON.stringify(sess)))
      })

      test('a serializer with an async parse is honoured', async () => {
        const s = stores.create({
          serializer: { stringify: JSON.stringify, parse: async (text) => ({ ...JSON.parse(text), parsedAsync: true }) }
        })
        await s.set('async', sessionData())
        expect((await s.get('async')).parsedAsync).toBe(true)
      })
    })

    describe('bad input gets a clear error and changes nothing', () => {
      const original = sessionData(60000, { v: 'original' })
      beforeEach(() => store.set('victim', original))

      async function expectRefused (op, promiseOrCb) {
        const [err] = await callbackOnce(promiseOrCb)
        expect(err).toBeInstanceOf(Error)
        expect(err.code).toBe('ESESSION_INVALID')
        expect(err.message).toContain(`ferrosession ${backend.name} ${op}`)
        expect(await store.get('victim')).toEqual(original)
        return err
      }

      test.each([
        ['a number', 42], ['undefined', undefined], ['null', null], ['an object', { id: 'victim' }]
      ])('a sid that is %s', async (_label, sid) => {
        const err = await expectRefused('get', (cb) => store.get(sid, cb))
        expect(err.message).toMatch(/session id must be a string/)
        await expectRefused('set', (cb) => store.set(sid, original, cb))
        await expectRefused('destroy', (cb) => store.destroy(sid, cb))
      })

      test('a circular session', async () => {
        const circular = sessionData(60000)
        circular.self = circular
        const err = await expectRefused('set', (cb) => store.set('victim', circular, cb))
        expect(err.message).toMatch(/cannot be serialised/)
      })

      test('a session holding a BigInt', async () => {
        await expectRefused('set', (cb) => store.set('victim', sessionData(60000, { n: 10n }), cb))
      })

      test('a serializer that throws, or returns something other than a string', async () => {
        const throwing = stores.create({ serializer: { stringify: () => { throw new Error('nope') }, parse: JSON.parse } })
        const [err] = await callbackOnce((cb) => throwing.set('x', original, cb))
        expect(err.message).toMatch(/cannot be serialised: nope/)
        expect(await throwing.length()).toBe(0)
        const wrongType = stores.create({ serializer: { stringify: () => 42, parse: JSON.parse } })
        const [err2] = await callbackOnce((cb) => wrongType.set('x', original, cb))
        expect(err2.message).toMatch(/returned number, not a string/)
        expect(await wrongType.length()).toBe(0)
      })

      test('a ttl function that returns something unusable', async () => {
        const s = stores.create({ ttl: () => 'soon' })
        const [err] = await callbackOnce((cb) => s.set('x', original, cb))
        expect(err.code).toBe('ESESSION_INVALID')
        expect(await s.length()).toBe(0)
      })

      test('a session over maxSize', async () => {
        const s = stores.create({ maxSize: 1024 })
        await s.set('victim', original)
        const [err] = await callbackOnce((cb) => s.set('victim', sessionData(60000, { blob: 'x'.repeat(2000) }), cb))
        expect(err.message).toMatch(/over maxSize 1024/)
        expect(await s.get('victim')).toEqual(original)
      })

      test('unusable options throw at construction', () => {
        expect(() => stores.create({ ttl: -5 })).toThrow(/ttl/)
        expect(() => stores.create({ commandTimeout: 'fast' })).toThrow(/commandTimeout/)
        expect(() => stores.create({ serializer: {} })).toThrow(/serializer/)
      })
    })

    describe('an unreachable server', () => {
      const ifServer = backend.unreachable ? test : test.skip
      ifServer('fails fast with an error naming backend, operation and reason, and emits disconnect', async () => {
        const dead = await stores.unreachable({ commandTimeout: 1000, connectTimeout: 500 })
        const events = []
        dead.on('disconnect', () => events.push('disconnect'))
        dead.on('connect', () => events.push('connect'))
        const started = Date.now()
        const [err, value] = await callbackOnce((cb) => dead.get('sid', cb))
        expect(Date.now() - started).toBeLessThan(1500)
        expect(value).toBeUndefined()
        expect(err.message).toMatch(new RegExp(`^ferrosession ${backend.name} get: `))
        expect(['ESESSION_UNAVAILABLE', 'ESESSION_TIMEOUT']).toContain(err.code)
        await sleep(20)
        expect(events).toEqual(['disconnect'])
      })

      test('operations after close fail with a clear error', async () => {
        const s = stores.create()
        await s.close()
        const [err] = await callbackOnce((cb) => s.get('x', cb))
        expect(err.code).toBe('ESESSION_CLOSED')
      })
    })
  })
}

module.exports = { runContract, callbackOnce }
