'use strict'
// express-mysql-session 3 (with a mysql2 pool) and connect-session-knex 5 (on MariaDB and on
// PostgreSQL) against MySqlStore and KnexStore on the same tables: raw values byte for byte, and
// each store reading, touching and destroying the other's sessions.

const mysql = require('mysql2')
const session = require('express-session')
const ExpressMysqlSession = require('express-mysql-session')(session)
const { ConnectSessionKnexStore } = require('connect-session-knex')
const ferrosession = require('..')
const { MySqlStore, MySQLStore, KnexStore } = ferrosession
const { DATABASE_URL, mysqlServer, mysqlSql, RUN, sessionData } = require('./support/backends')

const database = `ferrotest_interop_${RUN}`
const tricky = (ms) => sessionData(ms, { user: { name: 'Zoë\u2028', n: 1.5, big: 1e21, when: new Date(0) }, emoji: '👩‍💻' })
/** A session whose cookie is express-session's own Cookie (connect-session-knex reads its maxAge). */
const withCookie = (ms, data) => ({ cookie: new session.Cookie({ maxAge: ms }), ...data })
const later = (sess, ms) => ({ ...sess, cookie: { ...JSON.parse(JSON.stringify(sess.cookie)), expires: new Date(Date.now() + ms).toISOString() } })

let pool
const query = (sql, params = []) => pool.promise().query(sql, params).then(([rows]) => rows)

beforeAll(() => {
  mysqlSql(`CREATE DATABASE IF NOT EXISTS \`${database}\``)
  pool = mysql.createPool({ ...mysqlServer(), password: mysqlServer().password || undefined, database, connectionLimit: 3 })
})
afterAll(async () => {
  await query(`DROP DATABASE IF EXISTS \`${database}\``)
  await pool.promise().end()
})

