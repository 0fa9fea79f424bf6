'use strict'
// "Run this a moment later" for the answer path, in a way fake timers cannot stop. Apps test
// their Express code with sinon's or Jest's fake timers, which replace setImmediate (and, in
// Jest, process.nextTick and queueMicrotask) on the global object; a store whose answers waited on
// one of those would never answer under them. So: the real setImmediate, taken when this module
// loads; or, if a fake-timers library had already replaced it by then, a Promise job, which no
// fake timers touch.

const { binding } = require('./binding')

/** Fake-timers functions carry their clock (@sinonjs/fake-timers, Jest's modern timers), or are
 *  Jest mock functions (Jest's legacy timers). */
function isFake (fn) {
  return typeof fn !== 'function' || fn.clock !== undefined || fn._isMockFunction === true
}

const realSetImmediate = isFake(globalThis.setImmediate) ? null : globalThis.setImmediate

/** Calls `fn(...args)` after the current code has run; an exception it throws is uncaught. */
function later (fn, ...args) {
  if (realSetImmediate !== null) {
    realSetImmediate(fn, ...args)
    return
  }
  Promise.resolve().then(() => {
    try {
      fn(...args)
    } catch (err) {
      binding.raiseUncaught(err) // not an unhandled rejection: an uncaught exception, as from a timer
    }
  })
}

module.exports = { later, isFake }
