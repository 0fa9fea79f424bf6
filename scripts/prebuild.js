'use strict'
// `npm pack`'s prepack hook: puts this platform's release addon in the package root, where
// napi-rs's loader looks first, so the tarball installs on this platform without building
// anything (and without an install script npm may ask the app to approve). cargo only rebuilds
// when the sources changed since the last release build; a debug build is never packed.

const { addonName, toolchainProblem, buildAddon, loads } = require('./native-build')

const problem = toolchainProblem()
if (problem) {
  console.error(`ferrosession prepack: the tarball carries a prebuilt addon, but ${problem}`)
  process.exit(1)
}
try {
  buildAddon({ quiet: true })
} catch (err) {
  console.error(`ferrosession prepack: ${err.message}`)
  process.exit(err.status || 1)
}
if (!loads()) {
  console.error(`ferrosession prepack: ${addonName()} was built but does not load`)
  process.exit(1)
}
console.error(`ferrosession prepack: packing the prebuilt ${addonName()}`)
