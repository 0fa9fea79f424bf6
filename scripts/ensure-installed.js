'use strict'
// First step of `npm run demo` (`ensure-installed.js demo`) and `npm test`: on a fresh clone (or
// after a pull that changed the lockfile) it installs what that command needs, which builds the
// addon; after Rust sources changed it rebuilds the addon, so the demo and the Jest suites never
// run an old one. The demo needs only the package's own dependencies and Express (examples/
// package.json: about 70 packages), not the test suite's 880. Uses only Node's own modules: it
// runs before anything is installed. Does nothing, quickly, when all is up to date.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { root, addonName, loads, toolchainProblem, buildAddon } = require('./native-build')
const nodeFloor = require('./node-floor')

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

const forDemo = process.argv[2] === 'demo'
const floorProblem = nodeFloor.problem()
if (floorProblem) fail(floorProblem.replace(/^ferrosession /, ''))

/** Installed in this checkout's node_modules (not one found in a parent or global folder). */
function installed (name, dir = root) {
  return fs.existsSync(path.join(dir, 'node_modules', name, 'package.json'))
}

/** `npm <args>` in `cwd`, its output and its install scripts' (cargo's progress) shown as they run. */
function npm (args, cwd, what) {
  const run = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--foreground-scripts'], { cwd, stdio: 'inherit' })
  if (run.status !== 0) fail(`${what} failed (exit ${run.status}); see its output above`)
}

const { dependencies } = require('../package.json')
const lockChanged = mtime(path.join(root, 'node_modules', '.package-lock.json')) < mtime(path.join(root, 'package-lock.json'))
const { devDependencies } = require('../package.json')
// Any development dependency there means an install that included them: the demo must not then
// install with --omit=dev, which would remove them.
const anyDevDependency = Object.keys(devDependencies).some((name) => installed(name))
const hasDevDependencies = Object.keys(devDependencies).every((name) => installed(name))
const hasDependencies = Object.keys(dependencies).every((name) => installed(name))
// The demo installs without the development dependencies, unless they are there already (an
// install that omits them would remove them).
const omitDev = forDemo && !anyDevDependency
if (lockChanged || !hasDependencies || (!forDemo && !hasDevDependencies)) {
  if (!loads()) {
    const problem = toolchainProblem()
    if (problem) fail(`the dependencies are not installed yet, and the addon is built from source here, but ${problem}`)
  }
  console.error(`ferrosession: installing ${omitDev ? 'what the demo needs (the package\'s dependencies; the addon is built with cargo: 7-8 minutes on 2 cores the first time, cargo prints each step)' : 'the dependencies (npm install; it builds the addon with cargo: 7-8 minutes on 2 cores the first time)'}`)
  npm(['install', ...(omitDev ? ['--omit=dev'] : [])], root, 'npm install')
}
const examples = path.join(root, 'examples')
if (forDemo && !installed('express', examples) && !installed('express')) {
  console.error('ferrosession: installing Express for the demo (examples/package.json)')
  npm(['ci'], examples, 'npm ci in examples/')
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
