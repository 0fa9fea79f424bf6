'use strict'
// The bridge to the native core: one threadsafe function (the Dispatcher) answers every request
// of every store, keyed by a request id. Requests in flight keep Node alive through one ref'd
// timer; an idle store never does, so apps and scripts exit on their own.

const binding = require('../binding.js')
const { storeError } = require('./errors')

const pending = new Map()
const stores = new Map() // store id -> WeakRef(store): events reach live stores only
let nextRequestId = 1
let nextStoreId = 1

const keepAlive = setInterval(() => {}, 0x7fffffff)
keepAlive.unref()

function onReply (id, code, message, value) {
  if (id === 0) return onEvent(value, code, message)
  const done = pending.get(id)
  if (done === undefined) return
  pending.delete(id)
  if (pending.size === 0) keepAlive.unref()
  try {
    done(code === null ? null : storeError(code, message), value)
  } catch (err) {
    // A throwing user callback must surface as an uncaught exception, exactly as it would from
    // any other I/O callback, and must not disturb the answers queued behind it.
    process.nextTick(() => { throw err })
  }
}

function onEvent (storeId, name, reason) {
  const ref = stores.get(storeId)
  const store = ref && ref.deref()
  if (store) store._onBackendEvent(name, reason)
}

const dispatcher = new binding.Dispatcher(onReply)

/** Registers `done(err, value)` and returns the id the native call must answer to. */
function request (done) {
  const id = nextRequestId
  nextRequestId = nextRequestId >= 0xfffffffe ? 1 : nextRequestId + 1
  if (pending.size === 0) keepAlive.ref()
  pending.set(id, done)
  return id
}

/** Forgets a request whose native call threw before it was queued. */
function cancel (id) {
  pending.delete(id)
  if (pending.size === 0) keepAlive.unref()
}

function registerStore (store) {
  const id = nextStoreId++
  stores.set(id, new WeakRef(store))
  return id
}

function unregisterStore (id) {
  stores.delete(id)
}

module.exports = { binding, dispatcher, request, cancel, registerStore, unregisterStore }
