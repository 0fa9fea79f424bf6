'use strict'
// A TCP proxy of the test suite's own, in front of a real server, that can freeze connections the
// way a NAT or load balancer does when it stops forwarding: the sockets stay open, nothing is
// closed or reset, bytes simply stop arriving. Used to prove that a store stops trusting a
// connection whose request timed out and opens a new one.

const net = require('node:net')

/**
 * `proxy(targetPort)` listens on a free loopback port. `freeze()` black-holes every connection
 * open now; `freeze({ newConnections: true })` black-holes connections accepted later too;
 * `thaw()` forwards new connections again (frozen ones stay frozen, as after a NAT timeout).
 * `accepted` counts the connections ever accepted, `open` those still open.
 */
async function proxy (targetPort, targetHost = '127.0.0.1') {
  const pairs = new Set()
  let freezeNew = false
  const server = net.createServer((client) => {
    state.accepted++
    const pair = { client, upstream: null, frozen: freezeNew }
    pairs.add(pair)
    client.on('error', () => {})
    client.on('close', () => {
      pairs.delete(pair)
      if (pair.upstream) pair.upstream.destroy()
    })
    if (pair.frozen) {
      client.pause() // accepted, and then nothing: a black-holed connection
      return
    }
    const upstream = net.connect(targetPort, targetHost)
    pair.upstream = upstream
    upstream.on('error', () => client.destroy())
    upstream.on('close', () => client.destroy())
    client.on('data', (chunk) => { if (!pair.frozen) upstream.write(chunk) })
    upstream.on('data', (chunk) => { if (!pair.frozen) client.write(chunk) })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const state = {
    port: server.address().port,
    accepted: 0,
    get open () { return pairs.size },
    freeze ({ newConnections = false } = {}) {
      for (const pair of pairs) pair.frozen = true
      freezeNew = newConnections
    },
    thaw () { freezeNew = false },
    close () {
      for (const pair of pairs) {
        pair.client.destroy()
        if (pair.upstream) pair.upstream.destroy()
      }
      return new Promise((resolve) => server.close(resolve))
    }
  }
  return state
}

module.exports = { proxy }
