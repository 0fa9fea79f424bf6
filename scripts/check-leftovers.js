'use strict'
// Runs after the test suites (`npm test`): a test run must leave nothing behind. Fails, naming
// what it found, if anything a test made is still there: on each service of scripts/services.js
// (Redis keys, PostgreSQL schemas or tables, MariaDB databases), temporary directories, SQLite
// files.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { SERVICES } = require('./services')

const root = path.join(__dirname, '..')

/** Names of what the suites create, by the prefixes they use. */
const TEMP_DIRS = /^(ferrotest-|ferro-redis-|ferro-pg-|ferro-pack-|ferro-mysql-|ferro-mongo-)/

function tempDirs () {
  return fs.readdirSync(os.tmpdir()).filter((name) => TEMP_DIRS.test(name))
}

function sqliteFiles () {
  return fs.readdirSync(root).filter((name) => name.endsWith('.sqlite') || name.includes('.sqlite-'))
}

async function main () {
  const found = {}
  for (const service of SERVICES) found[service.leftoversAre] = await service.leftovers(service.url)
  found[`temporary directories in ${os.tmpdir()}`] = tempDirs()
  found['SQLite files in the repository'] = sqliteFiles()
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
  console.log(`leftovers: none (${SERVICES.map((s) => s.name).join(', ')}, temporary directories, SQLite files)`)
}

main().catch((err) => {
  console.error('leftovers: the check itself failed:', err.message)
  process.exit(1)
})
