'use strict'
// The demo's own failure a newcomer meets first: the port is taken. It must say so in one line
// and exit non-zero, not print a stack trace or keep running.

const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')

test('a port already in use is one line on stderr and exit code 1', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-demo-port-'))
  const blocker = net.createServer()
  await new Promise((resolve) => blocker.listen(0, resolve))
  const { port } = blocker.address()
  try {
    const demo = spawn(process.execPath, [path.join(__dirname, '..', 'examples', 'demo.js')], {
      cwd: dir,
      env: { ...process.env, PORT: String(port), SESSION_STORE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stderr = ''
    demo.stderr.on('data', (d) => { stderr += d })
    const code = await new Promise((resolve) => demo.once('exit', resolve))
    expect(code).toBe(1)
    expect(stderr.trim().split('\n')).toEqual([
      `ferrosession demo: cannot listen on port ${port}: port ${port} is already in use; stop whatever uses it or pick another one: PORT=3001 npm run demo`
    ])
  } finally {
    blocker.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}, 20000)
