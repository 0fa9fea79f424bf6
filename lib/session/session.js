'use strict'
// `req.session`, as express-session 1.19's Session behaves: the session's data as own enumerable
// properties, and the methods (non-enumerable, so never stored) that act through the store.

function Session (req, data) {
  Object.defineProperty(this, 'req', { value: req })
  Object.defineProperty(this, 'id', { value: req.sessionID })
  if (typeof data === 'object' && data !== null) {
    // merge data into this, ignoring prototype properties
    for (const prop in data) {
      if (!(prop in this)) this[prop] = data[prop]
    }
  }
}

function defineMethod (obj, name, fn) {
  Object.defineProperty(obj, name, { configurable: true, enumerable: false, value: fn, writable: true })
}

/** Refreshes the cookie's expiry (`resetMaxAge`). */
defineMethod(Session.prototype, 'touch', function touch () {
  return this.resetMaxAge()
})

defineMethod(Session.prototype, 'resetMaxAge', function resetMaxAge () {
  this.cookie.maxAge = this.cookie.originalMaxAge
  return this
})

defineMethod(Session.prototype, 'save', function save (fn) {
  this.req.sessionStore.set(this.id, this, fn || function () {})
  return this
})

/** Loads the stored session again into a new `req.session`. */
defineMethod(Session.prototype, 'reload', function reload (fn) {
  const req = this.req
  const store = this.req.sessionStore
  store.get(this.id, function (err, sess) {
    if (err) return fn(err)
    if (!sess) return fn(new Error('failed to load session'))
    store.createSession(req, sess)
    fn()
  })
  return this
})

defineMethod(Session.prototype, 'destroy', function destroy (fn) {
  delete this.req.session
  this.req.sessionStore.destroy(this.id, fn)
  return this
})

defineMethod(Session.prototype, 'regenerate', function regenerate (fn) {
  this.req.sessionStore.regenerate(this.req, fn)
  return this
})

module.exports = Session