describe('express-mysql-session 3 on the same table', () => {
  let theirs, ours
  const row = async (sid, table = 'sessions') => (await query(`SELECT session_id, expires, data FROM \`${table}\` WHERE session_id = ?`, [sid]))[0]

  beforeAll(async () => {
    theirs = new ExpressMysqlSession({ clearExpired: false }, pool)
    await theirs.onReady()
    ours = new MySqlStore({ clearExpired: false }, pool) // reads the pool's settings, connects natively
    await ours.onReady()
  })
  afterAll(async () => {
    await ours.close()
    await theirs.close()
  })

  test('both import shapes work, and keep express-mysql-session\'s surface', async () => {
    const Factory = MySQLStore(session) // require('express-mysql-session')(session)
    expect(Factory).toBe(MySqlStore)
    expect(ours).toBeInstanceOf(MySQLStore)
    expect(ours).toBeInstanceOf(session.Store)
    expect(ours.state).toBe('INITIALIZED')
    expect(ours.connection).toBe(pool) // express-mysql-session keeps what the app passed
    for (const method of ['onReady', 'clearExpiredSessions', 'close', 'all', 'length', 'clear']) expect(typeof ours[method]).toBe('function')
    expect(() => new MySqlStore({ schema: { columnNames: { sid: 'x' } } }, pool)).toThrow(
      'Unknown column specified ("sid"). Only the following columns are configurable: "session_id", "expires", "data". Please review the documentation to understand how to correctly use this option.')
  })

  test('a session written by express-mysql-session is read, touched and destroyed by MySqlStore', async () => {
    const sess = tricky(3600000)
    await theirs.set('theirs-1', sess)
    expect(await ours.get('theirs-1')).toEqual(JSON.parse(JSON.stringify(sess)))

    const moved = later(sess, 7200000)
    const before = (await row('theirs-1')).data
    await ours.touch('theirs-1', moved)
    await theirs.set('theirs-2', moved)
    await theirs.touch('theirs-2', moved)
    // `expires` is what express-mysql-session's own touch writes (Math.round of the seconds); in
    // `data` only the 24 characters of the cookie's date change.
    expect((await row('theirs-1')).expires).toBe((await row('theirs-2')).expires)
    expect((await row('theirs-1')).data).toBe(before.replace(sess.cookie.expires, moved.cookie.expires))
    expect((await theirs.get('theirs-1')).cookie.expires).toBe(moved.cookie.expires)

    await ours.destroy('theirs-1')
    expect(await theirs.get('theirs-1')).toBeNull()
    await theirs.destroy('theirs-2')
  })

  test('MySqlStore writes the same data text and expires as express-mysql-session, and it reads them', async () => {
    for (const sess of [tricky(3600000), { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, v: 1 }]) {
      await theirs.set('pair-theirs', sess)
      await ours.set('pair-ours', sess)
      const [a, b] = [await row('pair-theirs'), await row('pair-ours')]
      expect(b.data).toBe(a.data)
      expect(b.data).toBe(JSON.stringify(sess))
      if (sess.cookie.expires) expect(b.expires).toBe(a.expires)
      else expect(Math.abs(b.expires - a.expires)).toBeLessThanOrEqual(1) // "now + expiration", each at its own now
      expect(await theirs.get('pair-ours')).toEqual(JSON.parse(a.data))
      const touched = later(sess, 7200000)
      await theirs.touch('pair-ours', touched)
      // Their touch moves only `expires` (whole seconds): ours reports that, to the second.
      if (sess.cookie.expires) expect(Math.abs(Date.parse((await ours.get('pair-ours')).cookie.expires) - Date.parse(touched.cookie.expires))).toBeLessThanOrEqual(500)
    }
    expect((await ours.length())).toBe(await theirs.length())
    expect(Object.keys(await theirs.all()).sort()).toEqual((await ours.ids()).sort())
    await ours.clear()
    expect(await theirs.length()).toBe(0)
  })

  test('a merged save (session()\'s patch) of a session express-mysql-session wrote stores JSON.stringify of the merged object, which it reads', async () => {
    const sess = tricky(3600000)
    await theirs.set('merged', sess)
    const merged = JSON.parse(JSON.stringify(sess))
    merged.user.name = 'Zoë, again'
    delete merged.emoji
    merged.cart = [1, { two: 2 }]
    await ours.patch('merged', { user: { name: 'Zoë, again' }, emoji: null, cart: [1, { two: 2 }] }, sess)
    expect((await row('merged')).data).toBe(JSON.stringify(merged))
    expect(await theirs.get('merged')).toEqual(merged)
  })

  test('custom table and column names are the same table for both', async () => {
    const schema = { tableName: 'custom_sessions', columnNames: { session_id: 'sid', expires: 'exp', data: 'payload' } }
    const theirsCustom = new ExpressMysqlSession({ clearExpired: false, schema }, pool)
    await theirsCustom.onReady()
    const oursCustom = new MySqlStore({ clearExpired: false, schema }, pool)
    try {
      await theirsCustom.set('c1', tricky(60000))
      expect((await oursCustom.get('c1')).emoji).toBe('👩‍💻')
      await oursCustom.set('c2', tricky(60000))
      expect((await theirsCustom.get('c2')).emoji).toBe('👩‍💻')
      const columns = (await query('SHOW COLUMNS FROM custom_sessions')).map((c) => c.Field)
      expect(columns).toEqual(['sid', 'exp', 'payload'])
    } finally {
      await oursCustom.close()
      await theirsCustom.close()
    }
  })

  test('the pool the app passed is the app\'s: close() leaves it open, unless endConnectionOnClose says otherwise', async () => {
    const own = mysql.createPool({ ...mysqlServer(), password: mysqlServer().password || undefined, database, connectionLimit: 1 })
    const store = new MySqlStore({ clearExpired: false }, own)
    await store.get('x')
    await store.close()
    expect(store.state).toBe('CLOSED')
    const [[ok]] = await own.promise().query('SELECT 1 AS one')
    expect(ok.one).toBe(1)
    const ending = new MySqlStore({ clearExpired: false, endConnectionOnClose: true }, own)
    await ending.close()
    await expect(own.promise().query('SELECT 1')).rejects.toThrow(/closed/i)
  })

  test('a session express-mysql-session holds as NULL data, or past its expires, is absent for both', async () => {
    await query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, NULL), (?, ?, ?)',
      ['null-data', Math.round(Date.now() / 1000) + 3600, 'expired', Math.round(Date.now() / 1000) - 10, '{"cookie":{}}'])
    expect(await ours.get('null-data')).toBeNull()
    expect(await theirs.get('null-data')).toBeNull()
    expect(await ours.get('expired')).toBeNull()
    expect(await theirs.get('expired')).toBeNull()
    expect(await ours.clearExpiredSessions()).toBe(1)
    await ours.destroy('null-data')
  })
})

