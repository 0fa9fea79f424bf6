'use strict'
// The connection settings an app already gives node-pg (a `conObject`, a pg.Pool's `options`,
// pg-promise's `$cn`), turned into the native store's options. Every setting is used, or refused
// with an error naming it; none is dropped. TLS above all: `ssl` is honoured exactly (see
// docs/design.md, "PostgreSQL over TLS").

const { optionError } = require('./errors')
const fs = require('node:fs')

/** Settings that change what the native store does, and how. */
const USED = new Set(['host', 'port', 'user', 'password', 'database', 'connectionString', 'ssl', 'max',
  'idleTimeoutMillis', 'connectionTimeoutMillis', 'query_timeout', 'statement_timeout', 'application_name', 'options', 'keepAlive',
  'keepAliveInitialDelayMillis'])
/** Settings that shape how node-pg hands rows to JS code; the store never does that. */
const NOT_APPLICABLE = new Set(['types', 'binary', 'parseInputDatesAsUTC', 'Promise', 'Client', 'log', 'allowExitOnIdle', 'stream'])
/** pg.Pool's own defaults, accepted as they are; another value cannot be honoured. */
const POOL_DEFAULTS = { min: 0, maxUses: Infinity, maxLifetimeSeconds: 0 }
const SSL_KEYS = new Set(['rejectUnauthorized', 'ca', 'cert', 'key', 'servername', 'checkServerIdentity'])

function refuse (where, key, why) {
  return optionError(`ferrosession postgres: ${where}.${key}${why.startsWith('=') ? '' : ' '}${why}`)
}

/** PEM text from what Node's TLS options take: a string, a Buffer, or an array of them. */
function pem (value, where) {
  if (value === undefined || value === null) return undefined
  const parts = Array.isArray(value) ? value : [value]
  for (const part of parts) {
    if (typeof part !== 'string' && !Buffer.isBuffer(part)) throw optionError(`ferrosession postgres: ${where} must be PEM text or a Buffer`)
  }
  return parts.map(String).join('\n')
}

/**
 * node-pg's `ssl` setting as the native TLS settings: `true` checks chain and host name against
 * the system's roots; `{ rejectUnauthorized: false }` encrypts without checking; a
 * `checkServerIdentity` function (which cannot run natively) means "chain only"; `ca`, `cert`,
 * `key`, `servername` as Node's TLS takes them. Anything else in it is refused by name.
 */
function tlsOf (ssl, where) {
  if (ssl === undefined || ssl === null) return undefined
  if (ssl === false || ssl === 'false' || ssl === 0) return { mode: 'disable' }
  if (ssl === true || ssl === 'true' || ssl === 1) return { mode: 'verify-full' }
  if (ssl === 'no-verify') return { mode: 'no-verify' }
  if (typeof ssl !== 'object') throw optionError(`ferrosession postgres: ${where}.ssl must be true, false or an object, got ${typeof ssl}`)
  // pg hides `key` from enumeration: look at every own property, enumerable or not.
  for (const key of Object.getOwnPropertyNames(ssl)) {
    if (ssl[key] === undefined || SSL_KEYS.has(key)) continue
    if (key === 'passphrase') throw refuse(`${where}.ssl`, key, 'is not supported: give the client key decrypted')
    throw refuse(`${where}.ssl`, key, 'is not supported by ferrosession\'s native TLS')
  }
  const mode = ssl.rejectUnauthorized === false
    ? 'no-verify'
    : typeof ssl.checkServerIdentity === 'function' ? 'verify-ca' : 'verify-full'
  return {
    mode,
    ca: pem(ssl.ca, `${where}.ssl.ca`),
    cert: pem(ssl.cert, `${where}.ssl.cert`),
    key: pem(ssl.key, `${where}.ssl.key`),
    servername: typeof ssl.servername === 'string' ? ssl.servername : undefined
  }
}

/** libpq's environment: PGSSLMODE, with PGSSLROOTCERT / PGSSLCERT / PGSSLKEY files. */
function tlsFromEnvironment (env = process.env) {
  if (!env.PGSSLMODE) return undefined
  const file = (name) => {
    if (!env[name]) return undefined
    if (name === 'PGSSLROOTCERT' && env[name] === 'system') return undefined // the system's roots
    try {
      return fs.readFileSync(env[name], 'utf8')
    } catch (err) {
      throw optionError(`ferrosession postgres: ${name}=${env[name]} cannot be read: ${err.message}`)
    }
  }
  return { mode: env.PGSSLMODE, ca: file('PGSSLROOTCERT'), cert: file('PGSSLCERT'), key: file('PGSSLKEY') }
}

