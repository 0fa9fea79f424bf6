'use strict'
// First step of `npm run demo` and `npm test`: on a fresh clone (or after a pull that changed the
// lockfile) it installs the dependencies, which builds the addon; after Rust sources changed it
// rebuilds the addon, so the demo and the Jest suites never run an old one. Uses only Node's own
// modules: it runs before anything is installed. Does nothing, quickly, when all is up to date.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { root, addonName, loads, toolchainProblem, buildAddon } = require('./native-build')

function mtime (file) {
  try {
    return fs.statSync(file).mtimeMs
  } catch {
    return 0
  }
}

/** The newest modification time among the files cargo builds the addon from. */
function newestSource () {
  let newest = Math.max(mtime(path.join(root, 'Cargo.toml')), mtime(path.join(root, 'Cargo.lock')), mtime(path.join(root, 'build.rs')))
  for (const entry of fs.readdirSync(path.join(root, 'src'), { recursive: true })) newest = Math.max(newest, mtime(path.join(root, 'src', entry)))
  return newest
}

function fail (message) {
  console.error(`ferrosession: ${message}`)
  process.exit(1)
}

const installed = path.join(root, 'node_modules', '.package-lock.json')
if (mtime(installed) < mtime(path.join(root, 'package-lock.json'))) {
  const problem = toolchainProblem()
  if (problem) fail(`the dependencies are not installed yet, and the addon is built from source here, but ${problem}`)
  console.error('ferrosession: installing the dependencies first (npm install; it builds the addon: 4-7 minutes on 2 cores the first time)')
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' })
  if (npm.status !== 0) fail(`npm install failed (exit ${npm.status}); see its output above`)
}
// Also after an install: its build step keeps an addon that loads, even an old one.
if (!loads() || mtime(path.join(root, addonName())) < newestSource()) {
  const problem = toolchainProblem()
  if (problem) fail(`the addon must be (re)built from the Rust sources, but ${problem}`)
  console.error(`ferrosession: the Rust sources are newer than ${addonName()}: rebuilding it`)
  try {
    buildAddon()
  } catch (err) {
    fail(`${err.message}; see cargo's output above`)
  }
}
