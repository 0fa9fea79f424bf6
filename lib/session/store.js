'use strict'
// The base class of session stores, as express-session 1.19's Store: an EventEmitter whose
// `createSession` turns what a store returned into `req.session`. ferrosession's stores extend it,
// and so can any store written for express-session's.

const { EventEmitter } = require('node:events')
const util = require('node:util')
const Cookie = require('./cookie')
const Session = require('./session')

/**
 * An EventEmitter; where express-session is installed, by way of its Store, so that our stores
 * (and stores built on this class) are `instanceof` express-session's Store too, as apps that
 * switch only their store expect. Every method used is defined here either way.
 */
const Base = (() => {
  let theirs
  try {
    const module = require('express-session')
    // Read as an own property: reading a missing one off a module still loading makes Node warn.
    const own = module && Object.getOwnPropertyDescriptor(module, 'Store')
    theirs = own && own.value
  } catch {
    return EventEmitter
  }
  // express-session may be this very middleware under its name (an npm alias, `overrides`): its
  // Store is then ours, or not defined yet while the two modules load each other.
  return typeof theirs === 'function' && theirs.ferrosession !== true ? theirs : EventEmitter
})()

function Store () {
  Base.call(this)
}

util.inherits(Store, Base)
/** Tells this class from express-session's own (see Base). */
Object.defineProperty(Store, 'ferrosession', { value: true })

/** Destroys the request's session and generates a new one (through `generate`, set by session()). */
Store.prototype.regenerate = function (req, fn) {
  const self = this
  this.destroy(req.sessionID, function (err) {
    self.generate(req)
    fn(err)
  })
}

/** Loads a Session for `sid` (a helper for apps; the middleware does not use it). */
Store.prototype.load = function (sid, fn) {
  const self = this
  this.get(sid, function (err, sess) {
    if (err) return fn(err)
    if (!sess) return fn()
    const req = { sessionID: sid, sessionStore: self }
    fn(null, self.createSession(req, sess))
  })
}

/** Turns stored data into `req.session`, with a real Cookie (a string `expires` becomes a Date). */
Store.prototype.createSession = function (req, sess) {
  const expires = sess.cookie.expires
  const originalMaxAge = sess.cookie.originalMaxAge
  sess.cookie = new Cookie(sess.cookie)
  if (typeof expires === 'string') sess.cookie.expires = new Date(expires)
  sess.cookie.originalMaxAge = originalMaxAge
  req.session = new Session(req, sess)
  return req.session
}

module.exports = Store
