'use strict'
// Fastify apps use our stores through @fastify/session (with @fastify/cookie): a login that the
// next request sees, sessions that survive an app restart, and a logout that ends the session,
// on every backend, against the real servers. The app runs in a plain Node process
// (support/fastify-scenario.js: Jest's sandbox cannot load @fastify/cookie); these tests check
// what it observed.

const path = require('node:path')
const { spawn } = require('node:child_process')
const { backends } = require('./support/backends')

function runScenario (name) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'support', 'fastify-scenario.js'), name], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { err += d })
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`the Fastify app on ${name} failed (exit ${code}):\n${err}`))
      const lines = out.trim().split('\n')
      resolve(JSON.parse(lines[lines.length - 1]))
    })
  })
}

for (const backend of Object.values(backends)) {
  describe(`${backend.name} store under @fastify/session`, () => {
    let seen
    beforeAll(async () => { seen = await runScenario(backend.name) }, 60000)

    test('a login is stored and the next request reads it; other clients see nothing', () => {
      expect(seen.login).toEqual({
        status: 200,
        hasCookie: true,
        storedUser: 'zoë',
        me: { user: 'zoë', views: 1 },
        storedViews: 1,
        anonymous: { user: null, views: 0 }
      })
    })

    // The memory store lives in the process: a restart loses it, by design.
    const survives = backend.reopen ? test : test.skip
    survives('sessions survive an app restart (a new app and a new store on the same data)', () => {
      expect(seen.restart).toEqual({ me: { user: 'zoë', views: 1 } })
    })

    test('logout removes the session from the store; its cookie no longer opens it', () => {
      expect(seen.logout).toEqual({ storedBefore: true, status: 200, storedAfter: null, me: { user: null, views: 0 } })
    })
  })
}
