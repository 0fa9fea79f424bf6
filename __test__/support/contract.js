'use strict'
// The store contract, written once and run against every backend: express-session's callback
// contract, promises, expiry, touch, all/length/clear/ids, isolation, events and bad input.

const { Store } = require('express-session')
const { storeFactory, sessionData, sleep, runInNode, fakeDate, sessionsOf } = require('./backends')

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

/**
 * Requests for one sid made together take effect in the order they were made, whether they travel
 * alone, in one batch, or split between a lone request and the batch after it. `create(options)`
 * makes a store; run inside a describe (every backend's contract, and Redis Cluster's suite).
 */
function callOrderTests (create) {
  const v = (n) => sessionData(60000, { v: n })
  const got = async (s, sid) => { const g = await s.get(sid); return g && g.v }
  // Each: what is stored before (nothing, or v1), the requests made together, and what a get
  // must then see (or, for a get among them, what that get saw).
  const SEQUENCES = {
    'set then destroy ends absent': [null, (s, sid) => [s.set(sid, v(1)), s.destroy(sid)], null],
    'destroy then set ends set': [1, (s, sid) => [s.destroy(sid), s.set(sid, v(2))], 2],
    'set then set: the last wins': [null, (s, sid) => [s.set(sid, v(1)), s.set(sid, v(2))], 2],
    'destroy then touch ends absent': [1, (s, sid) => [s.destroy(sid), s.touch(sid, v(1))], null],
    'set then get: the get sees the set': [1, (s, sid) => [s.set(sid, v(2)), s.get(sid)], 2, 'get'],
    'destroy then get: nothing': [1, (s, sid) => [s.destroy(sid), s.get(sid)], null, 'get']
  }
  const ROUNDS = 20
  const modes = [
    // Nothing else in flight: the first request goes alone, the next ones in a batch.
    ['alone, then batched', () => []],
    // 64 other requests in flight: everything goes in batches.
    ['with 64 others in flight', (s, round) => Array.from({ length: 64 }, (_, i) => s.get(`other-${round}-${i}`))]
  ]
  const variants = [['plain', {}], ['encrypted', { encryption: { keys: [Buffer.alloc(32, 7)] } }]]
  for (const [variant, options] of variants) {
    for (const [mode, others] of modes) {
      test(`${variant}, ${mode}: ${Object.keys(SEQUENCES).length} sequences x ${ROUNDS} rounds all in call order`, async () => {
        const s = create(options)
        const wrong = []
        for (let round = 0; round < ROUNDS; round++) {
          for (const [name, [before, together, expected, seenBy]] of Object.entries(SEQUENCES)) {
            const sid = `order-${round}-${name.split(' ').slice(0, 3).join('-')}`
            if (before !== null) await s.set(sid, v(before))
            const background = others(s, round)
            const answers = await Promise.all(together(s, sid))
            await Promise.all(background)
            const seen = seenBy === 'get' ? answers[1] && answers[1].v : await got(s, sid)
            if ((seen ?? null) !== expected) wrong.push(`${name} (round ${round}): ${seen} instead of ${expected}`)
          }
        }
        expect(wrong).toEqual([])
      }, 120000)
    }
  }
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
    afterAll(async () => {
      await stores.closeAll()
      await backend.cleanup('child') // what runInNode's child processes stored
    })

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
        expect(sessionsOf(await store.all())).toHaveLength(1)
        await expect(store.destroy('p')).resolves.toBeUndefined()
        await store.set('q', sess)
        await expect(store.clear()).resolves.toBe(backend.clearAnswers === 'nothing' ? undefined : 1)
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
        await expect(dead.get('sid')).rejects.toThrow(backend.errorName || backend.name)
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
        const clock = fakeDate()
        try {
          await store.set('short', sessionData(300))
          clock.tick(299)
          expect(await store.get('short')).not.toBeNull()
          clock.tick(1)
          expect(await store.get('short')).toBeNull()
          expect(sessionsOf(await store.all())).toEqual([])
        } finally {
          clock.uninstall()
        }
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

      test.each([1, 1.9, 0.5])('a ttl function decides the lifetime, to the millisecond (%p s)', async (seconds) => {
        const s = stores.create({ ttl: () => seconds * (backend.ttlScale || 1) })
        const clock = fakeDate()
        try {
          const started = performance.now() // real time: only Date is faked
          await s.set('fn', { cookie: { originalMaxAge: null, expires: null } })
          if (backend.serverTtlMs) {
            // Redis expires the key itself, on its own clock: read the expiry it was given.
            const ms = await backend.serverTtlMs(s, 'fn')
            const elapsed = performance.now() - started
            expect(ms).toBeGreaterThanOrEqual(seconds * 1000 - elapsed - 2)
            expect(ms).toBeLessThanOrEqual(seconds * 1000)
          } else {
            clock.tick(seconds * 1000 - 1)
            expect(await s.get('fn')).not.toBeNull()
            clock.tick(1 + (backend.granularityMs || 0))
            expect(await s.get('fn')).toBeNull()
          }
        } finally {
          clock.uninstall()
        }
      })
    })

    describe('touch', () => {
      test('moves the expiry, and a read reports it in cookie.expires', async () => {
        const sess = sessionData(1000, { keep: 'me' })
        await store.set('t', sess)
        const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 60000).toISOString(), originalMaxAge: 60000 } }
        await store.touch('t', later)
        const got = await store.get('t')
        // Exactly, or rounded up to the backend's granularity (PostgreSQL keeps whole seconds).
        const late = Date.parse(got.cookie.expires) - Date.parse(later.cookie.expires)
        expect(late).toBeGreaterThanOrEqual(0)
        expect(late).toBeLessThanOrEqual(backend.granularityMs || 0)
        expect(got.keep).toBe('me')
        const clock = fakeDate()
        try {
          clock.tick(1100)
          expect(await store.get('t')).not.toBeNull() // alive past the first expiry
        } finally {
          clock.uninstall()
        }
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
        const all = sessionsOf(await store.all())
        expect(all.map((s) => [s.id, s.n]).sort()).toEqual([['a', 1], ['b', 2], ['c', 3]])
        expect(await store.clear()).toBe(backend.clearAnswers === 'nothing' ? undefined : 3)
        expect(await store.length()).toBe(0)
        expect(sessionsOf(await store.all())).toEqual([])
      })

      test(`all() answers in the anchor's shape: ${backend.allShape === 'object' ? 'an object keyed by sid' : 'an array, each session with its id'}`, async () => {
        const s = stores.create()
        const sess = sessionData(60000, { n: 1 })
        await s.set('shape', sess)
        const all = await s.all()
        if (backend.allShape === 'object') {
          expect(Array.isArray(all)).toBe(false)
          expect(Object.keys(all)).toEqual(['shape'])
          expect({ ...all.shape }).toEqual(JSON.parse(JSON.stringify(sess)))
        } else {
          expect(all).toEqual([{ ...JSON.parse(JSON.stringify(sess)), id: 'shape' }])
        }
      })

      test('past 500 sessions (more than one SCAN/MGET/DEL batch), every one is listed and cleared', async () => {
        const s = stores.create()
        await Promise.all(Array.from({ length: 1201 }, (_, i) => s.set(`many-${i}`, sessionData(60000, { i }))))
        expect(await s.length()).toBe(1201)
        expect(new Set(await s.ids()).size).toBe(1201)
        const all = sessionsOf(await s.all())
        expect(all.map((x) => x.i).sort((a, b) => a - b)).toEqual(Array.from({ length: 1201 }, (_, i) => i))
        expect(await s.clear()).toBe(backend.clearAnswers === 'nothing' ? undefined : 1201)
        expect(await s.length()).toBe(0)
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
        const [err3, removed] = await callbackOnce((cb) => store.clear(cb))
        expect([err3, removed]).toEqual([null, backend.clearAnswers === 'nothing' ? undefined : 1])
      })
    })

    describe('session ids and data', () => {
      test.each([
        ['unicode', 'zoë-🎉-✓'],
        ['spaces and glob characters', 'a b*c?[d]\\e'],
        ['dots and slashes', 's:abc.def/ghi+jk='],
        ['long', 'x'.repeat(backend.maxSidLength || 2000)],
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
        expect(err.message).toContain(`ferrosession ${backend.errorName || backend.name} ${op}`)
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
        expect(err.message).toMatch(new RegExp(`^ferrosession ${backend.errorName || backend.name} get: `))
        expect(['ESESSION_UNAVAILABLE', 'ESESSION_TIMEOUT']).toContain(err.code)
        await sleep(20)
        expect(events).toEqual(['disconnect'])
      })
    })

    describe('metrics()', () => {
      test('counts operations by kind with their latency, and how many requests each native call carried', async () => {
        const store = stores.create()
        await store.set('m1', sessionData())
        await store.get('m1')
        await store.get('nobody')
        await store.touch('m1', sessionData())
        await store.destroy('m1')
        // One in flight, then 39 in the same turn: they go to the native core together.
        await Promise.all(Array.from({ length: 40 }, (_, i) => store.set(`b${i}`, sessionData())))
        expect(await store.length()).toBe(40)
        const m = store.metrics()
        expect(m.backend).toBe(store._backend)
        expect(Object.fromEntries(Object.entries(m.operations).map(([op, c]) => [op, [c.count, c.errors]])))
          .toEqual({ set: [41, 0], get: [2, 0], touch: [1, 0], destroy: [1, 0], length: [1, 0] })
        for (const c of Object.values(m.operations)) {
          const { buckets } = c.latencyMs
          expect(buckets.map((b) => b.le)).toEqual([0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, '+Inf'])
          expect(buckets.at(-1).count).toBe(c.count)
          for (let i = 1; i < buckets.length; i++) expect(buckets[i].count).toBeGreaterThanOrEqual(buckets[i - 1].count)
          expect(c.latencyMs.sum).toBeGreaterThanOrEqual(0)
        }
        expect(m.batches.requests).toBe(45)
        // Memory answers in place, one call per request; the others batched the 39.
        if (store._inline) expect(m.batches.nativeCalls).toBe(45)
        else expect(m.batches.nativeCalls).toBeLessThan(10)
        expect(m.batches.sizes.at(-1)).toEqual({ le: '+Inf', count: m.batches.nativeCalls })
        expect(m).toMatchObject({ connected: true, inFlight: 0, errors: {}, outages: 0 })
      })

      const ifServer = backend.unreachable ? test : test.skip
      ifServer('counts errors by code and outages, and says the store is disconnected', async () => {
        const dead = await stores.unreachable({ commandTimeout: 1000, connectTimeout: 500 })
        dead.on('disconnect', () => {})
        const err = await dead.get('sid').catch((e) => e)
        await sleep(20)
        const m = dead.metrics()
        expect(m.operations.get).toMatchObject({ count: 1, errors: 1 })
        expect(m.errors).toEqual({ [err.code]: 1 })
        expect(m).toMatchObject({ connected: false, outages: 1 })
      })
    })

    describe('a stored session the serializer cannot read', () => {
      // An in-process store has no second reader of the same data; the next test covers it.
      const ifShared = backend.reopen ? test : test.skip
      ifShared('is treated as absent, reported once through errorLog, and left as it is', async () => {
        const writer = stores.create()
        await writer.set('u', sessionData(60000, { v: 'kept' }))
        const logged = []
        const reader = backend.reopen(writer, {
          serializer: { stringify: JSON.stringify, parse: () => { throw new Error('not my format') } },
          errorLog: (err) => logged.push(err)
        })
        try {
          expect(await reader.get('u')).toBeNull()
          expect(await reader.get('u')).toBeNull()
          expect(sessionsOf(await reader.all())).toEqual([])
          expect(logged).toHaveLength(1)
          expect(logged[0].code).toBe('ESESSION_UNPARSABLE')
          expect(logged[0].message).toMatch(new RegExp(`^ferrosession ${backend.errorName || backend.name} get: the stored session "u" cannot be read \\(the serializer's parse failed \\(Error\\), \\d+ characters\\)`))
          expect((await writer.get('u')).v).toBe('kept') // a wrong serializer deletes nobody's session
        } finally {
          await reader.close()
        }
      })

      test('a stored value that is not an object (a number, a string, an array) is unreadable: absent and reported once', async () => {
        for (const [text, what] of [['42', 'a number'], ['"just text"', 'a string'], ['[1,2]', 'an array']]) {
          const logged = []
          const s = stores.create({ serializer: { stringify: () => text, parse: JSON.parse }, errorLog: (err) => logged.push(err) })
          // Tables whose column checks JSON documents (MongoDB) may refuse to store it at all.
          if (await s.set('not-object', sessionData()).then(() => false, () => true)) continue
          expect(await s.get('not-object')).toBeNull()
          expect(await s.get('not-object')).toBeNull()
          expect(sessionsOf(await s.all())).toEqual([])
          expect(logged).toHaveLength(1)
          expect(logged[0].message).toMatch(new RegExp(`cannot be read \\(the stored value is ${what}, not a session object\\)`))
        }
      })

      ifShared('the report quotes none of the stored text: only the sid\'s first characters, the length and the position', async () => {
        const writer = stores.create({ serializer: { stringify: () => 'password=hunter2', parse: JSON.parse } })
        // Tables whose column checks JSON (PostgreSQL json, MariaDB json, MongoDB documents) refuse
        // to store it at all: nothing to report there.
        if (await writer.set('leaky-sid-123', sessionData()).then(() => false, () => true)) return
        const logged = []
        const reader = backend.reopen(writer, { errorLog: (err) => logged.push(err) })
        try {
          expect(await reader.get('leaky-sid-123')).toBeNull()
          expect(logged).toHaveLength(1)
          expect(logged[0].message).not.toMatch(/hunter2|password|leaky-sid-123/)
          expect(logged[0].message).toMatch(/"leaky-…" cannot be read \(not valid JSON, 16 characters, error at position 0\)/)
        } finally {
          await reader.close()
        }
      })

      test('an async parse that rejects is treated the same way', async () => {
        const logged = []
        const s = stores.create({ serializer: { stringify: JSON.stringify, parse: async () => { throw new Error('later') } }, errorLog: (e) => logged.push(e) })
        await s.set('a', sessionData())
        expect(await s.get('a')).toBeNull()
        expect(logged.map((e) => e.code)).toEqual(['ESESSION_UNPARSABLE'])
      })
    })

    describe('lazy touch (touchAfter)', () => {
      // Redis reports its expiry as now + PTTL, which can land a millisecond either side.
      const GRAIN = Math.max(backend.granularityMs || 0, 1)
      /** The session as express-session hands it to touch `ms` from now: its cookie renewed. */
      const renewed = (sess, maxAge, at = Date.now()) => ({ ...sess, cookie: { ...sess.cookie, originalMaxAge: maxAge, expires: new Date(at + maxAge).toISOString() } })
      const reportedExpiry = async (s, sid) => Date.parse((await s.get(sid)).cookie.expires)

      test('a touch within touchAfter of the last write is skipped, a later one is not; the stored expiry never falls behind the cookie', async () => {
        const s = stores.create({ touchAfter: 10 })
        const t0 = Date.now()
        const sess = sessionData(60000, { v: 1 })
        await s.set('lazy', sess)
        // Stored ahead of the cookie by touchAfter, so the skipped touch below is covered.
        const stored = await reportedExpiry(s, 'lazy')
        // (Give or take the backend's whole seconds: MySQL's tables round or floor them.)
        expect(stored).toBeGreaterThanOrEqual(Date.parse(sess.cookie.expires) + 10000 - GRAIN)
        expect(stored).toBeLessThanOrEqual(Date.parse(sess.cookie.expires) + 10000 + GRAIN)
        // As if 5 s later: the cookie now promises t0 + 65 s, which the stored t0 + 70 s covers.
        await s.touch('lazy', renewed(sess, 60000, t0 + 5000))
        expect(Math.abs(await reportedExpiry(s, 'lazy') - stored)).toBeLessThanOrEqual(GRAIN) // nothing was written
        // As if 15 s later: t0 + 75 s is past what is stored, so the touch goes through.
        const later = renewed(sess, 60000, t0 + 15000)
        await s.touch('lazy', later)
        const moved = await reportedExpiry(s, 'lazy')
        expect(moved).toBeGreaterThanOrEqual(Date.parse(later.cookie.expires) + 10000 - GRAIN)
        expect(moved).toBeLessThanOrEqual(Date.parse(later.cookie.expires) + 10000 + GRAIN)
        expect((await s.get('lazy')).v).toBe(1)
      })

      test('with a fake clock: a session used every 7 s never expires, though most touches are skipped; unused, it ends', async () => {
        const s = stores.create({ touchAfter: 10 })
        const clock = fakeDate()
        try {
          await s.set('busy', sessionData(30000, { v: 'busy' }))
          for (let i = 0; i < 20; i++) { // 140 s: far past the 30 s cookie
            clock.tick(7000)
            const got = await s.get('busy')
            expect(got && got.v).toBe('busy')
            await s.touch('busy', renewed(got, 30000))
          }
          // Unused: gone once the cookie's 30 s and the lazy margin have passed.
          clock.tick(30000 + 2 * 10000 + GRAIN + 1)
          expect(await s.get('busy')).toBeNull()
        } finally {
          clock.uninstall()
        }
      })

      test('a browser-session cookie (no expires) too: a touch within touchAfter of the last write sends nothing', async () => {
        const s = stores.create({ touchAfter: 10, ttl: 60 })
        const sess = { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, v: 'browser' }
        await s.set('browser', sess)
        const sent = []
        const request = s._request
        s._request = function (method, ...rest) { sent.push(method); return request.call(this, method, ...rest) }
        try {
          const got = await s.get('browser')
          expect(got.v).toBe('browser')
          await s.touch('browser', got) // right after the write: within touchAfter
          expect(sent).toEqual(['get'])
        } finally {
          s._request = request
        }
      })

      // A get through one instance, the touch through another on the same sessions (not for
      // stores whose sessions are their own alone: memory).
      ;(backend.reopen ? test : test.skip)('a touch through another store instance than the get, on the same sessions, is skipped too', async () => {
        const a = stores.create({ touchAfter: 10 })
        const b = backend.reopen(a, { touchAfter: 10 })
        const sent = []
        const request = b._request
        b._request = function (method, ...rest) { sent.push(method); return request.call(this, method, ...rest) }
        try {
          await a.set('elsewhere', sessionData(60000, { v: 1 }))
          const got = await a.get('elsewhere')
          await b.touch('elsewhere', renewed(got, 60000, Date.now() + 1000)) // within touchAfter
          expect(sent).toEqual([])
          await b.touch('elsewhere', renewed(got, 60000, Date.now() + 1000)) // no get before it: sent
          expect(sent).toEqual(['touch'])
        } finally {
          b._request = request
          await b.close()
        }
      })

      test('touchAfter must be a number of seconds', () => {
        expect(() => stores.create({ touchAfter: -1 })).toThrow(/option touchAfter must be a number of seconds/)
        expect(() => stores.create({ touchAfter: '10' })).toThrow(/option touchAfter/)
      })
    })

    describe('encryption at rest', () => {
      const key = (n) => Buffer.alloc(32, n)
      const ifShared = backend.reopen ? test : test.skip
      /** A reader of the stored text as it is (no decryption, no JSON). */
      const rawReader = (store, options = {}) => backend.reopen(store, { serializer: { stringify: (s) => s.raw, parse: (t) => ({ raw: t }) }, ...options })

      test('sessions round-trip under a raw key and under a passphrase', async () => {
        for (const k of [key(1), 'correct horse battery staple']) {
          const s = stores.create({ encryption: { keys: [k] } })
          const sess = sessionData(60000, { secret: 'card 4242', n: 1.5 })
          await s.set('enc', sess)
          expect(await s.get('enc')).toEqual(sess)
          expect(sessionsOf(await s.all())).toEqual([{ ...sess, id: 'enc' }])
        }
      })

      ifShared('what is stored is ciphertext in the documented format, never the session in clear', async () => {
        const s = stores.create({ encryption: { keys: [key(1)] } })
        await s.set('enc', sessionData(60000, { secret: 'card 4242' }))
        const raw = rawReader(s)
        try {
          const { raw: text } = await raw.get('enc')
          expect(text).toMatch(/^"?fse1:[A-Za-z0-9+/]+=*"?$/)
          expect(text).not.toContain('card 4242')
          expect(text).not.toContain('cookie')
        } finally {
          await raw.close()
        }
      })

      ifShared('keys rotate: a new first key reads the old sessions; a store without the old key treats them as absent and says why', async () => {
        const old = stores.create({ encryption: { keys: [key(1)] }, errorLog: () => {} })
        await old.set('rot', sessionData(60000, { v: 'old' }))
        const logged = []
        const rotated = backend.reopen(old, { encryption: { keys: [key(2), key(1)] } })
        const newOnly = backend.reopen(old, { encryption: { keys: [key(2)] }, errorLog: (e) => logged.push(e) })
        try {
          expect((await rotated.get('rot')).v).toBe('old')
          expect(await newOnly.get('rot')).toBeNull()
          expect(logged.map((e) => e.code)).toEqual(['ESESSION_UNPARSABLE'])
          expect(logged[0].message).toMatch(/cannot be decrypted with any of the 1 configured keys/)
          await rotated.set('rot', sessionData(60000, { v: 'new' })) // written under the new key
          expect((await newOnly.get('rot')).v).toBe('new')
          expect((await old.get('rot'))).toBeNull() // the old key alone no longer opens it
        } finally {
          await rotated.close()
          await newOnly.close()
        }
      })

      ifShared('tampered ciphertext, a value copied onto another session, and plaintext are refused', async () => {
        const logged = []
        const s = stores.create({ encryption: { keys: [key(1)] }, errorLog: (e) => logged.push(e) })
        await s.set('a', sessionData(60000, { who: 'alice' }))
        const raw = rawReader(s)
        try {
          const { raw: text } = await raw.get('a')
          const body = text.replace(/"/g, '')
          const flipped = body.slice(0, 20) + (body[20] === 'A' ? 'B' : 'A') + body.slice(21)
          await raw.set('tampered', { raw: text.replace(body, flipped), cookie: {} })
          await raw.set('copied', { raw: text, cookie: {} }) // alice's value under another sid
          await raw.set('clear', { raw: JSON.stringify(sessionData(60000, { who: 'mallory' })), cookie: {} })
          expect(await s.get('tampered')).toBeNull()
          expect(await s.get('copied')).toBeNull()
          expect(await s.get('clear')).toBeNull()
          expect(logged.map((e) => e.code)).toEqual(['ESESSION_UNPARSABLE', 'ESESSION_UNPARSABLE', 'ESESSION_UNPARSABLE'])
          expect(logged[2].message).toMatch(/not encrypted, and encryption.readPlaintext is off/)
          expect((await s.get('a')).who).toBe('alice')
          // Sessions stored before encryption was turned on stay readable when asked for.
          const migrating = backend.reopen(s, { encryption: { keys: [key(1)], readPlaintext: true }, errorLog: () => {} })
          try {
            expect((await migrating.get('clear')).who).toBe('mallory')
            expect(await migrating.get('tampered')).toBeNull()
          } finally {
            await migrating.close()
          }
        } finally {
          await raw.close()
        }
      })

      test('under a fake clock, a touched session lives to its new expiry, not its old one', async () => {
        const s = stores.create({ encryption: { keys: [key(3)] } })
        const clock = fakeDate(Date.now() - 86400000) // an app's test, a day in the past
        try {
          const sess = sessionData(60000, { v: 'kept' })
          await s.set('enc-touch', sess)
          clock.tick(50000)
          await Promise.all([s.touch('enc-touch', sessionData(60000, { v: 'kept' })), s.get('other')]) // alone and batched
          await s.touch('enc-touch', sessionData(60000, { v: 'kept' }))
          clock.tick(50000) // past the first expiry, well before the new one
          const got = await s.get('enc-touch')
          expect(got && got.v).toBe('kept')
          expect(Date.parse(got.cookie.expires)).toBeGreaterThan(Date.now())
          await s.destroy('enc-touch')
          await s.touch('enc-touch', sessionData(60000)) // never recreates
          expect(await s.get('enc-touch')).toBeNull()
        } finally {
          clock.uninstall()
        }
      })

      test('unusable keys are refused at construction, naming the problem', () => {
        expect(() => stores.create({ encryption: { keys: [Buffer.alloc(31)] } })).toThrow(/keys\[0\] is 31 bytes; a raw key is 32 bytes/)
        expect(() => stores.create({ encryption: { keys: ['short'] } })).toThrow(/passphrase shorter than 16 characters/)
        expect(() => stores.create({ encryption: { keys: [] } })).toThrow(/at least one/)
        expect(() => stores.create({ encryption: { keys: [42] } })).toThrow(/keys\[0\] must be a 32-byte Buffer or a passphrase/)
      })
    })

    describe('batches', () => {
      test('a batch mixing failing and succeeding requests answers each one exactly once, correctly', async () => {
        const s = stores.create({ maxSize: 2048 })
        await s.set('warm', sessionData()) // in flight from now on: what follows is batched
        const calls = []
        const record = (label) => (err, value) => calls.push([label, err ? err.code : null, value === undefined ? undefined : value !== null])
        s.get('warm', record('get warm'))
        s.set('big', sessionData(60000, { blob: 'x'.repeat(4096) }), record('set big')) // refused before the batch
        s.set(42, sessionData(), record('set bad sid')) // refused before the batch
        s.set('ok', sessionData(), record('set ok'))
        s.get('nobody', record('get nobody'))
        s.destroy('nobody', record('destroy nobody'))
        s.touch('ok', sessionData(), record('touch ok'))
        await sleep(200)
        expect(calls.sort()).toEqual([
          ['destroy nobody', null, undefined], ['get nobody', null, false], ['get warm', null, true],
          ['set bad sid', 'ESESSION_INVALID', undefined], ['set big', 'ESESSION_INVALID', undefined],
          ['set ok', null, undefined], ['touch ok', null, undefined]
        ].sort())
        expect((await s.ids()).sort()).toEqual(['ok', 'warm'])
      })

      test('more requests in one turn than one batch carries: each answered once, with its own session', async () => {
        const s = stores.create()
        await s.set('warm', sessionData())
        const n = 150 // several batches' worth
        const answers = new Map()
        const answer = (label) => new Promise((resolve) => s[label.op](...label.args, (err, value) => {
          answers.set(label.key, (answers.get(label.key) || 0) + 1)
          resolve(err || value)
        }))
        const sets = Array.from({ length: n }, (_, i) => answer({ op: 'set', key: `set ${i}`, args: [`many-${i}`, sessionData(60000, { i })] }))
        expect((await Promise.all(sets)).every((r) => r === undefined || r === null)).toBe(true)
        const gets = await Promise.all(Array.from({ length: n }, (_, i) => answer({ op: 'get', key: `get ${i}`, args: [`many-${i}`] })))
        expect(gets.map((g) => g && g.i)).toEqual(Array.from({ length: n }, (_, i) => i))
        expect([...answers.values()].every((count) => count === 1)).toBe(true)
        expect(answers.size).toBe(2 * n)
      })
    })

    describe('call order per session id', () => callOrderTests((options) => stores.create(options)))

    describe('close()', () => {
      test('requests made before close() complete normally, and close calls back only after they have answered', async () => {
        const s = stores.create()
        await s.set('warm', sessionData()) // a connection is open, so the burst below is batched
        const order = []
        const writes = Array.from({ length: 50 }, (_, i) =>
          new Promise((resolve) => s.set(`w${i}`, sessionData(60000, { i }), (err) => { order.push('set'); resolve(err) })))
        const reads = Array.from({ length: 10 }, () =>
          new Promise((resolve) => s.get('warm', (err, sess) => { order.push('get'); resolve(err || (sess ? null : new Error('no session'))) })))
        const closed = new Promise((resolve) => s.close((err) => { order.push('close'); resolve(err) }))
        expect(await Promise.all([...writes, ...reads])).toEqual(Array(60).fill(null))
        expect(await closed).toBeFalsy()
        expect(order.length).toBe(61)
        expect(order[60]).toBe('close')
        if (backend.reopen) {
          const again = backend.reopen(s)
          expect((await again.get('w49')).i).toBe(49) // they really were written
          await again.close()
        }
      })

      test('requests after close fail at once with ESESSION_CLOSED, and nothing reopens', async () => {
        const s = stores.create(backend.openFiles ? { ownFile: true } : {})
        await s.set('x', sessionData())
        if (backend.openFiles) expect(backend.openFiles(s)).toBeGreaterThan(0)
        await s.close()
        const started = Date.now()
        for (const attempt of [(cb) => s.get('x', cb), (cb) => s.set('x', sessionData(), cb), (cb) => s.length(cb)]) {
          const [err] = await callbackOnce(attempt)
          expect(err.code).toBe('ESESSION_CLOSED')
          expect(err.message).toMatch(new RegExp(`^ferrosession ${backend.errorName || backend.name} \\w+: the store was closed`))
        }
        expect(Date.now() - started).toBeLessThan(500)
        if (backend.openFiles) expect(backend.openFiles(s)).toBe(0)
        await expect(s.close()).resolves.toBeUndefined() // closing twice is fine
      })
    })
  })
}

module.exports = { runContract, callbackOnce, callOrderTests }
