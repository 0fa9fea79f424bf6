'use strict'
// The bridge to the native core: one threadsafe function (the Dispatcher) answers every request
// of every store, keyed by a request id. Requests in flight keep Node alive through one ref'd
// timer; an idle store never does, so apps and scripts exit on their own.

const binding = loadBinding()
const { storeError } = require('./errors')

const pending = new Map()
const stores = new Map() // store id -> WeakRef(store): events reach live stores only
let nextRequestId = 1
let nextStoreId = 1

const keepAlive = setInterval(() => {}, 0x7fffffff)
keepAlive.unref()

/** Every answer that arrived since the last call: parallel arrays, one entry per answer. */
function onReplies (ids, codes, messages, values) {
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
      done(code === null ? null : storeError(code, messages[i]), values[i])
    } catch (err) {
      // A throwing user callback must surface as an uncaught exception, exactly as it would from
      // any other I/O callback, and must not disturb the answers queued behind it.
      process.nextTick(() => { throw err })
    }
  }
  if (pending.size === 0) keepAlive.unref()
}

function onEvent (storeId, name, reason) {
  const ref = stores.get(storeId)
  const store = ref && ref.deref()
  if (store) store._onBackendEvent(name, reason)
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
  if (pending.size === 0) keepAlive.ref()
  pending.set(id, done)
}

/** Registers `done` under a fresh id and returns the id. */
function request (done) {
  const id = nextId()
  register(id, done)
  return id
}

/** Forgets a request whose native call threw before it was queued. */
function cancel (id) {
  pending.delete(id)
  if (pending.size === 0) keepAlive.unref()
}

/** Answers a registered request with `err` (its native call could not be made). */
function fail (id, err) {
  const done = pending.get(id)
  if (done === undefined) return
  cancel(id)
  process.nextTick(done, err)
}

/** How many requests are waiting for an answer, across all stores. */
function inFlight () {
  return pending.size
}

function registerStore (store) {
  const id = nextStoreId++
  stores.set(id, new WeakRef(store))
  return id
}

function unregisterStore (id) {
  stores.delete(id)
}

function loadBinding () {
  try {
    return require('../binding.js')
  } catch (err) {
    // npm may skip a dependency's install script (npm 11 asks apps to approve them), leaving
    // no addon: say how to build it rather than showing only the loader's list of attempts.
    const hint = new Error('ferrosession: the native addon for this platform is not built. Approve and run its build ' +
      'with `npm install-scripts approve ferrosession && npm rebuild ferrosession`, or run ' +
      '`node node_modules/ferrosession/scripts/install.js` (needs cargo: https://rustup.rs).')
    hint.cause = err
    throw hint
  }
}

module.exports = { binding, dispatcher, nextId, register, request, fail, inFlight, registerStore, unregisterStore }
