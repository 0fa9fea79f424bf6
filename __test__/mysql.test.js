'use strict'
// What only MySqlStore does: TLS as mysql2 spells it (against a private MariaDB that requires
// it), the settings it reads from an app's mysql2 pool, knex instance or URL (used or refused,
// never dropped), pruning once across processes, and the limits of the anchors' tables.

const mysql = require('mysql2')
const { MySqlStore, KnexStore, createStore } = require('..')
const { startMariadb } = require('./support/servers')
const { mysqlServer, mysqlSql, RUN, sessionData } = require('./support/backends')

const database = `ferrotest_mysql_${RUN}`
const local = () => ({ ...mysqlServer(), database, clearExpired: false })
const opened = []
/** A query on the shared server through mysql2, for looking at what is stored. */
async function inspect (sql, params = []) {
  const connection = await mysql.createConnection({ ...mysqlServer(), password: mysqlServer().password || undefined }).promise()
  try {
    return (await connection.query(sql, params))[0]
  } finally {
    await connection.end()
  }
}
const track = (store) => { opened.push(store); return store }

beforeAll(() => mysqlSql(`CREATE DATABASE IF NOT EXISTS \`${database}\``))
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()))
  mysqlSql(`DROP DATABASE IF EXISTS \`${database}\``)
})

describe('TLS (a private MariaDB that requires it)', () => {
  let server
  beforeAll(async () => { server = await startMariadb({ tls: true }) })
  afterAll(() => server.stop())
  const at = (ssl, extra = {}) => track(new MySqlStore({ host: '127.0.0.1', port: server.port, user: 'root', database: 'mysql', ssl, schema: { tableName: 'tls_sessions' }, clearExpired: false, connectTimeout: 2000, ...extra }))

  test('with the CA it trusts, sessions round-trip over TLS', async () => {
    const store = at({ ca: server.certs.ca })
    await store.set('tls', sessionData(60000, { over: 'tls' }))
    expect((await store.get('tls')).over).toBe('tls')
    await store.destroy('tls')
  })

  test('an unknown CA is refused with a clear error, not a plaintext retry', async () => {
    const err = await at({ ca: server.certs.otherCa }).get('x').catch((e) => e)
    expect(err.code).toBe('ESESSION_UNAVAILABLE')
    expect(err.message).toMatch(/^ferrosession mysql get: .*(certificate|UnknownIssuer|unknown issuer)/i)
  })

  test('rejectUnauthorized: false encrypts without checking the certificate', async () => {
    const store = at({ ca: server.certs.otherCa, rejectUnauthorized: false })
    await expect(store.get('x')).resolves.toBeNull()
  })

  test('without ssl the server refuses the plaintext connection, and the error says so', async () => {
    const err = await at(undefined).get('x').catch((e) => e)
    expect(err.code).toBe('ESESSION_BACKEND')
    // MariaDB answers a plaintext login with require_secure_transport as "access denied".
    expect(err.message).toMatch(/^ferrosession mysql get: .*(insecure transport|Access denied)/i)
  })

  test('a mysql2 pool\'s ssl settings are read and used', async () => {
    const pool = mysql.createPool({ host: '127.0.0.1', port: server.port, user: 'root', database: 'mysql', ssl: { ca: server.certs.ca } })
    const store = track(new MySqlStore({ schema: { tableName: 'tls_sessions' }, clearExpired: false }, pool))
    await expect(store.get('x')).resolves.toBeNull()
    await pool.promise().end()
  })
})

test('asking for TLS from a server without it fails, never falling back to plaintext', async () => {
  const [{ have }] = await inspect('SELECT @@have_ssl AS have')
  if (have === 'YES') return // the shared server offers TLS: the private one above covers refusals
  const err = await track(new MySqlStore({ ...local(), ssl: { rejectUnauthorized: false } })).get('x').catch((e) => e)
  expect(err.code).toBe('ESESSION_UNAVAILABLE')
  expect(err.message).toMatch(/never falls back to plaintext/)
})

