'use strict'
// Fails loudly when a server the test suite needs does not answer: a backend test must never
// pass, or be skipped, because its server is missing.

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const MYSQL_URL = process.env.MYSQL_URL || 'mysql://root@127.0.0.1:3306/test'

async function redis () {
  const { createClient } = require('redis')
  const client = createClient({ url: REDIS_URL, socket: { connectTimeout: 3000, reconnectStrategy: false } })
  client.on('error', () => {})
  await client.connect()
  const pong = await client.ping()
  await client.quit()
  if (pong !== 'PONG') throw new Error(`PING answered ${pong}`)
}

async function postgres () {
  const { Client } = require('pg')
  const client = new Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 })
  await client.connect()
  await client.query('SELECT 1')
  await client.end()
}

async function mariadb () {
  const mysql = require('mysql2/promise')
  const connection = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 3000 })
  await connection.query('SELECT 1')
  await connection.end()
}

async function main () {
  let failed = false
  for (const [name, url, check] of [['Redis', REDIS_URL, redis], ['PostgreSQL', DATABASE_URL, postgres], ['MariaDB', MYSQL_URL, mariadb]]) {
    try {
      await check()
      console.log(`services: ${name} at ${url} answers`)
    } catch (err) {
      failed = true
      console.error(`services: ${name} at ${url} is UNREACHABLE: ${err.message}`)
    }
  }
  if (failed) {
    console.error('services: the test suite needs these servers; start them (see README "Running the tests") and retry.')
    process.exit(1)
  }
}

main()
