'use strict'
// What only PostgresStore does: table creation, pruning across processes, identifier quoting,
// statement timeouts, existing jsonb/text columns, and where connection settings come from.

const pg = require('pg')
const FakeTimers = require('@sinonjs/fake-timers')
const { PostgresStore } = require('..')
const { connectionOf } = require('../lib/postgres-store')
const { DATABASE_URL, sessionData, sleep, closedPort } = require('./support/backends')

const schemaName = `ferrotest_pg_${process.pid}`
const stores = []
let pool

/** A store in this suite's schema, closed after the suite. */
function store (options = {}) {
  const s = new PostgresStore({ conString: DATABASE_URL, schemaName, pruneSessionInterval: false, poolSize: 2, ...options })
  stores.push(s)
  return s
}

/** Polls `check` on real turns of the event loop (the clock may be fake) until it holds, or 5 s. */
async function eventually (check) {
  const deadline = performance.now() + 5000
  while (!(await check()) && performance.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
  return check()
}

const q = (name) => '"' + name.replace(/"/g, '""') + '"'
const rows = async (table) => (await pool.query(`SELECT sid FROM ${q(schemaName)}.${q(table)} ORDER BY sid`)).rows.map((r) => r.sid)
const insertExpired = (table, sid) =>
  pool.query(`INSERT INTO ${q(schemaName)}.${q(table)} (sid, sess, expire) VALUES ($1, '{"cookie":{}}', now() - interval '1 hour')`, [sid])

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 })
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${q(schemaName)}`)
})
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()))
  await pool.query(`DROP SCHEMA ${q(schemaName)} CASCADE`)
  await pool.end()
})

describe('table creation', () => {
  test('two stores creating the same table at once both succeed, and there is one table', async () => {
    const a = store({ tableName: 'race', createTableIfMissing: true })
    const b = store({ tableName: 'race', createTableIfMissing: true })
    await Promise.all([a.set('from-a', sessionData()), b.set('from-b', sessionData())])
    expect(await rows('race')).toEqual(['from-a', 'from-b'])
  })

  test('a custom table beside the default one gets its own constraint and index names', async () => {
    const plain = store({ createTableIfMissing: true })
    const custom = store({ tableName: 'app_sessions', createTableIfMissing: true })
    await plain.set('p', sessionData())
    await custom.set('c', sessionData())
    const names = (await pool.query(
      `SELECT conname AS name FROM pg_constraint WHERE connamespace = $1::regnamespace
       UNION SELECT indexname FROM pg_indexes WHERE schemaname = $2 ORDER BY 1`, [q(schemaName), schemaName])).rows.map((r) => r.name)
    expect(names).toEqual(expect.arrayContaining(['session_pkey', 'IDX_session_expire', 'app_sessions_pkey', 'IDX_app_sessions_expire']))
    expect(await rows('session')).toEqual(['p'])
    expect(await rows('app_sessions')).toEqual(['c'])
  })

  test('without createTableIfMissing a missing table is a clear error, not a silent creation', async () => {
    const s = store({ tableName: 'not_there' })
    await expect(s.get('x')).rejects.toThrow(/ferrosession postgres get: .*not_there.* does not exist/)
  })
})

describe('hostile and odd identifiers', () => {
  test('a table name that tries to inject SQL is just a name', async () => {
    await pool.query(`CREATE TABLE ${q(schemaName)}.victim (x int)`)
    const evil = 'x"; DROP TABLE victim; --'
    const s = store({ tableName: evil, createTableIfMissing: true })
    await s.set('sid', sessionData(60000, { ok: true }))
    expect((await s.get('sid')).ok).toBe(true)
    expect(await rows(evil)).toEqual(['sid'])
    await expect(pool.query(`SELECT * FROM ${q(schemaName)}.victim`)).resolves.toBeDefined()
    expect(s.quotedTable()).toBe(`${q(schemaName)}.${q(evil)}`)
  })

  test.each([
    ['a NUL character', 'a\u0000b', /NUL/],
    ['more than 63 bytes', 'é'.repeat(40), /longer than 63 bytes/]
  ])('a table name with %s is refused at construction', (_label, tableName, message) => {
    expect(() => store({ tableName })).toThrow(message)
  })

  test('a Unicode schema and table name work', async () => {
    const s = store({ schemaName: `${schemaName}_ü`, tableName: 'sessions ✓', createTableIfMissing: true })
    await s.set('u', sessionData(60000, { v: 1 }))
    expect((await s.get('u')).v).toBe(1)
    await pool.query(`DROP SCHEMA ${q(schemaName + '_ü')} CASCADE`)
  })
})

describe('pruning', () => {
  test('removes expired rows and keeps live ones', async () => {
    const s = store({ tableName: 'prune_basic', createTableIfMissing: true })
    await s.set('live', sessionData(60000))
    await insertExpired('prune_basic', 'dead-1')
    await insertExpired('prune_basic', 'dead-2')
    expect(await s.pruneSessions()).toBe(2)
    expect(await rows('prune_basic')).toEqual(['live'])
  })

  test('runs on one process at a time: while another holds the prune lock, a prune leaves it to them', async () => {
    const s = store({ tableName: 'prune_lock', createTableIfMissing: true })
    await s.set('live', sessionData(60000))
    await insertExpired('prune_lock', 'dead')
    const other = await pool.connect() // stands in for another app process that is pruning
    try {
      await other.query('BEGIN')
      await other.query('SELECT pg_advisory_xact_lock(hashtext($1::text), 1)', [`ferrosession:${s.quotedTable()}`])
      expect(await s.pruneSessions()).toBe(0)
      expect(await rows('prune_lock')).toEqual(['dead', 'live'])
      await other.query('COMMIT')
    } finally {
      other.release()
    }
    expect(await s.pruneSessions()).toBe(1)
    expect(await rows('prune_lock')).toEqual(['live'])
  })

  test('two stores pruning at once remove each expired row exactly once', async () => {
    const a = store({ tableName: 'prune_two', createTableIfMissing: true })
    const b = store({ tableName: 'prune_two' })
    await a.set('live', sessionData(60000))
    for (let i = 0; i < 50; i++) await insertExpired('prune_two', `dead-${i}`)
    const removed = await Promise.all([a.pruneSessions(), b.pruneSessions(), a.pruneSessions(), b.pruneSessions()])
    expect(removed.reduce((x, y) => x + y, 0)).toBe(50)
    expect(await rows('prune_two')).toEqual(['live'])
  })

  test('the prune timer starts on first use, repeats, and does not keep the process alive', async () => {
    // The prune timer is the app's setTimeout (apps' tests tick their way to a prune): fake it.
    const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const s = store({ tableName: 'prune_timer', createTableIfMissing: true, pruneSessionInterval: 60, pruneSessionRandomizedInterval: false })
      expect(s._pruning.timer).toBeNull() // nothing scheduled by the constructor
      await s.set('live', sessionData(3600000))
      expect(s._pruning.timer.hasRef()).toBe(false)
      for (const dead of ['dead-1', 'dead-2']) { // it runs, and runs again
        await insertExpired('prune_timer', dead)
        expect((await rows('prune_timer')).sort()).toEqual([dead, 'live'])
        clock.tick(60000)
        expect(await eventually(async () => (await rows('prune_timer')).length === 1)).toBe(true)
        expect(await rows('prune_timer')).toEqual(['live'])
      }
    } finally {
      clock.uninstall()
    }
  })

  test('prune errors go to errorLog', async () => {
    const logged = []
    const s = store({ tableName: 'never_created', errorLog: (...args) => logged.push(args.join(' ')) })
    await expect(s.pruneSessions()).rejects.toThrow(/prune/)
    expect(logged[0]).toMatch(/Failed to prune sessions/)
  })
})

describe('columns and timeouts', () => {
  test.each(['jsonb', 'text'])('an existing table with a %s sess column is read and written', async (type) => {
    const table = `typed_${type}`
    await pool.query(`CREATE TABLE ${q(schemaName)}.${q(table)} (sid varchar PRIMARY KEY, sess ${type} NOT NULL, expire timestamp(6) NOT NULL)`)
    const s = store({ tableName: table })
    const sess = sessionData(60000, { user: 'zoë', n: [1, 2] })
    await s.set('t', sess)
    expect(await s.get('t')).toEqual(sess)
    await s.touch('t', sess)
    expect(await s.all()).toEqual([{ ...sess, id: 't' }])
  })

  test('statementTimeout cancels a statement stuck behind a lock, with a clear error', async () => {
    const s = store({ tableName: 'slow', createTableIfMissing: true, statementTimeout: 150, commandTimeout: 5000 })
    await s.set('locked', sessionData())
    const other = await pool.connect()
    try {
      await other.query('BEGIN')
      await other.query(`SELECT * FROM ${q(schemaName)}.slow WHERE sid = 'locked' FOR UPDATE`)
      const started = Date.now()
      const err = await s.set('locked', sessionData()).catch((e) => e)
      expect(Date.now() - started).toBeLessThan(2000)
      expect(err.code).toBe('ESESSION_BACKEND')
      expect(err.message).toMatch(/ferrosession postgres set: .*statement timeout/)
    } finally {
      await other.query('ROLLBACK')
      other.release()
    }
    await expect(s.set('locked', sessionData())).resolves.toBeUndefined()
  })
})

describe('a batch runs as one statement per kind', () => {
  /** A table of `type` whose writes are counted per statement (a statement-level trigger). */
  async function countedTable (type, table = `counted_${type}`) {
    const t = `${q(schemaName)}.${q(table)}`
    await pool.query(`CREATE TABLE ${t} (sid varchar PRIMARY KEY, sess ${type} NOT NULL, expire timestamp(6) NOT NULL)`)
    await pool.query(`CREATE TABLE ${q(schemaName)}.${q(table + '_statements')} (op text)`)
    await pool.query(`CREATE FUNCTION ${q(schemaName)}.${q(table + '_count')}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO ${q(schemaName)}.${q(table + '_statements')} VALUES (TG_OP); RETURN NULL; END $$`)
    await pool.query(`CREATE TRIGGER counted AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${q(schemaName)}.${q(table + '_count')}()`)
    const statements = async (op) => {
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${q(schemaName)}.${q(table + '_statements')} WHERE op = $1`, [op])
      await pool.query(`DELETE FROM ${q(schemaName)}.${q(table + '_statements')}`)
      return rows[0].n
    }
    return { table, statements }
  }
  const N = 40
  const sids = Array.from({ length: N }, (_, i) => `b${i}`)
  /** `make(sid)` for every sid in one turn, while another request is in flight (so they batch). */
  const together = (s, make) => Promise.all([s.get('in-flight'), ...sids.map(make)])

  test.each(['json', 'jsonb', 'text'])('%s column: sets, gets, touches and destroys of one turn each take a few statements, not one per session', async (type) => {
    const { table, statements } = await countedTable(type)
    const s = store({ tableName: table })
    await s.set('warm', sessionData())
    await statements('INSERT')
    await together(s, (sid) => s.set(sid, sessionData(60000, { sid })))
    expect(await statements('INSERT')).toBeLessThanOrEqual(4)
    const got = await together(s, (sid) => s.get(sid))
    expect(got.slice(1).map((g) => g.sid)).toEqual(sids)
    const later = sessionData(600000)
    await together(s, (sid) => s.touch(sid, { ...later, sid }))
    expect(await statements('UPDATE')).toBeLessThanOrEqual(4)
    for (const sid of ['b0', `b${N - 1}`]) expect((await s.get(sid)).cookie.expires).toBe(later.cookie.expires)
    await together(s, (sid) => s.destroy(sid))
    expect(await statements('DELETE')).toBeLessThanOrEqual(4)
    expect(await s.ids()).toEqual(['warm'])
  })

  test('a value the column refuses fails only its own request; the rest of the batch is stored', async () => {
    const { table } = await countedTable('json', 'refusing_json')
    // A serializer that writes one session as something that is not JSON: the json column refuses it.
    const serializer = { stringify: (sess) => (sess.broken ? 'not json' : JSON.stringify(sess)), parse: JSON.parse }
    const s = store({ tableName: table, serializer })
    await s.set('warm', sessionData())
    const results = await together(s, (sid) => s.set(sid, sessionData(60000, { sid, broken: sid === 'b7' })).then(() => 'ok', (e) => e))
    const failed = results.slice(1).map((r, i) => [sids[i], r]).filter(([, r]) => r !== 'ok')
    expect(failed.map(([sid]) => sid)).toEqual(['b7'])
    expect(failed[0][1].message).toMatch(/ferrosession postgres set: .*json/)
    expect((await s.ids()).length).toBe(N) // warm and every sid but b7
  })
})

