'use strict'
// MongoStore against connect-mongo 6 (with the mongodb driver) on the same server: documents
// written by either are read, touched and destroyed by the other, in both `stringify` settings
// and with touchAfter; connect-mongo's options, and what is refused.

const { MongoClient } = require('mongodb')
const ConnectMongo = require('connect-mongo').MongoStore
const { createWebCryptoAdapter } = require('connect-mongo')
const { MongoStore, createStore } = require('..')
const { mongoUrl, sessionData, RUN, fakeDate, sleep, call } = require('./support/backends')

const DB = `ferrotest_mongodb_${RUN}`
let client
let n = 0
const opened = []
const collectionName = () => `c_${++n}`
/** A store of ours, closed after the suite. */
const ours = (options) => { const s = new MongoStore({ mongoUrl: mongoUrl(), dbName: DB, ...options }); opened.push(s); return s }
/**
 * connect-mongo on its own MongoClient, closed after the suite; resolves once its TTL index is
 * made (made first: the test server, unlike mongod, refuses its `background: true` index beside
 * an identical one without that flag; we accept an existing index).
 */
const theirs = async (options) => {
  const s = ConnectMongo.create({ mongoUrl: mongoUrl(), dbName: DB, ...options })
  opened.push(s)
  await s.collectionP
  return s
}
const raw = (name) => client.db(DB).collection(name)

/** A session as express-session hands it to a store (cookie from its own Cookie class). */
function expressSession (ms = 60000, data = {}) {
  const { Cookie } = require('express-session')
  const cookie = new Cookie({ maxAge: ms })
  return { cookie: cookie.toJSON(), ...data }
}

beforeAll(async () => {
  client = await MongoClient.connect(mongoUrl(), { serverSelectionTimeoutMS: 3000 })
})
afterAll(async () => {
  await Promise.all(opened.map((s) => Promise.resolve(s.close()).catch(() => {})))
  await client.db(DB).dropDatabase()
  await client.close()
})

test('a merged save (session()\'s patch) of a session connect-mongo wrote stores JSON.stringify of the merged object, which connect-mongo reads', async () => {
  const name = collectionName()
  const b = await theirs({ collectionName: name })
  const a = ours({ collectionName: name })
  const sess = expressSession(60000, { user: { name: 'zoë', n: 1.5 }, list: [1, 'two', null], emoji: '👩‍💻' })
  await call(b, 'set', 'merged', sess)
  const merged = JSON.parse(JSON.stringify(sess))
  merged.user.name = 'zoë, again'
  delete merged.emoji
  merged.cart = [1, { two: 2 }]
  await call(a, 'patch', 'merged', { user: { name: 'zoë, again' }, emoji: null, cart: [1, { two: 2 }] }, sess)
  expect((await raw(name).findOne({ _id: 'merged' })).session).toBe(JSON.stringify(merged))
  expect(await call(b, 'get', 'merged')).toEqual(merged)
})

test('a merged save of a session stored as a BSON document (stringify: false) by a stringify: true store writes it as text', async () => {
  const name = collectionName()
  const documents = ours({ collectionName: name, stringify: false })
  const texts = ours({ collectionName: name })
  const sess = expressSession(60000, { user: 'zoë' })
  await call(documents, 'set', 'was-bson', sess)
  expect(typeof (await raw(name).findOne({ _id: 'was-bson' })).session).toBe('object')
  await call(texts, 'patch', 'was-bson', { cart: [1] }, sess)
  const stored = (await raw(name).findOne({ _id: 'was-bson' })).session
  expect(typeof stored).toBe('string')
  expect(JSON.parse(stored)).toMatchObject({ user: 'zoë', cart: [1] })
})

