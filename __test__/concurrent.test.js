'use strict'
// Concurrent requests of one browser never lose each other's changes, and a logout is never
// undone (docs/design.md, "Concurrent requests"): ferrosession's session() saves what a request
// changed as a JSON merge patch, which the store merges into what is stored now; a patch or touch
// for a session that is gone writes nothing. Through Express, on every backend with a server.

const http = require('node:http')
const { spawn } = require('node:child_process')
const express = require('express')
const { session } = require('..')
const { backends, storeFactory, sleep, sessionData } = require('./support/backends')

const BACKENDS = ['memory', 'sqlite', 'redis', 'postgres', 'mysql', 'mongodb']

/** An app on `store`; resolves with a function that sends a request with a cookie jar's cookie. */
async function app (store, options = {}) {
  const a = express()
  a.use(session({ store, secret: 'concurrent', resave: false, saveUninitialized: false, ...options }))
  a.get('/login', (req, res) => { req.session.user = 'zoë'; req.session.shared = { seed: true }; res.send('ok') })
  a.get('/set/:i', async (req, res) => {
    await sleep(5 + Math.floor(Math.random() * 56))
    req.session[`k${req.params.i}`] = Number(req.params.i)
    req.session.shared[`m${req.params.i}`] = true
    res.send('ok')
  })
  a.get('/ab', (req, res) => { req.session.a = 1; req.session.b = 2; res.send('ok') })
  a.get('/delete-a', async (req, res) => { await sleep(20); delete req.session.a; res.send('ok') })
  a.get('/set-c', async (req, res) => { await sleep(20); req.session.c = 3; res.send('ok') })
  a.get('/slow-change', async (req, res) => { await sleep(350); req.session.late = true; res.send('ok') })
  a.get('/slow-read', async (req, res) => { await sleep(350); res.send(String(req.session.user)) })
  a.get('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.send('bye'))))
  a.get('/me', (req, res) => res.json(req.session.user ? { ...req.session, cookie: undefined } : null))
  const server = http.createServer(a)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${server.address().port}`
  let cookie = ''
  const send = async (path) => {
    const res = await fetch(base + path, { headers: cookie ? { cookie } : {} })
    const set = res.headers.get('set-cookie')
    if (set && path === '/login') cookie = set.split(';')[0]
    return res.text()
  }
  send.sid = () => decodeURIComponent(cookie.split('=')[1]).slice(2).split('.').slice(0, -1).join('.')
  send.close = () => new Promise((resolve) => server.close(resolve))
  return send
}

for (const name of BACKENDS) {
  describe(`${name}: concurrent requests`, () => {
    const stores = storeFactory(backends[name], `concurrent_${name}`)
    afterAll(() => stores.closeAll())

    test('40 requests at once, each setting its own key and its own member of a shared object: all kept, and the login', async () => {
      const send = await app(stores.create())
      try {
        await send('/login')
        await Promise.all(Array.from({ length: 40 }, (_, i) => send(`/set/${i}`)))
        const me = JSON.parse(await send('/me'))
        expect(me.user).toBe('zoë')
        expect(Object.keys(me).filter((k) => /^k\d+$/.test(k)).length).toBe(40)
        expect(Object.keys(me.shared).filter((k) => /^m\d+$/.test(k)).length).toBe(40)
        expect(me.shared.seed).toBe(true)
      } finally {
        await send.close()
      }
    }, 30000)

    test('one request deletes a while another sets c: a gone, b and c kept', async () => {
      const send = await app(stores.create())
      try {
        await send('/login')
        await send('/ab')
        await Promise.all([send('/delete-a'), send('/set-c')])
        const me = JSON.parse(await send('/me'))
        expect([me.a, me.b, me.c]).toEqual([undefined, 2, 3])
      } finally {
        await send.close()
      }
    })

    test.each([
      ['a slow request that changed the session', '/slow-change', {}],
      ['a slow request that changed nothing (rolling: true, so it touches)', '/slow-read', { rolling: true }]
    ])('a logout while %s is running stays a logout', async (_, slow, options) => {
      const store = stores.create()
      const send = await app(store, options)
      try {
        await send('/login')
        const sid = send.sid()
        const running = send(slow)
        await sleep(50)
        expect(await send('/logout')).toBe('bye')
        await running
        expect(await send('/me')).toBe('null') // the old cookie is not logged in
        expect(await store.get(sid)).toBeNull()
      } finally {
        await send.close()
      }
    })

    // Two processes (two app servers on one database) each merge 50 changes into one session at
    // once: the merge is atomic on the server (a conditional write, tried again when the other
    // process wrote in between), so all 100 are kept. A read, then a plain write, keeps about half.
    // (Not for memory: one process's memory is shared with no other.)
    if (name !== 'memory') {
      test.each([['plain', {}], ['encrypted', { encryption: { keys: ['a passphrase of 16+ characters'] } }]])('%s: merged saves from two processes keep each other\'s changes', async (_, options) => {
        const store = stores.create(options)
        await store.set('shared', sessionData(600000, { seed: true }))
        // What the child needs to open the same namespace (backends.js `reopen`).
        const where = JSON.stringify({ prefix: store.prefix, schemaName: store.schemaName, tableName: store.tableName, path: store.path, collectionName: store.collectionName, options: store.options && { database: store.options.database, schema: store.options.schema, tableName: store.options.tableName, dbName: store.options.dbName } })
        const patcher = (tag) => new Promise((resolve, reject) => {
          const script = `
            const { backends, sessionData } = require(${JSON.stringify(require.resolve('./support/backends'))})
            const store = backends[${JSON.stringify(name)}].reopen(${where}, ${JSON.stringify(options)})
            const saves = Array.from({ length: 50 }, (_, i) => store.patch('shared', { [${JSON.stringify(tag)} + i]: i }, sessionData(600000)))
            Promise.all(saves).then(() => store.close()).then(() => console.log('done'), (e) => { console.error(e.message); process.exit(1) })`
          const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'] })
          let stderr = ''
          child.stderr.on('data', (d) => { stderr += d })
          child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`patcher exited ${code}: ${stderr}`))))
        })
        await Promise.all([patcher('a'), patcher('b')])
        const got = await store.get('shared')
        expect(got.seed).toBe(true)
        expect(Object.keys(got).filter((k) => /^[ab]\d+$/.test(k)).length).toBe(100)
      }, 60000)
    }

    test.each([[true, 'patches'], [false, 'whole sessions, as express-session does']])('merge: %p saves %s', async (merge) => {
      const store = stores.create()
      // The store is called as express-session calls it (set); what it sends is a patch or whole.
      const calls = { patch: 0, set: 0 }
      const request = store._request
      store._request = function (method, ...args) {
        if (method in calls) calls[method]++
        return request.call(this, method, ...args)
      }
      const send = await app(store, { merge })
      try {
        await send('/login') // a new session: written whole either way
        await send('/ab')
        expect(calls).toEqual(merge ? { patch: 1, set: 1 } : { patch: 0, set: 2 })
        expect(JSON.parse(await send('/me'))).toMatchObject({ a: 1, b: 2, user: 'zoë' })
      } finally {
        await send.close()
      }
    })
  })
}
