'use strict'
// The smoke test __test__/runtimes.test.js runs under Node, Bun and Deno: every backend's store
// (set, get, touch, length, destroy, clear, close), session() under Express over real HTTP, and
// sign/unsign. It prints one JSON line of results and must then exit by itself: a store or a
// dispatcher that kept the runtime alive would hang it. Addresses and names come from the
// environment the test sets (SMOKE_RUNTIME, FERROTEST_RUN, FERROTEST_TMP, *_URL).

const path = require('node:path')
const http = require('node:http')
const { MemoryStore, SqliteStore, RedisStore, PostgresStore, MySqlStore, MongoStore, session, sign, unsign } = require('../..')

const env = process.env
const name = `ferrotest_smoke_${env.SMOKE_RUNTIME}_${env.FERROTEST_RUN}`
const mysql = new URL(env.MYSQL_URL)

const stores = {
  memory: () => new MemoryStore(),
  sqlite: () => new SqliteStore({ path: path.join(env.FERROTEST_TMP, 'smoke.sqlite'), cleanupInterval: 0 }),
  redis: () => new RedisStore({ url: env.REDIS_URL, prefix: `${name}:` }),
  postgres: () => new PostgresStore({ conString: env.DATABASE_URL, tableName: name, createTableIfMissing: true, pruneSessionInterval: false }),
  mysql: () => new MySqlStore({ host: mysql.hostname, port: Number(mysql.port || 3306), user: decodeURIComponent(mysql.username), password: decodeURIComponent(mysql.password), database: mysql.pathname.slice(1), schema: { tableName: name }, clearExpired: false }),
  mongodb: () => new MongoStore({ mongoUrl: env.MONGO_URL, dbName: name, collectionName: 'sessions' })
}

const sessionFor = (data) => ({ cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' }, ...data })

async function storeRoundTrip (make) {
  const store = make()
  try {
    await store.set('a', sessionFor({ user: 'zoë' }))
    // Made together: the first goes at once, the second waits for the end of the turn (a batch).
    await Promise.all([store.set('b', sessionFor({ n: 1 })), store.set('c', sessionFor({ n: 2 }))])
    const got = await store.get('a')
    await store.touch('a', sessionFor({ user: 'zoë' }))
    const length = await store.length()
    await store.destroy('a')
    const gone = await store.get('a')
    await store.clear()
    return { user: got && got.user, length, gone, after: await store.length() }
  } finally {
    await store.close()
  }
}

/** Two requests through session() on Express: the second carries the first one's cookie. */
async function middleware () {
  const express = require('express')
  const store = new MemoryStore()
  const app = express()
  app.use(session({ store, secret: 'smoke', resave: false, saveUninitialized: false }))
  app.get('/', (req, res) => {
    req.session.views = (req.session.views || 0) + 1
    res.json({ views: req.session.views })
  })
  const server = http.createServer(app)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${server.address().port}/`
  try {
    const first = await fetch(base)
    const cookie = first.headers.get('set-cookie').split(';')[0]
    const second = await fetch(base, { headers: { cookie } })
    return [(await first.json()).views, (await second.json()).views]
  } finally {
    server.closeAllConnections?.()
    await new Promise((resolve) => server.close(resolve))
    await store.close()
  }
}

async function main () {
  const results = {}
  for (const [backend, make] of Object.entries(stores)) {
    try {
      results[backend] = await storeRoundTrip(make)
    } catch (err) {
      results[backend] = { error: `${err.code || ''} ${err.message}` }
    }
  }
  results.middleware = await middleware().catch((err) => ({ error: err.message }))
  const signed = sign('hello', 'secret')
  results.signing = [signed, unsign(signed, ['other', 'secret']), unsign(`${signed}x`, 'secret')]
  console.log(JSON.stringify(results))
}

main()
