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
