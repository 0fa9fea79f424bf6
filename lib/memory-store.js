'use strict'
// MemoryStore: a production-safe replacement for express-session's MemoryStore. Bounded by
// `max` entries (least recently used evicted) and optionally by `maxBytes`, expired entries
// removed on access and by an unref'd sweep every `checkPeriod` ms. Options follow the npm
// `memorystore` where they make sense: its `ttl` is in milliseconds.

const { optionError } = require('./errors')
const { NativeBackedStore } = require('./base-store')
const { checkOptions } = require('./options')
const { DAY_SECONDS } = require('./expiry')

const DEFAULT_MAX = 100000

class MemoryStore extends NativeBackedStore {
  constructor (options = {}) {
    checkOptions(options, 'memory', 'MemoryStore')
    super('memory', options)
    this.max = options.max === undefined ? DEFAULT_MAX : (options.max === Infinity ? undefined : options.max)
    if (this.max !== undefined && (!Number.isInteger(this.max) || this.max < 1)) {
      throw optionError(`ferrosession memory: option max must be a positive integer or Infinity, got ${String(options.max)}`)
    }
    this.maxBytes = options.maxBytes
    this.ttl = ttlInSeconds(options)
    this.checkPeriod = options.checkPeriod || 0
    this._schedulePruning(this.checkPeriod)
    this._open({ max: this.max, maxBytes: this.maxBytes })
  }

  /** express-session's MemoryStore answers all() with an object keyed by sid (no prototype). */
  _allShaped (pairs) {
    const sessions = Object.create(null)
    for (const [sid, sess] of pairs) sessions[sid] = sess
    return sessions
  }

  /** memorystore's name for stopping the sweep. */
  stopInterval () {
    if (this._pruning && this._pruning.timer) clearTimeout(this._pruning.timer)
    this._pruning = null
  }
}

/** memorystore's `ttl`, in ms or as `(options, sess, sid) => ms`, turned into our seconds. */
function ttlInSeconds (options) {
  const { ttl } = options
  if (ttl === undefined || ttl === null) return DAY_SECONDS
  if (typeof ttl === 'function') return (sess) => ttl(options, sess, undefined) / 1000
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
    throw optionError(`ferrosession memory: option ttl must be a positive number of milliseconds or a function, got ${String(ttl)}`)
  }
  return ttl / 1000
}

module.exports = { MemoryStore }
