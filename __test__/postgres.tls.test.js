'use strict'
// PostgreSQL over TLS, against a TLS-only server of our own (a throwaway CA, a client certificate
// for `certuser`, plaintext refused) and the shared server (ssl = on, self-signed). TLS that was
// asked for is used or the store fails saying why; it never falls back to plaintext.

const pg = require('pg')
const request = require('supertest')
const express = require('express')
const session = require('express-session')
const { PostgresStore } = require('..')
const { startPostgres } = require('./support/servers')
const { DATABASE_URL, sessionData } = require('./support/backends')

let server, plain, certs
const stores = []
let n = 0

/** A store on the TLS server; `application_name` lets the server tell us how it is connected. */
function store (options = {}) {
  const s = new PostgresStore({ tableName: `tls_${++n}`, createTableIfMissing: true, pruneSessionInterval: false, connectTimeout: 3000, ...options })
  stores.push(s)
  return s
}
const url = (query = '', user = 'postgres') => `postgres://${user}@127.0.0.1:${server.port}/postgres${query}`

/** Whether the server sees the store's connection as TLS, and with which client certificate. */
async function howConnected (name) {
  const admin = new pg.Client({ connectionString: url(), ssl: { rejectUnauthorized: false } })
  await admin.connect()
  const { rows } = await admin.query(
    'SELECT s.ssl, s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1', [name])
  await admin.end()
  return rows
}

beforeAll(async () => {
  server = await startPostgres({ tls: true })
  plain = await startPostgres()
  certs = server.certs
})
afterAll(async () => {
  for (const s of stores.splice(0)) await s.close()
  await server.stop()
  await plain.stop()
})

async function works (s) {
  await s.set('a', sessionData(60000, { over: 'tls' }))
  expect((await s.get('a')).over).toBe('tls')
}

async function refused (s, message) {
  const err = await s.set('a', sessionData()).then(() => null, (e) => e)
  expect(err).not.toBeNull()
  expect(err.message).toMatch(/^ferrosession postgres set: /)
  expect(err.message).toMatch(message)
  return err
}

describe('connection strings, with libpq\'s meanings', () => {
  test('sslmode=require encrypts (the server would refuse plaintext)', async () => {
    const s = store({ conString: url('?sslmode=require&application_name=tls-require') })
    await works(s)
    expect(await howConnected('tls-require')).toEqual([{ ssl: true, client_dn: null }])
  })

  test('sslmode=verify-full with the right CA (sslrootcert) works', async () => {
    await works(store({ conString: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.file('ca.crt'))}`) }))
  })

  test('sslmode=verify-full with another CA is refused, saying TLS was requested and why', async () => {
    const s = store({ conString: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.file('other-ca.crt'))}`) })
    const err = await refused(s, /TLS was requested and could not be established: the server's certificate is not signed by a trusted CA/)
    expect(err.code).toBe('ESESSION_UNAVAILABLE')
  })

  test('sslmode=require with a root certificate checks the chain (libpq: as verify-ca)', async () => {
    await refused(store({ conString: url(`?sslmode=require&sslrootcert=${encodeURIComponent(certs.file('other-ca.crt'))}`) }), /not signed by a trusted CA/)
  })

  test('a certificate for another name: verify-full refuses it, verify-ca accepts it', async () => {
    const ca = certs.ca
    await refused(store({ conObject: { host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres', ssl: { ca, servername: 'db.example.com' } } }),
      /does not name this host/)
    await works(store({
      conObject: { host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres', ssl: { ca, servername: 'db.example.com', checkServerIdentity: () => undefined } }
    }))
  })

  test('a client certificate logs in where the server requires one (hostssl ... cert)', async () => {
    const s = store({ conString: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.file('ca.crt'))}&sslcert=${encodeURIComponent(certs.file('client.crt'))}&sslkey=${encodeURIComponent(certs.file('client.key'))}&application_name=tls-cert`, 'certuser') })
    await works(s)
    expect(await howConnected('tls-cert')).toEqual([{ ssl: true, client_dn: '/CN=certuser' }])
    // Without it, the server says no.
    await refused(store({ conString: url('?sslmode=require', 'certuser') }), /certificate/)
  })

  test('a TLS-only server refuses plaintext (sslmode=disable), and the error says so', async () => {
    await refused(store({ conString: url('?sslmode=disable') }), /pg_hba\.conf rejects connection .* no encryption/)
  })

  test('TLS requested from a server that does not offer it fails: no silent downgrade', async () => {
    const s = store({ conString: `${plain.url}?sslmode=require` })
    const err = await refused(s, /TLS was requested and could not be established/)
    expect(err.message).toMatch(/does not support TLS/)
    // prefer (and no setting at all) still works there, in plaintext.
    await works(store({ conString: plain.url }))
  })

  test('unknown and unsupported parameters are named in the error', () => {
    expect(() => store({ conString: url('?sslmode=require&bogus=1') })).toThrow(/unknown option `bogus`/)
    expect(() => store({ conString: url('?sslpassword=x') })).toThrow(/sslpassword is not supported/)
    expect(() => store({ conString: url('?sslmode=allow') })).toThrow(/sslmode=allow .* is not supported/)
    expect(() => store({ conString: url('?sslmode=verify-full&sslrootcert=/no/such/file') })).toThrow(/sslrootcert="\/no\/such\/file" cannot be read/)
  })
})

describe('the app\'s own pg settings', () => {
  const conObject = (ssl, user = 'postgres') => ({ host: '127.0.0.1', port: server.port, user, database: 'postgres', ssl })

  test('ssl: true checks certificates against the system\'s roots, as node-pg does', async () => {
    await refused(store({ conObject: conObject(true) }), /not signed by a trusted CA/)
  })

  test('ssl: { rejectUnauthorized: false } encrypts without checking', async () => {
    await works(store({ conObject: { ...conObject({ rejectUnauthorized: false }), application_name: 'tls-nocheck' } }))
    expect(await howConnected('tls-nocheck')).toEqual([{ ssl: true, client_dn: null }])
  })

  test('ssl: { ca, cert, key } in a pg.Pool is read, the key too (pg hides it from enumeration)', async () => {
    const pool = new pg.Pool({ ...conObject({ ca: certs.ca, cert: certs.clientCert, key: Buffer.from(certs.clientKey) }, 'certuser'), application_name: 'tls-pool' })
    try {
      await works(store({ pool }))
      expect(await howConnected('tls-pool')).toEqual([{ ssl: true, client_dn: '/CN=certuser' }])
    } finally {
      await pool.end()
    }
  })

  test('pg-promise\'s connection object is read the same way', async () => {
    await works(store({ pgPromise: { $cn: conObject({ ca: certs.ca }), any () {} } }))
  })

  test('the connection string\'s TLS parameters win over the ssl object, as in node-pg', async () => {
    const s = store({ conObject: { ...conObject({ rejectUnauthorized: false }), connectionString: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.file('other-ca.crt'))}`) } })
    await refused(s, /not signed by a trusted CA/)
  })

  test('settings that cannot be honoured are refused, naming them', () => {
    expect(() => store({ conObject: conObject({ ca: certs.ca, passphrase: 'x' }) })).toThrow(/conObject\.ssl\.passphrase is not supported: give the client key decrypted/)
    expect(() => store({ conObject: conObject({ ciphers: 'HIGH' }) })).toThrow(/conObject\.ssl\.ciphers is not supported/)
    expect(() => store({ pool: { options: { host: 'h', min: 2 } } })).toThrow(/pool\.options\.min=2 is not supported/)
    expect(() => store({ conObject: { host: 'h', lock_timeout: 5 } })).toThrow(/conObject\.lock_timeout is not a setting ferrosession can honour/)
  })
})

