'use strict'
// Runs in a plain Node process (node __test__/support/fastify-scenario.js <backend>): a Fastify
// app with @fastify/cookie and @fastify/session on one of our stores, driven over fastify.inject.
// Jest's sandbox cannot run it (@fastify/cookie loads the ESM `cookie` with a dynamic import,
// which Jest's VM refuses), so fastify.test.js runs this and checks what it prints: one JSON line
// of observations. It creates and cleans up its own tables, keys and collections.

const Fastify = require('fastify')
const fastifyCookie = require('@fastify/cookie')
const fastifySession = require('@fastify/session')
const { backends, storeFactory } = require('./backends')

const SECRET = 'a fastify session secret of at least 32 characters'

async function fastifyApp (store) {
  const app = Fastify()
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret: SECRET, store, saveUninitialized: false, cookie: { secure: false, maxAge: 60000 } })
  app.post('/login', async (request) => {
    await request.session.regenerate()
    request.session.set('user', 'zoë')
    request.session.set('views', 0)
    return { ok: true }
  })
  app.get('/me', async (request) => {
    const user = request.session.get('user') || null
    if (user) request.session.set('views', request.session.get('views') + 1)
    return { user, views: request.session.get('views') || 0 }
  })
  app.post('/logout', async (request) => {
    await request.session.destroy()
    return { bye: true }
  })
  await app.ready()
  return app
}

/** The `name=value` part of the session cookie a response set, or null. */
function cookieOf (res) {
  const header = [].concat(res.headers['set-cookie'] || []).find((c) => c.startsWith('sessionId='))
  return header ? header.split(';')[0] : null
}

/** The sid inside @fastify/session's cookie (`<sid>.<signature>`). */
function sidOf (cookie) {
  const value = decodeURIComponent(cookie.slice('sessionId='.length))
  return value.slice(0, value.lastIndexOf('.'))
}

async function login (app, store) {
  const res = await app.inject({ method: 'POST', url: '/login' })
  const cookie = cookieOf(res)
  return { status: res.statusCode, cookie, stored: cookie ? await store.get(sidOf(cookie)) : null }
}

async function main (backend) {
  const stores = storeFactory(backend, `fastify_${backend.name}`)
  const seen = {}
  const apps = []
  const open = async (store) => {
    const app = await fastifyApp(store)
    apps.push(app)
    return app
  }
  try {
    { // a login is stored and read back; a request without the cookie sees nothing
      const store = stores.create()
      const app = await open(store)
      const first = await login(app, store)
      const me = await app.inject({ method: 'GET', url: '/me', headers: { cookie: first.cookie } })
      seen.login = {
        status: first.status,
        hasCookie: Boolean(first.cookie),
        storedUser: first.stored && first.stored.user,
        me: me.json(),
        storedViews: (await store.get(sidOf(first.cookie))).views,
        anonymous: (await app.inject({ method: 'GET', url: '/me' })).json()
      }
    }
    if (backend.reopen) { // a new app and a new store on the same data keep the session
      const store = stores.create()
      const before = await open(store)
      const { cookie } = await login(before, store)
      await before.close()
      await store.close()
      const reopened = backend.reopen(store)
      try {
        const after = await open(reopened)
        seen.restart = { me: (await after.inject({ method: 'GET', url: '/me', headers: { cookie } })).json() }
      } finally {
        await reopened.close()
      }
    }
    { // logout removes the session; its cookie no longer opens it
      const store = stores.create()
      const app = await open(store)
      const { cookie, stored } = await login(app, store)
      const out = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
      seen.logout = {
        storedBefore: Boolean(stored),
        status: out.statusCode,
        storedAfter: await store.get(sidOf(cookie)),
        me: (await app.inject({ method: 'GET', url: '/me', headers: { cookie } })).json()
      }
    }
  } finally {
    await Promise.all(apps.map((app) => app.close()))
    await stores.closeAll()
  }
  return seen
}

const backend = backends[process.argv[2]]
if (!backend) {
  console.error(`fastify-scenario: unknown backend ${process.argv[2]}`)
  process.exit(2)
}
main(backend).then(
  (seen) => console.log(JSON.stringify(seen)),
  (err) => {
    console.error(err.stack)
    process.exit(1)
  }
)