describe('idle connections', () => {
  const connections = async (name) => (await pool.query(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [name])).rows[0].n
  const until = async (check, ms = 5000) => {
    const deadline = Date.now() + ms
    while (!(await check()) && Date.now() < deadline) await sleep(50)
    return check()
  }

  test('are closed after idleTimeout, and opened again when needed', async () => {
    const name = `ferrotest-idle-${process.pid}`
    const s = new PostgresStore({ conObject: { connectionString: DATABASE_URL, application_name: name }, schemaName, tableName: 'idle', createTableIfMissing: true, pruneSessionInterval: false, poolSize: 3, idleTimeout: 300 })
    stores.push(s)
    await Promise.all(Array.from({ length: 6 }, (_, i) => s.set(`s${i}`, sessionData())))
    expect(await connections(name)).toBeGreaterThan(0)
    expect(await until(async () => (await connections(name)) === 0)).toBe(true)
    expect(await s.get('s1')).not.toBeNull()
    expect(await connections(name)).toBe(1)
  })

  test('pg.Pool\'s idleTimeoutMillis is honoured, and 0 keeps them', async () => {
    // Two pools, idle for the same while: the one with idleTimeoutMillis 200 ends up with no
    // connection, the one with 0 keeps its own (either would fail if the setting were dropped:
    // the default closes idle connections after 10 s).
    const opened = async (idleTimeoutMillis, tableName) => {
      const name = `ferrotest-idle-${idleTimeoutMillis}-${process.pid}`
      const app = new pg.Pool({ connectionString: DATABASE_URL, application_name: name, idleTimeoutMillis })
      const s = new PostgresStore({ pool: app, schemaName, tableName, createTableIfMissing: true, pruneSessionInterval: false })
      stores.push(s)
      expect(s.idleTimeout).toBe(idleTimeoutMillis)
      await s.set('k', sessionData())
      return { name, app }
    }
    const [closing, keeping] = await Promise.all([opened(200, 'idle_close'), opened(0, 'idle_keep')])
    expect(await until(async () => (await connections(closing.name)) === 0)).toBe(true)
    expect(await connections(keeping.name)).toBe(1)
    await Promise.all([closing.app.end(), keeping.app.end()])
  })

  test('stores with the same connection settings share one pool: 300 dropped without close() hold at most poolSize connections', async () => {
    const name = `ferrotest-shared-${process.pid}`
    const make = () => new PostgresStore({ conObject: { connectionString: DATABASE_URL, application_name: name }, schemaName, tableName: 'shared_pool', createTableIfMissing: true, pruneSessionInterval: false, poolSize: 4 })
    const first = make()
    stores.push(first)
    await first.set('s', sessionData(60000, { v: 1 }))
    // Each used once, then dropped: as an app that builds a store per request would.
    for (let i = 0; i < 300; i++) expect((await make().get('s')).v).toBe(1)
    expect(await connections(name)).toBeLessThanOrEqual(4)
    // Closing one store leaves the others sharing its pool working.
    const other = make()
    await make().close()
    expect((await other.get('s')).v).toBe(1)
    await other.close()
    expect((await first.get('s')).v).toBe(1)
  })
})

