'use strict'
// After every suite: stops the server global-setup.js started (by its PID).

module.exports = async function globalTeardown () {
  const server = globalThis.__ferrosessionMongo
  if (server) await server.stop()
}
