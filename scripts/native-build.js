'use strict'
// What npm's install hook (scripts/install.js) and `npm pack` (scripts/prebuild.js) share: where
// the addon for this platform lives, whether it loads, and how cargo builds it.

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
/** Kept in step with `rust-version` in Cargo.toml (edition 2024 and our dependencies need it). */
const MIN_RUST = '1.88'

/** True when napi-rs's loader (binding.js) finds an addon for this platform that loads. */
function loads () {
  try {
    require(path.join(root, 'binding.js'))
    return true
  } catch {
    return false
  }
}

/** The file name napi-rs's loader looks for in the package root on this platform. */
function addonName () {
  const { platform, arch } = process
  if (platform === 'linux') {
    const musl = !process.report.getReport().header.glibcVersionRuntime
    return `ferrosession.linux-${arch}-${musl ? 'musl' : 'gnu'}.node`
  }
  if (platform === 'win32') return `ferrosession.win32-${arch}-msvc.node`
  return `ferrosession.${platform}-${arch}.node`
}

function libraryName () {
  if (process.platform === 'win32') return 'ferrosession.dll'
  if (process.platform === 'darwin') return 'libferrosession.dylib'
  return 'libferrosession.so'
}

/** The installed cargo's version as [major, minor], or null when there is no cargo. */
function cargoVersion () {
  const probe = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
  if (probe.status !== 0 || !probe.stdout) return null
  const m = probe.stdout.match(/(\d+)\.(\d+)\./)
  return m ? [Number(m[1]), Number(m[2])] : null
}

function tooOld ([major, minor]) {
  const [wantMajor, wantMinor] = MIN_RUST.split('.').map(Number)
  return major < wantMajor || (major === wantMajor && minor < wantMinor)
}

/** Why cargo cannot build us here, in words that say what to do; null when it can. */
function toolchainProblem () {
  const version = cargoVersion()
  // Debian 12's `apt-get install cargo` is Rust 1.63: never suggest it.
  const rustup = 'Install Rust with rustup (https://rustup.rs: `curl https://sh.rustup.rs -sSf | sh`), ' +
    'open a new shell, and run npm install again.'
  if (!version) return `cargo was not found. ferrosession needs Rust ${MIN_RUST} or newer. ${rustup}`
  if (tooOld(version)) {
    return `cargo ${version.join('.')} is too old: ferrosession needs Rust ${MIN_RUST} or newer. ` +
      `${rustup} (\`rustup update\` if rustup is already installed.)`
  }
  return null
}

/**
 * `cargo build --release`, then the library copied to the name the loader looks for. Returns the
 * build's duration in ms; throws with cargo's exit status when it fails.
 */
function buildAddon ({ quiet = false } = {}) {
  const started = Date.now()
  const locked = fs.existsSync(path.join(root, 'Cargo.lock')) ? ['--locked'] : []
  const typeDefs = bindingSources()
  const env = typeDefs ? { ...process.env, NAPI_TYPE_DEF_TMP_FOLDER: typeDefs.dir } : process.env
  const stopHeartbeat = quiet ? () => {} : heartbeat(started)
  const build = spawnSync('cargo', ['build', '--release', ...locked, ...(quiet ? ['--quiet'] : [])], { cwd: root, stdio: 'inherit', env })
  stopHeartbeat()
  if (build.status !== 0) {
    const err = new Error(`cargo build failed (exit ${build.status})`)
    err.status = build.status || 1
    throw err
  }
  if (typeDefs) {
    const written = spawnSync(process.execPath, [path.join(__dirname, 'write-binding.js'), typeDefs.dir], { cwd: root, stdio: 'inherit' })
    if (written.status !== 0) throw Object.assign(new Error('writing binding.js and binding.d.ts failed'), { status: 1 })
  }
  // Copy beside it, then rename: overwriting the file in place would change the code under any
  // process that has the old addon loaded (this one, after loads()), which then crashes.
  const addon = path.join(root, addonName())
  fs.copyFileSync(path.join(targetDir(), 'release', libraryName()), `${addon}.tmp`)
  fs.renameSync(`${addon}.tmp`, addon)
  return Date.now() - started
}

/**
 * A line a minute while cargo works: its last step, compiling and linking ferrosession itself,
 * prints nothing for two minutes or more, and a first build should never look stuck. A separate
 * process, because spawnSync blocks this one; it stops when told to or when this process is gone.
 */
function heartbeat (started) {
  const code = `setInterval(() => {
    try { process.kill(${process.pid}, 0) } catch { process.exit(0) }
    const min = Math.round((Date.now() - ${started}) / 60000)
    console.error('ferrosession: still building the addon (' + min + ' min so far; cargo compiles about 300 crates, then ferrosession itself, which takes about 4 minutes alone on 2 cores)')
  }, 60000)`
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'inherit'] })
  return () => child.kill()
}

/**
 * In a checkout with the dev dependencies (not an installed package), every build regenerates
 * binding.js and binding.d.ts: napi-derive records each export's type while the crate compiles,
 * into a folder under the target directory. A fixed folder keeps cargo's fingerprint stable; when
 * the record is missing (a target directory built before), the crate is made to compile again.
 */
function bindingSources () {
  if (root.split(path.sep).includes('node_modules')) return null
  try {
    require.resolve('@napi-rs/cli', { paths: [root] })
  } catch {
    return null
  }
  const dir = path.join(targetDir(), 'napi-type-defs')
  fs.mkdirSync(dir, { recursive: true })
  if (!fs.existsSync(path.join(dir, 'ferrosession'))) {
    const now = new Date()
    fs.utimesSync(path.join(root, 'src', 'lib.rs'), now, now)
  }
  return { dir }
}

function targetDir () {
  return process.env.CARGO_TARGET_DIR || path.join(root, 'target')
}

module.exports = { root, MIN_RUST, loads, addonName, toolchainProblem, buildAddon, targetDir }
