'use strict'
// RedisStore: connect-redis 10's options, fields and data format (key `prefix + sid`, value the
// serialised session), with the I/O in Rust. Pass a `url`, `cluster` or `sentinel` settings, or
// the node-redis / ioredis `client` the app already builds (a single server, a Cluster or a
// Sentinel): the store reads its connection settings (lib/redis-settings.js) and opens its own
// native connection, so the app's construction code stays as it is.

const { optionError } = require('./errors')
const { NativeBackedStore } = require('./base-store')
const { normaliseTtl } = require('./expiry')
const { connectionOf } = require('./redis-settings')
const { checkOptions } = require('./options')

class RedisStore extends NativeBackedStore {
  constructor (options = {}) {
    checkOptions(options, 'redis', 'RedisStore')
    super('redis', options)
    const connection = connectionOf(options)
    this.client = options.client
    this.prefix = options.prefix == null ? 'sess:' : String(options.prefix)
    this.scanCount = options.scanCount == null ? 100 : options.scanCount
    if (!Number.isInteger(this.scanCount) || this.scanCount < 1) {
      throw optionError(`ferrosession redis: option scanCount must be a positive integer, got ${String(options.scanCount)}`)
    }
    this.ttl = normaliseTtl(options.ttl, 'redis')
    this.disableTTL = Boolean(options.disableTTL)
    this._open({
      url: connection.url,
      cluster: connection.cluster,
      sentinel: connection.sentinel,
      tlsCa: connection.tls.ca,
      tlsCert: connection.tls.cert,
      tlsKey: connection.tls.key,
      // A client's own key prefix (ioredis keyPrefix) applies before ours: keys stay what the app had.
      prefix: connection.keyPrefix + this.prefix,
      scanCount: this.scanCount
    })
  }
}

module.exports = { RedisStore }
