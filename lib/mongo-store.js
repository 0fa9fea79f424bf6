'use strict'
// MongoStore: connect-mongo 6's options and documents, with the driver in Rust. The app's own
// MongoClient (`client`, `clientPromise`) is read for its settings and connected to natively; no
// JS driver runs a request.

const { optionError } = require('./errors')
const assert = require('node:assert/strict')
const { NativeBackedStore } = require('./base-store')
const { checkOptions } = require('./options')
const { binding } = require('./binding')
const { fromUrlAndOptions, fromClient } = require('./mongo-settings')
const { withFactoryShape } = require('./factory-shape')
const { normaliseTtl } = require('./expiry')

/** connect-mongo's default lifetime of a session without a cookie expiry: 14 days. */
const DEFAULT_TTL_SECONDS = 1209600
const WRITE_OPTIONS = new Set(['w', 'j', 'wtimeout', 'wtimeoutMS', 'journal'])

/**
 * `stringify: false`: the session goes to Rust as JSON in which Dates are tagged `{"$date": ms}`
 * and become BSON Dates there, so the document is the one connect-mongo writes (cookie.expires a
 * Date, undefined members null unless the client ignores undefined, functions left out); reading
 * revives the tags as Dates, as connect-mongo hands them out.
 */
function documentSerializer (ignoreUndefined) {
  function replacer (key, value) {
    const raw = this[key]
    if (raw instanceof Date) return Number.isNaN(raw.getTime()) ? null : { $date: raw.getTime() }
    if (typeof raw === 'function') return undefined
    if (value === undefined && !ignoreUndefined && !Array.isArray(this)) return null
    return value
  }
  function reviver (key, value) {
    if (value !== null && typeof value === 'object' && typeof value.$date === 'number' && Object.keys(value).length === 1) {
      return new Date(value.$date)
    }
    return value
  }
  return {
    stringify: (sess) => JSON.stringify(sess, replacer),
    parse: (text) => JSON.parse(text, reviver)
  }
}

class MongoStore extends NativeBackedStore {
  constructor (options = {}) {
    checkOptions(options, 'mongodb', 'MongoStore')
    assert(options.mongoUrl || options.clientPromise || options.client, 'You must provide either mongoUrl|clientPromise|client in options')
    assert(options.createAutoRemoveIdx === null || options.createAutoRemoveIdx === undefined, 'options.createAutoRemoveIdx has been reverted to autoRemove and autoRemoveInterval')
    assert(!options.autoRemoveInterval || options.autoRemoveInterval <= 71582, 'autoRemoveInterval is too large. options.autoRemoveInterval is in minutes but not seconds nor mills')
    refuseUnsupported(options)
    const stringify = options.stringify !== false
    // The client's ignoreUndefined decides how undefined members are written, as it does for connect-mongo.
    const source = options.mongoUrl ? fromUrlAndOptions(options.mongoUrl, options.mongoOptions) : null
    const ignoreUndefined = source ? source.ignoreUndefined : Boolean(options.client && options.client.options && options.client.options.ignoreUndefined)
    super('mongodb', stringify ? options : { ...options, serializer: options.serializer || documentSerializer(ignoreUndefined) })
    this.options = options
    this.ttl = options.ttl === undefined ? DEFAULT_TTL_SECONDS : normaliseTtl(options.ttl, 'mongodb')
    this.collectionName = options.collectionName ?? 'sessions'
    this.autoRemove = options.autoRemove ?? 'native'
    this.transformId = typeof options.transformId === 'function' ? options.transformId : null
    this._settings = {
      collectionName: String(this.collectionName),
      stringify,
      autoRemove: String(this.autoRemove),
      lastModified: this.touchAfter > 0,
      timestamps: Boolean(options.timestamps),
      ...writeConcernOf(options.writeOperationOptions),
      poolSize: options.poolSize
    }
    if (this.autoRemove === 'interval') {
      const minutes = options.autoRemoveInterval ?? 10
      this._schedulePruning(minutes * 60000, { onError: (err) => this.errorLog('ferrosession mongodb: autoRemove interval cleanup failed:', err) })
    }
    // The client the store was given: connect-mongo's close() closes it, and so does ours.
    this._client = null
    if (source) this._openUrl(source.url, options.dbName)
    else if (options.client) this._openClient(options.client)
    else {
      // Requests made before the promise settles wait for it (base-store's _attaching).
      this._attaching = Promise.resolve(options.clientPromise).then((client) => this._openClient(client))
      this._attaching.catch(() => {}) // each waiting request reports the failure itself
    }
  }

  static create (options) {
    return new MongoStore(options)
  }

  _openClient (client) {
    const settings = fromClient(client)
    this._client = client
    this._openUrl(settings.url, this.options.dbName ?? settings.dbName)
  }

  _openUrl (url, dbName) {
    this._open({ url, dbName: dbName === undefined ? undefined : String(dbName), ...this._settings })
  }

  // connect-mongo's events, with its arguments, emitted before the callback: `get`, `create` or
  // `update` (whether the write inserted the document) then `set`, `touch`, `destroy`, `all`.
  get (sid, cb) {
    return this._emitting(cb, (done) => super.get(this._storageId(sid), done), () => this.emit('get', sid))
  }