describe.each([true, false])('interop with connect-mongo 6, stringify: %p', (stringify) => {
  test('the documents are the same shape, and each store reads, touches and destroys the other\'s', async () => {
    const name = collectionName()
    const b = await theirs({ collectionName: name, stringify })
    const a = ours({ collectionName: name, stringify })
    const sess = expressSession(60000, { user: 'zoë', n: 1.5, list: [1, 'two', null], when: new Date('2024-01-02T03:04:05.678Z') })
    await call(a, 'set', 'ours', sess)
    await call(b, 'set', 'theirs', sess)
    const mine = await raw(name).findOne({ _id: 'ours' })
    const yours = await raw(name).findOne({ _id: 'theirs' })
    expect(Object.keys(mine).sort()).toEqual(Object.keys(yours).sort())
    expect(mine.expires).toEqual(yours.expires) // both: cookie.expires as a BSON Date
    expect(mine.session).toEqual(yours.session) // the same text, or the same BSON document
    if (!stringify) expect(mine.session.cookie.expires).toBeInstanceOf(Date)

    // Read across, in the shape each store hands out.
    expect(await call(a, 'get', 'theirs')).toEqual(await call(b, 'get', 'theirs'))
    expect(await call(b, 'get', 'ours')).toEqual(await call(a, 'get', 'ours'))
    const got = await call(a, 'get', 'theirs')
    expect(got.user).toBe('zoë')
    if (stringify) expect(got.when).toBe('2024-01-02T03:04:05.678Z')
    else expect(got.when).toEqual(new Date('2024-01-02T03:04:05.678Z'))

    // Touch across: the expiry moves, the session is left as it is.
    const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 3600000) } }
    await call(a, 'touch', 'theirs', later)
    await call(b, 'touch', 'ours', later)
    for (const id of ['ours', 'theirs']) {
      expect((await raw(name).findOne({ _id: id })).expires).toEqual(later.cookie.expires)
    }
    expect((await call(b, 'get', 'theirs')).user).toBe('zoë')

    await call(a, 'destroy', 'theirs')
    await call(b, 'destroy', 'ours')
    expect(await raw(name).countDocuments()).toBe(0)
  })
})

describe('lazy touch with connect-mongo', () => {
  test('with touchAfter both write lastModified; connect-mongo skips touches of our fresh writes', async () => {
    const name = collectionName()
    const b = await theirs({ collectionName: name, touchAfter: 60 })
    const a = ours({ collectionName: name, touchAfter: 60 })
    await call(a, 'set', 's', expressSession())
    const written = await raw(name).findOne({ _id: 's' })
    expect(written.lastModified).toBeInstanceOf(Date)
    // connect-mongo reads lastModified into the session and skips the touch within 60 s.
    const seen = await call(b, 'get', 's')
    expect(seen.lastModified).toEqual(written.lastModified)
    await call(b, 'touch', 's', { ...seen, cookie: { ...seen.cookie, expires: new Date(Date.now() + 3600000) } })
    expect((await raw(name).findOne({ _id: 's' })).expires).toEqual(written.expires)
    // Its own writes are read by us.
    await call(b, 'set', 't', expressSession(60000, { v: 'theirs' }))
    expect((await call(a, 'get', 't')).v).toBe('theirs')
  })
})

