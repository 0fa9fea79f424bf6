'use strict'
// What every ferrosession store shares: express-session's callback contract (each callback
// exactly once, a Promise when no callback is given), JSON in JS, expiry rules, strict expiry on
// read, input checks, and the connect/disconnect events of the readiness switch.
// Subclasses only translate their options and create the native core.

const { Store } = require('express-session')
const native = require('./native')
const { invalidInput, storeError, CODES } = require('./errors')
const { expiryOf, hasExpired } = require('./expiry')

const noop = () => {}

/** Request codes of the native `batch` call (src/native_store.rs numbers them the same). */
const BATCHED = { get: 0, set: 1, touch: 2, destroy: 3 }

class NativeBackedStore extends Store {
  /**
   * @param {string} backend short name used in error messages (`redis`, `postgres`)
   * @param {object} options the options shared by every store
   */
  constructor (backend, options = {}) {
    super()
    this._backend = backend
    this.serializer = options.serializer || JSON
    if (typeof this.serializer.stringify !== 'function' || typeof this.serializer.parse !== 'function') {
      throw new TypeError(`ferrosession ${backend}: option serializer needs stringify and parse functions`)
    }
    this.disableTouch = Boolean(options.disableTouch)
    this.maxSize = positiveOrUndefined(options.maxSize, 'maxSize', backend)
    this.commandTimeout = positiveOrUndefined(options.commandTimeout, 'commandTimeout', backend) ?? 3000
    this.connectTimeout = positiveOrUndefined(options.connectTimeout, 'connectTimeout', backend) ?? 5000
    this._storeId = native.registerStore(this)
    this._native = null // set by the subclass through _attach()
    this._closed = false
    this._pruning = null // set by subclasses through _schedulePruning()
    this._inline = false // true for stores that answer without I/O (memory): never batched
    this._batch = null // requests waiting for the end of this event-loop turn
    this._flushBatch = this._flushBatch.bind(this)
  }

  _attach (core) {
    this._native = core
  }

  // --- express-session's API ---------------------------------------------------------------

  get (sid, cb) {
    return this._run('get', cb, (done) => {
      this._checkSid('get', sid)
      this._request('get', (err, text) => {
        if (err) return done(err)
        if (text === null || text === undefined) return done(null, null)
        this._parse('get', text, (err, sess) => {
          if (err) return done(err)
          done(null, hasExpired(sess) ? null : sess)
        })
      }, sid)
    })
  }

  set (sid, sess, cb) {
    return this._run('set', cb, (done) => {
      this._checkSid('set', sid)
      this._write('set', sid, sess, done)
    })
  }

  touch (sid, sess, cb) {
    return this._run('touch', cb, (done) => {
      this._checkSid('touch', sid)
      if (this.disableTouch) return process.nextTick(done, null)
      this._write('touch', sid, sess, done)
    })
  }

  destroy (sid, cb) {
    return this._run('destroy', cb, (done) => {
      this._checkSid('destroy', sid)
      this._request('destroy', (err) => done(err), sid)
    })
  }

  /** Every live session, each with its `id` (connect-redis's shape). */
  all (cb) {
    return this._run('all', cb, (done) => {
      this._call('all', (err, flat) => {
        if (err) return done(err)
        this._parseAll(flat, done)
      })
    })
  }

  ids (cb) {
    return this._run('ids', cb, (done) => this._call('ids', done))
  }

  length (cb) {
    return this._run('length', cb, (done) => this._call('length', done))
  }

  clear (cb) {
    return this._run('clear', cb, (done) => this._call('clear', done))
  }

  // --- lifecycle ---------------------------------------------------------------------------

  /** Resolves once the backend has answered a round trip (for apps that want to wait). */
  ready (cb) {
    return this._run('ready', cb, (done) => this._call('ping', (err) => done(err)))
  }

