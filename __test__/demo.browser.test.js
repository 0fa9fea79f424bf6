'use strict'
// The demo as a person uses it, in headless Chromium: log in, count views, restart the server,
// still logged in with the same count, log out, and the session is gone from the store.
// Needs Debian's chromium (/usr/bin/chromium or CHROMIUM_PATH). Without it this prints one
// "skipped: needs chromium" line; with FERROSESSION_REQUIRE_BROWSER=1 (set by .ci/run) it fails.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { SqliteStore } = require('..')
const { closedPort } = require('./support/backends')
const { waitForPort } = require('./support/servers')

const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const haveChromium = fs.existsSync(chromiumPath)
if (!haveChromium) {
  if (process.env.FERROSESSION_REQUIRE_BROWSER === '1') throw new Error(`chromium is required here but ${chromiumPath} does not exist`)
  console.log('skipped: needs chromium (apt-get install chromium) for the demo browser test')
}
const browserTest = haveChromium ? test : test.skip

let dir = null // made only when the test runs
let port, demo, browser

async function startDemo () {
  demo = spawn(process.execPath, [path.join(__dirname, '..', 'examples', 'demo.js')], {
    cwd: dir, // the demo keeps sessions.sqlite in its working directory
    env: { ...process.env, PORT: String(port), SESSION_STORE_URL: '' },
    stdio: 'ignore'
  })
  await waitForPort(port)
}

function stopDemo () {
  return new Promise((resolve) => {
    demo.once('exit', resolve)
    demo.kill('SIGTERM')
  })
}

beforeAll(async () => {
  if (!haveChromium) return
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrotest-demo-'))
  port = await closedPort()
  await startDemo()
  const { chromium } = require('playwright-core')
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync']
  })
}, 30000)

afterAll(async () => {
  if (browser) await browser.close()
  if (demo && demo.exitCode === null) await stopDemo()
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

browserTest('log in, count views, survive a restart, log out', async () => {
  const page = await (await browser.newContext()).newPage()
  const base = `http://127.0.0.1:${port}`
  await page.goto(base)
  await page.fill('input[name=name]', 'Zoë')
  await page.click('button[type=submit]')
  expect(await page.textContent('#user')).toBe('Zoë')
  expect(await page.textContent('#views')).toBe('1')
  await page.reload()
  expect(await page.textContent('#views')).toBe('2')

  const [cookie] = await page.context().cookies()
  expect(cookie).toMatchObject({ name: 'connect.sid', httpOnly: true, sameSite: 'Lax' })

  await page.goto(`${base}/session`)
  const sid = await page.textContent('#sid')
  expect(JSON.parse(await page.textContent('#stored')).views).toBe(2)

  await stopDemo()
  await startDemo()
  await page.goto(base)
  expect(await page.textContent('#user')).toBe('Zoë')
  expect(await page.textContent('#views')).toBe('3')

  await page.click('text=Log out')
  await page.waitForSelector('input[name=name]')
  expect(await page.context().cookies()).toEqual([]) // the browser no longer holds the cookie
  const store = new SqliteStore({ path: path.join(dir, 'sessions.sqlite'), cleanupInterval: 0 })
  expect(await store.get(sid)).toBeNull()
  expect(await store.length()).toBe(0)
  await store.close()
}, 60000)