describe('expiry', () => {
  test('an expired document the TTL monitor has not removed yet is never returned, and touch neither errs nor revives it', async () => {
    const name = collectionName()
    const a = ours({ collectionName: name, autoRemove: 'disabled' })
    await raw(name).insertOne({ _id: 'stale', session: JSON.stringify(sessionData()), expires: new Date(Date.now() - 1000) })
    expect(await a.get('stale')).toBeNull()
    expect(await a.length()).toBe(0)
    expect(await a.all()).toEqual([])
    // connect-mongo answers "Unable to find the session to touch" here; an app sees no error.
    await expect(a.touch('stale', sessionData())).resolves.toBeUndefined()
    await expect(a.touch('never-was', sessionData())).resolves.toBeUndefined()
    expect((await raw(name).findOne({ _id: 'stale' })).expires.getTime()).toBeLessThan(Date.now())
    expect(await raw(name).findOne({ _id: 'never-was' })).toBeNull()
  })

  test("autoRemove 'native' makes connect-mongo's TTL index; the server's monitor removes expired documents", async () => {
    const name = collectionName()
    const a = ours({ collectionName: name })
    await a.set('short', sessionData(300))
    const indexes = await raw(name).indexes()
    expect(indexes.find((i) => i.name === 'expires_1')).toMatchObject({ key: { expires: 1 }, expireAfterSeconds: 0 })
    // A bounded "eventually": the test server sweeps every second.
    const deadline = Date.now() + 10000
    while (await raw(name).countDocuments() > 0 && Date.now() < deadline) await sleep(200)
    expect(await raw(name).countDocuments()).toBe(0)
  })

  test("autoRemove 'interval' deletes expired documents every autoRemoveInterval minutes, on the JS clock", async () => {
    const name = collectionName()
    const clock = fakeDate()
    try {
      const a = ours({ collectionName: name, autoRemove: 'interval', autoRemoveInterval: 1 })
      await a.set('short', sessionData(1000))
      await a.set('long', sessionData(3600000))
      clock.tick(2000)
      expect(await a.prune()).toBe(1)
      expect((await raw(name).find().toArray()).map((d) => d._id)).toEqual(['long'])
      expect((await raw(name).indexes()).map((i) => i.name)).toEqual(['_id_'])
    } finally {
      clock.uninstall()
    }
  })

  test('a session without a cookie expiry lives 14 days by default, as with connect-mongo', async () => {
    const name = collectionName()
    const a = ours({ collectionName: name })
    const before = Date.now()
    await a.set('browser', { cookie: { originalMaxAge: null, expires: null } })
    const { expires } = await raw(name).findOne({ _id: 'browser' })
    expect(expires.getTime() - before).toBeGreaterThanOrEqual(1209600000 - 5)
    expect(expires.getTime() - before).toBeLessThanOrEqual(1209600000 + 1000)
  })

  test('a document whose expires is not a date is live while its cookie is, as the TTL index keeps it; a past date is gone', async () => {
    const name = collectionName()
    const a = ours({ collectionName: name, autoRemove: 'disabled' })
    await raw(name).insertMany([
      { _id: 'odd', session: JSON.stringify(sessionData(60000, { who: 'odd' })), expires: 'tomorrow' },
      { _id: 'none', session: JSON.stringify(sessionData(60000, { who: 'none' })) },
      { _id: 'past', session: JSON.stringify(sessionData(60000, { who: 'past' })), expires: new Date(Date.now() - 1000) }
    ])
    expect((await a.get('odd')).who).toBe('odd')
    expect((await a.get('none')).who).toBe('none')
    expect(await a.get('past')).toBeNull()
    expect((await a.ids()).sort()).toEqual(['none', 'odd'])
    // Read in one turn (one find, each document then checked on its own clock): the same answers.
    const [, odd, none, past] = await Promise.all([a.get('first'), a.get('odd'), a.get('none'), a.get('past')])
    expect([odd && odd.who, none && none.who, past]).toEqual(['odd', 'none', null])
  })
})

