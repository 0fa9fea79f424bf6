'use strict'
// npm's install hook. The packed tarball carries the addon built on the platform that packed it
// (see scripts/prebuild.js), so on that platform this finds it loading and does nothing. Anywhere
// else it builds from source with plain cargo (no @napi-rs/cli), says so and how long it took,
// and removes the build folder afterwards so only the .node stays in node_modules.
// FERROSESSION_REBUILD=1 forces a build.

const fs = require('node:fs')
const path = require('node:path')
const { root, loads, addonName, toolchainProblem, buildAddon, targetDir } = require('./native-build')

if (process.env.FERROSESSION_REBUILD !== '1' && loads()) process.exit(0)

const problem = toolchainProblem()
if (problem) {
  console.error(`ferrosession: no prebuilt addon for ${process.platform}-${process.arch}, so it must be built from source, but ${problem}`)
  process.exit(1)
}

// A git checkout keeps its target/ (incremental rebuilds); an installed package does not.
const installedAsDependency = root.split(path.sep).includes('node_modules')
const why = process.env.FERROSESSION_REBUILD === '1' ? 'FERROSESSION_REBUILD=1' : `no prebuilt addon for ${process.platform}-${process.arch}`
console.error(`ferrosession: ${why}: building ${addonName()} from source with cargo (7-8 minutes on 2 cores the first time)...`)
let ms
try {
  ms = buildAddon()
} catch (err) {
  console.error(`ferrosession: ${err.message}; see cargo's output above.`)
  process.exit(err.status || 1)
}
if (!loads()) {
  console.error('ferrosession: the addon was built but does not load; see the error above.')
  process.exit(1)
}
const ownTarget = path.join(root, 'target')
if (installedAsDependency && targetDir() === ownTarget) fs.rmSync(ownTarget, { recursive: true, force: true })
console.error(`ferrosession: built ${addonName()} in ${(ms / 1000).toFixed(0)} s` +
  (installedAsDependency && targetDir() === ownTarget ? ' (build folder removed)' : ''))