describe('settings are used or refused, never dropped', () => {
  test.each([
    [{ ssl: { passphrase: 'x' } }, /ssl\.passphrase is not supported: give the client key decrypted/],
    [{ ssl: { ciphers: 'HIGH' } }, /ssl\.ciphers is not supported/],
    [{ ssl: 'Amazon RDS' }, /ssl profile "Amazon RDS" is not supported/],
    [{ localAddress: '127.0.0.2' }, /localAddress is not supported/],
    [{ password2: 'second factor' }, /password2 is not supported/],
    [{ hots: '127.0.0.1' }, /options\.hots is not a setting ferrosession knows/],
    [{ charset: 'latin1_swedish_ci' }, /charset must be a utf8mb4 collation/],
    [{ layout: 'sequelize' }, /layout must be 'express-mysql-session' or 'knex'/],
    [{ port: 'three' }, /port must be a port number/]
  ])('%p is refused', (options, message) => {
    expect(() => new MySqlStore({ ...local(), ...options })).toThrow(message)
  })

  test('a knex connection given as a function is refused, naming what to do instead', () => {
    const knex = require('knex')({ client: 'mysql2', connection: async () => ({ host: '127.0.0.1' }) })
    expect(() => new KnexStore({ knex })).toThrow(/connection given as a function is not supported/)
    return knex.destroy()
  })

  test('mysql:// and mariadb:// URLs make a MySqlStore, their parts used', async () => {
    const { host, port, user } = mysqlServer()
    for (const scheme of ['mysql', 'mariadb']) {
      const store = track(createStore(`${scheme}://${user}@${host}:${port}/${database}`, { clearExpired: false }))
      expect(store).toBeInstanceOf(MySqlStore)
      await store.set('url', sessionData())
      expect(await store.get('url')).not.toBeNull()
      await store.destroy('url')
    }
    expect(() => createStore(`mysql://${host}/${database}?sslmode=required`)).toThrow(/options\.sslmode is not a setting/)
  })

  test('charset is the collation of the table it creates', async () => {
    const store = track(new MySqlStore({ ...local(), charset: 'utf8mb4_unicode_ci', schema: { tableName: 'collated' } }))
    await store.get('x')
    const [row] = await inspect('SELECT collation_name AS c FROM information_schema.columns WHERE table_schema = ? AND table_name = ? AND column_name = ?', [database, 'collated', 'data'])
    expect(row.c).toBe('utf8mb4_unicode_ci')
  })
})

