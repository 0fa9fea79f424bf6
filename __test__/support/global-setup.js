'use strict'
// Before any suite: the MongoDB-wire-compatible server the MongoStore suites use, started on a
// free loopback port (MONGO_URL is handed to the workers). A MONGO_URL already set is used as it
// is. Failing to start it fails the run: a backend test must not pass without its server.

const { startMongoServer } = require('../../scripts/mongo-server')

module.exports = async function globalSetup () {
  if (process.env.MONGO_URL) return
  const server = await startMongoServer()
  globalThis.__ferrosessionMongo = server
  process.env.MONGO_URL = server.url
}
