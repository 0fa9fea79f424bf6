'use strict'
// Where a RedisStore connects, read from what the app already has: a `url`, our `cluster` /
// `sentinel` options, or the node-redis / ioredis client it passes as `client` (a single server,
// a Cluster or a Sentinel). The store never uses that client: it reads its settings and opens a
// native connection. Settings are used or refused with an error naming them, never dropped.

const { optionError } = require('./errors')
const DEFAULT_URL = 'redis://127.0.0.1:6379'

function refuse (where, why) {
  return optionError(`ferrosession redis: ${where} ${why}`)
}

/** PEM text from what Node's TLS options take: a string, a Buffer, or an array of them. */
function pem (value) {
  if (value === undefined || value === null) return undefined
  return [].concat(value).map(String).join('\n')
}

/** `redis[s]://user:password@host:port/db`, with every part percent-encoded. */
function nodeUrl ({ host = '127.0.0.1', port = 6379, tls = false, username, password, db = 0 }) {
  const user = username ? encodeURIComponent(username) : ''
  const auth = password ? `${user}:${encodeURIComponent(password)}@` : (user ? `${user}@` : '')
  const hostPart = String(host).includes(':') ? `[${host}]` : host
  return `${tls ? 'rediss' : 'redis'}://${auth}${hostPart}:${port}/${db}`
}

/** The TLS material of node-redis's `socket` options or ioredis's `tls` option. */
function tlsOf (tls, where) {
  if (!tls || typeof tls !== 'object') return {}
  for (const key of ['passphrase', 'pfx']) {
    if (tls[key] !== undefined) throw refuse(`${where}.${key}`, 'is not supported: give the certificate and key as PEM, the key decrypted')
  }
  if (tls.rejectUnauthorized === false) throw refuse(`${where}.rejectUnauthorized: false`, 'is not supported: give the CA to trust instead')
  return { ca: pem(tls.ca), cert: pem(tls.cert), key: pem(tls.key) }
}

const isNodeRedisCluster = (c) => typeof c.nodeClient === 'function' && 'masters' in c
const isNodeRedisSentinel = (c) => typeof c.getMasterNode === 'function' && typeof c.getSentinelNode === 'function'
const isIoredisCluster = (c) => c.isCluster === true
const isIoredisSentinel = (c) => Boolean(c.options && Array.isArray(c.options.sentinels) && c.options.sentinels.length)

/** A node-redis `{ url }` or `{ socket: { host, port, tls } }` node (a cluster root node). */
function nodeRedisNode (node, defaults, where) {
  if (node.url) return node.url
  const socket = { ...(defaults.socket || {}), ...(node.socket || {}) }
  return nodeUrl({ host: socket.host, port: socket.port, tls: Boolean(socket.tls), username: defaults.username, password: defaults.password })
}

/** Our `cluster: { rootNodes, defaults }` option, named after node-redis's createCluster. */
function fromClusterOption (cluster, where = 'cluster') {
  const roots = cluster.rootNodes
  if (!Array.isArray(roots) || roots.length === 0) throw refuse(`${where}.rootNodes`, 'must list at least one node ({ url } or { socket: { host, port } })')
  const defaults = cluster.defaults || {}
  const socket = defaults.socket || {}
  return {
    cluster: roots.map((node) => nodeRedisNode(node, defaults, where)),
    url: nodeRedisNode(roots[0], defaults, where),
    tls: tlsOf(socket, `${where}.defaults.socket`),
    keyPrefix: cluster.keyPrefix || ''
  }
}

/** Our `sentinel: { sentinels, name, ... }` option, named after node-redis's createSentinel. */
function fromSentinelOption (s, where = 'sentinel') {
  const list = s.sentinels || s.sentinelRootNodes
  if (!Array.isArray(list) || list.length === 0) throw refuse(`${where}.sentinels`, 'must list at least one sentinel ({ host, port })')
  if (!s.name) throw refuse(`${where}.name`, 'is required: the master name the sentinels monitor')
  const node = s.nodeClientOptions || {}
  const nodeSocket = node.socket || {}
  const sentinelClient = s.sentinelClientOptions || {}
  const sentinelTls = Boolean(s.sentinelTLS || s.enableTLSForSentinelMode || (sentinelClient.socket && sentinelClient.socket.tls))
  const tls = Boolean(s.tls || nodeSocket.tls)
  return {
    url: nodeUrl({ host: 'sentinel-master', tls, username: s.username ?? node.username, password: s.password ?? node.password, db: s.db ?? node.database ?? 0 }),
    sentinel: {
      sentinels: list.map((x) => nodeUrl({ host: x.host, port: x.port || 26379, tls: sentinelTls })),
      name: String(s.name),
      sentinelUsername: s.sentinelUsername ?? sentinelClient.username,
      sentinelPassword: s.sentinelPassword ?? sentinelClient.password
    },
    tls: tlsOf(typeof s.tls === 'object' ? s.tls : nodeSocket, `${where}.tls`),
    keyPrefix: ''
  }
}

