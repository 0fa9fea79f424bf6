'use strict'
// createStore: one entry point that picks the store from a URL.

const path = require('node:path')
const { createStore, RedisStore, PostgresStore, MySqlStore, MongoStore, SqliteStore, MemoryStore } = require('..')

test.each([
  ['redis://127.0.0.1:6379', RedisStore],
  ['rediss://user:pw@example.com:6380/2', RedisStore],
  ['postgres://postgres@127.0.0.1/test', PostgresStore],
  ['postgresql://postgres@127.0.0.1/test', PostgresStore],
  ['mysql://root@127.0.0.1/test', MySqlStore],
  ['mariadb://root@127.0.0.1/test', MySqlStore],
  ['mongodb://127.0.0.1:27017/test', MongoStore],
  ['mongodb+srv://user:pw@cluster0.example.com/test', MongoStore],
  ['sqlite::memory:', SqliteStore],
  ['memory:', MemoryStore]
])('%s makes a %p', async (url, Class) => {
  const store = createStore(url)
  expect(store).toBeInstanceOf(Class)
  await store.close()
})

test('no URL makes the embedded SqliteStore on sessions.sqlite in the working directory', async () => {
  const store = createStore()
  expect(store).toBeInstanceOf(SqliteStore)
  expect(store.path).toBe(path.resolve('sessions.sqlite'))
  await store.close()
})

test('sqlite:<path> uses that file, and options pass through', async () => {
  const store = createStore('sqlite:/tmp/x.sqlite', { tableName: 'mine' })
  expect([store.path, store.tableName]).toEqual(['/tmp/x.sqlite', 'mine'])
  await store.close()
})

test('sqlite://name.db is relative to the working directory, not a file at the filesystem root', async () => {
  const relative = createStore('sqlite://name.db')
  const absolute = createStore('sqlite:///tmp/abs.sqlite')
  expect([relative.path, absolute.path]).toEqual([path.resolve('name.db'), '/tmp/abs.sqlite'])
  // Closed before first use: neither file is ever created.
  await Promise.all([relative.close(), absolute.close()])
})

test('an unknown scheme is a clear error naming that scheme and the supported ones, without leaking credentials', () => {
  const supported = 'supported: redis://, rediss://, postgres://, postgresql://, mysql://, mariadb://, mongodb://, mongodb+srv://, sqlite:<path>, memory:, or no URL for the embedded SQLite store'
  expect(() => createStore('cassandra://user:secret@host/db')).toThrow(
    `ferrosession createStore: unsupported store URL scheme "cassandra:" (in "cassandra://…@host/db"); ${supported}`)
  expect(() => createStore('cassandra://user:secret@host/db')).not.toThrow(/secret/)
  expect(() => createStore('localhost')).toThrow(`unsupported store URL "localhost", which has no scheme; ${supported}`)
  expect(() => createStore(42)).toThrow(TypeError)
})

