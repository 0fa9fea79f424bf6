'use strict'
// The demo as a person uses it, in headless Chromium: log in, count views, look at the session
// (a shortened id, the expiry in local time), send 20 requests at once and see all 20 changes
// kept, restart the server, still logged in with the same count, log out, and the session is gone
// from the store.
// Needs Debian's chromium (/usr/bin/chromium or CHROMIUM_PATH). Without it this prints one
// "skipped: needs chromium" line; with FERROSESSION_REQUIRE_BROWSER=1 (set by .ci/run) it fails.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { SqliteStore } = require('..')

const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const haveChromium = fs.existsSync(chromiumPath)
if (!haveChromium) {
  if (process.env.FERROSESSION_REQUIRE_BROWSER === '1') throw new Error(`chromium is required here but ${chromiumPath} does not exist`)
  console.log('skipped: needs chromium (apt-get install chromium) for the demo browser test')
}
const browserTest = haveChromium ? test : test.skip

let dir = null // made only when the test runs
let base, demo, browser
let output = '' // what the demo printed, shown when a step fails

/**
 * Starts the demo on a port it picks itself (PORT=0) and resolves with its address, read from the
 * line it prints: no port is chosen here and released for another process to take meanwhile.
 */
function startDemo () {
  demo = spawn(process.execPath, [path.join(__dirname, '..', 'examples', 'demo.js')], {
    cwd: dir, // the demo keeps sessions.sqlite in its working directory
    env: { ...process.env, PORT: '0', SESSION_STORE_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const from = output.length // this run's lines only
  return new Promise((resolve, reject) => {
    const read = (d) => {
      output += d
      const listening = /demo on http:\/\/localhost:(\d+)/.exec(output.slice(from))
      if (listening) resolve(`http://127.0.0.1:${listening[1]}`)
    }
    demo.stdout.on('data', read)
    demo.stderr.on('data', (d) => { output += d })
    demo.once('exit', (code) => reject(new Error(`the demo exited (${code}) before listening:\n${output}`)))
  })
}

/** Runs a step of the test; if it fails, the failure also shows the page and the demo's output. */
async function step (page, what, action) {
  try {
    return await action()
  } catch (err) {
    const html = await page.content().catch(() => '(no page)')
    err.message = `${what}: ${err.message}\n--- page ---\n${html.slice(0, 2000)}\n--- demo output ---\n${output.slice(-2000)}`
    throw err
  }
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
  base = await startDemo()
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

browserTest('log in, count views, see the session, 20 requests at once, survive a restart, log out', async () => {
  const page = await (await browser.newContext({ timezoneId: 'Asia/Tokyo', locale: 'en-GB' })).newPage()
  page.setDefaultTimeout(30000)
  await page.goto(base)
  expect(await page.textContent('#store')).toMatch(/^sqlite:.*sessions\.sqlite \(embedded\)$/)
  await page.fill('input[name=name]', 'Zoë')
  // The login answers with a redirect to the page that names the user: wait for that page.
  await step(page, 'logging in', () => Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit]')]))
  expect(await step(page, 'the page after logging in', () => page.textContent('#user'))).toBe('Zoë')
  expect(await page.textContent('#views')).toBe('1')
  expect(await page.textContent('.hint')).toMatch(/start it again .* still logged in/)
  await page.reload()
  expect(await page.textContent('#views')).toBe('2')

  const [cookie] = await page.context().cookies()
  expect(cookie).toMatchObject({ name: 'connect.sid', httpOnly: true, sameSite: 'Lax' })
  const signed = decodeURIComponent(cookie.value) // s:<sid>.<signature>
  const sid = signed.slice(2, signed.lastIndexOf('.'))

  await step(page, 'the session page', async () => {
    await page.click('text=Your session')
    await page.waitForSelector('#stored')
  })
  expect(await page.textContent('#sid')).toBe(`${sid.slice(0, 6)}…`)
  expect(JSON.parse(await page.textContent('#stored')).views).toBe(2)
  // The expiry, in the browser's time zone (Tokyo: UTC+9) with a countdown.
  const expires = new Date(await page.getAttribute('#expires', 'datetime'))
  const tokyo = expires.toLocaleString('en-GB', { timeZone: 'Asia/Tokyo' })
  expect(await page.textContent('#expires')).toMatch(new RegExp(`^${tokyo} \\(expires in (29|30) min \\d+ s\\)$`))

  await step(page, '20 requests at once', async () => {
    await page.click('text=20 requests at once')
    await page.click('#fire')
    await page.waitForSelector('text=/of 20 changes kept/')
  })
  expect(await page.textContent('#parallel-result')).toBe(`20 of 20 changes kept: ${Array.from({ length: 20 }, (_, i) => i).join(', ')}`)

  await stopDemo()
  base = await startDemo() // perhaps on another port: cookies do not depend on the port
  await page.goto(base)
  expect(await step(page, 'the page after the restart', () => page.textContent('#user'))).toBe('Zoë')
  expect(await page.textContent('#views')).toBe('3')

  await step(page, 'logging out', async () => {
    await page.click('text=Log out')
    await page.waitForSelector('input[name=name]')
  })
  expect(await page.context().cookies()).toEqual([]) // the browser no longer holds the cookie
  const store = new SqliteStore({ path: path.join(dir, 'sessions.sqlite'), cleanupInterval: 0 })
  expect(await store.get(sid)).toBeNull()
  expect(await store.length()).toBe(0)
  await store.close()
}, 120000)