describe('the anchors\' tables', () => {
  test('a sid longer than the sid column is refused, never cut (two sids must never share a row)', async () => {
    const store = track(new MySqlStore({ ...local(), schema: { tableName: 'long_sids' } }))
    const long = 'x'.repeat(129)
    const err = await store.set(long, sessionData()).catch((e) => e)
    expect(err.code).toBe('ESESSION_INVALID')
    expect(err.message).toMatch(/129 characters long; the table's sid column holds 128/)
    await expect(store.get('x'.repeat(128))).resolves.toBeNull()
  })

  test('in a knex table (case-insensitive sid column), SID and sid are not each other\'s session', async () => {
    const store = track(new MySqlStore({ ...local(), layout: 'knex', tableName: 'knex_case', cleanupInterval: 0 }))
    await store.set('AbC', sessionData(60000, { who: 'AbC' }))
    expect((await store.get('AbC')).who).toBe('AbC')
    expect(await store.get('abc')).toBeNull()
    expect(await store.get('AbC ')).toBeNull()
  })

  test.each([
    ['express-mysql-session', { schema: { tableName: 'exact_sids' } }, ['abc ']],
    ['knex (case-insensitive)', { layout: 'knex', tableName: 'exact_sids_knex', cleanupInterval: 0 }, ['abc ', 'AbC', 'ABC', 'ábc']]
  ])('on the %s layout, writes, touches and deletes of a sid the collation calls equal leave the other row alone', async (_, layout, twins) => {
    const store = track(new MySqlStore({ ...local(), ...layout }))
    const original = sessionData(60000, { who: 'abc' })
    for (const twin of twins) {
      await store.set('abc', original)
      await store.set(twin, sessionData(60000, { who: twin })) // alone
      await Promise.all([store.set(twin, sessionData(60000, { who: twin })), store.touch(twin, sessionData(7200000))]) // batched
      await store.destroy(twin)
      await Promise.all([store.destroy(twin), store.get('abc')])
      const kept = await store.get('abc')
      expect([twin, kept && kept.who, kept && kept.cookie.expires]).toEqual([twin, 'abc', original.cookie.expires])
    }
  })

  test('onReady() resolves once the table exists, as express-mysql-session\'s does', async () => {
    const store = track(new MySqlStore({ ...local(), schema: { tableName: 'ready_table' } }))
    await store.onReady()
    expect(store.state).toBe('INITIALIZED')
    const [{ n }] = await inspect('SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', [database, 'ready_table'])
    expect(Number(n)).toBe(1)
  })

  test('a session over max_allowed_packet is refused before it is sent (ESESSION_TOO_LARGE), fails alone and is no outage', async () => {
    const store = track(new MySqlStore({ ...local(), schema: { tableName: 'too_large' } }))
    const events = []
    store.on('disconnect', () => events.push('disconnect'))
    const [{ limit }] = await inspect('SELECT @@max_allowed_packet AS `limit`')
    await store.set('small', sessionData(60000, { v: 1 }))
    const err = await store.set('big', sessionData(60000, { blob: 'x'.repeat(Number(limit)) })).catch((e) => e)
    expect(err.code).toBe('ESESSION_TOO_LARGE')
    expect(err.message).toMatch(/^ferrosession mysql set: the session is \d+ bytes, more than the server accepts .*max_allowed_packet/)
    expect((await store.get('small')).v).toBe(1)
    expect(await store.get('big')).toBeNull()
    expect(events).toEqual([])
  })

  test('stores with the same connection settings share one pool: 300 dropped without close() hold at most its 10 connections', async () => {
    const shared = `${database}_shared`
    mysqlSql(`CREATE DATABASE IF NOT EXISTS \`${shared}\``)
    try {
      const make = () => new MySqlStore({ ...local(), database: shared, schema: { tableName: 'shared_pool' } })
      const first = track(make())
      await first.set('s', sessionData(60000, { v: 1 }))
      for (let i = 0; i < 300; i++) expect((await make().get('s')).v).toBe(1)
      const [{ n }] = await inspect('SELECT COUNT(*) AS n FROM information_schema.processlist WHERE db = ?', [shared])
      expect(Number(n)).toBeLessThanOrEqual(10)
      const other = make()
      await make().close() // closing one store leaves the others sharing its pool working
      expect((await other.get('s')).v).toBe(1)
      await other.close()
      expect((await first.get('s')).v).toBe(1)
      await first.close()
    } finally {
      mysqlSql(`DROP DATABASE IF EXISTS \`${shared}\``)
    }
  })

  test('a wrong password fails each request with an error that says so, and is no outage', async () => {
    const store = track(new MySqlStore({ ...local(), password: 'wrong password', schema: { tableName: 'never' } }))
    const events = []
    store.on('disconnect', () => events.push('disconnect'))
    for (let i = 0; i < 2; i++) {
      const err = await store.get('x').catch((e) => e)
      expect(err.code).toBe('ESESSION_BACKEND')
      expect(err.message).toMatch(/Access denied/)
    }
    expect(events).toEqual([])
  })

  test('requests of one turn go as one statement per kind, each with its own values', async () => {
    for (const layout of [{ schema: { tableName: 'batched' } }, { layout: 'knex', tableName: 'batched_knex', cleanupInterval: 0 }]) {
      const store = track(new MySqlStore({ ...local(), ...layout }))
      await store.set('warm', sessionData()) // in flight from here on: what follows is batched
      const sids = ['b0', 'b1', 'b2', 'b3', 'b4']
      await Promise.all(sids.map((sid, i) => store.set(sid, sessionData(60000 + i * 1000, { i }))))
      const got = await Promise.all([...sids, 'nobody', 'b2'].map((sid) => store.get(sid)))
      expect(got.map((g) => g && g.i)).toEqual([0, 1, 2, 3, 4, null, 2])
      await store.destroy('b4')
      const moved = sids.map((sid, i) => sessionData(3600000 + i * 1000, { i }))
      await Promise.all(sids.map((sid, i) => store.touch(sid, moved[i])))
      const after = await Promise.all(sids.map((sid) => store.get(sid)))
      // Each row got its own expiry, in the cookie too; the destroyed one stayed gone.
      expect(after.slice(0, 4).map((g) => g.cookie.expires)).toEqual(moved.slice(0, 4).map((m) => m.cookie.expires))
      expect(after[4]).toBeNull()
      // Destroys of one turn: exactly the named sids, never a row a case-insensitive collation
      // (knex's table) would call equal.
      await Promise.all(['b0', 'b1', 'B2'].map((sid) => store.destroy(sid)))
      expect((await store.ids()).sort()).toEqual(['b2', 'b3', 'warm'])
    }
  })

  test('prune runs once at a time across stores (GET_LOCK), and removes only expired rows', async () => {
    const a = track(new MySqlStore({ ...local(), schema: { tableName: 'pruned' } }))
    const b = track(new MySqlStore({ ...local(), schema: { tableName: 'pruned' } }))
    await a.set('live', sessionData(60000))
    const table = '`' + database + '`.`pruned`'
    mysqlSql(`INSERT INTO ${table} (session_id, expires, data) VALUES ('old1', 1, '{}'), ('old2', 2, '{}')`)
    const results = await Promise.all([a.prune(), b.prune()])
    expect(results.reduce((x, y) => x + y, 0)).toBe(2) // both ran or one left it to the other
    expect(await a.ids()).toEqual(['live'])
  })
})
