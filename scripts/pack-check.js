'use strict'
// Proves the published shape works: `npm pack`, then a brand-new Express app installs the
// tarball (which builds the addon with cargo), serves a request that creates a session in Redis
// and a second request that reads it back.

const { execFileSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const prefix = `ferrotest:pack:${process.pid}:`

const APP = `
const express = require('express')
const session = require('express-session')
const { RedisStore } = require('ferrosession')
const app = express()
app.use(session({ store: new RedisStore({ url: process.env.REDIS_URL, prefix: process.env.PREFIX }),
  secret: 'pack check', resave: false, saveUninitialized: false }))
app.get('/login', (req, res) => { req.session.user = 'packed'; res.send('ok') })
app.get('/me', (req, res) => res.json({ user: req.session.user || null }))
const server = app.listen(0, '127.0.0.1', () => console.log('PORT=' + server.address().port))
`

// The same app on ferrosession's own middleware and default store, with express-session not
// installed at all: the package's runtime dependencies must be enough.
const APP_WITHOUT_EXPRESS_SESSION = `
const express = require('express')
const { session } = require('ferrosession')
const app = express()
app.use(session({ secret: 'pack check', resave: false, saveUninitialized: false }))
app.get('/login', (req, res) => { req.session.user = 'packed'; res.send('ok') })
app.get('/me', (req, res) => res.json({ user: req.session.user || null }))
const server = app.listen(0, '127.0.0.1', () => console.log('PORT=' + server.address().port))
`

function run (cmd, args, cwd, env = {}) {
  return execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } }).toString()
}

function startApp (scratch, file, env) {
  const app = spawn(process.execPath, [file], { cwd: scratch, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const port = new Promise((resolve, reject) => {
    let out = ''
    app.stdout.on('data', (d) => {
      out += d
      const m = out.match(/PORT=(\d+)/)
      if (m) resolve(Number(m[1]))
    })
    app.once('exit', (code) => reject(new Error(`${file} exited with ${code}`)))
  })
  return { app, port }
}

async function loginThenRead (port) {
  const base = `http://127.0.0.1:${port}`
  const login = await fetch(`${base}/login`)
  const cookie = login.headers.get('set-cookie').split(';')[0]
  const me = await (await fetch(`${base}/me`, { headers: { cookie } })).json()
  if (me.user !== 'packed') throw new Error(`the second request did not see the session: ${JSON.stringify(me)}`)
}

async function main () {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-pack-'))
  let app
  try {
    const tarball = path.join(scratch, run('npm', ['pack', '--silent', '--pack-destination', scratch], root).trim().split('\n').pop())
    console.log(`pack-check: packed ${path.basename(tarball)} (${fs.statSync(tarball).size} bytes)`)
    fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true }))
    fs.writeFileSync(path.join(scratch, 'app.js'), APP)
    // Reuse this checkout's compiled dependencies: only the ferrosession crate itself rebuilds.
    const env = { CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(root, 'target') }
    run('npm', ['install', '--no-audit', '--no-fund', 'express@5', 'express-session@1', tarball], scratch, env)
    console.log('pack-check: installed express, express-session and the tarball into a new app')

    const first = startApp(scratch, 'app.js', { REDIS_URL, PREFIX: prefix })
    app = first.app
    await loginThenRead(await first.port)

    const { createClient } = require('redis')
    const client = await createClient({ url: REDIS_URL }).connect()
    const keys = await client.keys(`${prefix}*`)
    const stored = keys.length === 1 ? JSON.parse(await client.get(keys[0])) : null
    if (keys.length) await client.del(keys)
    await client.quit()
    if (!stored || stored.user !== 'packed') throw new Error(`expected one session in Redis under ${prefix}, found ${keys.length}`)
    console.log(`pack-check: the session was written to Redis as ${keys[0]} and read back over HTTP`)
    app.kill()

    run('npm', ['uninstall', '--no-audit', '--no-fund', 'express-session'], scratch, env)
    if (fs.existsSync(path.join(scratch, 'node_modules', 'express-session'))) throw new Error('express-session is still installed')
    fs.writeFileSync(path.join(scratch, 'own-middleware.js'), APP_WITHOUT_EXPRESS_SESSION)
    const second = startApp(scratch, 'own-middleware.js', {})
    app = second.app
    await loginThenRead(await second.port)
    console.log('pack-check: passed: ferrosession\'s session() and MemoryStore work with express-session uninstalled')
  } finally {
    if (app) app.kill()
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error('pack-check: FAILED:', err.message)
  process.exit(1)
})
