'use strict'
// Runs after the test suites (`npm test`): a test run must leave nothing behind. Fails, naming
// what it found, if any test's Redis keys, PostgreSQL schemas or tables, MariaDB databases,
// temporary directories or SQLite files are still there.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const MYSQL_URL = process.env.MYSQL_URL || 'mysql://root@127.0.0.1:3306/test'
const root = path.join(__dirname, '..')

/** Names of what the suites create, by the prefixes they use. */
const TEMP_DIRS = /^(ferrotest-|ferro-redis-|ferro-pg-|ferro-pack-|ferro-mysql-|ferro-mongo-)/

async function redisKeys () {
  const { createClient } = require('redis')
  const client = await createClient({ url: REDIS_URL }).connect()
  const found = []
  for await (const keys of client.scanIterator({ MATCH: 'ferrotest:*', COUNT: 1000 })) found.push(...keys)
  await client.quit()
  return found
}

async function postgresObjects () {
  const { Client } = require('pg')
  const client = new Client({ connectionString: DATABASE_URL })
  await client.connect()
  const schemas = await client.query("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE 'ferrotest%'")
  const tables = await client.query("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'ferrotest%'")
  await client.end()
  return [...schemas.rows, ...tables.rows].map((r) => r.name)
}

async function mysqlObjects () {
  const mysql = require('mysql2/promise')
  const connection = await mysql.createConnection({ uri: MYSQL_URL })
  const [databases] = await connection.query("SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE 'ferrotest%'")
  const [tables] = await connection.query("SELECT CONCAT(table_schema, '.', table_name) AS name FROM information_schema.tables WHERE table_name LIKE 'ferrotest%'")
  await connection.end()
  return [...databases, ...tables].map((r) => r.name)
}

function tempDirs () {
  return fs.readdirSync(os.tmpdir()).filter((name) => TEMP_DIRS.test(name))
}

function sqliteFiles () {
  return fs.readdirSync(root).filter((name) => name.endsWith('.sqlite') || name.includes('.sqlite-'))
}

async function main () {
  const found = {
    'Redis keys ferrotest:*': await redisKeys(),
    'PostgreSQL schemas/tables ferrotest*': await postgresObjects(),
    'MariaDB databases/tables ferrotest*': await mysqlObjects(),
    [`temporary directories in ${os.tmpdir()}`]: tempDirs(),
    'SQLite files in the repository': sqliteFiles()
  }
  let dirty = false
  for (const [what, names] of Object.entries(found)) {
    if (names.length === 0) continue
    dirty = true
    console.error(`leftovers: ${names.length} ${what}: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''}`)
  }
  if (dirty) {
    console.error('leftovers: the test run left the above behind; every suite must clean up after itself.')
    process.exit(1)
  }
  console.log('leftovers: none (Redis, PostgreSQL, MariaDB, temporary directories, SQLite files)')
}

main().catch((err) => {
  console.error('leftovers: the check itself failed:', err.message)
  process.exit(1)
})
