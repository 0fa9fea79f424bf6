'use strict'
// The app the HTTP benchmark loads: Express 5 + the session middleware named by MIDDLEWARE
// (express-session, or ferrosession's session()) with resave: false, saveUninitialized: false,
// rolling: true, on the store named by STORE, or no session middleware at all (STORE=none, the
// ceiling). /read only reads the session (so express-session touches it),
// /write changes it (so express-session saves it), /login creates one.

const express = require('express')
const session = require('express-session')
const ferro = require('..')
const middleware = process.env.MIDDLEWARE === 'ferrosession' ? ferro.session : session

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const MYSQL_URL = process.env.MYSQL_URL || 'mysql://root@127.0.0.1:3306/test'
// BENCH_ID namespaces one benchmark run's keys and table, which bench/http.js removes afterwards.
const prefix = `benchhttp:${process.env.BENCH_ID}:${process.env.STORE}:`
const table = `bench_http_${process.env.BENCH_ID}`

async function makeStore (name) {
  switch (name) {
    case 'ferrosession redis': return new ferro.RedisStore({ url: REDIS_URL, prefix })
    case 'connect-redis 10 + redis 6': {
      const { createClient } = require('redis')
      const client = await createClient({ url: REDIS_URL }).connect()
      return new (require('connect-redis').RedisStore)({ client, prefix })
    }
    case 'connect-redis 8.1 + ioredis 6': {
      const Redis = require('ioredis')
      return new (require('connect-redis8').RedisStore)({ client: new Redis(REDIS_URL), prefix })
    }
    case 'ferrosession postgres':
      return new ferro.PostgresStore({ conString: DATABASE_URL, tableName: table, createTableIfMissing: true, pruneSessionInterval: false })
    case 'connect-pg-simple 10 + pg Pool(10)': {
      const pg = require('pg')
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 })
      return new (require('connect-pg-simple')(session))({ pool, tableName: table, pruneSessionInterval: false })
    }
    case 'ferrosession mysql':
      return new ferro.MySqlStore({ url: MYSQL_URL, schema: { tableName: table }, clearExpired: false, poolSize: 10 })
    case 'express-mysql-session 3 + mysql2': {
      const pool = require('mysql2').createPool({ uri: MYSQL_URL, connectionLimit: 10 })
      return new (require('express-mysql-session')(session))({ schema: { tableName: table }, clearExpired: false }, pool)
    }
    case 'ferrosession knex postgres':
      return new ferro.PostgresStore({ conString: DATABASE_URL, tableName: `${table}_knex`, layout: 'knex', cleanupInterval: 0, poolSize: 10 })
    case 'connect-session-knex 5 + pg': {
      const knex = require('knex')({ client: 'pg', connection: DATABASE_URL, pool: { min: 0, max: 10 } })
      const store = new (require('connect-session-knex').ConnectSessionKnexStore)({ knex, tableName: `${table}_knex`, cleanupInterval: 0 })
      await store.ready
      return store
    }
    case 'ferrosession knex mysql':
      return new ferro.MySqlStore({ url: MYSQL_URL, layout: 'knex', tableName: `${table}_knex`, cleanupInterval: 0, poolSize: 10 })
    case 'connect-session-knex 5 + mysql2': {
      const knex = require('knex')({ client: 'mysql2', connection: MYSQL_URL, pool: { min: 0, max: 10 } })
      const store = new (require('connect-session-knex').ConnectSessionKnexStore)({ knex, tableName: `${table}_knex`, cleanupInterval: 0 })
      await store.ready
      return store
    }
    case 'ferrosession mongodb':
      return new ferro.MongoStore({ mongoUrl: process.env.MONGO_URL, dbName: 'bench', collectionName: table })
    case 'connect-mongo 6 + mongodb 7':
      // A collection of its own, its TTL index not created: SecantusDB refuses connect-mongo's
      // `background: true` index beside ours (mongod ignores that option); no run lasts an hour.
      return require('connect-mongo').MongoStore.create({ mongoUrl: process.env.MONGO_URL, dbName: 'bench', collectionName: `${table}_anchor`, autoRemove: 'disabled' })
    case 'ferrosession sqlite': return new ferro.SqliteStore({ path: process.env.SQLITE_FILE, cleanupInterval: 0 })
    case 'ferrosession memory': return new ferro.MemoryStore()
    case 'express-session MemoryStore': return new session.MemoryStore()
    default: throw new Error(`unknown STORE ${name}`)
  }
}

async function main () {
  const app = express()
  if (process.env.STORE !== 'none') {
    app.use(middleware({
      store: await makeStore(process.env.STORE),
      secret: 'bench secret',
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: { maxAge: 3600000 },
      // ferrosession's session() only: MERGE=false writes whole sessions (its default merges).
      ...(process.env.MERGE === 'false' ? { merge: false } : {})
    }))
  }
  app.post('/login', (req, res) => {
    req.session.user = { id: Math.floor(Math.random() * 1e9), name: 'bench user', roles: ['a', 'b'] }
    req.session.views = 0
    res.send('ok')
  })
  app.get('/read', (req, res) => res.json({ user: req.session ? req.session.user : null }))
  app.get('/write', (req, res) => {
    if (req.session) req.session.views = (req.session.views || 0) + 1
    res.json({ views: req.session ? req.session.views : 0 })
  })
  const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('READY'))
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