  /** Releases connections and timers; afterwards the process can exit on its own. */
  close (cb) {
    return this._run('close', cb, (done) => {
      if (this._closed) return process.nextTick(done, null)
      if (this._batch !== null) this._flushBatch() // requests made before close() still run
      this._closed = true
      if (this._pruning && this._pruning.timer) clearTimeout(this._pruning.timer)
      native.unregisterStore(this._storeId)
      this._call('close', (err) => done(err))
    })
  }

  /**
   * Removes expired sessions now (where the backend does not expire them itself). Resolves with
   * how many were removed; 0 when another process was pruning the same table at that moment.
   */
  prune (cb) {
    return this._run('prune', cb, (done) => this._call('prune', (err, removed) => {
      if (err && this._pruning) this._pruning.onError(err)
      done(err, removed < 0 ? 0 : removed)
    }))
  }

  /**
   * Prunes every `intervalMs` (passed through `jitter`), starting at the store's first use rather
   * than at construction; the timer never keeps the process alive and stops at close().
   */
  _schedulePruning (intervalMs, { jitter = (ms) => ms, onError = noop } = {}) {
    // Kept without a timer too (intervalMs 0 or false): explicit prune() errors still go to onError.
    this._pruning = { intervalMs: intervalMs > 0 ? intervalMs : 0, jitter, onError, timer: null }
  }

  _armPruning () {
    const p = this._pruning
    if (p.timer !== null || this._closed) return
    p.timer = setTimeout(() => this.prune(() => {
      p.timer = null
      this._armPruning()
    }), p.jitter(p.intervalMs))
    p.timer.unref()
  }

  _onBackendEvent (name, reason) {
    if (name === 'disconnect') this.emit('disconnect', storeError('ESESSION_UNAVAILABLE', reason))
    else this.emit(name)
  }

  // --- plumbing ----------------------------------------------------------------------------

  /**
   * Runs `start(done)`; `done` reaches the callback exactly once. Without a callback, returns a
   * Promise that is already marked handled: express-session calls `destroy(sid)` without one,
   * and a backend error there must not become an unhandled rejection that kills the process.
   */
  _run (op, cb, start) {
    const p = this._pruning
    if (p !== null && p.timer === null && p.intervalMs > 0) this._armPruning()
    if (typeof cb === 'function') {
      this._start(op, start, cb)
      return undefined
    }
    const promise = new Promise((resolve, reject) => {
      this._start(op, start, (err, value) => (err ? reject(err) : resolve(value)))
    })
    promise.catch(noop)
    return promise
  }

  _start (op, start, cb) {
    let called = false
    const done = (err, value) => {
      if (called) return
      called = true
      cb(err, value)
    }
    try {
      start(done)
    } catch (err) {
      if (called) throw err // the user's callback threw: not ours to swallow
      process.nextTick(done, this._asStoreError(op, err))
    }
  }

  /**
   * Calls the native method `method(id, ...args)` with `done` registered under `id`. A store that
   * needs no I/O (memory) answers a successful call at once: `done` then runs on setImmediate,
   * as express-session's own MemoryStore answers, without the trip through the dispatcher.
   */
  _call (method, done, ...args) {
    if (this._native === null) throw invalidInput(this._backend, method, 'the store is not initialised')
    const id = native.nextId()
    const answer = this._native[method](id, ...args)
    if (answer === undefined) native.register(id, done) // the answer comes through the dispatcher
    else setImmediate(done, null, answer)
  }

  /**
   * get/set/touch/destroy. With other requests in flight, requests made during one turn of the
   * event loop go to Rust together at its end: one native call and one wake-up of the runtime
   * for all of them (profiling showed the per-request wake-up and socket write, not the event
   * loop, limiting Redis throughput). With nothing in flight a request goes at once, so a
   * lone request waits for nothing.
   */
  _request (method, done, sid, text, at, ttl) {
    if (this._inline || (this._batch === null && native.inFlight() === 0)) {
      return text === undefined ? this._call(method, done, sid) : this._call(method, done, sid, text, at, ttl)
    }
    let b = this._batch
    if (b === null) {
      b = this._batch = { ids: [], ops: [], sids: [], values: [], at: [], ttl: [] }
      setImmediate(this._flushBatch)
    }
    b.ids.push(native.request(done))
    b.ops.push(BATCHED[method])
    b.sids.push(sid)
    b.values.push(text === undefined ? '' : text)
    b.at.push(at === undefined ? NaN : at)
    b.ttl.push(ttl === undefined ? NaN : ttl)
  }

