'use strict'
// The bridge to the native core: one threadsafe function (the Dispatcher) answers every request
// of every store, keyed by a request id. While requests are in flight the dispatcher itself keeps
// Node alive (no JS timer, which fake timers could replace); an idle store never does, so apps
// and scripts exit on their own.

const { binding } = require('./binding')
const { storeError, refusedSetting } = require('./errors')
const { later } = require('./later')

const pending = new Map()
const stores = new Map() // store id -> WeakRef(store): events reach live stores only
const forgetStore = new FinalizationRegistry((id) => stores.delete(id))
let nextRequestId = 1
let nextStoreId = 1
let keptAlive = false

/**
 * Every answer that arrived since the last call: parallel arrays, one entry per answer (`expiries`:
 * a session's expiry as the backend holds it, NaN when there is none).
 */
function onReplies (ids, codes, messages, values, expiries) {
  let thrown = null
  try {
    deliver(ids, codes, messages, values, expiries, (err) => { (thrown ??= []).push(err) })
  } finally {
    // A round is at most a few hundred answers: more waiting are pulled on the loop's next turn,
    // after its timers and I/O (docs/design.md, "Fairness").
    if (dispatcher.settle()) later(pullRound)
  }
  if (pending.size === 0) keepAlive(false)
  if (thrown !== null) for (const err of thrown) binding.raiseUncaught(err)
}

function pullRound () {
  const [ids, codes, messages, values, expiries] = dispatcher.pull()
  onReplies(ids, codes, messages, values, expiries)
}

function deliver (ids, codes, messages, values, expiries, onThrow) {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]
    if (id === 0) {
      onEvent(values[i], codes[i], messages[i])
      continue
    }
    const done = pending.get(id)
    if (done === undefined) continue
    pending.delete(id)
    const code = codes[i]
    try {
      done(code === null ? null : storeError(code, messages[i]), values[i], expiries[i])
    } catch (err) {
      // A throwing app callback surfaces as an uncaught exception, as from any I/O callback,
      // after the answers queued behind it have been delivered.
      onThrow(err)
    }
  }
}

function onEvent (storeId, name, reason) {
  const ref = stores.get(storeId)
  const store = ref && ref.deref()
  if (store) store._onBackendEvent(name, reason)
}

function keepAlive (on) {
  if (keptAlive === on) return
  keptAlive = on
  dispatcher.keepAlive(on)
}

const dispatcher = new binding.Dispatcher(onReplies)

/** A fresh request id (not yet waiting for anything). */
function nextId () {
  const id = nextRequestId
  nextRequestId = nextRequestId >= 0xfffffffe ? 1 : nextRequestId + 1
  return id
}

/**
 * Makes `done(err, value)` wait for the answer to `id`. Registering right after the native call
 * that was given `id` is safe: answers are delivered on a later turn of the event loop.
 */
function register (id, done) {
  pending.set(id, done)
  keepAlive(true)
}

/** Registers `done` under a fresh id and returns the id. */
function request (done) {
  const id = nextId()
  register(id, done)
  return id
}

/** Answers a registered request with `err` (its native call could not be made). */
function fail (id, err) {
  const done = pending.get(id)
  if (done === undefined) return
  pending.delete(id)
  if (pending.size === 0) keepAlive(false)
  later(done, err)
}

/** How many requests are waiting for an answer, across all stores. */
function inFlight () {
  return pending.size
}

function registerStore (store) {
  const id = nextStoreId++
  stores.set(id, new WeakRef(store))
  forgetStore.register(store, id)
  return id
}

/** Every open store (close() unregisters it): what `registerMetrics` reads. */
function * liveStores () {
  for (const ref of stores.values()) {
    const store = ref.deref()
    if (store) yield store
  }
}

function unregisterStore (id) {
  stores.delete(id)
}

/**
 * The native core of one backend. Each backend is a cargo feature; a build without it says so
 * instead of failing with "is not a function".
 */
function openNative (backend, storeId, common, options) {
  const factory = binding.NativeStore[backend]
  if (typeof factory !== 'function') {
    throw new Error(`ferrosession ${backend}: this build of the native addon has no ${backend} backend (built without the cargo feature "${backend}")`)
  }
  try {
    return factory.call(binding.NativeStore, dispatcher, storeId, common, options)
  } catch (err) {
    // Not napi's GenericFailure: the TypeError and code of every refused setting.
    throw refusedSetting(err, backend)
  }
}

module.exports = { binding, dispatcher, nextId, register, request, fail, inFlight, registerStore, unregisterStore, liveStores, openNative }
