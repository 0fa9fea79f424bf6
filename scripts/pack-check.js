'use strict'
// Proves the published shape works: `npm pack` (whose prepack puts this platform's prebuilt addon
// in the tarball), then a brand-new Express app installs the tarball with no cargo on its PATH
// (so nothing can be built) and serves a request that creates a session in Redis and a second
// request that reads it back. Reports the install time and the installed package's size. Last,
// the from-source path other platforms take: the tarball must carry the whole crate, and with
// FERROSESSION_PACK_FROM_SOURCE=1 a forced rebuild of the installed copy must work and say so.

const { execFileSync, spawn, spawnSync } = require('node:child_process')
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

/** PATH without any directory that holds cargo: an install that tried to build would fail. */
function pathWithoutCargo () {
  return process.env.PATH.split(path.delimiter).filter((dir) => !fs.existsSync(path.join(dir, 'cargo'))).join(path.delimiter)
}

/** Bytes under `dir`, as `du` counts files (symlinks not followed). */
function sizeOf (dir) {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).size
  }
  return total
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`

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
    const { addonName } = require('./native-build')
    const listing = run('tar', ['-tzf', tarball], scratch).split('\n')
    if (!listing.includes(`package/${addonName()}`)) throw new Error(`the tarball does not carry the prebuilt ${addonName()}`)
    console.log(`pack-check: packed ${path.basename(tarball)} (${mb(fs.statSync(tarball).size)}, with the prebuilt ${addonName()})`)
    fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true }))
    fs.writeFileSync(path.join(scratch, 'app.js'), APP)
    run('npm', ['install', '--no-audit', '--no-fund', 'express@5', 'express-session@1'], scratch)
    // No cargo on the PATH: on the platform that packed it, installing must build nothing.
    const started = Date.now()
    run('npm', ['install', '--no-audit', '--no-fund', tarball], scratch, { PATH: pathWithoutCargo() })
    const installSeconds = (Date.now() - started) / 1000
    const installed = path.join(scratch, 'node_modules', 'ferrosession')
    if (fs.existsSync(path.join(installed, 'target'))) throw new Error('the installed package holds a target/ folder')
    console.log(`pack-check: installed the tarball into a new app in ${installSeconds.toFixed(1)} s without cargo; ` +
      `node_modules/ferrosession is ${mb(sizeOf(installed))}`)

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

    run('npm', ['uninstall', '--no-audit', '--no-fund', 'express-session'], scratch, { PATH: pathWithoutCargo() })
    if (fs.existsSync(path.join(scratch, 'node_modules', 'express-session'))) throw new Error('express-session is still installed')
    fs.writeFileSync(path.join(scratch, 'own-middleware.js'), APP_WITHOUT_EXPRESS_SESSION)
    const second = startApp(scratch, 'own-middleware.js', {})
    app = second.app
    await loginThenRead(await second.port)
    console.log('pack-check: ferrosession\'s session() and MemoryStore work with express-session uninstalled')
    app.kill()
    app = null

    // Other platforms build from source, from the tarball's copy of the crate: it must hold every
    // file cargo reads. CI has just built this checkout from source through the same install
    // script (npm ci), so by default the crate is not compiled a second time here;
    // FERROSESSION_PACK_FROM_SOURCE=1 also rebuilds the installed copy, as another platform would.
    const crateFiles = ['Cargo.toml', 'Cargo.lock', 'build.rs', ...run('git', ['ls-files', 'src'], root).trim().split('\n')]
    const missing = crateFiles.filter((file) => !listing.includes(`package/${file}`))
    if (missing.length) throw new Error(`the tarball lacks what cargo needs to build from source: ${missing.join(', ')}`)
    console.log(`pack-check: the tarball carries the whole crate (${crateFiles.length} files) for platforms that build from source`)
    if (process.env.FERROSESSION_PACK_FROM_SOURCE === '1') await rebuildInstalled(scratch, installed)
    console.log('pack-check: passed')
  } finally {
    if (app) app.kill()
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

/** The from-source path, forced in the installed package: it must build, say so, and work. */
async function rebuildInstalled (scratch, installed) {
  // This checkout's compiled dependencies are reused (CARGO_TARGET_DIR): only the crate builds.
  const env = { FERROSESSION_REBUILD: '1', CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(root, 'target') }
  const rebuild = spawnSync(process.execPath, [path.join(installed, 'scripts', 'install.js')], { cwd: installed, env: { ...process.env, ...env }, encoding: 'utf8' })
  const said = rebuild.stderr.split('\n').filter((line) => line.startsWith('ferrosession:'))
  if (rebuild.status !== 0) throw new Error(`the from-source build failed:\n${rebuild.stderr}`)
  if (!said.some((line) => line.includes('building') && line.includes('from source')) || !said.some((line) => /built .* in \d+ s/.test(line))) {
    throw new Error(`the from-source build did not say what it did:\n${said.join('\n')}`)
  }
  const { app, port } = startApp(scratch, 'own-middleware.js', {})
  try {
    await loginThenRead(await port)
  } finally {
    app.kill()
  }
  console.log(`pack-check: the from-source path works and says so: ${said.join(' / ')}`)
}

main().catch((err) => {
  console.error('pack-check: FAILED:', err.message)
  process.exit(1)
})
