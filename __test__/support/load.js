'use strict'
// Load for the failure tests: request chains that keep running while a server is killed or fails
// over, recording every request, and what they saw.

const { sessionData, sleep } = require('./backends')

/**
 * Keeps `inFlight` get/set/touch chains running until stop(). Every request is recorded with the
 * times it was issued and answered and how many times its callback fired.
 */
function loadGenerator (store, inFlight = 200) {
  const ops = []
  const state = { running: true } // an object: the loop below must see stop() change it
  const sids = Array.from({ length: 100 }, (_, i) => `load-${i}`)
  const chain = async () => {
    while (state.running) {
      const op = { kind: ['get', 'set', 'touch'][ops.length % 3], issuedAt: Date.now(), calls: 0, err: null }
      ops.push(op)
      const sid = sids[ops.length % sids.length]
      await new Promise((resolve) => {
        const cb = (err) => {
          op.calls++
          if (op.calls > 1) return // a second call is recorded and fails the test below
          op.doneAt = Date.now()
          op.err = err || null
          resolve()
        }
        if (op.kind === 'get') store.get(sid, cb)
        else store[op.kind](sid, sessionData(60000, { n: ops.length }), cb)
      })
      if (op.err) await sleep(10) // pace the retries of a real app, without spinning
    }
  }
  const chains = Array.from({ length: inFlight }, chain)
  return {
    ops,
    async stop () {
      state.running = false
      await Promise.all(chains)
    }
  }
}

/** What the load saw, for the assertions and the closing note. */
function summarise (ops, killedAt, backAt, events) {
  const failed = ops.filter((op) => op.err)
  const whileDown = failed.filter((op) => op.issuedAt >= killedAt && op.issuedAt < backAt)
  const firstOkAfter = ops.filter((op) => !op.err && op.issuedAt >= backAt).sort((a, b) => a.doneAt - b.doneAt)[0]
  return {
    issued: ops.length,
    okBefore: ops.filter((op) => !op.err && op.doneAt < killedAt).length,
    failedWhileDown: whileDown.length,
    slowestFailureMs: Math.max(0, ...failed.map((op) => op.doneAt - op.issuedAt)),
    unclearErrors: failed.filter((op) => !/^ferrosession \w+ \w+: ./.test(op.err.message) || !op.err.code.startsWith('ESESSION_'))
      .slice(0, 3).map((op) => op.err.message),
    disconnectAfterKillMs: (events.find(([e]) => e === 'disconnect') || [0, NaN])[1] - killedAt,
    connectAfterRestartMs: (events.find(([e]) => e === 'connect') || [0, NaN])[1] - backAt,
    recoveryMs: firstOkAfter ? firstOkAfter.doneAt - backAt : Infinity,
    okAfter: ops.filter((op) => !op.err && op.issuedAt >= backAt).length,
    lostCallbacks: ops.filter((op) => op.calls !== 1).length
  }
}

module.exports = { loadGenerator, summarise }
