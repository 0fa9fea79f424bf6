'use strict'
// The demo: an Express 5 app on ferrosession's session() and a ferrosession store. Log in, count
// page views, see what the store holds for your session and when it expires, fire 20 requests at
// once and see every change kept, log out. It needs no server: by default sessions live in
// ./sessions.sqlite (the embedded store), so they survive a restart. PORT (default 3000) and
// SESSION_STORE_URL (e.g. redis://127.0.0.1:6379, postgres://postgres@127.0.0.1/test, memory:)
// configure it.

const express = require('express')
const { createStore, session } = require('..')
const { withoutCredentials } = require('../lib/create-store')

const storeUrl = process.env.SESSION_STORE_URL || ''
const store = createStore(storeUrl || undefined, { createTableIfMissing: true })
const storeName = storeUrl ? withoutCredentials(storeUrl) : `sqlite:${store.path} (embedded)`
const survivesRestart = !/^memory:/.test(storeUrl)
const app = express()
app.use(express.urlencoded({ extended: false }))
app.use(session({
  store,
  secret: process.env.SESSION_SECRET || 'ferrosession demo secret',
  resave: false,
  saveUninitialized: false,
  cookie: { maxAge: 30 * 60 * 1000, httpOnly: true, sameSite: 'lax' }
}))

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const STYLE = `body { font: 16px/1.5 system-ui, sans-serif; max-width: 42em; margin: 0 auto; padding: 0 1em; color: #222 }
header { display: flex; gap: 1em; align-items: center; border-bottom: 1px solid #ddd; padding: .75em 0 }
header strong { margin-right: auto } a { color: #0b57d0 } nav a { margin-right: .75em }
button { font: inherit; padding: .3em .9em; border: 1px solid #0b57d0; background: #0b57d0; color: #fff; border-radius: 4px; cursor: pointer }
header button { background: #fff; color: #0b57d0 } input { font: inherit; padding: .25em .5em }
.hint { background: #f3f6fc; border-left: 4px solid #0b57d0; padding: .5em 1em }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto } footer { color: #666; font-size: .875em; border-top: 1px solid #ddd; margin-top: 2em; padding: .75em 0 }`

// Times travel as ISO text and are shown in the browser's own time zone, with a live "expires in".
const LOCAL_TIMES = `function show () {
  for (const t of document.querySelectorAll('time')) {
    const at = new Date(t.dateTime)
    const left = Math.round((at - Date.now()) / 1000)
    t.textContent = at.toLocaleString() + (t.hasAttribute('data-countdown') ? (left > 0 ? ' (expires in ' + Math.floor(left / 60) + ' min ' + (left % 60) + ' s)' : ' (expired)') : '')
  }
}
show(); setInterval(show, 1000)`

