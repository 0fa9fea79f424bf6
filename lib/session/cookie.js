'use strict'
// The session cookie, as express-session 1.19's Cookie behaves: `maxAge` sets `expires`,
// `originalMaxAge` remembers the configured lifetime, `data`/`toJSON()` is what stores keep.

const cookie = require('cookie')
const deprecate = require('depd')('express-session')

function Cookie (options) {
  this.path = '/'
  this.maxAge = null
  this.httpOnly = true
  if (options) {
    if (typeof options !== 'object') throw new TypeError('argument options must be a object')
    for (const key in options) {
      if (key !== 'data') this[key] = options[key]
    }
  }
  if (this.originalMaxAge === undefined || this.originalMaxAge === null) this.originalMaxAge = this.maxAge
}

Cookie.prototype = {
  set expires (date) {
    this._expires = date
    this.originalMaxAge = this.maxAge
  },

  get expires () {
    return this._expires
  },

  /** Sets `expires` from a lifetime in ms. */
  set maxAge (ms) {
    if (ms && typeof ms !== 'number' && !(ms instanceof Date)) throw new TypeError('maxAge must be a number or Date')
    if (ms instanceof Date) deprecate('maxAge as Date; pass number of milliseconds instead')
    if (typeof ms !== 'number') {
      this.expires = ms
      return
    }
    // One clock reading: express-session reads Date.now() twice here, so originalMaxAge can come
    // out a millisecond short of the configured value when the clock ticks in between.
    this._expires = new Date(Date.now() + ms)
    this.originalMaxAge = ms
  },

  /** The ms left until `expires`. */
  get maxAge () {
    return this.expires instanceof Date ? this.expires.valueOf() - Date.now() : this.expires
  },

  /** What stores keep (and what `JSON.stringify` writes): undefined members vanish there. */
  get data () {
    return {
      originalMaxAge: this.originalMaxAge,
      partitioned: this.partitioned,
      priority: this.priority,
      expires: this._expires,
      secure: this.secure,
      httpOnly: this.httpOnly,
      domain: this.domain,
      path: this.path,
      sameSite: this.sameSite
    }
  },

  serialize (name, val) {
    return cookie.serialize(name, val, this.data)
  },

  toJSON () {
    return this.data
  }
}

module.exports = Cookie
