'use strict'
// npm's install hook: builds the native addon from source when no binary for this platform
// loads yet. It needs only cargo (no @napi-rs/cli), so a tarball installs in any app on a
// machine with a Rust toolchain. FERROSESSION_REBUILD=1 forces a build.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')

function loads () {
  try {
    require(path.join(root, 'binding.js'))
    return true
  } catch {
    return false
  }
}

/** The file name napi-rs's loader (binding.js) looks for on this platform. */
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

if (process.env.FERROSESSION_REBUILD !== '1' && loads()) process.exit(0)

if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
  console.error('ferrosession: no prebuilt addon for this platform, and cargo was not found.\n' +
    'Install a Rust toolchain (https://rustup.rs, or `apt-get install cargo`) and run npm install again.')
  process.exit(1)
}

console.error('ferrosession: building the native addon with cargo (a few minutes the first time)...')
const locked = fs.existsSync(path.join(root, 'Cargo.lock')) ? ['--locked'] : []
const build = spawnSync('cargo', ['build', '--release', ...locked], { cwd: root, stdio: 'inherit' })
if (build.status !== 0) process.exit(build.status || 1)

const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target')
fs.copyFileSync(path.join(targetDir, 'release', libraryName()), path.join(root, addonName()))
if (!loads()) {
  console.error('ferrosession: the addon was built but does not load; see the error above.')
  process.exit(1)
}