  _flushBatch () {
    const b = this._batch
    if (b === null) return
    this._batch = null
    try {
      this._native.batch(b.ids, b.ops, b.sids, b.values, b.at, b.ttl)
    } catch (err) {
      const failure = this._asStoreError('batch', err)
      for (const id of b.ids) native.fail(id, failure)
    }
  }

  _write (op, sid, sess, done) {
    const text = this._stringify(op, sess)
    let expiry
    try {
      expiry = expiryOf(sess, this) // reads this.ttl and this.disableTTL
    } catch (err) {
      throw invalidInput(this._backend, op, err.message)
    }
    // A session whose cookie has already expired is deleted, not written (connect-redis's rule).
    if (expiry !== null && expiry.ttlSecs <= 0) return this._request('destroy', (err) => done(err), sid)
    const at = expiry === null ? undefined : expiry.atMs
    const ttl = expiry === null ? undefined : expiry.ttlSecs
    this._request(op, (err) => done(err), sid, text, at, ttl)
  }

  _stringify (op, sess) {
    let text
    try {
      text = this.serializer.stringify(sess)
    } catch (err) {
      throw invalidInput(this._backend, op, `the session cannot be serialised: ${err.message}`)
    }
    if (typeof text !== 'string') {
      throw invalidInput(this._backend, op, `the serializer returned ${typeof text}, not a string`)
    }
    if (this.maxSize !== undefined && text.length * 3 > this.maxSize && Buffer.byteLength(text) > this.maxSize) {
      throw invalidInput(this._backend, op, `the serialised session is ${Buffer.byteLength(text)} bytes, over maxSize ${this.maxSize}`)
    }
    return text
  }

  /** `serializer.parse` may be synchronous or return a Promise (connect-redis allows both). */
  _parse (op, text, done) {
    let result
    try {
      result = this.serializer.parse(text)
    } catch (err) {
      return done(invalidInput(this._backend, op, `the stored session cannot be parsed: ${err.message}`))
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      result.then((sess) => done(null, sess),
        (err) => done(invalidInput(this._backend, op, `the stored session cannot be parsed: ${err && err.message}`)))
    } else {
      done(null, result)
    }
  }

  _parseAll (flat, done) {
    const sessions = []
    let waiting = flat.length / 2
    let failed = false
    if (waiting === 0) return done(null, sessions)
    for (let i = 0; i < flat.length; i += 2) {
      const sid = flat[i]
      this._parse('all', flat[i + 1], (err, sess) => {
        if (failed) return
        if (err) {
          failed = true
          return done(err)
        }
        if (sess && typeof sess === 'object' && !hasExpired(sess)) {
          sess.id = sid
          sessions.push(sess)
        }
        if (--waiting === 0) done(null, sessions)
      })
    }
  }

  _checkSid (op, sid) {
    if (typeof sid !== 'string') {
      throw invalidInput(this._backend, op, `the session id must be a string, got ${sid === null ? 'null' : typeof sid}`)
    }
  }

  _asStoreError (op, err) {
    if (err && typeof err.code === 'string' && err.code.startsWith('ESESSION_')) return err
    const wrapped = invalidInput(this._backend, op, err && err.message ? err.message : String(err))
    if (this._closed) wrapped.code = CODES.closed
    wrapped.cause = err
    return wrapped
  }
}

function positiveOrUndefined (value, name, backend) {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`ferrosession ${backend}: option ${name} must be a positive number, got ${String(value)}`)
  }
  return value
}

module.exports = { NativeBackedStore }
