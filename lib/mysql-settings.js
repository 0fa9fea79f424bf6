'use strict'
// The connection settings an app already has for MySQL or MariaDB (express-mysql-session's
// options, a mysql2 or mysql pool or connection, a knex instance's connection, a mysql:// URL),
// turned into the native store's options. Every setting is used, or refused with an error naming
// it; none is dropped. TLS above all: `ssl` makes TLS required, never a silent fallback.

const { optionError } = require('./errors')
const { closest, COMMON, STORE_OPTIONS } = require('./options')

/** Connection settings the native store honours. */
const USED = new Set(['host', 'port', 'user', 'password', 'database', 'socketPath', 'ssl', 'connectTimeout',
  'connectionLimit', 'idleTimeout', 'uri'])
/**
 * Settings that shape how the driver hands rows and values to JS code, or pool queueing the
 * native pool does its own way; the store never hands rows to the app, so they change nothing.
 */
const NOT_APPLICABLE = new Set(['charset', 'charsetNumber', 'timezone', 'dateStrings', 'typeCast', 'supportBigNumbers',
  'bigNumberStrings', 'decimalNumbers', 'rowsAsArray', 'nestTables', 'namedPlaceholders', 'trace', 'debug',
  'multipleStatements', 'waitForConnections', 'queueLimit', 'maxIdle', 'enableKeepAlive', 'keepAliveInitialDelay',
  'acquireTimeout', 'maxPreparedStatements', 'connectAttributes', 'flags', 'clientFlags', 'insecureAuth', 'pool',
  'Promise', 'jsonStrings', 'disableEval', 'gracefulEnd', 'infileStreamFactory', 'isServer', 'queryFormat',
  'localInfile', 'stringifyObjects', 'resetOnRelease', 'compress', 'maxLifetime'])
const SSL_KEYS = new Set(['ca', 'cert', 'key', 'rejectUnauthorized', 'servername', 'verifyIdentity'])

function refuse (where, key, why) {
  return optionError(`ferrosession mysql: ${where}.${key} ${why}`)
}

function pemList (value, where) {
  if (value === undefined || value === null) return undefined
  const parts = Array.isArray(value) ? value : [value]
  return parts.map((part) => {
    if (typeof part !== 'string' && !Buffer.isBuffer(part)) throw optionError(`ferrosession mysql: ${where} must be PEM text or a Buffer`)
    return String(part)
  })
}

/**
 * mysql2's `ssl` as native TLS settings: any object (or `true`) means TLS is required; `ca`,
 * `cert`, `key` as Node's TLS takes them; `rejectUnauthorized: false` accepts any certificate.
 * The server's certificate name is always checked (mysql2 checks it only with `verifyIdentity`).
 */
function tlsOf (ssl, where) {
  if (ssl === undefined || ssl === null || ssl === false) return undefined
  if (ssl === true || ssl === 'true' || ssl === 'required') return { rejectUnauthorized: true }
  if (typeof ssl === 'string') {
    throw optionError(`ferrosession mysql: ${where}.ssl profile ${JSON.stringify(ssl)} is not supported; pass { ca } with the provider's CA bundle`)
  }
  if (typeof ssl !== 'object') throw optionError(`ferrosession mysql: ${where}.ssl must be an object or true, got ${typeof ssl}`)
  for (const key of Object.getOwnPropertyNames(ssl)) {
    if (ssl[key] === undefined || SSL_KEYS.has(key)) continue
    if (key === 'passphrase') throw refuse(`${where}.ssl`, key, 'is not supported: give the client key decrypted')
    throw refuse(`${where}.ssl`, key, 'is not supported by ferrosession\'s native TLS (only ca, cert, key, rejectUnauthorized, servername, verifyIdentity)')
  }
  if (ssl.verifyIdentity === false && ssl.rejectUnauthorized !== false) {
    // Not expressible natively: the certificate chain is checked together with its name.
    throw refuse(`${where}.ssl`, 'verifyIdentity', 'false with rejectUnauthorized true is not supported: the certificate\'s name is always checked (use servername to name it)')
  }
  return {
    rejectUnauthorized: ssl.rejectUnauthorized !== false,
    ca: pemList(ssl.ca, `${where}.ssl.ca`),
    cert: pemList(ssl.cert, `${where}.ssl.cert`)?.join('\n'),
    key: pemList(ssl.key, `${where}.ssl.key`)?.join('\n'),
    servername: typeof ssl.servername === 'string' ? ssl.servername : undefined
  }
}

