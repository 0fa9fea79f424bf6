'use strict'
// What every ferrosession store shares: express-session's callback contract (each callback
// exactly once, a Promise when no callback is given), JSON in JS, expiry rules, strict expiry on
// read, input checks, close(), and the connect/disconnect events of the readiness switch.
// Subclasses only translate their options and create the native core.

const Store = require('./session/store')
const { serialised, wholeJson, pendingPatches } = require('./session/serialised')
const native = require('./native')
const knownExpiry = require('./known-expiry')
const { invalidInput, closedError, storeError, CODES, optionError, refusedSetting } = require('./errors')
const { expiresAt, hasExpired, cookieExpiresMs } = require('./expiry')
const { later } = require('./later')
const { StoreMetrics } = require('./metrics')

const { binding } = native
const noop = () => {}

/** Request codes of the native `batch` call: the native module is their one source. */
const BATCHED = { get: binding.OP_GET, set: binding.OP_SET, touch: binding.OP_TOUCH, destroy: binding.OP_DESTROY, patch: binding.OP_PATCH }

/** Sessions this large go to the native side at once instead of waiting for the end of the turn. */
const BATCH_MAX_CHARS = 256 * 1024
// Requests per batch: a full batch goes at once and the next one starts. Smaller batches overlap
// the stages (Rust and the server work on one batch while JS parses the answers to the previous);
// one batch of everything made JS and the server take turns waiting for each other. 32 measured
// best of 16/32/64/unbounded in bench/ (Redis get 2 KB at 256 in flight: 1.25x -> 2.0x ioredis).
const BATCH_MAX_REQUESTS = 32