  set (sid, sess, cb) {
    const patch = this._pendingPatch(sess)
    if (patch !== undefined) return this.patch(sid, patch, sess, cb)
    return this._run('set', cb, (done) => {
      const id = this._storageId(sid)
      this._checkSid('set', id)
      this._write('set', id, sess, (err, inserted) => {
        if (!err) {
          this.emit(inserted === 1 ? 'create' : 'update', sid)
          this.emit('set', sid)
        }
        done(err)
      })
    })
  }

  /** session()'s merged save: an update of the stored document (connect-mongo: update, set). */
  patch (sid, patch, sess, cb) {
    return this._emitting(cb, (done) => super.patch(this._storageId(sid), patch, sess, done), () => {
      this.emit('update', sid)
      this.emit('set', sid)
    })
  }

  touch (sid, sess, cb) {
    return this._emitting(cb, (done) => super.touch(this._storageId(sid), sess, done), () => this.emit('touch', sid, sess))
  }

  destroy (sid, cb) {
    return this._emitting(cb, (done) => super.destroy(this._storageId(sid), done), () => this.emit('destroy', sid))
  }

  all (cb) {
    return this._emitting(cb, (done) => super.all(done), (sessions) => this.emit('all', sessions))
  }

  /**
   * `call(done)` runs the parent's method with a callback; `emit(value)` fires connect-mongo's
   * event once it succeeded, before the app's callback or Promise sees the answer. The parent
   * keeps the callback contract (once, in-flight counting for close()); this adds no second layer.
   */
  _emitting (cb, call, emit) {
    const answer = (respond) => (err, value) => {
      if (!err) emit(value)
      respond(err, value)
    }
    if (typeof cb === 'function') return call(answer(cb))
    const promise = new Promise((resolve, reject) => call(answer((err, value) => (err ? reject(err) : resolve(value)))))
    promise.catch(() => {}) // as every store's Promise: express-session calls destroy without a callback
    return promise
  }

  /** connect-mongo's clear() calls back with no value (other stores answer how many went). */
  clear (cb) {
    return this._run('clear', cb, (done) => this._call('clear', (err) => done(err)))
  }

  /** connect-mongo's `transformId`: the `_id` a session is stored under. */
  _storageId (sid) {
    if (this.transformId === null || typeof sid !== 'string') return sid
    const id = this.transformId(sid)
    // null/undefined are handed on as they are: the store's input check names the problem.
    return typeof id === 'string' || id === undefined || id === null ? id : String(id)
  }

  close (cb) {
    const client = this._client
    const closing = new Promise((resolve, reject) => super.close((err) => (err ? reject(err) : resolve())))
      .then(() => client && typeof client.close === 'function' && client.close())
    if (typeof cb === 'function') {
      closing.then(() => cb(), cb)
      return undefined
    }
    return closing.then(() => undefined)
  }
}

function refuseUnsupported (options) {
  if (options.crypto !== undefined && options.crypto !== null && options.crypto.secret !== false) {
    throw optionError('ferrosession mongodb: option crypto (kruptein) is not supported; use encryption: { keys: [...] } ' +
      '(AES-256-GCM in Rust). Sessions connect-mongo encrypted with kruptein cannot be read: their users sign in again')
  }
  if (options.cryptoAdapter !== undefined) {
    throw optionError('ferrosession mongodb: option cryptoAdapter is not supported; use encryption: { keys: [...], ' +
      'connectMongoSecret: <the secret given to createWebCryptoAdapter> } to keep its sessions readable')
  }
  if (options.serialize !== undefined || options.unserialize !== undefined) {
    throw optionError('ferrosession mongodb: options serialize/unserialize are not supported; ' +
      'give serializer: { stringify, parse } (text), or stringify: false for BSON documents')
  }
  // The allowed values are the native enum's (src/napi_stores.rs): defined once.
  const autoRemoves = Object.values(binding.MongoAutoRemove)
  if (options.autoRemove !== undefined && !autoRemoves.includes(options.autoRemove)) {
    throw optionError(`ferrosession mongodb: option autoRemove must be ${autoRemoves.map((v) => `'${v}'`).join(', ')}, got ${String(options.autoRemove)}`)
  }
  if (options.transformId !== undefined && typeof options.transformId !== 'function') {
    throw optionError('ferrosession mongodb: option transformId must be a function')
  }
}

/** connect-mongo's `writeOperationOptions` (a WriteConcern's fields). */
function writeConcernOf (options) {
  if (options === undefined || options === null) return {}
  const unknown = Object.keys(options).filter((k) => !WRITE_OPTIONS.has(k))
  if (unknown.length > 0) throw optionError(`ferrosession mongodb: writeOperationOptions ${unknown.join(', ')} are not write-concern settings (w, j, wtimeout)`)
  const out = {}
  if (typeof options.w === 'number') out.writeNodes = options.w
  else if (typeof options.w === 'string') out.writeTag = options.w
  else if (options.w !== undefined) throw optionError(`ferrosession mongodb: writeOperationOptions.w must be a number or a tag, got ${typeof options.w}`)
  const journal = options.j ?? options.journal
  if (journal !== undefined) out.writeJournal = Boolean(journal)
  const timeout = options.wtimeout ?? options.wtimeoutMS
  if (timeout !== undefined) out.writeTimeoutMs = Number(timeout)
  return out
}

module.exports = { MongoStore: withFactoryShape(MongoStore), MongoStoreClass: MongoStore, documentSerializer }
