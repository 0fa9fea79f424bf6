'use strict'
// The shipped declarations must compile, with nothing skipped: index.d.ts as an app uses it, and
// binding.d.ts (generated from the Rust exports) on its own.

const { execFileSync } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')
const tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc')

function compile (args) {
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', ...args], { cwd: root, stdio: 'pipe' })
  } catch (err) {
    throw new Error(`tsc rejected it:\n${err.stdout}`)
  }
}

test('the public types compile for typical app code', () => {
  compile(['--esModuleInterop', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck',
    path.join(__dirname, 'fixtures', 'usage.ts')])
}, 30000)

test('the shipped declaration files type-check themselves (no skipLibCheck)', () => {
  compile(['--types', 'node', 'binding.d.ts', 'index.d.ts'])
}, 30000)