describe('connection settings, in connect-pg-simple\'s order', () => {
  const saved = { ...process.env }
  afterEach(() => { process.env = { ...saved } })

  test('pool, then pgPromise, then conObject, then conString, then DATABASE_URL, then PG*', () => {
    const pool = { options: { host: 'h1', port: 5433, user: 'u', password: 'p', database: 'd', max: 7 } }
    expect(connectionOf({ pool, conString: 'postgres://x/y' })).toMatchObject({ host: 'h1', port: 5433, database: 'd', poolSize: 7 })
    expect(connectionOf({ pgPromise: { $cn: 'postgres://cn/db', any () {} } })).toEqual({ connectionString: 'postgres://cn/db', source: 'the pgPromise option' })
    expect(connectionOf({ conObject: { host: 'h2' }, conString: 'postgres://x/y' })).toMatchObject({ host: 'h2' })
    expect(connectionOf({ conString: 'postgres://x/y' })).toEqual({ connectionString: 'postgres://x/y', source: 'the conString option' })
    process.env.DATABASE_URL = 'postgres://env/db'
    expect(connectionOf({})).toEqual({ connectionString: 'postgres://env/db', source: 'the DATABASE_URL environment variable' })
    delete process.env.DATABASE_URL
    Object.assign(process.env, { PGHOST: 'pghost', PGPORT: '6543', PGUSER: 'pguser', PGDATABASE: 'pgdb' })
    expect(connectionOf({})).toMatchObject({ host: 'pghost', port: 6543, user: 'pguser', database: 'pgdb' })
  })

  test('with no settings at all, a failed connection says what was tried and where it came from', async () => {
    for (const name of ['DATABASE_URL', 'PGHOST', 'PGUSER', 'PGDATABASE', 'PGPASSWORD']) delete process.env[name]
    process.env.PGPORT = String(await closedPort())
    process.env.USER = 'ferro_login_name'
    const store = new PostgresStore({ connectTimeout: 500, commandTimeout: 1000 })
    try {
      const err = await store.get('x').catch((e) => e)
      expect(err.message).toContain(`tried localhost port ${process.env.PGPORT}, user "ferro_login_name"`)
      expect(err.message).toContain('settings from no settings given (no pool, pgPromise, conObject or conString option, no DATABASE_URL), so PGPORT from the environment and the defaults for the rest (host localhost, port 5432, user and database the login name)')
    } finally {
      await store.close()
    }
  })
})

describe('objects that name a connection are read or refused, never ignored', () => {
  test.each([
    [{ pgPromise: {} }, /`pgPromise` config must point to an existing and configured instance of pg-promise/],
    [{ pgPromise: null }, /`pgPromise` config must point to an existing and configured instance of pg-promise/],
    [{ pool: {} }, /option pool must be a pg.Pool/],
    [{ pool: 'postgres://elsewhere' }, /option pool must be a pg.Pool/]
  ])('%p is a TypeError, not a connection to the default database', (options, message) => {
    expect(() => new PostgresStore({ ...options, pruneSessionInterval: false })).toThrow(TypeError)
    expect(() => new PostgresStore({ ...options, pruneSessionInterval: false })).toThrow(message)
  })
})
