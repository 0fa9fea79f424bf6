'use strict'
// index.d.ts must describe what an app writes: compile a typical usage under --strict.

const { execFileSync } = require('node:child_process')
const path = require('node:path')

test('the public types compile for typical app code', () => {
  const tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc')
  const fixture = path.join(__dirname, 'fixtures', 'usage.ts')
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--esModuleInterop', '--module', 'nodenext',
      '--moduleResolution', 'nodenext', '--skipLibCheck', fixture], { stdio: 'pipe' })
  } catch (err) {
    throw new Error(`tsc rejected the fixture:\n${err.stdout}`)
  }
}, 30000)
