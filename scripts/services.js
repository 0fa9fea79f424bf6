'use strict'
// The one table of the servers the test suite needs running beforehand (the MongoDB-compatible
// server, clusters, sentinels and TLS servers are started by the tests themselves): where each
// is (its environment variable, or the default), which backends' tests use it, how to check that
// it answers, and what a test run could leave on it. scripts/check-services.js,
// scripts/check-leftovers.js and the tests' support code read it.

const SERVICES = [
  {
    name: 'Redis',
    env: 'REDIS_URL',
    url: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
    backends: ['redis'],
    async check (url) {
      const { createClient } = require('redis')
      const client = createClient({ url, socket: { connectTimeout: 3000, reconnectStrategy: false } })
      client.on('error', () => {})
      await client.connect()
      const pong = await client.ping()
      await client.quit()
      if (pong !== 'PONG') throw new Error(`PING answered ${pong}`)
    },
    leftoversAre: 'Redis keys ferrotest:*',
    async leftovers (url) {
      const { createClient } = require('redis')
      const client = await createClient({ url }).connect()
      const found = []
      for await (const keys of client.scanIterator({ MATCH: 'ferrotest:*', COUNT: 1000 })) found.push(...keys)
      await client.quit()
      return found
    }
  },
  {
    name: 'PostgreSQL',
    env: 'DATABASE_URL',
    url: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
    backends: ['postgres'],
    async check (url) {
      const { Client } = require('pg')
      const client = new Client({ connectionString: url, connectionTimeoutMillis: 3000 })
      await client.connect()
      await client.query('SELECT 1')
      await client.end()
    },
    leftoversAre: 'PostgreSQL schemas/tables ferrotest*',
    async leftovers (url) {
      const { Client } = require('pg')
      const client = new Client({ connectionString: url })
      await client.connect()
      const schemas = await client.query("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE 'ferrotest%'")
      const tables = await client.query("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'ferrotest%'")
      await client.end()
      return [...schemas.rows, ...tables.rows].map((r) => r.name)
    }
  },
  {
    name: 'MariaDB',
    env: 'MYSQL_URL',
    url: process.env.MYSQL_URL || 'mysql://root@127.0.0.1:3306/test',
    backends: ['mysql'],
    async check (url) {
      const mysql = require('mysql2/promise')
      const connection = await mysql.createConnection({ uri: url, connectTimeout: 3000 })
      await connection.query('SELECT 1')
      await connection.end()
    },
    leftoversAre: 'MariaDB databases/tables ferrotest*',
    async leftovers (url) {
      const mysql = require('mysql2/promise')
      const connection = await mysql.createConnection({ uri: url })
      const [databases] = await connection.query("SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE 'ferrotest%'")
      const [tables] = await connection.query("SELECT CONCAT(table_schema, '.', table_name) AS name FROM information_schema.tables WHERE table_name LIKE 'ferrotest%'")
      await connection.end()
      return [...databases, ...tables].map((r) => r.name)
    }
  }
]

/** The address of a service by its environment variable's name (`REDIS_URL`...). */
function serviceUrl (env) {
  const service = SERVICES.find((s) => s.env === env)
  if (!service) throw new Error(`no test service is read from ${env}`)
  return service.url
}

module.exports = { SERVICES, serviceUrl }