describe('unknown options are refused, with the closest known name', () => {
  test.each([
    [RedisStore, { prefx: 'app:' }, /unknown option 'prefx' for RedisStore; did you mean 'prefix'\?/],
    [PostgresStore, { tableNme: 'x', pruneSessionInterval: false }, /unknown option 'tableNme' for PostgresStore; did you mean 'tableName'\?/],
    [SqliteStore, { pth: 'x.sqlite' }, /unknown option 'pth' for SqliteStore; did you mean 'path'\?/],
    [MemoryStore, { maxx: 10 }, /unknown option 'maxx' for MemoryStore; did you mean 'max'\?/],
    [MongoStore, { mongoUrl: 'mongodb://127.0.0.1:1', colectionName: 'x' }, /unknown option 'colectionName' for MongoStore; did you mean 'collectionName'\?/],
    [MySqlStore, { prefx: 'x' }, /options\.prefx is not a setting ferrosession knows for MySQL/],
    [MySqlStore, { clearExpird: false }, /options\.clearExpird is not a setting ferrosession knows for MySQL; did you mean 'clearExpired'\?/]
  ])('%p %p', (Store, options, message) => {
    expect(() => new Store(options)).toThrow(message)
  })

  test('createStore refuses a typo, and leaves out what only other stores take (one options object for any URL)', async () => {
    expect(() => createStore('memory:', { prefx: 'x' })).toThrow(/ferrosession createStore: unknown option 'prefx'; did you mean 'prefix'\?/)
    const store = createStore('memory:', { createTableIfMissing: true, prefix: 'app:', max: 5 })
    expect(store.max).toBe(5)
    await store.close()
  })

  test('an earlier major\'s option that means nothing here is accepted, with one warning', async () => {
    const emitted = jest.spyOn(process, 'emitWarning').mockImplementation(() => {})
    try {
      const stores = [new MemoryStore({ stale: true }), new MemoryStore({ stale: true })]
      const warnings = emitted.mock.calls.map(([message]) => message).filter((m) => /option 'stale' is accepted and ignored/.test(m))
      expect(warnings).toHaveLength(1)
      await Promise.all(stores.map((s) => s.close()))
    } finally {
      emitted.mockRestore()
    }
  })

  test('RedisStore host/port (connect-redis 3) are connection settings, never dropped', async () => {
    const { connectionOf } = require('../lib/redis-settings')
    expect(connectionOf({ host: '127.0.0.2', port: 7000 }).url).toBe('redis://127.0.0.2:7000/0')
    expect(connectionOf({ host: '127.0.0.2', port: 7000, db: 2, pass: 'pw' }).url).toBe('redis://:pw@127.0.0.2:7000/2')
    expect(() => new RedisStore({ url: 'redis://127.0.0.1:6379', host: '127.0.0.2' })).toThrow(/name two places to connect/)
    // Used for real: a store pointed at 127.0.0.2:<nothing> fails there, not on 127.0.0.1:6379.
    const store = new RedisStore({ host: '127.0.0.2', port: 1, connectTimeout: 500, commandTimeout: 1000 })
    const err = await store.get('x').catch((e) => e)
    expect(err.code).toBe('ESESSION_UNAVAILABLE')
    await store.close()
  })
})

test('a URL the native side cannot use throws ESESSION_INVALID in plain words, not the driver\'s', () => {
  for (const url of ['redis:/x', 'redis://:pw@[::1']) {
    let err
    try {
      createStore(url)
    } catch (e) {
      err = e
    }
    expect(err && err.code).toBe('ESESSION_INVALID')
    expect(err.message).toMatch(/^ferrosession redis options: bad url or TLS settings: /)
    expect(err.message).not.toMatch(/InvalidClientConfig|GenericFailure/)
  }
})

test('a refused connection names the host and port it tried, never the password', async () => {
  const { closedPort } = require('../scripts/ports')
  const port = await closedPort()
  const urls = [`redis://:sekret@127.0.0.1:${port}`, `mysql://root:sekret@127.0.0.1:${port}/test`, `postgres://u:sekret@127.0.0.1:${port}/test`]
  for (const url of urls) {
    const store = createStore(url, { connectTimeout: 1000 })
    store.on('disconnect', () => {})
    const err = await store.get('sid').then(() => null, (e) => e)
    await store.close()
    expect(err && err.code).toBe('ESESSION_UNAVAILABLE')
    expect(err.message).toContain('127.0.0.1')
    expect(err.message).toContain(String(port))
    expect(err.message).not.toContain('sekret')
  }
})

test('a refused setting is a TypeError with the code of every refused input', () => {
  for (const make of [() => new RedisStore({ prefx: 'app:' }), () => createStore('memory:', { max: 0 }), () => new MongoStore({ mongoUrl: 'mongodb://127.0.0.2/x', autoRemove: 'sometimes' }), () => new MemoryStore({ encryption: { keys: [Buffer.alloc(31)] } })]) {
    let err
    try {
      make()
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(TypeError)
    expect(err.code).toBe('ESESSION_INVALID')
    expect(err.message).toMatch(/^ferrosession /)
  }
})

test('a store URL is printed (CLI, demo, errors) without its password, in the userinfo or the query', () => {
  const { withoutCredentials } = require('../lib/create-store')
  expect(withoutCredentials('postgres://app:s3cret@db:5432/app?sslmode=require&password=s3cret&sslpassword=k3y'))
    .toBe('postgres://…@db:5432/app?sslmode=require&password=…&sslpassword=…')
  expect(withoutCredentials('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379')
})
