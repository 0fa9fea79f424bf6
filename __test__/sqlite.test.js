'use strict'
// What only SqliteStore does: connect-session-knex's file format, WAL, several processes on one
// file, pruning, and connect-session-knex v4's option names.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const Database = require('better-sqlite3')
const { SqliteStore } = require('..')
const { sessionData, call: callStore } = require('./support/backends')

// Named now, made by the first hook: a run that filters out every test here (jest -t) runs no
// hook, so it must not leave a directory behind either.
const dir = path.join(os.tmpdir(), `ferrotest-sqlite-${process.pid}-${Date.now().toString(36)}`)
beforeAll(() => fs.mkdirSync(dir))
const stores = []
const store = (options) => {
  const s = new SqliteStore({ cleanupInterval: 0, ...options })
  stores.push(s)
  return s
}
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()))
  fs.rmSync(dir, { recursive: true, force: true })
})

describe('connect-session-knex 5 on the same file', () => {
  const file = path.join(dir, 'knex.sqlite')
  let knex, theirs, ours
  const call = (method, ...args) => callStore(theirs, method, ...args)
  const raw = (sid) => new Database(file, { readonly: true }).prepare('SELECT sess, expired FROM sessions WHERE sid = ?').get(sid)

  beforeAll(async () => {
    const { ConnectSessionKnexStore } = require('connect-session-knex')
    knex = require('knex')({ client: 'better-sqlite3', connection: { filename: file }, useNullAsDefault: true })
    theirs = new ConnectSessionKnexStore({ knex, cleanupInterval: 0 })
    await theirs.ready
    ours = store({ path: file })
  })
  afterAll(() => knex.destroy())

  test('a session written by connect-session-knex is read, touched and destroyed by SqliteStore', async () => {
    const sess = sessionData(3600000, { user: 'zoë', big: 1e21 })
    // connect-session-knex computes `expired` from express-session's Cookie#maxAge getter.
    Object.defineProperty(sess.cookie, 'maxAge', { get () { return Date.parse(this.expires) - Date.now() } })
    await call('set', 'theirs', sess)
    expect(await ours.get('theirs')).toEqual(JSON.parse(JSON.stringify(sess)))
    const later = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 7200000).toISOString() } }
    const before = raw('theirs').sess
    await ours.touch('theirs', later)
    // Touch moves `expired` only, as connect-session-knex's touch does; `sess` keeps its cookie.
    expect(raw('theirs').expired).toBe(later.cookie.expires)
    expect(raw('theirs').sess).toBe(before)
    expect((await ours.get('theirs')).cookie.expires).toBe(later.cookie.expires) // reported from `expired`
    await ours.destroy('theirs')
    expect(await call('get', 'theirs')).toBeNull()
  })

  test('a session written by SqliteStore is stored as connect-session-knex stores it, and it reads it', async () => {
    const sess = sessionData(3600000, { user: 'zoë' })
    // connect-session-knex reads express-session's Cookie#maxAge getter; give the plain object one.
    Object.defineProperty(sess.cookie, 'maxAge', { get () { return Date.parse(this.expires) - Date.now() } })
    await ours.set('ours', sess)
    await call('set', 'theirs-copy', sess)
    const [mine, knexRow] = [raw('ours'), raw('theirs-copy')]
    expect(mine.sess).toBe(knexRow.sess)
    expect(mine.expired).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(Math.abs(Date.parse(mine.expired) - Date.parse(knexRow.expired))).toBeLessThan(1000)
    expect(await call('get', 'ours')).toEqual(sess)
    expect(await call('length')).toBe(await ours.length())
  })
})

describe('the file', () => {
  test('is in WAL mode, with connect-session-knex\'s table and index', async () => {
    const file = path.join(dir, 'wal.sqlite')
    const s = store({ path: file })
    await s.set('x', sessionData())
    const db = new Database(file, { readonly: true })
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sessions' AND sql IS NOT NULL").all())
      .toEqual([{ name: 'sessions_expired_index' }])
    db.close()
  })

  test('connect-session-knex v4 option names are honoured', async () => {
    const file = path.join(dir, 'v4.sqlite')
    const s = store({ path: file, tablename: 'legacy', sidfieldname: 'id' })
    await s.set('x', sessionData())
    const db = new Database(file, { readonly: true })
    expect(db.prepare('SELECT id FROM legacy').all()).toEqual([{ id: 'x' }])
    db.close()
  })

  test('is created lazily: a store that is never used creates nothing', async () => {
    const file = path.join(dir, 'lazy.sqlite')
    await store({ path: file }).close()
    expect(fs.existsSync(file)).toBe(false)
  })

  test('pruning removes expired rows on an unref\'d timer', async () => {
    // The prune timer is the app's setTimeout (apps' tests tick their way to a prune): fake it.
    const clock = require('@sinonjs/fake-timers').install({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
    try {
      const s = store({ path: path.join(dir, 'prune.sqlite'), cleanupInterval: 60000 })
      const t0 = Date.now()
      await s.set('live', sessionData(3600000))
      await s.set('dead', sessionData(1000))
      expect(s._pruning.timer.hasRef()).toBe(false)
      /** The rows still there: read with the clock at t0, when both were live. */
      const rows = async () => {
        const now = Date.now()
        clock.setSystemTime(t0)
        const ids = await s.ids()
        clock.setSystemTime(now)
        return ids.sort()
      }
      expect(await rows()).toEqual(['dead', 'live'])
      clock.tick(60000 * 1.5) // the interval, spread by up to 50 %: 'dead' has expired meanwhile
      // The prune is native I/O: wait on real turns of the loop until it is done.
      const deadline = performance.now() + 5000
      while ((await rows()).length > 1 && performance.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
      expect(await rows()).toEqual(['live'])
    } finally {
      clock.uninstall()
    }
  })
})

/** A child process that writes `n` sessions through its own store and reports its errors. */
function writer (file, name, n) {
  const script = `
    const { SqliteStore } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const store = new SqliteStore({ path: ${JSON.stringify(file)}, cleanupInterval: 0 })
    const errors = []
    const sess = (i) => ({ cookie: { expires: new Date(Date.now() + 60000).toISOString(), originalMaxAge: 60000 }, i })
    let left = ${n}
    for (let i = 0; i < ${n}; i++) {
      store.set(${JSON.stringify(name)} + i, sess(i), (err) => {
        if (err) errors.push(err.code + ' ' + err.message)
        if (--left === 0) store.close(() => console.log(JSON.stringify({ errors })))
      })
    }`
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`writer exited ${code}`))))
  })
}