describe('the environment', () => {
  test('PGSSLMODE and PGSSLROOTCERT apply when the settings say nothing about TLS', () => {
    const { connectionOf } = require('../lib/pg-settings')
    const env = { PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.file('ca.crt'), DATABASE_URL: url() }
    expect(connectionOf({}, env).tls).toEqual({ mode: 'verify-full', ca: certs.ca, cert: undefined, key: undefined })
    expect(connectionOf({ conObject: conObjectWithSsl(false) }, env).tls).toEqual({ mode: 'disable' })
  })

  test('end to end, in a process started with PGSSLMODE=verify-full and the wrong CA', () => {
    const { spawnSync } = require('node:child_process')
    const child = spawnSync(process.execPath, ['-e', `
      const { PostgresStore } = require('.')
      const s = new PostgresStore({ conString: ${JSON.stringify(url())}, createTableIfMissing: true, pruneSessionInterval: false })
      s.set('a', { cookie: {} }).then(() => console.log('connected'), (e) => console.log(e.message)).then(() => s.close())`],
    { cwd: require('node:path').join(__dirname, '..'), encoding: 'utf8', env: { ...process.env, PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.file('other-ca.crt'), DATABASE_URL: '' } })
    expect(child.stdout).toMatch(/TLS was requested .* not signed by a trusted CA/)
  })
})

function conObjectWithSsl (ssl) {
  return { host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres', ssl }
}

describe('the shared PostgreSQL (ssl = on, a self-signed certificate)', () => {
  test('sslmode=require encrypts, and DATABASE_URL without sslmode uses TLS where offered (libpq\'s prefer)', async () => {
    const schemaName = `ferrotest_tls_${process.pid}`
    const shared = (query) => new PostgresStore({ conString: `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}${query}`, schemaName, createTableIfMissing: true, pruneSessionInterval: false })
    const required = shared('sslmode=require&application_name=shared-require')
    const preferred = shared('application_name=shared-prefer')
    stores.push(required, preferred)
    await works(required)
    await works(preferred)
    const admin = new pg.Client({ connectionString: DATABASE_URL })
    await admin.connect()
    const { rows } = await admin.query(
      "SELECT a.application_name AS name, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'shared-%' ORDER BY 1")
    await admin.query(`DROP SCHEMA "${schemaName}" CASCADE`)
    await admin.end()
    expect(rows).toEqual([{ name: 'shared-prefer', ssl: true }, { name: 'shared-require', ssl: true }])
  })
})

test('through Express: a login over a verified TLS connection survives the next request', async () => {
  const s = store({ conString: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.file('ca.crt'))}`) })
  const app = express()
  app.use(session({ store: s, secret: 'tls', resave: false, saveUninitialized: false }))
  app.post('/login', (req, res) => { req.session.user = 'zoë'; res.send('ok') })
  app.get('/me', (req, res) => res.json({ user: req.session.user || null }))
  const agent = request.agent(app)
  await agent.post('/login').expect(200)
  await agent.get('/me').expect(200, { user: 'zoë' })
})