/** At most this many sids are remembered as "already reported unreadable". */
const REPORTED_MAX = 10000

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
      throw optionError(`ferrosession ${backend}: option serializer needs stringify and parse functions`)
    }
    this.disableTouch = Boolean(options.disableTouch)
    this.maxSize = positiveOrUndefined(options.maxSize, 'maxSize', backend)
    this.commandTimeout = positiveOrUndefined(options.commandTimeout, 'commandTimeout', backend) ?? binding.DEFAULT_COMMAND_TIMEOUT_MS
    this.connectTimeout = positiveOrUndefined(options.connectTimeout, 'connectTimeout', backend) ?? binding.DEFAULT_CONNECT_TIMEOUT_MS
    // Only stores that keep connections take it (lib/options.js); a subclass may take it from the
    // app's own driver settings instead.
    this.idleTimeout = idleMs(options.idleTimeout, backend) ?? binding.DEFAULT_IDLE_TIMEOUT_MS
    if (options.errorLog !== undefined && typeof options.errorLog !== 'function') {
      throw optionError(`ferrosession ${backend}: option errorLog must be a function`)
    }
    this.errorLog = options.errorLog || console.error.bind(console)
    // Lazy touch (connect-mongo's touchAfter, in seconds): every write stores the expiry that many
    // seconds ahead of the cookie's, so a touch may be skipped while the stored expiry still covers
    // what the cookie promises. A session can outlive its cookie by up to touchAfter, never the
    // reverse (docs/design.md, "Lazy touch").
    this.touchAfter = nonNegative(options.touchAfter, 'touchAfter', backend)
    this._touchPadMs = this.touchAfter * 1000
    this._skippedReported = 0 // keys a listing skipped, as last reported (_reportSkipped)
    this._encryption = encryptionOf(options.encryption, backend)
    this._attaching = null // a Promise while the native core waits for something (clientPromise)
    this._storeId = native.registerStore(this)
    this._place = `${backend}#${this._storeId}` // where its sessions live (lib/known-expiry.js); set by _open
    this._native = null // set by the subclass through _attach()
    this._inline = false // stores that answer without I/O (memory) are never batched
    this._closed = false
    this._inFlight = 0 // this store's requests not answered yet: close() waits for them
    this._whenIdle = null
    this._pruning = null // set by subclasses through _schedulePruning()
    this._batch = null // requests waiting for the end of this event-loop turn
    this._flushBatch = this._flushBatch.bind(this)
    this._reported = new Set() // sids whose unreadable session was reported once
    this._metrics = new StoreMetrics(backend)
    this._connected = true // until a disconnect event says otherwise
  }

  /**
   * Builds this store's native core from its backend's own settings plus the ones every store
   * shares (timeouts, idle release), and attaches it.
   */
  _open (settings) {
    const common = {
      commandTimeoutMs: Math.ceil(this.commandTimeout),
      connectTimeoutMs: Math.ceil(this.connectTimeout),
      idleTimeoutMs: Math.ceil(this.idleTimeout)
    }
    this._place = knownExpiry.placeOf(this._backend, this._storeId, settings, this._touchPadMs)
    this._attach(native.openNative(this._backend, this._storeId, common, settings))
  }

  _attach (core) {
    if (this._encryption !== null) {
      try {
        core.encrypt(this._encryption) // before any request
      } catch (err) {
        throw refusedSetting(err, this._backend) // a key of 31 bytes, a short passphrase
      }
    }
    this._native = core
    this._inline = core.runsInline
    this._precision = core.expiryPrecisionMs
    this._realClockExpiry = core.expiryOnRealClock
  }

  // --- express-session's API ---------------------------------------------------------------

  get (sid, cb) {
    return this._run('get', cb, (done) => {
      this._checkSid('get', sid)
      const now = Date.now()
      this._request('get', (err, text, expiresAt) => {
        if (err) return err.code === CODES.unparsable ? this._unreadable(sid, withoutPrefix(err.message), done) : done(err)
        if (Array.isArray(text)) [text, expiresAt] = text // an inline backend's answer
        if (text === null || text === undefined) return done(null, null)
        this._parse('get', text, (err, sess) => {
          if (err) return this._unreadable(sid, parseFailure(err, text), done)
          if (!isSession(sess)) return this._unreadable(sid, notASession(sess), done)
          this._reportExpiry(sess, expiresAt)
          const now = Date.now()
          if (hasExpired(sess, now - this._touchPadMs)) return done(null, null)
          if (this._touchPadMs > 0) this._rememberExpiry(sid, sess, expiresAt)
          done(null, sess)
        })
      }, sid, undefined, undefined, now)
    })
  }

  /**
   * Whether an expiry the backend reported means something on the app's clock: a TTL counted in
   * real time (Redis) does only while that clock is the real one.
   */
  _reportedExpiryUsable () {
    return !this._realClockExpiry || Math.abs(Date.now() - binding.realNowMs()) <= 20
  }

  /**
   * touch moves only the backend's expiry (the stored text keeps the cookie it was written with,
   * as connect-redis's does), so a read reports the backend's real expiry in `cookie.expires` when
   * it is later than the stored one by more than the backend's granularity. Sessions without a
   * cookie expiry (browser-session cookies) are left as they are.
   */
  _reportExpiry (sess, expiresAt) {
    if (!(expiresAt > 0) || !sess || typeof sess !== 'object' || !sess.cookie || !sess.cookie.expires) return
    // A TTL counted in real time (Redis) maps onto the JS clock only while that clock is real: a
    // test that fakes it keeps the stored cookie's expiry, which touch keeps current.
    if (!this._reportedExpiryUsable()) return
    const stored = new Date(sess.cookie.expires).getTime()
    if (!(expiresAt > stored + this._precision)) return
    sess.cookie.expires = typeof sess.cookie.expires === 'string' ? new Date(expiresAt).toISOString() : new Date(expiresAt)
  }

  set (sid, sess, cb) {
    const patch = this._pendingPatch(sess)
    if (patch !== undefined) return this.patch(sid, patch, sess, cb)
    return this._run('set', cb, (done) => {
      this._checkSid('set', sid)
      this._write('set', sid, sess, (err) => done(err))
    })
  }

  /**
   * The end-of-request save of a session the request loaded (ferrosession's session(), docs/
   * design.md "Concurrent requests"): `patch` is the JSON merge patch (RFC 7396) from the JSON it
   * loaded to the JSON it has now. It is merged into what is stored now, with no other request of
   * this process for the sid in between, and written with the expiry of `sess`'s cookie; when the
   * session is gone (a logout, a regenerate, expiry) nothing is written.
   */
  patch (sid, patch, sess, cb) {
    return this._run('patch', cb, (done) => {
      this._checkSid('patch', sid)
      let text
      try {
        text = JSON.stringify(patch)
      } catch (err) {
        throw invalidInput(this._backend, 'patch', `the session cannot be serialised: ${String(err.message).split('\n')[0]}`)
      }
      this._write('patch', sid, sess, (err) => done(err), text)
    })
  }

  /** The merge patch session() handed over with `sess` for this save, if this store merges. */
  _pendingPatch (sess) {
    return this.mergesPatches && sess !== null && typeof sess === 'object' ? pendingPatches.get(sess) : undefined
  }

  /** Whether session() may save this store's sessions as patches: the merge works on JSON text. */
  get mergesPatches () {
    return this.serializer === JSON
  }

  /** Moves the session's expiry to its cookie's new one; the stored text is not rewritten. */
  touch (sid, sess, cb) {
    return this._run('touch', cb, (done) => {
      this._checkSid('touch', sid)
      if (this.disableTouch) return later(done, null)
      const now = Date.now()
      let at
      try {
        at = expiresAt(sess, this, now)
      } catch (err) {
        throw invalidInput(this._backend, 'touch', err.message)
      }
      // Already expired: leave it to expire (touch never deletes, nor recreates).
      if (at !== null && at <= now) return later(done, null)
      if (this._touchPadMs > 0) {
        const known = knownExpiry.take(this._place, sid)
        // The stored copy already lives at least as long as the cookie now promises: no round trip.
        if (known !== undefined && at !== null && at <= known) return later(done, null)
      }
      this._request('touch', (err) => done(err), sid, undefined, at === null ? NaN : at + this._touchPadMs, now)
    })
  }

  destroy (sid, cb) {
    return this._run('destroy', cb, (done) => {
      this._checkSid('destroy', sid)
      knownExpiry.forget(this._place, sid)
      this._request('destroy', (err) => done(err), sid)
    })
  }

  /** Every live session, in the anchor's shape (`_allShaped`). */
  all (cb) {
    return this._run('all', cb, (done) => {
      this._call('all', (err, flat) => {
        if (err) return done(err)
        this._reportSkipped('all')
        this._parseAll(flat, (err, pairs) => done(err, err ? undefined : this._allShaped(pairs)))
      }, Date.now())
    })
  }

  /**
   * `all()`'s answer from `[sid, session]` pairs: connect-redis's shape, an array of sessions
   * each with its `id`. Stores whose anchor answers an object keyed by sid override it.
   */
  _allShaped (pairs) {
    return pairs.map(([sid, sess]) => {
      sess.id = sid
      return sess
    })
  }

  ids (cb) {
    return this._run('ids', cb, (done) => this._call('ids', this._listing('ids', done), Date.now()))
  }

  length (cb) {
    return this._run('length', cb, (done) => this._call('length', this._listing('length', done), Date.now()))
  }

  /** `done` for a listing, reporting first what it skipped (`_reportSkipped`). */
  _listing (op, done) {
    return (err, value) => {
      if (!err) this._reportSkipped(op)
      done(err, value)
    }
  }

  /**
   * Keys under this store's namespace that cannot be a session id (Redis keys that are not UTF-8,
   * written by another program) are skipped by ids/all/length and removed by clear; each new
   * count is reported once through errorLog.
   */
  _reportSkipped (op) {
    const skipped = this._native === null ? 0 : this._native.skippedByLastListing
    if (!(skipped > 0) || skipped === this._skippedReported) return
    this._skippedReported = skipped
    const err = storeError(CODES.unparsable, `ferrosession ${this._backend} ${op}: ${skipped} key(s) under this store's prefix are ` +
      'not UTF-8 text, so no session id of ours: skipped (clear() removes them)')
    try {
      this.errorLog(err)
    } catch {
      // a throwing logger must not break the request
    }
  }

  /** Removes every session of this store; resolves with how many were removed. */
  clear (cb) {
    return this._run('clear', cb, (done) => this._call('clear', done))
  }

  // --- lifecycle ---------------------------------------------------------------------------

  /** Resolves once the backend has answered a round trip (for apps that want to wait). */
  ready (cb) {
    return this._run('ready', cb, (done) => this._call('ping', (err) => done(err)))
  }

  /**
   * Releases connections and timers; afterwards the process can exit on its own. Requests made
   * before close() complete normally and its callback fires after they have answered; requests
   * made after it fail at once with ESESSION_CLOSED. Nothing reopens.
   */
  close (cb) {
    return this._run('close', cb, (done) => {
      if (this._closed) return later(done, null)
      this._closed = true
      if (this._batch !== null) this._flushBatch() // requests made before close() still run
      if (this._pruning && this._pruning.timer) clearTimeout(this._pruning.timer)
      native.unregisterStore(this._storeId)
      const closeNative = () => this._call('close', (err) => done(err))
      // A core still being attached is closed once it is there (or never was).
      const release = () => this._native !== null
        ? closeNative()
        : this._attaching === null ? later(done, null) : this._attaching.then(closeNative, () => done(null))
      if (this._inFlight === 0) release()
      else this._whenIdle = release
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
    }, Date.now()))
  }

  /**
   * Prunes every `intervalMs` (passed through `jitter`), starting at the store's first use rather
   * than at construction; the timer never keeps the process alive and stops at close(). It uses
   * the global setTimeout on purpose: an app's test that fakes timers can tick its way to a prune.
   */
  _schedulePruning (intervalMs, { jitter = (ms) => ms, onError = noop } = {}) {
    // Kept without a timer too (intervalMs 0 or false): explicit prune() errors still go to onError.
    this._pruning = { intervalMs: intervalMs > 0 ? intervalMs : 0, jitter, onError, timer: null }
  }

  _armPruning () {
    const p = this._pruning
    if (p.timer !== null || this._closed) return
    // The timer holds the store only weakly (and nothing that points back to it): a store nobody
    // references any more can be collected, and its connections released, with a prune pending.
    p.timer = setTimeout(pruneOnTimer, p.jitter(p.intervalMs), new WeakRef(this))
    if (p.timer && typeof p.timer.unref === 'function') p.timer.unref()
  }

  _onBackendEvent (name, reason) {
    if (name === 'disconnect') {
      this._connected = false
      this._metrics.outage()
      this.emit('disconnect', storeError('ESESSION_UNAVAILABLE', reason))
    } else {
      if (name === 'connect') this._connected = true
      this.emit(name)
    }
  }

  /**
   * What this store has done since it was made: operations by kind (count, errors, latency
   * histogram in ms), errors by code, outages, requests per native call. A plain object; see
   * docs/metrics.md, and `registerMetrics` for prom-client.
   */
  metrics () {
    return this._metrics.snapshot({ connected: this._connected, inFlight: this._inFlight })
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
    if (this._closed && op !== 'close') return later(cb, closedError(this._backend, op))
    let called = false
    const tracked = op !== 'close'
    if (tracked) this._inFlight++
    const metrics = this._metrics
    const startedAt = metrics.started()
    const done = (err, value) => {
      if (called) return
      called = true
      if (tracked) metrics.finished(op, startedAt, err)
      if (tracked && --this._inFlight === 0 && this._whenIdle !== null) {
        const release = this._whenIdle
        this._whenIdle = null
        release()
      }
      cb(err, value)
    }
    if (this._native === null && this._attaching !== null && op !== 'close') {
      // The native core is not there yet (a clientPromise): the request starts once it is.
      this._attaching.then(() => this._begin(op, start, done, () => called), (err) => later(done, this._asStoreError(op, err)))
        .catch((err) => queueMicrotask(() => { throw err })) // the user's callback threw
      return
    }
    this._begin(op, start, done, () => called)
  }

  _begin (op, start, done, answered) {
    try {
      start(done)
    } catch (err) {
      if (answered()) throw err // the user's callback threw: not ours to swallow
      later(done, this._asStoreError(op, err))
    }
  }

  /** What a get learnt of the stored copy's expiry, for the touch that follows it (touchAfter). */
  _rememberExpiry (sid, sess, reported) {
    let at = cookieExpiresMs(sess)
    // A browser-session cookie promises no date: the stored copy's expiry is the one the backend
    // reported (less its granularity), where it runs on the app's clock.
    if (!Number.isFinite(at) && reported > 0 && this._reportedExpiryUsable()) at = reported - this._precision
    if (!Number.isFinite(at)) return
    knownExpiry.remember(this._place, sid, at)
  }

  /**
   * Calls the native method `method(id, ...args)` with `done` registered under `id`. A store that
   * needs no I/O (memory) answers a successful call at once: `done` then runs a moment later, as
   * express-session's own MemoryStore answers, without the trip through the dispatcher.
   */
  _call (method, done, ...args) {
    if (this._native === null) throw invalidInput(this._backend, method, 'the store is not initialised')
    const id = native.nextId()
    this._answer(id, done, this._native[method](id, ...args))
  }

  /** `_call('request', ...)` without gathering its arguments into an array: once per request. */
  _send (done, op, sid, text, at, now) {
    if (this._native === null) throw invalidInput(this._backend, 'request', 'the store is not initialised')
    const id = native.nextId()
    this._answer(id, done, this._native.request(id, op, sid, text, at, now))
  }

  /** An answer given at once (memory) goes to `done` a moment later; else it will come through the dispatcher. */
  _answer (id, done, answer) {
    if (answer === undefined) native.register(id, done)
    else later(done, null, answer)
  }

  /**
   * get/set/touch/destroy. With other requests in flight, requests made during one turn of the
   * event loop go to Rust together at its end: one native call and one wake-up of the runtime
   * for all of them (profiling showed the per-request wake-up and socket write, not the event
   * loop, limiting Redis throughput). With nothing in flight a request goes at once, so a
   * lone request waits for nothing; so does a large one, whose deadline must count from its call.
   */
  _request (method, done, sid, text, at, now) {
    const big = text !== undefined && text.length > BATCH_MAX_CHARS
    // Requests queued before it go first: Rust keeps call order per sid from the native call on.
    if (big && this._batch !== null) this._flushBatch()
    if (this._inline || big || (this._batch === null && native.inFlight() === 0)) {
      this._send(done, BATCHED[method], sid, text === undefined ? '' : text, at === undefined ? NaN : at, now === undefined ? NaN : now)
      this._metrics.sent(1)
      return
    }
    let b = this._batch
    if (b === null) {
      b = this._batch = { ids: [], ops: [], sids: [], values: [], at: [], now: [] }
      later(this._flushBatch)
    }
    b.ids.push(native.request(done))
    b.ops.push(BATCHED[method])
    b.sids.push(sid)
    b.values.push(text === undefined ? '' : text)
    b.at.push(at === undefined ? NaN : at)
    b.now.push(now === undefined ? NaN : now)
    if (b.ids.length >= BATCH_MAX_REQUESTS) this._flushBatch()
  }

  _flushBatch () {
    const b = this._batch
    if (b === null) return
    this._batch = null
    try {
      this._native.batch(b.ids, b.ops, b.sids, b.values, b.at, b.now)
      this._metrics.sent(b.ids.length)
    } catch (err) {
      const failure = this._asStoreError('batch', err)
      for (const id of b.ids) native.fail(id, failure)
    }
  }

  /** set or patch: serialise (once; a patch comes as its text), compute the expiry, write; an already expired session is deleted. */
  _write (op, sid, sess, done, text = this._stringify(op, sess)) {
    const now = Date.now()
    let at
    try {
      at = expiresAt(sess, this, now) // reads this.ttl and this.disableTTL
    } catch (err) {
      throw invalidInput(this._backend, op, err.message)
    }
    knownExpiry.forget(this._place, sid)
    // A session whose cookie has already expired is deleted, not written (connect-redis's rule).
    if (at !== null && at <= now) return this._request('destroy', (err) => done(err), sid)
    // The answer goes to `done` too: MongoStore tells an insert from an update by it.
    this._request(op, done, sid, text, at === null ? NaN : at + this._touchPadMs, now)
  }

  _stringify (op, sess) {
    let text
    try {
      // Serialised once per request: the middleware already has the session's JSON.
      text = (this.serializer === JSON && serialised.has(sess) && wholeJson(sess, serialised.get(sess))) || this.serializer.stringify(sess)
    } catch (err) {
      // The first line only: V8's circular-structure text goes on to list the app's keys.
      const e = invalidInput(this._backend, op, `the session cannot be serialised: ${String(err.message).split('\n')[0]}`)
      e.cause = err
      throw e
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
      return done(err)
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      result.then((sess) => done(null, sess), (err) => done(err instanceof Error ? err : new Error(String(err))))
    } else {
      done(null, result)
    }
  }

  /**
   * A stored session the serializer cannot read is treated as absent (the request gets a fresh
   * session), left untouched in storage (a mistaken `serializer` setting must not delete users'
   * sessions), and reported once per sid through errorLog.
   */
  _unreadable (sid, reason, done) {
    if (!this._reported.has(sid)) {
      if (this._reported.size >= REPORTED_MAX) this._reported.clear()
      this._reported.add(sid)
      // A session id is a bearer credential: the log names only its first characters.
      const shown = sid.length > 8 ? `${sid.slice(0, 6)}…` : sid
      const err = storeError(CODES.unparsable, `ferrosession ${this._backend} get: the stored session ${JSON.stringify(shown)} ` +
        `cannot be read (${reason}); it is treated as absent and left as it is`)
      try {
        this.errorLog(err)
      } catch {
        // a throwing logger must not break the request
      }
    }
    done(null, null)
  }

  _parseAll (flat, done) {
    const pairs = []
    let waiting = flat.length / 2
    if (waiting === 0) return done(null, pairs)
    const now = Date.now()
    const settle = () => { if (--waiting === 0) done(null, pairs) }
    for (let i = 0; i < flat.length; i += 2) {
      const sid = flat[i]
      const text = flat[i + 1]
      if (text === null) {
        this._unreadable(sid, 'the stored value is not UTF-8 text, or does not decrypt', noop)
        settle()
        continue
      }
      this._parse('all', text, (err, sess) => {
        if (err) this._unreadable(sid, parseFailure(err, text), noop)
        else if (!isSession(sess)) this._unreadable(sid, notASession(sess), noop)
        else if (!hasExpired(sess, now)) pairs.push([sid, sess])
        settle()
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

/** The prune timer's callback: prunes the store if it still exists, then arms the next prune. */
function pruneOnTimer (ref) {
  const store = ref.deref()
  if (!store || !store._pruning) return
  store.prune(() => {
    if (!store._pruning) return
    store._pruning.timer = null
    store._armPruning()
  })
}

/** A native message without its "ferrosession <backend> <op>: " (the report adds its own). */
function withoutPrefix (message) {
  return message.replace(/^ferrosession \S+ \S+: /, '')
}

function nonNegative (value, name, backend) {
  if (value === undefined || value === null) return 0
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw optionError(`ferrosession ${backend}: option ${name} must be a number of seconds (0 or more), got ${String(value)}`)
  }
  return value
}

/**
 * `encryption: { keys: [current, ...previous], readPlaintext, connectMongoSecret }` as the native
 * side takes it: a key is 32 bytes (Buffer/Uint8Array) or a passphrase string (16+ characters).
 */
function encryptionOf (encryption, backend) {
  if (encryption === undefined || encryption === null || encryption === false) return null
  const fail = (why) => optionError(`ferrosession ${backend}: option encryption ${why}`)
  if (typeof encryption !== 'object') throw fail('must be { keys: [current, ...previous] }')
  const keys = Array.isArray(encryption.keys) ? encryption.keys : encryption.key !== undefined ? [encryption.key] : null
  if (keys === null || keys.length === 0) throw fail('needs keys: [current, ...previous] (at least one)')
  return {
    keys: keys.map((key, i) => {
      if (typeof key === 'string') return { passphrase: key }
      if (key instanceof Uint8Array) return { raw: Buffer.from(key.buffer, key.byteOffset, key.byteLength) }
      throw fail(`keys[${i}] must be a 32-byte Buffer or a passphrase string, got ${key === null ? 'null' : typeof key}`)
    }),
    readPlaintext: Boolean(encryption.readPlaintext),
    connectMongoSecret: encryption.connectMongoSecret === undefined ? undefined : String(encryption.connectMongoSecret)
  }
}

/** `idleTimeout` in ms; 0 keeps idle connections open. */
function idleMs (value, backend) {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !(value >= 0) || value === Infinity) {
    throw optionError(`ferrosession ${backend}: option idleTimeout must be a number of ms (0 keeps idle connections), got ${String(value)}`)
  }
  return value
}

function positiveOrUndefined (value, name, backend) {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw optionError(`ferrosession ${backend}: option ${name} must be a positive number, got ${String(value)}`)
  }
  return value
}

/** A session is an object: a stored string, number, boolean, array or null is not one. */
function isSession (value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function notASession (value) {
  return `the stored value is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}, not a session object`
}

/**
 * Why a stored value could not be parsed, in words that quote none of it: the errorLog line must
 * not print users' session data (V8's JSON.parse messages quote the text around the error). Its
 * length, and the position of the error where one can be told.
 */
function parseFailure (err, text) {
  const length = typeof text === 'string' ? text.length : 0
  const message = String((err && err.message) || '')
  let position = /at position (\d+)/.exec(message)?.[1]
  if (position === undefined && message.startsWith('Unexpected end of JSON input')) position = String(length)
  if (position === undefined && typeof text === 'string') {
    // "Unexpected token 'x', "...context..." is not valid JSON": find the context in the text.
    const quoted = /^Unexpected token '([\s\S])', (\.\.\.)?"([\s\S]*?)"(?:\.\.\.)? is not valid JSON$/.exec(message)
    const at = quoted ? text.indexOf(quoted[3]) + quoted[3].indexOf(quoted[1]) : -1
    if (quoted && text.indexOf(quoted[3]) >= 0 && text[at] === quoted[1]) position = String(at)
  }
  const kind = err instanceof SyntaxError ? 'not valid JSON' : `the serializer's parse failed (${(err && err.name) || 'error'})`
  return `${kind}, ${length} characters${position === undefined ? '' : `, error at position ${position}`}`
}

module.exports = { NativeBackedStore }