/** A node-pg config object (conObject, pool.options, pg-promise's $cn) as native options. */
function fromPgConfig (c, where) {
  for (const key of Object.getOwnPropertyNames(c)) {
    if (c[key] === undefined || USED.has(key) || NOT_APPLICABLE.has(key)) continue
    if (key in POOL_DEFAULTS) {
      if (c[key] !== POOL_DEFAULTS[key]) throw refuse(where, key, `=${String(c[key])} is not supported (the native pool has no such setting)`)
      continue
    }
    throw refuse(where, key, 'is not a setting ferrosession can honour')
  }
  const ms = (v) => (typeof v === 'number' && v > 0 ? Math.ceil(v) : undefined)
  return {
    connectionString: c.connectionString || undefined,
    host: c.host || undefined,
    port: c.port ? Number(c.port) : undefined,
    user: c.user || undefined,
    password: typeof c.password === 'string' ? c.password : undefined,
    database: c.database || undefined,
    poolSize: c.max || undefined,
    tls: tlsOf(c.ssl, where),
    idleTimeoutMs: typeof c.idleTimeoutMillis === 'number' ? Math.max(0, Math.ceil(c.idleTimeoutMillis)) : undefined,
    connectTimeoutMs: ms(c.connectionTimeoutMillis),
    commandTimeoutMs: ms(c.query_timeout),
    statementTimeoutMs: ms(c.statement_timeout),
    applicationName: typeof c.application_name === 'string' ? c.application_name : undefined,
    startupOptions: typeof c.options === 'string' ? c.options : undefined
  }
}

/** The connection settings of the first source present, in connect-pg-simple's order. */
function connectionOf (options, env = process.env) {
  let settings
  let source
  if (options.pool !== undefined) {
    const pool = options.pool
    // Read, or refused: never a silent connection to the default database instead.
    if (!pool || typeof pool !== 'object' || !pool.options || typeof pool.options !== 'object') {
      throw optionError('ferrosession postgres: option pool must be a pg.Pool (its options are read to connect natively)')
    }
    settings = fromPgConfig(pool.options, 'pool.options')
    source = 'the pool option (a pg.Pool)'
  } else if (options.pgPromise !== undefined) {
    if (!options.pgPromise || typeof options.pgPromise.any !== 'function') {
      // connect-pg-simple's own words.
      throw new TypeError('`pgPromise` config must point to an existing and configured instance of pg-promise pointing at your database')
    }
    const cn = options.pgPromise.$cn
    settings = typeof cn === 'string' ? { connectionString: cn } : fromPgConfig(cn || {}, 'pgPromise.$cn')
    source = 'the pgPromise option'
  } else if (options.conObject) {
    settings = fromPgConfig(options.conObject, 'conObject')
    source = 'the conObject option'
  } else if (options.conString) {
    settings = { connectionString: options.conString }
    source = 'the conString option'
  } else if (env.DATABASE_URL) {
    settings = { connectionString: env.DATABASE_URL }
    source = 'the DATABASE_URL environment variable'
  } else {
    const set = ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE'].filter((name) => env[name])
    source = 'no settings given (no pool, pgPromise, conObject or conString option, no DATABASE_URL), so ' +
      (set.length ? `${set.join(', ')} from the environment and the defaults for the rest` : 'the defaults') +
      ' (host localhost, port 5432, user and database the login name)'
    settings = {
      host: env.PGHOST,
      port: env.PGPORT ? Number(env.PGPORT) : undefined,
      user: env.PGUSER || env.USER,
      password: env.PGPASSWORD,
      database: env.PGDATABASE
    }
  }
  // As in node-pg: with no `ssl` setting, the environment decides (the connection string's own
  // TLS parameters still win over both, natively).
  if (settings.tls === undefined) settings.tls = tlsFromEnvironment(env)
  settings.source = source
  return settings
}

module.exports = { connectionOf, fromPgConfig, tlsOf }