/** node-redis's createSentinel keeps its options private; duplicate() hands them to a constructor. */
function nodeRedisSentinelOptions (client) {
  if (typeof client.duplicate !== 'function') {
    throw refuse('option client', 'is a node-redis Sentinel client whose settings cannot be read (node-redis 6 is needed); pass sentinel: { sentinels, name } instead')
  }
  let options
  const proto = Object.create(client)
  proto.constructor = function capture (o) { options = o }
  client.duplicate.call(Object.create(proto))
  if (!options) throw refuse('option client', 'is a node-redis Sentinel client whose settings cannot be read; pass sentinel: { sentinels, name } instead')
  return options
}

/** The connection settings of an existing node-redis (v4-v6) or ioredis client of any kind. */
function fromClient (client) {
  if (isIoredisCluster(client)) {
    const o = client.options || {}
    const r = o.redisOptions || {}
    const tls = Boolean(r.tls)
    const roots = (client.startupNodes || []).map((n) => typeof n === 'string'
      ? n
      : typeof n === 'number' ? nodeUrl({ port: n, tls, username: r.username, password: r.password }) : nodeUrl({ ...n, tls, username: r.username, password: r.password }))
    return { ...fromClusterOption({ rootNodes: roots.map((url) => ({ url })) }, 'client (an ioredis Cluster)'), tls: tlsOf(r.tls, 'client.options.redisOptions.tls'), keyPrefix: o.keyPrefix || r.keyPrefix || '' }
  }
  if (isNodeRedisCluster(client)) {
    if (!client._options) throw refuse('option client', 'is a node-redis Cluster client whose settings cannot be read (node-redis 5.1.1 or later keeps them readable); pass cluster: { rootNodes } instead')
    return fromClusterOption(client._options, 'client (a node-redis Cluster)')
  }
  if (isNodeRedisSentinel(client)) return fromSentinelOption(nodeRedisSentinelOptions(client), 'client (a node-redis Sentinel)')
  if (isIoredisSentinel(client)) {
    const o = client.options
    return fromSentinelOption({ sentinels: o.sentinels, name: o.name, username: o.username, password: o.password, db: o.db, tls: o.tls, sentinelUsername: o.sentinelUsername, sentinelPassword: o.sentinelPassword, enableTLSForSentinelMode: o.enableTLSForSentinelMode }, 'client (an ioredis Sentinel)')
  }
  return fromSingleClient(client)
}

/** node-redis keeps `options.url` / `options.socket`; ioredis keeps flat `options.host`/`port`/`db`. */
function fromSingleClient (client) {
  const o = client.options || client._options
  if (!o || typeof o !== 'object') {
    throw refuse('option client', 'is not a node-redis or ioredis client (it has no options to read); pass url: \'redis://...\' instead')
  }
  const socket = o.socket || {}
  const tlsOptions = typeof o.tls === 'object' && o.tls ? o.tls : socket
  let url
  if (o.url) {
    const u = new URL(o.url)
    if (o.database != null) u.pathname = `/${o.database}`
    if (socket.tls && u.protocol === 'redis:') u.protocol = 'rediss:'
    url = u.toString()
  } else {
    url = nodeUrl({
      host: socket.host || o.host || '127.0.0.1',
      port: socket.port || o.port || 6379,
      tls: Boolean(socket.tls || o.tls),
      username: o.username,
      password: o.password,
      db: o.database ?? o.db ?? 0
    })
  }
  return { url, tls: tlsOf(tlsOptions, o.socket ? 'client.options.socket' : 'client.options.tls'), keyPrefix: o.keyPrefix || '' }
}

/** Where the store connects: `url`, else `cluster`, else `sentinel`, else `client`, else localhost. */
function connectionOf (options) {
  // connect-redis 3's connection settings (host, port, db, pass): honoured, never dropped.
  const parts = ['host', 'port', 'db', 'password', 'pass', 'username'].filter((k) => options[k] !== undefined)
  const given = ['url', 'cluster', 'sentinel', 'client'].filter((k) => options[k]).concat(parts.length ? ['host/port'] : [])
  if (given.length > 1 && !(given.length === 2 && given.includes('client') && !parts.length)) {
    throw refuse(`options ${given.join(' and ')}`, 'name two places to connect; give one')
  }
  let c
  if (parts.length) {
    if (options.port !== undefined && !(Number.isInteger(Number(options.port)) && Number(options.port) > 0)) throw refuse('option port', `must be a port number, got ${String(options.port)}`)
    c = { url: nodeUrl({ host: options.host ?? '127.0.0.1', port: options.port ?? 6379, db: options.db ?? 0, username: options.username, password: options.password ?? options.pass }), tls: {}, keyPrefix: '' }
  } else if (options.url) c = { url: options.url, tls: {}, keyPrefix: '' }
  else if (options.cluster) c = fromClusterOption(options.cluster)
  else if (options.sentinel) c = fromSentinelOption(options.sentinel)
  else if (options.client) c = fromClient(options.client)
  else c = { url: DEFAULT_URL, tls: {}, keyPrefix: '' }
  // Our own `tls` option adds to (and wins over) what the client says.
  const own = tlsOf(options.tls, 'option tls')
  c.tls = { ca: own.ca ?? c.tls.ca, cert: own.cert ?? c.tls.cert, key: own.key ?? c.tls.key }
  return c
}

module.exports = { connectionOf, nodeUrl }