/** `mysql://user:pass@host:port/database?ssl=...` (also `mariadb://`), as mysql2 reads it. */
function fromUrl (url) {
  let u
  try {
    u = new URL(url)
  } catch {
    throw optionError('ferrosession mysql: the connection URL is not a valid URL')
  }
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') {
    throw optionError(`ferrosession mysql: unsupported URL scheme ${u.protocol} (mysql:// or mariadb://)`)
  }
  const settings = {
    host: u.hostname ? decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1') : undefined,
    port: u.port ? Number(u.port) : undefined,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database: u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : undefined
  }
  for (const [key, raw] of u.searchParams) {
    // mysql2 JSON-parses query values (`?ssl={"rejectUnauthorized":false}`).
    let value
    try {
      value = JSON.parse(raw)
    } catch {
      value = raw
    }
    settings[key] = value
  }
  return settings
}

/**
 * The native options for plain settings (an options object, a mysql2 ConnectionConfig, a knex
 * connection object). `where` names them in errors.
 */
function nativeOf (settings, where, poolLimit) {
  const s = settings.uri ? { ...fromUrl(settings.uri), ...settings } : settings
  for (const key of Object.getOwnPropertyNames(s)) {
    if (s[key] === undefined || USED.has(key) || NOT_APPLICABLE.has(key)) continue
    if (key === 'password1' || key === 'password2' || key === 'password3' || key === 'passwordSha1' || key === 'authPlugins' || key === 'authSwitchHandler') {
      if (key === 'password1' && !s.password) continue // read below
      throw refuse(where, key, 'is not supported (multi-factor or custom authentication)')
    }
    if (key === 'stream') throw refuse(where, key, 'is not supported: ferrosession opens its own connections')
    if (key === 'localAddress') throw refuse(where, key, 'is not supported: the native driver cannot bind a local address')
    if (key === 'connectionConfig') continue
    // Store options are offered too: a misspelt one (`scheme`) reaches here as a connection setting.
    const near = closest(key, [...USED, ...COMMON, ...STORE_OPTIONS.mysql])
    throw refuse(where, key, 'is not a setting ferrosession knows for MySQL' + (near ? `; did you mean '${near}'?` : ''))
  }
  const port = s.port === undefined || s.port === null || s.port === '' ? undefined : Number(s.port)
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw refuse(where, 'port', `must be a port number, got ${String(s.port)}`)
  const limit = poolLimit ?? s.connectionLimit
  return {
    host: s.host === undefined || s.host === null ? undefined : String(s.host),
    port,
    user: s.user === undefined || s.user === null ? undefined : String(s.user),
    password: s.password ?? s.password1 ?? undefined,
    database: s.database === undefined || s.database === null ? undefined : String(s.database),
    socketPath: s.socketPath || undefined,
    tls: tlsOf(s.ssl, where),
    connectTimeoutMs: typeof s.connectTimeout === 'number' ? s.connectTimeout : undefined,
    poolSize: typeof limit === 'number' && limit > 0 ? limit : undefined,
    idleTimeoutMs: typeof s.idleTimeout === 'number' ? s.idleTimeout : undefined
  }
}

/**
 * The settings of the app's mysql2 / mysql pool or connection (callback or promise API), which
 * express-mysql-session takes as its second argument: read, and connected to natively.
 */
function fromConnection (connection) {
  const config = connection.config || (connection.pool && connection.pool.config) || (connection.connection && connection.connection.config)
  if (!config || typeof config !== 'object') {
    throw optionError('ferrosession mysql: the connection passed is not a mysql2 or mysql pool or connection (no config to read)')
  }
  if (config.connectionConfig) {
    // A pool: its connection settings, plus its size and idle policy.
    const idle = typeof config.idleTimeout === 'number' ? config.idleTimeout : undefined
    const native = nativeOf(readable(config.connectionConfig), 'connection.config.connectionConfig', config.connectionLimit)
    return { ...native, idleTimeoutMs: native.idleTimeoutMs ?? idle }
  }
  return nativeOf(readable(config), 'connection.config')
}

/** The settings a ConnectionConfig holds that matter here (it also holds internals). */
function readable (config) {
  const out = {}
  for (const key of ['host', 'port', 'user', 'password', 'database', 'socketPath', 'ssl', 'connectTimeout', 'localAddress',
    'password2', 'password3', 'authPlugins', 'stream']) {
    if (config[key] !== undefined && config[key] !== null && config[key] !== false && config[key] !== '') out[key] = config[key]
  }
  if (out.ssl === true) out.ssl = { rejectUnauthorized: true }
  return out
}

module.exports = { nativeOf, fromConnection, fromUrl, tlsOf }