describe.each([
  ['MariaDB', () => require('knex')({ client: 'mysql2', connection: { ...mysqlServer(), password: mysqlServer().password || undefined, database } }),
    (knex, table) => knex.raw(`SELECT sid, CAST(sess AS CHAR) AS sess, DATE_FORMAT(expired, '%Y-%m-%d %H:%i:%s') AS expired FROM \`${table}\``).then(([rows]) => rows)],
  ['PostgreSQL', () => require('knex')({ client: 'pg', connection: DATABASE_URL, searchPath: [`ferrotest_knex_${RUN}`] }),
    (knex, table) => knex.raw(`SELECT sid, sess::text AS sess, expired FROM "${table}"`).then((r) => r.rows)]
])('connect-session-knex 5 on %s, on the same table', (name, makeKnex, rows) => {
  let knex, theirs, ours
  const table = `knex_${name.toLowerCase()}`
  const rowOf = async (sid) => (await rows(knex, table)).find((r) => r.sid === sid)

  beforeAll(async () => {
    knex = makeKnex()
    if (name === 'PostgreSQL') await knex.raw(`CREATE SCHEMA IF NOT EXISTS "ferrotest_knex_${RUN}"`)
    theirs = new ConnectSessionKnexStore({ knex, tableName: table, cleanupInterval: 0 })
    await theirs.ready
    ours = new KnexStore({ knex, tableName: table, cleanupInterval: 0 }) // reads knex's dialect and connection
    await ours.ready
  })
  afterAll(async () => {
    await ours.close()
    if (name === 'PostgreSQL') await knex.raw(`DROP SCHEMA IF EXISTS "ferrotest_knex_${RUN}" CASCADE`)
    await knex.destroy()
  })

  test('KnexStore is the native store for knex\'s database, in both import shapes', () => {
    expect(ours).toBeInstanceOf(name === 'PostgreSQL' ? ferrosession.PostgresStore : ferrosession.MySqlStore)
    expect(KnexStore(session)).toBe(KnexStore) // connect-session-knex 4's require(...)(session)
    expect(ferrosession.ConnectSessionKnexStore).toBe(KnexStore)
    expect(ours.options.knex).toBe(knex)
  })

  test('a session written by connect-session-knex is read, touched and destroyed by ours', async () => {
    const sess = withCookie(3600000, { user: 'Zoë', emoji: '👩‍💻' })
    await theirs.set('theirs-1', sess)
    expect(await ours.get('theirs-1')).toEqual(JSON.parse(JSON.stringify(sess)))
    const before = await rowOf('theirs-1')
    const moved = later(sess, 7200000)
    await ours.touch('theirs-1', moved)
    await theirs.set('theirs-2', sess)
    await theirs.touch('theirs-2', moved)
    const [mine, knexs] = [await rowOf('theirs-1'), await rowOf('theirs-2')]
    expect(String(mine.expired)).toBe(String(knexs.expired))
    expect(mine.sess).toBe(before.sess.replace(JSON.parse(JSON.stringify(sess)).cookie.expires, moved.cookie.expires))
    expect((await theirs.get('theirs-1')).cookie.expires).toBe(moved.cookie.expires)
    await ours.destroy('theirs-1')
    expect(await theirs.get('theirs-1')).toBeNull()
    await theirs.destroy('theirs-2')
  })

  test('ours writes the same sess and expired as connect-session-knex, and it reads them', async () => {
    const sess = withCookie(3600000, { user: 'Zoë', n: 1.5 })
    await theirs.set('pair-theirs', sess)
    await ours.set('pair-ours', sess)
    const [a, b] = [await rowOf('pair-theirs'), await rowOf('pair-ours')]
    expect(b.sess).toBe(a.sess)
    expect(b.sess).toBe(JSON.stringify(sess))
    // connect-session-knex takes "now + cookie.maxAge" at its own now; ours takes cookie.expires.
    expect(Math.abs(new Date(b.expired) - new Date(a.expired))).toBeLessThanOrEqual(1000)
    expect(JSON.parse(JSON.stringify(await theirs.get('pair-ours')))).toEqual(JSON.parse(a.sess))
    expect(await ours.length()).toBe(2)
    expect((await theirs.all()).length).toBe(2)
    await ours.clear()
    expect(await theirs.length()).toBe(0)
  })
})