test('two Node processes writing to one file at once: no lost write, no SQLITE_BUSY reaches a callback', async () => {
  const file = path.join(dir, 'shared.sqlite')
  await store({ path: file }).set('seed', sessionData()) // creates the table before the race
  const [a, b] = await Promise.all([writer(file, 'a', 400), writer(file, 'b', 400)])
  expect(a.errors).toEqual([])
  expect(b.errors).toEqual([])
  expect(await store({ path: file }).length()).toBe(801)
}, 60000)

test('stores whose first requests all reach a brand-new file at once set it up without SQLITE_BUSY', async () => {
  const file = path.join(dir, 'fresh.sqlite')
  const many = Array.from({ length: 4 }, () => store({ path: file }))
  const results = await Promise.all(many.flatMap((s, n) =>
    Array.from({ length: 20 }, (_, i) => s.set(`s${n}-${i}`, sessionData()).then(() => null, (e) => e.message))))
  expect(results.filter(Boolean)).toEqual([])
  expect(await many[0].length()).toBe(80)
})

test('a serialised session that looks like a number survives the json column\'s NUMERIC affinity, or is refused', async () => {
  let text = '0'
  const numeric = { stringify: () => text, parse: (stored) => ({ stored }) }
  const s = store({ path: path.join(dir, 'affinity.sqlite'), serializer: numeric })
  await s.set('n', sessionData())
  expect(await s.get('n')).toEqual({ stored: '0' })
  text = '+0' // SQLite would keep it as the number 0: refused, and the stored one is kept
  const err = await s.set('n', sessionData()).then(() => null, (e) => e)
  expect(err.code).toBe('ESESSION_INVALID')
  expect(err.message).toMatch(/would be stored by SQLite as the number 0/)
  expect(await s.get('n')).toEqual({ stored: '0' })
})

describe('a store whose CREATE TABLE fails', () => {
  // Its name clashes with the index of another store's table, or with a view: the failure is its
  // own, and the connection it shares with the other stores on the file is left in no transaction.
  test.each([
    ['the index of another table', 'sessions_expired_index', null, /already/],
    ['a view', 'clash_view', 'CREATE VIEW clash_view AS SELECT 1 AS one', /views may not be indexed/]
  ])('clashing with %s loses no other store\'s acknowledged write, and other processes can write', async (_, name, prepare, why) => {
    const file = path.join(dir, `clash-${name}.sqlite`)
    if (prepare) {
      // Before any store opens the file: two SQLite libraries must not share an open file.
      const db = new Database(file)
      db.exec(prepare)
      db.close()
    }
    const good = store({ path: file })
    await good.set('first', sessionData())
    const clashing = store({ path: file, tableName: name })
    const failed = await clashing.set('x', sessionData()).then(() => null, (e) => e)
    expect(failed.message).toMatch(/^ferrosession sqlite set: /)
    expect(failed.message).toMatch(why)
    await Promise.all(Array.from({ length: 199 }, (_, i) => good.set(`after-${i}`, sessionData())))
    // Another process gets the write lock (no transaction left open holding it) while both live.
    expect((await writer(file, 'other', 5)).errors).toEqual([])
    const failedAgain = await clashing.get('x').then(() => null, (e) => e)
    expect(failedAgain.message).toMatch(why)
    await Promise.all([good.close(), clashing.close()])
    const reader = new Database(file, { readonly: true })
    expect(reader.prepare("SELECT count(*) AS n FROM sessions WHERE sid LIKE 'after-%'").get().n).toBe(199)
    reader.close()
  }, 30000)
})

test('merged saves from two processes on one file keep each other\'s changes (the merge is one write transaction)', async () => {
  const file = path.join(dir, 'merge.sqlite')
  const setup = store({ path: file })
  await setup.set('shared', sessionData(600000, { seed: true }))
  const patcher = (name) => new Promise((resolve, reject) => {
    const script = `
      const { SqliteStore } = require(${JSON.stringify(path.join(__dirname, '..'))})
      const store = new SqliteStore({ path: ${JSON.stringify(file)}, cleanupInterval: 0 })
      const sess = { cookie: { originalMaxAge: 600000, expires: new Date(Date.now() + 600000).toISOString() } }
      const saves = Array.from({ length: 50 }, (_, i) => store.patch('shared', { [${JSON.stringify(name)} + i]: i }, sess))
      Promise.all(saves).then(() => store.close()).then(() => console.log('done'), (e) => { console.error(e.message); process.exit(1) })`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`patcher exited ${code}`))))
  })
  await Promise.all([patcher('a'), patcher('b')])
  const got = await setup.get('shared')
  expect(got.seed).toBe(true)
  expect(Object.keys(got).filter((k) => /^[ab]\d+$/.test(k)).length).toBe(100)
}, 60000)
