'use strict'
// Whether this Node.js is at least the floor in package.json's `engines` (one floor for users,
// the development dependencies and CI). Exit 1 with a line saying what to do when it is not;
// `--quiet` only sets the exit status. Uses nothing but Node itself: it runs before any install.

const { engines } = require('../package.json')

/** The floor as [major, minor, patch], from ">= 22.20" or ">=22.20.0". */
function floor () {
  const m = /^\s*>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(engines.node)
  if (!m) throw new Error(`package.json engines.node must be ">= <version>", got ${engines.node}`)
  return [Number(m[1]), Number(m[2] || 0), Number(m[3] || 0)]
}

function atLeast (version, wanted) {
  const have = version.replace(/^v/, '').replace(/-.*$/, '').split('.').map(Number) // v22.20.0-pre: 22.20.0
  for (let i = 0; i < 3; i++) if (have[i] !== wanted[i]) return have[i] > wanted[i]
  return true
}

function problem (version = process.version) {
  const wanted = floor()
  if (atLeast(version, wanted)) return null
  return `ferrosession needs Node.js ${wanted.slice(0, 2).join('.')} or newer; this is ${version}. ` +
    'Install a current Node.js (https://nodejs.org, or `nvm install 22`) and run the command again.'
}

if (require.main === module) {
  const why = problem()
  if (why && !process.argv.includes('--quiet')) console.error(why)
  process.exitCode = why ? 1 : 0
}

module.exports = { problem, floor }
