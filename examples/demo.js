'use strict'
// The demo: an Express 5 app with express-session on a ferrosession store. A login form, a page
// view counter, a page that shows what the store holds for your session, and logout.
// It needs no server: by default sessions live in ./sessions.sqlite (the embedded store), so they
// survive a restart. PORT (default 3000) and SESSION_STORE_URL (e.g. redis://127.0.0.1:6379,
// postgres://postgres@127.0.0.1/test, memory:) configure it.

const express = require('express')
const session = require('express-session')
const { createStore } = require('..')

const storeUrl = process.env.SESSION_STORE_URL || ''
const store = createStore(storeUrl || undefined, { createTableIfMissing: true })
const storeName = storeUrl ? storeUrl.replace(/\/\/[^@]*@/, '//') : `sqlite:${store.path} (embedded)`
const app = express()
app.use(express.urlencoded({ extended: false }))
app.use(session({
  store,
  secret: process.env.SESSION_SECRET || 'ferrosession demo secret',
  resave: false,
  saveUninitialized: false,
  cookie: { maxAge: 30 * 60 * 1000, httpOnly: true, sameSite: 'lax' }
}))

const page = (body) => `<!doctype html><html><head><meta charset="utf-8"><title>ferrosession demo</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">${body}</body></html>`
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

app.get('/', (req, res) => {
  if (!req.session) return res.send(page('<p>The session store is unavailable right now; sessions are off.</p>'))
  if (!req.session.user) {
    return res.send(page(`<h1>ferrosession demo</h1><p>Store: ${escape(storeName)}</p>
      <form method="post" action="/login"><label>Name <input name="name" required></label>
      <button type="submit">Log in</button></form>`))
  }
  req.session.views = (req.session.views || 0) + 1
  res.send(page(`<h1>Hello, <span id="user">${escape(req.session.user)}</span></h1>
    <p>Page views this session: <strong id="views">${req.session.views}</strong></p>
    <p><a href="/session">What the store holds</a></p>
    <form method="post" action="/logout"><button type="submit">Log out</button></form>`))
})

app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err)
    req.session.user = String(req.body.name || 'anonymous').slice(0, 100)
    req.session.views = 0
    res.redirect('/')
  })
})

app.get('/session', (req, res, next) => {
  if (!req.session) return res.redirect('/')
  store.get(req.sessionID, (err, stored) => {
    if (err) return next(err)
    res.send(page(`<h1>Your session in the store</h1><p>Session id: <code id="sid">${escape(req.sessionID)}</code></p>
      <p>Expires: <span id="expires">${escape(stored ? stored.cookie.expires : 'not stored')}</span></p>
      <pre id="stored">${escape(JSON.stringify(stored, null, 2))}</pre><p><a href="/">Back</a></p>`))
  })
})

app.post('/logout', (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err)
    // express-session leaves the browser holding the dead cookie: drop it too.
    res.clearCookie('connect.sid', { path: '/', httpOnly: true, sameSite: 'lax' })
    res.redirect('/')
  })
})

const port = Number(process.env.PORT || 3000)
// PORT=0 takes any free port; the line below names the one taken. Express 5 also calls this on
// a failure to listen (handled below): then it says nothing.
const server = app.listen(port, (err) => {
  if (!err) console.log(`ferrosession demo on http://localhost:${server.address().port} (store: ${storeName})`)
})
server.on('error', (err) => {
  const why = err.code === 'EADDRINUSE'
    ? `port ${port} is already in use; stop whatever uses it or pick another one: PORT=3001 npm run demo`
    : err.message
  console.error(`ferrosession demo: cannot listen on port ${port}: ${why}`)
  store.close().finally(() => process.exit(1))
})

function shutdown () {
  server.close(() => store.close().finally(() => process.exit(0)))
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)
