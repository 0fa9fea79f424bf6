'use strict'
// RedisStore: connect-redis 10's options, fields and data format (key `prefix + sid`, value the
// serialised session, `SET ... EX ttl`), with the I/O in Rust. Pass a `url`, or the node-redis /
// ioredis `client` the app already builds: the store reads its connection settings and opens its
// own native connection, so the app's construction code stays as it is.

const { NativeBackedStore } = require('./base-store')
const { binding, dispatcher } = require('./native')
const { normaliseTtl } = require('./expiry')

const DEFAULT_URL = 'redis://127.0.0.1:6379'

class RedisStore extends NativeBackedStore {
  constructor (options = {}) {
    super('redis', options)
    refuseScaleOutClient(options.client)
    this.client = options.client
    const url = options.url || (options.client ? urlOfClient(options.client) : DEFAULT_URL)
    // ioredis applies its keyPrefix before ours; keep the keys identical to what the app had.
    const clientPrefix = (options.client && options.client.options && options.client.options.keyPrefix) || ''
    this.prefix = options.prefix == null ? 'sess:' : String(options.prefix)
    this.scanCount = options.scanCount == null ? 100 : options.scanCount
    if (!Number.isInteger(this.scanCount) || this.scanCount < 1) {
      throw new TypeError(`ferrosession redis: option scanCount must be a positive integer, got ${String(options.scanCount)}`)
    }
    this.ttl = normaliseTtl(options.ttl, 'redis')
    this.disableTTL = Boolean(options.disableTTL)
    const ca = options.tls && options.tls.ca !== undefined ? options.tls.ca : clientCa(options.client)
    this._attach(binding.NativeStore.redis(dispatcher, this._storeId, {
      url,
      tlsCa: ca === undefined ? undefined : [].concat(ca).map(String).join('\n'),
      prefix: clientPrefix + this.prefix,
      scanCount: this.scanCount,
      connectTimeoutMs: Math.ceil(this.connectTimeout),
      commandTimeoutMs: Math.ceil(this.commandTimeout)
    }))
  }
}

/**
 * A Cluster or Sentinel client read as a single-node one would silently become a connection to
 * one node (or to localhost): refuse it, naming what it is.
 */
function refuseScaleOutClient (client) {
  if (!client || typeof client !== 'object') return
  const kind = client.isCluster === true || (typeof client.nodeClient === 'function' && 'masters' in client)
    ? 'a Redis Cluster client'
    : (typeof client.getMasterNode === 'function' || (client.options && Array.isArray(client.options.sentinels)))
        ? 'a Redis Sentinel client'
        : null
  if (kind) {
    throw new TypeError(`ferrosession redis: option client is ${kind}; this version of RedisStore supports single Redis ` +
      'servers only, and will not quietly connect to just one node')
  }
}

/**
 * The connection URL of an existing node-redis (v4-v6) or ioredis client.
 * node-redis keeps `options.url` / `options.socket`; ioredis keeps flat `options.host`/`port`/`db`.
 */
function urlOfClient (client) {
  const o = client.options || client._options || {}
  if (o.url) return withDatabase(o.url, o.database)
  const socket = o.socket || {}
  const host = socket.host || o.host || '127.0.0.1'
  const port = socket.port || o.port || 6379
  const tls = Boolean(socket.tls || o.tls)
  const db = o.database ?? o.db ?? 0
  const user = o.username ? encodeURIComponent(o.username) : ''
  const auth = o.password ? `${user}:${encodeURIComponent(o.password)}@` : (user ? `${user}@` : '')
  const hostPart = host.includes(':') ? `[${host}]` : host
  return `${tls ? 'rediss' : 'redis'}://${auth}${hostPart}:${port}/${db}`
}

/** The CA a node-redis (`socket.ca`) or ioredis (`tls.ca`) client was told to trust, if any. */
function clientCa (client) {
  const o = (client && (client.options || client._options)) || {}
  if (o.socket && o.socket.ca !== undefined) return o.socket.ca
  if (o.tls && typeof o.tls === 'object' && o.tls.ca !== undefined) return o.tls.ca
  return undefined
}

function withDatabase (url, database) {
  if (database == null) return url
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

module.exports = { RedisStore, urlOfClient }
