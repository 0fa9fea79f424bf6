'use strict'
// connect-pg-simple 10 (with a pg Pool) and PostgresStore on the same table: raw `sess` text,
// `expire` values, and each store reading, touching and destroying the other's rows.

const pg = require('pg')
const session = require('express-session')
const ConnectPgSimple = require('connect-pg-simple')(session)
const { PostgresStore } = require('..')
const { DATABASE_URL, sessionData, call } = require('./support/backends')

const schemaName = `ferrotest_interop_${process.pid}`
let pool, theirs, ours

const row = async (sid, table = 'session') =>
  (await pool.query(`SELECT sess::text AS sess, expire::text AS expire FROM "${schemaName}"."${table}" WHERE sid = $1`, [sid])).rows[0]

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3 })
  await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schemaName}"`)
  theirs = new ConnectPgSimple({ pool, schemaName, createTableIfMissing: true, pruneSessionInterval: false })
  await call(theirs, 'get', 'warm-up') // lets connect-pg-simple create its table
  ours = new PostgresStore({ pool, schemaName, pruneSessionInterval: false }) // reads the Pool's settings
})
afterAll(async () => {
  await ours.close()
  await theirs.close()
  await pool.query(`DROP SCHEMA "${schemaName}" CASCADE`)
  await pool.end()
})

const tricky = (ms) => sessionData(ms, { user: { name: 'Zoë\u2028', n: 1.5, big: 1e21, when: new Date(0) }, emoji: '👩‍💻' })

test('keeps connect-pg-simple\'s surface', () => {
  expect(ours.quotedTable()).toBe(theirs.quotedTable())
  expect(typeof ours.pruneSessions).toBe('function')
  expect(typeof ours.close).toBe('function')
})

test('a row written by connect-pg-simple is read, touched and destroyed by PostgresStore', async () => {
  const sess = tricky(3600000)
  await call(theirs, 'set', 'theirs-1', sess)
  expect(await ours.get('theirs-1')).toEqual(JSON.parse(JSON.stringify(sess)))

  const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 7200000).toISOString() } }
  const before = (await row('theirs-1')).sess
  await ours.touch('theirs-1', later)
  await call(theirs, 'set', 'theirs-2', later)
  await call(theirs, 'touch', 'theirs-2', later)
  // Touch sends only the new expiry: `expire` becomes what connect-pg-simple's own touch writes,
  // and the server rewrites the 24 characters of the cookie's `expires` in `sess`, nothing else.
  expect((await row('theirs-1')).expire).toBe((await row('theirs-2')).expire)
  expect((await row('theirs-1')).sess).toBe(before.replace(sess.cookie.expires, later.cookie.expires))
  expect((await call(theirs, 'get', 'theirs-1')).cookie.expires).toBe(later.cookie.expires)
  expect((await ours.get('theirs-1')).cookie.expires).toBe(later.cookie.expires)

  await ours.destroy('theirs-1')
  expect(await call(theirs, 'get', 'theirs-1')).toBeUndefined() // connect-pg-simple's miss
})

test('PostgresStore writes the same sess text and expire as connect-pg-simple, and it reads them', async () => {
  for (const sess of [tricky(3600000), { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, v: 1 }]) {
    await call(theirs, 'set', 'pair-theirs', sess)
    await ours.set('pair-ours', sess)
    const [a, b] = [await row('pair-theirs'), await row('pair-ours')]
    expect(b.sess).toBe(a.sess)
    expect(b.sess).toBe(JSON.stringify(sess))
    if (sess.cookie.expires) expect(b.expire).toBe(a.expire)
    else expect(Math.abs(Date.parse(b.expire) - Date.parse(a.expire))).toBeLessThanOrEqual(1000)
    expect(await call(theirs, 'get', 'pair-ours')).toEqual(JSON.parse(a.sess))
  }
})

test('a session connect-pg-simple touched is read with its moved expiry', async () => {
  const sess = sessionData(60000, { v: 1 })
  await ours.set('touched-by-them', sess)
  const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 3600000).toISOString() } }
  await call(theirs, 'touch', 'touched-by-them', later)
  const got = await ours.get('touched-by-them')
  expect(Date.parse(got.cookie.expires) - Date.parse(later.cookie.expires)).toBeGreaterThanOrEqual(0)
  expect(Date.parse(got.cookie.expires) - Date.parse(later.cookie.expires)).toBeLessThan(1000)
})

test('a table PostgresStore creates is the table connect-pg-simple creates', async () => {
  const mine = new PostgresStore({ pool, schemaName: `${schemaName}_own`, createTableIfMissing: true, pruneSessionInterval: false })
  try {
    await mine.set('x', sessionData())
    const shape = async (schema) => (await pool.query(
      `SELECT column_name, data_type, is_nullable, datetime_precision FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = 'session' ORDER BY column_name`, [schema])).rows
    expect(await shape(`${schemaName}_own`)).toEqual(await shape(schemaName))
    const indexes = async (schema) => (await pool.query(
      'SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname', [schema])).rows.map((r) => r.indexname)
    expect(await indexes(`${schemaName}_own`)).toEqual(await indexes(schemaName))
  } finally {
    await mine.close()
    await pool.query(`DROP SCHEMA "${schemaName}_own" CASCADE`)
  }
})

test('a merged save (session()\'s patch) of a row connect-pg-simple wrote stores JSON.stringify of the merged object, which connect-pg-simple reads', async () => {
  const sess = tricky(3600000)
  await call(theirs, 'set', 'merged', sess)
  const merged = JSON.parse(JSON.stringify(sess))
  merged.user.name = 'Zoë, again'
  delete merged.emoji
  merged.cart = [1, { two: 2 }]
  await ours.patch('merged', { user: { name: 'Zoë, again' }, emoji: null, cart: [1, { two: 2 }] }, sess)
  expect((await row('merged')).sess).toBe(JSON.stringify(merged))
  expect(await call(theirs, 'get', 'merged')).toEqual(merged)
})