function page (req, title, body) {
  const user = req.session && req.session.user
  const nav = user
    ? `<nav><a href="/">Home</a><a href="/session">Your session</a><a href="/parallel">20 requests at once</a></nav>
      <form method="post" action="/logout"><button type="submit">Log out ${escape(user)}</button></form>`
    : ''
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${escape(title)} · ferrosession demo</title><style>${STYLE}</style></head>
<body><header><strong>ferrosession demo</strong>${nav}</header><main>${body}</main>
<footer>Sessions are stored in <code id="store">${escape(storeName)}</code>.</footer>
<script>${LOCAL_TIMES}</script></body></html>`
}

/** Only the first characters: a session id is a credential, and the page may be on a screen share. */
const shortSid = (sid) => `${sid.slice(0, 6)}…`

app.get('/', (req, res) => {
  if (!req.session) return res.send(page(req, 'Unavailable', '<p>The session store is unavailable right now; sessions are off.</p>'))
  if (!req.session.user) {
    return res.send(page(req, 'Log in', `<h1>Log in</h1>
      <form method="post" action="/login"><label>Name <input name="name" required autofocus></label>
      <button type="submit">Log in</button></form>`))
  }
  req.session.views = (req.session.views || 0) + 1
  const restart = survivesRestart
    ? 'Stop the demo (Ctrl-C) and start it again with <code>npm run demo</code>, then reload: you are still logged in and the count goes on, because the session lives in the store, not in the process.'
    : 'This store keeps sessions in the process: stopping the demo logs you out. Without <code>SESSION_STORE_URL=memory:</code> they survive a restart.'
  res.send(page(req, 'Hello', `<h1>Hello, <span id="user">${escape(req.session.user)}</span></h1>
    <p>Page views this session: <strong id="views">${req.session.views}</strong> (reload to count)</p>
    <p class="hint">${restart}</p>`))
})

app.post('/login', (req, res, next) => {
  // A new session id at login, so an id planted before it is worth nothing afterwards.
  req.session.regenerate((err) => {
    if (err) return next(err)
    req.session.user = String(req.body.name || 'anonymous').slice(0, 100)
    req.session.views = 0
    res.redirect('/')
  })
})

/** Pages below need a logged-in session. */
function loggedIn (req, res, next) {
  if (!req.session || !req.session.user) return res.redirect('/')
  next()
}

app.get('/session', loggedIn, (req, res, next) => {
  store.get(req.sessionID, (err, stored) => {
    if (err) return next(err)
    const expires = stored && stored.cookie.expires ? new Date(stored.cookie.expires).toISOString() : null
    res.send(page(req, 'Your session', `<h1>Your session in the store</h1>
      <p>Session id: <code id="sid">${escape(shortSid(req.sessionID))}</code> (the rest stays hidden)</p>
      <p>Expires: ${expires ? `<time id="expires" datetime="${expires}" data-countdown>${expires}</time>` : '<span id="expires">not stored</span>'};
      every request moves it 30 minutes ahead.</p>
      <pre id="stored">${escape(JSON.stringify(stored, null, 2))}</pre>`))
  })
})

// 20 requests at once, each adding its own member to the session: ferrosession's session() saves
// what each request changed and the store merges it into what is stored now, so all 20 stay.
// With express-session (whole-session saves), the last request to finish overwrites the others.
app.get('/parallel', loggedIn, (req, res) => {
  res.send(page(req, '20 requests at once', `<h1>20 requests at once</h1>
    <p>The button sends 20 requests at the same time. Each loads your session, waits a random
    moment, adds its own number to it and saves. A store that saves whole sessions keeps only the
    last few; ferrosession merges each request's change into what is stored now.</p>
    <p><button id="fire" type="button">Send 20 requests</button></p>
    <p id="parallel-result" aria-live="polite"></p>
    <script>
    document.getElementById('fire').onclick = async () => {
      const out = document.getElementById('parallel-result')
      out.textContent = 'sending…'
      await fetch('/parallel/reset', { method: 'POST' })
      await Promise.all(Array.from({ length: 20 }, (_, i) => fetch('/parallel/' + i, { method: 'POST' })))
      const { kept } = await (await fetch('/parallel/state')).json()
      out.textContent = kept.length + ' of 20 changes kept: ' + kept.join(', ')
    }
    </script>`))
})

app.post('/parallel/reset', loggedIn, (req, res) => {
  delete req.session.parallel
  res.sendStatus(204)
})

app.post('/parallel/:n', loggedIn, (req, res) => {
  // The session was loaded when the request arrived; the wait makes the 20 overlap.
  setTimeout(() => {
    req.session.parallel = { ...req.session.parallel, [req.params.n]: true }
    res.sendStatus(204)
  }, 20 + Math.random() * 100)
})

app.get('/parallel/state', loggedIn, (req, res) => {
  res.json({ kept: Object.keys(req.session.parallel || {}).map(Number).sort((a, b) => a - b) })
})

app.post('/logout', (req, res, next) => {
  if (!req.session) return res.redirect('/')
  req.session.destroy((err) => {
    if (err) return next(err)
    // The session is gone from the store; drop the browser's cookie too.
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