describe('requests made in one turn (one update command per kind, one find, one delete)', () => {
  test('the last write of a sid wins, a get after a set reads it, touches of expired documents revive nothing, bad input fails alone', async () => {
    const name = collectionName()
    const a = ours({ collectionName: name, autoRemove: 'disabled', timestamps: true })
    await a.set('warm', sessionData())
    await raw(name).insertOne({ _id: 'stale', session: JSON.stringify(sessionData()), expires: new Date(Date.now() - 1000) })
    const answers = await Promise.allSettled([
      a.get('warm'), // goes at once, alone; all that follows in this turn is one batch
      a.set('same', sessionData(60000, { v: 1 })),
      a.set('other', sessionData(60000, { v: 'o' })),
      a.set('same', sessionData(60000, { v: 2 })),
      a.set('same', sessionData(60000, { v: 3 })),
      a.set(42, sessionData()),
      a.get('other'),
      a.get('nobody'),
      a.touch('other', sessionData(120000)),
      a.touch('stale', sessionData()),
      a.touch('never-was', sessionData())
    ])
    expect(answers.map((x) => x.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'])
    expect(answers[5].reason.code).toBe('ESESSION_INVALID')
    expect(answers[6].value.v).toBe('o')
    expect(answers[7].value).toBeNull()
    expect((await a.get('same')).v).toBe(3)
    expect((await raw(name).findOne({ _id: 'other' })).expires.getTime()).toBeGreaterThan(Date.now() + 90000)
    expect((await raw(name).findOne({ _id: 'stale' })).expires.getTime()).toBeLessThan(Date.now())
    expect(await raw(name).findOne({ _id: 'never-was' })).toBeNull()
    const same = await raw(name).findOne({ _id: 'same' })
    expect(same.createdAt).toBeInstanceOf(Date) // the upsert's $setOnInsert ran
    // Destroys of one turn (one delete command): each gone, an unknown sid no error, others kept.
    await Promise.all([a.get('warm'), a.destroy('same'), a.destroy('other'), a.destroy('never-was')])
    expect((await raw(name).find({}).toArray()).map((d) => d._id).sort()).toEqual(['stale', 'warm'])
  })
})

describe("connect-mongo's options", () => {
  test('timestamps: createdAt once, updatedAt on every write', async () => {
    const name = collectionName()
    const a = ours({ collectionName: name, timestamps: true })
    await a.set('s', sessionData())
    const first = await raw(name).findOne({ _id: 's' })
    await sleep(5)
    await a.set('s', sessionData(60000, { v: 2 }))
    const second = await raw(name).findOne({ _id: 's' })
    expect(second.createdAt).toEqual(first.createdAt)
    expect(second.updatedAt.getTime()).toBeGreaterThan(first.updatedAt.getTime())
  })

  test('transformId decides the stored _id', async () => {
    const name = collectionName()
    const a = ours({ collectionName: name, transformId: (sid) => `app1:${sid}` })
    await a.set('abc', sessionData(60000, { v: 1 }))
    expect(await raw(name).findOne({ _id: 'app1:abc' })).not.toBeNull()
    expect((await a.get('abc')).v).toBe(1)
    await a.destroy('abc')
    expect(await raw(name).countDocuments()).toBe(0)
  })

  test('client and clientPromise: the app\'s MongoClient is read and connected to natively; close() closes it, as connect-mongo does', async () => {
    const name = collectionName()
    const appClient = await MongoClient.connect(`${mongoUrl()}${DB}`)
    const viaClient = new MongoStore({ client: appClient, collectionName: name })
    await viaClient.set('c', sessionData(60000, { v: 'client' }))
    expect(await raw(name).findOne({ _id: 'c' })).not.toBeNull() // dbName from the client's URL
    let resolveClient
    const viaPromise = MongoStore.create({ clientPromise: new Promise((resolve) => { resolveClient = resolve }), dbName: DB, collectionName: name })
    const early = viaPromise.get('c') // made before the promise settles: waits for it
    resolveClient(appClient)
    expect((await early).v).toBe('client')
    await viaPromise.close()
    await viaClient.close()
    await expect(appClient.db(DB).collection(name).findOne({})).rejects.toThrow()
  })

  test('a clientPromise that rejects fails each request with its reason', async () => {
    const s = new MongoStore({ clientPromise: Promise.reject(new Error('no client today')) })
    await expect(s.get('x')).rejects.toThrow(/^ferrosession mongodb get: no client today/)
    await s.close()
  })

  test('mongoOptions are carried into the connection, and createStore takes mongodb:// URLs', async () => {
    const name = collectionName()
    const a = ours({ collectionName: name, mongoOptions: { appName: 'my-app', maxPoolSize: 3, ignoreUndefined: true }, stringify: false })
    await a.set('u', { cookie: { originalMaxAge: 1000, expires: new Date(Date.now() + 1000), domain: undefined }, gone: undefined })
    // ignoreUndefined, as the mongodb driver applies it: undefined members are left out.
    expect((await raw(name).findOne({ _id: 'u' })).session).toEqual({ cookie: { originalMaxAge: 1000, expires: expect.any(Date) } })
    const viaUrl = createStore(`${mongoUrl()}${DB}`, { collectionName: name })
    opened.push(viaUrl)
    expect(viaUrl).toBeInstanceOf(MongoStore)
    expect(await viaUrl.length()).toBe(1)
  })

  test('what cannot be honoured is refused, naming it', () => {
    expect(() => new MongoStore({})).toThrow('You must provide either mongoUrl|clientPromise|client in options')
    expect(() => new MongoStore({ mongoUrl: mongoUrl(), autoRemoveInterval: 100000 })).toThrow(/autoRemoveInterval is too large/)
    expect(() => new MongoStore({ mongoUrl: mongoUrl(), crypto: { secret: 'x' } })).toThrow(/option crypto \(kruptein\) is not supported/)
    expect(() => new MongoStore({ mongoUrl: mongoUrl(), cryptoAdapter: {} })).toThrow(/connectMongoSecret/)
    expect(() => new MongoStore({ mongoUrl: mongoUrl(), serialize: JSON.stringify })).toThrow(/serialize\/unserialize are not supported/)
    expect(() => new MongoStore({ mongoUrl: mongoUrl(), mongoOptions: { autoEncryption: {}, monitorCommands: true } })).toThrow(/mongoOptions autoEncryption cannot be honoured/)
    expect(() => new MongoStore({ mongoUrl: mongoUrl(), writeOperationOptions: { w: 0 } })).toThrow(/unacknowledged writes/)
    expect(() => new MongoStore({ mongoUrl: mongoUrl(), writeOperationOptions: { upsert: true } })).toThrow(/writeOperationOptions upsert are not write-concern settings/)
    expect(() => new MongoStore({ mongoUrl: 'http://x' })).toThrow(/mongodb:\/\/ or mongodb\+srv:\/\//)
    expect(() => new MongoStore({ mongoUrl: mongoUrl(), autoRemove: 'sometimes' })).toThrow(/autoRemove must be/)
  })
})

describe("connect-mongo's encrypted sessions", () => {
  test('sessions written with its WebCrypto adapter are read with connectMongoSecret; ours are then written in our format', async () => {
    const name = collectionName()
    const b = await theirs({ collectionName: name, cryptoAdapter: createWebCryptoAdapter({ secret: 'the app secret' }) })
    await call(b, 'set', 'w', expressSession(60000, { v: 'webcrypto' }))
    const a = ours({ collectionName: name, encryption: { keys: [Buffer.alloc(32, 7)], connectMongoSecret: 'the app secret' } })
    expect((await a.get('w')).v).toBe('webcrypto')
    await a.set('w', expressSession(60000, { v: 'rewritten' }))
    expect((await raw(name).findOne({ _id: 'w' })).session).toMatch(/^"fse1:/)
    expect((await a.get('w')).v).toBe('rewritten')
  })
})

describe('connect-mongo\'s events', () => {
  test('the same events as connect-mongo, with the same arguments, alone and batched', async () => {
    const collection = collectionName()
    const events = {}
    const record = (store, into) => {
      for (const name of ['create', 'update', 'set', 'get', 'touch', 'destroy', 'all']) {
        store.on(name, (...args) => into.push([name, ...args.map((a) => (Array.isArray(a) ? `[${a.length}]` : typeof a === 'object' ? 'session' : a))]))
      }
    }
    const seen = (store) => { events[store] = []; return events[store] }
    for (const [name, store] of [['theirs', await theirs({ collectionName: collection + '_t' })], ['ours', ours({ collectionName: collection })]]) {
      const into = seen(name)
      record(store, into)
      const sess = sessionData(60000, { v: 1 })
      // connect-mongo takes callbacks only.
      const call = (method, ...args) => new Promise((resolve, reject) => store[method](...args, (err, value) => (err ? reject(err) : resolve(value))))
      await call('set', 'a', sess)
      await call('set', 'a', sess)
      await call('get', 'a')
      await call('touch', 'a', sess)
      await call('all')
      await call('destroy', 'a')
      expect(await call('clear')).toBeUndefined()
    }
    expect(events.ours).toEqual(events.theirs)
    expect(events.ours).toEqual([['create', 'a'], ['set', 'a'], ['update', 'a'], ['set', 'a'], ['get', 'a'], ['touch', 'a', 'session'], ['all', '[1]'], ['destroy', 'a']])
    // Batched (in one update command): each set still tells an insert from an update.
    const s = ours({ collectionName: collection + '_b' })
    await s.set('old', sessionData())
    const into = []
    record(s, into)
    // The first request of a turn goes alone; 'old' between the two new ones shows each answer
    // reaches its own request.
    await Promise.all([s.get('first'), s.set('new1', sessionData()), s.set('old', sessionData()), s.set('new2', sessionData())])
    expect(into.filter(([name]) => name === 'create' || name === 'update').sort()).toEqual([['create', 'new1'], ['create', 'new2'], ['update', 'old']])
  })
})
