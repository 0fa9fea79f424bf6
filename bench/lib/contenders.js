'use strict'
// The stores compared, per backend: ours and the anchors, each made as an app makes it. Stores of
// one backend share one namespace (same prefix / table): their data formats are the same, so
// they read the same 10,000 seeded sessions.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const session = require('express-session')
const ferro = require('../..')

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const MYSQL_URL = process.env.MYSQL_URL || 'mysql://root@127.0.0.1:3306/test'
const PREFIX = `bench:${process.pid}:`
const TABLE = `bench_${process.pid}`
const sqliteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-bench-'))
// Every run makes it, only SQLite's cleanup used to remove it: runs without SQLite left it behind.
process.once('exit', () => fs.rmSync(sqliteDir, { recursive: true, force: true }))
const SQLITE_FILE = path.join(sqliteDir, 'bench.sqlite')
let mongoServer = null

const backends = {
  redis: {
    contenders: {
      async ferrosession () {
        const store = new ferro.RedisStore({ url: REDIS_URL, prefix: PREFIX })
        await store.ready()
        return { store, close: () => store.close() }
      },
      async 'connect-redis 10 + redis 6' () {
        const { RedisStore } = require('connect-redis')
        const { createClient } = require('redis')
        const client = await createClient({ url: REDIS_URL }).connect()
        return { store: new RedisStore({ client, prefix: PREFIX }), close: () => client.quit() }
      },
      async 'connect-redis 8.1 + ioredis 6' () {
        const { RedisStore } = require('connect-redis8')
        const Redis = require('ioredis')
        const client = new Redis(REDIS_URL)
        await client.ping()
        return { store: new RedisStore({ client, prefix: PREFIX }), close: () => client.quit() }
      }
    },
    async serverCpu () {
      const { redisCpuUs } = require('./server-cpu')
      const { createClient } = require('redis')
      const client = await createClient({ url: REDIS_URL }).connect()
      return { read: () => redisCpuUs(client), close: () => client.quit() }
    },
    async cleanup () {
      const store = new ferro.RedisStore({ url: REDIS_URL, prefix: PREFIX })
      await store.clear()
      await store.close()
    }
  },

  postgres: {
    contenders: {
      async ferrosession () {
        const store = new ferro.PostgresStore({ conString: DATABASE_URL, tableName: TABLE, createTableIfMissing: true, pruneSessionInterval: false, poolSize: 10 })
        await store.ready()
        return { store, close: () => store.close() }
      },
      async 'connect-pg-simple 10 + pg Pool(10)' () {
        const PgStore = require('connect-pg-simple')(session)
        const pg = require('pg')
        const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 })
        const store = new PgStore({ pool, tableName: TABLE, pruneSessionInterval: false })
        return { store, close: () => store.close().then(() => pool.end()) }
      }
    },
    async serverCpu () {
      const { postgresCpuUs } = require('./server-cpu')
      return { read: async () => postgresCpuUs(), close: async () => {} }
    },
    async cleanup () {
      const pg = require('pg')
      const client = new pg.Client({ connectionString: DATABASE_URL })
      await client.connect()
      await client.query(`DROP TABLE IF EXISTS "${TABLE}"`)
      await client.end()
    }
  },

  mysql: {
    contenders: {
      async ferrosession () {
        const store = new ferro.MySqlStore({ url: MYSQL_URL, schema: { tableName: TABLE }, clearExpired: false, poolSize: 10 })
        await store.onReady()
        return { store, close: () => store.close() }
      },
      async 'express-mysql-session 3 + mysql2 pool(10)' () {
        const MySQLStore = require('express-mysql-session')(session)
        const pool = require('mysql2').createPool({ uri: MYSQL_URL, connectionLimit: 10 })
        const store = new MySQLStore({ schema: { tableName: TABLE }, clearExpired: false }, pool)
        await store.onReady()
        return { store, close: () => store.close().then(() => pool.promise().end()) }
      }
    },
    async serverCpu () {
      const { mysqlCpuUs } = require('./server-cpu')
      return { read: async () => mysqlCpuUs(), close: async () => {} }
    },
    cleanup: () => dropMysqlTable(TABLE)
  },

  knex_postgres: {
    contenders: {
      async ferrosession () {
        const store = new ferro.PostgresStore({ conString: DATABASE_URL, tableName: `${TABLE}_knex`, layout: 'knex', cleanupInterval: 0, poolSize: 10 })
        await store.ready()
        return { store, close: () => store.close() }
      },
      async 'connect-session-knex 5 + knex pg pool(10)' () {
        const { ConnectSessionKnexStore } = require('connect-session-knex')
        const knex = require('knex')({ client: 'pg', connection: DATABASE_URL, pool: { min: 0, max: 10 } })
        const store = new ConnectSessionKnexStore({ knex, tableName: `${TABLE}_knex`, cleanupInterval: 0 })
        await store.ready
        return { store, close: () => knex.destroy() }
      }
    },
    async serverCpu () {
      const { postgresCpuUs } = require('./server-cpu')
      return { read: async () => postgresCpuUs(), close: async () => {} }
    },
    async cleanup () {
      const pg = require('pg')
      const client = new pg.Client({ connectionString: DATABASE_URL })
      await client.connect()
      await client.query(`DROP TABLE IF EXISTS "${TABLE}_knex"`)
      await client.end()
    }
  },

  knex_mysql: {
    contenders: {
      async ferrosession () {
        const store = new ferro.MySqlStore({ url: MYSQL_URL, layout: 'knex', tableName: `${TABLE}_knex`, cleanupInterval: 0, poolSize: 10 })
        await store.ready()
        return { store, close: () => store.close() }
      },
      async 'connect-session-knex 5 + knex mysql2 pool(10)' () {
        const { ConnectSessionKnexStore } = require('connect-session-knex')
        const knex = require('knex')({ client: 'mysql2', connection: MYSQL_URL, pool: { min: 0, max: 10 } })
        const store = new ConnectSessionKnexStore({ knex, tableName: `${TABLE}_knex`, cleanupInterval: 0 })
        await store.ready
        return { store, close: () => knex.destroy() }
      }
    },
    async serverCpu () {
      const { mysqlCpuUs } = require('./server-cpu')
      return { read: async () => mysqlCpuUs(), close: async () => {} }
    },
    cleanup: () => dropMysqlTable(`${TABLE}_knex`)
  },

  sqlite: {
    contenders: {
      async ferrosession () {
        const store = new ferro.SqliteStore({ path: SQLITE_FILE, cleanupInterval: 0 })
        await store.ready()
        return { store, close: () => store.close() }
      },
      async 'connect-session-knex 5 + better-sqlite3' () {
        const { ConnectSessionKnexStore } = require('connect-session-knex')
        const knex = require('knex')({ client: 'better-sqlite3', connection: { filename: SQLITE_FILE }, useNullAsDefault: true })
        const store = new ConnectSessionKnexStore({ knex, cleanupInterval: 0 })
        await store.ready
        return { store, close: () => knex.destroy() }
      }
    },
    async cleanup () {
      fs.rmSync(sqliteDir, { recursive: true, force: true })
    }
  },

  mongodb: {
    // SecantusDB (scripts/mongo-server.js), started for this backend and stopped after it: a
    // Python server, much slower than mongod, so its ratios show client-side cost under a slow
    // server rather than what a real MongoDB deployment would reach.
    // With 10,000 sessions of 2 KB its gets at 64 in flight found no answer within 3 s; with
    // 500 it answers within the bench's timings.
    seeded: 500,
    async start () {
      mongoServer = await require('../../scripts/mongo-server').startMongoServer()
      // A run that fails half-way must not leave the server behind.
      process.once('exit', () => { try { if (mongoServer) process.kill(mongoServer.pid, 'SIGKILL') } catch { /* already gone */ } })
    },
    contenders: {
      async ferrosession () {
        const store = new ferro.MongoStore({ mongoUrl: mongoServer.url, dbName: 'bench', collectionName: TABLE })
        await store.ready()
        return { store, close: () => store.close() }
      },
      async 'connect-mongo 6 + mongodb 7' () {
        const { MongoStore } = require('connect-mongo')
        // Ours made the TTL index already; SecantusDB refuses connect-mongo's identical one
        // because it adds `background: true` (mongod ignores that option), so it skips creating it.
        const store = MongoStore.create({ mongoUrl: mongoServer.url, dbName: 'bench', collectionName: TABLE, autoRemove: 'disabled' })
        return { store, close: () => store.close() }
      }
    },
    async serverCpu () {
      const { pidCpuUs } = require('./server-cpu')
      return { read: async () => pidCpuUs(mongoServer.pid), close: async () => {} }
    },
    async cleanup () {
      await mongoServer.stop()
      mongoServer = null
    }
  },

  memory: {
    // In-process stores keep nothing in common: each is seeded on its own.
    separateData: true,
    contenders: {
      async ferrosession () {
        const store = new ferro.MemoryStore({ max: 200000 })
        return { store, close: () => store.close() }
      },
      async 'express-session MemoryStore' () {
        return { store: new session.MemoryStore(), close: async () => {} }
      },
      async 'memorystore 1.6' () {
        const MemoryStore = require('memorystore')(session)
        const store = new MemoryStore({ checkPeriod: 0 })
        return { store, close: async () => store.stopInterval() }
      }
    },
    async cleanup () {}
  }
}

async function dropMysqlTable (table) {
  const connection = await require('mysql2/promise').createConnection({ uri: MYSQL_URL })
  await connection.query(`DROP TABLE IF EXISTS \`${table}\``)
  await connection.end()
}

module.exports = { backends }
