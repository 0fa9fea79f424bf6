'use strict'
// The MongoDB-wire-compatible server the MongoStore's tests run against: SecantusDB, pinned,
// from PyPI, in a virtual environment inside the clone (.mongo-venv, git-ignored). No MongoDB
// server can be installed from Debian's archive; see docs/design.md, "MongoDB".
//   node scripts/mongo-server.js install   # creates the venv if it is missing (about 10 s)

const { execFileSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const { closedPort, waitForPort } = require('./ports')
const path = require('node:path')

const SECANTUS = 'secantusdb==0.7.0b3' // only pre-releases exist: pinned
const root = path.join(__dirname, '..')
const venv = path.join(root, '.mongo-venv')
const python = path.join(venv, 'bin', 'python')

/** Installs the pinned server into .mongo-venv unless it is there; throws, saying why, if it cannot. */
function ensureInstalled ({ quiet = false } = {}) {
  const ok = () => {
    try {
      execFileSync(python, ['-c', 'import secantus'], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }
  if (ok()) return
  if (!quiet) console.log(`mongo-server: installing ${SECANTUS} into ${venv}`)
  try {
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' })
    execFileSync(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', SECANTUS], { stdio: 'inherit' })
  } catch (err) {
    throw new Error(`cannot install ${SECANTUS} (python3 with venv and pip, and access to PyPI, are needed): ${err.message}`)
  }
  if (!ok()) throw new Error(`${SECANTUS} was installed into ${venv} but does not import`)
}

/**
 * Starts a server on `port` (a free one if not given), from a directory of its own (it reads a
 * ./secantusd.toml if there is one). Resolves with `{ port, url, pid, kill(), start(), stop() }`:
 * `kill()` is SIGKILL (its data, in memory, is lost), `start()` launches it again on the same port.
 */
async function startMongoServer ({ port } = {}) {
  ensureInstalled({ quiet: true })
  const chosen = port || await closedPort()
  const cwd = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'ferro-mongo-'))
  let child = null
  let exited = Promise.resolve()
  const running = () => child !== null && child.exitCode === null && child.signalCode === null
  const server = {
    port: chosen,
    url: `mongodb://127.0.0.1:${chosen}/`,
    pid: null,
    async start () {
      if (running()) return
      child = spawn(python, [path.join(__dirname, 'secantus-launch.py'), String(chosen)], { cwd, stdio: 'ignore' })
      server.pid = child.pid
      const current = child
      exited = new Promise((resolve) => current.once('exit', resolve))
      await Promise.race([waitForPort(chosen, 20000), exited.then((code) => { throw new Error(`SecantusDB exited with ${code}`) })])
    },
    async kill () {
      if (running()) child.kill('SIGKILL')
      await exited
    },
    async stop () {
      if (running()) child.kill('SIGTERM')
      const current = child
      const timer = setTimeout(() => current && current.kill('SIGKILL'), 8000)
      await exited
      clearTimeout(timer)
      fs.rmSync(cwd, { recursive: true, force: true })
    }
  }
  try {
    await server.start()
  } catch (err) {
    await server.stop()
    throw err
  }
  return server
}

module.exports = { ensureInstalled, startMongoServer }

if (require.main === module && process.argv[2] === 'install') {
  try {
    ensureInstalled()
    console.log('mongo-server: SecantusDB is installed')
  } catch (err) {
    console.error(`mongo-server: ${err.message}`)
    process.exit(1)
  }
}
