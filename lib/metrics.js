'use strict'
// What a store has done, for operators: operations by kind with their latency, errors by code,
// outages, and how many requests each native call carried. Counted on the path every request
// already takes, in counters made once per kind of operation (no allocation per request); read
// as `store.metrics()`, or scraped through prom-client with `registerMetrics(registry)`.

// Captured at load: fake timers (sinon, Jest) replace `performance.now` later, and a latency
// measured on a faked clock would be meaningless.
const realNow = performance.now.bind(performance)

/** Latency buckets, in milliseconds (upper bounds; Prometheus's `le`). */
const LATENCY_MS = [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
/** Requests per native call (1: sent alone; more: batched in one turn of the event loop). */
const BATCH_SIZES = [1, 2, 4, 8, 16, 32]

/** Index of the first bound `value` fits under; `bounds.length` for the overflow (+Inf) bucket. */
function bucketOf (bounds, value) {
  let i = 0
  while (i < bounds.length && value > bounds[i]) i++
  return i
}

/**
 * Non-cumulative counts as Prometheus's cumulative buckets, in rising order:
 * [{ le: 0.25, count: n }, ..., { le: '+Inf', count: n }] (an array: an object's integer-like
 * keys would come first whatever order they were added in).
 */
function cumulative (bounds, counts) {
  const out = []
  let sum = 0
  for (let i = 0; i < counts.length; i++) {
    sum += counts[i]
    out.push({ le: i < bounds.length ? bounds[i] : '+Inf', count: sum })
  }
  return out
}

class OperationCounter {
  constructor () {
    this.count = 0
    this.errors = 0
    this.sumMs = 0
    this.buckets = new Array(LATENCY_MS.length + 1).fill(0)
  }
}

class StoreMetrics {
  constructor (backend) {
    this.backend = backend
    this.operations = new Map() // op -> OperationCounter
    this.errors = new Map() // err.code -> count
    this.outages = 0
    this.nativeCalls = 0
    this.nativeRequests = 0
    this.batchSizes = new Array(BATCH_SIZES.length + 1).fill(0)
  }

  /** The time an operation starts, for `finished`. */
  started () {
    return realNow()
  }

  finished (op, startedAt, err) {
    let counter = this.operations.get(op)
    if (counter === undefined) this.operations.set(op, (counter = new OperationCounter()))
    const ms = realNow() - startedAt
    counter.count++
    counter.sumMs += ms
    counter.buckets[bucketOf(LATENCY_MS, ms)]++
    if (err) {
      counter.errors++
      const code = typeof err.code === 'string' ? err.code : 'other'
      this.errors.set(code, (this.errors.get(code) || 0) + 1)
    }
  }

  /** One native call carrying `requests` get/set/touch/destroy requests. */
  sent (requests) {
    this.nativeCalls++
    this.nativeRequests += requests
    this.batchSizes[bucketOf(BATCH_SIZES, requests)]++
  }

  outage () {
    this.outages++
  }

  /** A plain-object copy, safe to keep or serialise (`store.metrics()`). */
  snapshot (extra) {
    const operations = {}
    for (const [op, c] of this.operations) {
      operations[op] = { count: c.count, errors: c.errors, latencyMs: { sum: c.sumMs, buckets: cumulative(LATENCY_MS, c.buckets) } }
    }
    return {
      backend: this.backend,
      ...extra,
      operations,
      errors: Object.fromEntries(this.errors),
      outages: this.outages,
      batches: { nativeCalls: this.nativeCalls, requests: this.nativeRequests, sizes: cumulative(BATCH_SIZES, this.batchSizes) }
    }
  }
}

/**
 * Registers ferrosession's metrics on a prom-client registry (`require('prom-client').register`
 * or one of the app's own): every live store's, labelled by backend and store (a number in the
 * order the app created its stores), read at scrape time. prom-client is the app's: nothing of it
 * is loaded here, the registry is handed metric objects of the shape it collects.
 */
function registerMetrics (registry, { prefix = 'ferrosession_' } = {}) {
  if (!registry || typeof registry.registerMetric !== 'function') {
    const { optionError } = require('./errors')
    throw optionError('ferrosession registerMetrics: pass a prom-client Registry, e.g. require(\'prom-client\').register')
  }
  const { liveStores } = require('./native')
  // A store whose constructor threw is registered but never attached: not a store of the app's.
  const made = (s) => !s._closed && s._metrics && (s._native !== null || s._attaching !== null)
  const snapshots = () => [...liveStores()].filter(made).map((s) => [{ backend: s._backend, store: String(s._storeId) }, s.metrics()])
  const metric = (name, help, type, values) => ({
    name: prefix + name,
    help,
    type,
    aggregator: 'sum',
    // this.name: in OpenMetrics mode the registry drops a counter's `_total` from it, and adds it back to each sample.
    async get () { return { name: this.name, help, type, aggregator: 'sum', values: values(snapshots()) } },
    reset () {}
  })
  /** Samples of one histogram from `series(labels, snapshot)`: [labels, { buckets, sum, count }] pairs. */
  const histogram = (name, series, divisor = 1) => (all) => all.flatMap(([labels, m]) =>
    series(labels, m).flatMap(([l, { buckets, sum, count }]) => [
      ...buckets.map(({ le, count }) => ({ metricName: `${prefix}${name}_bucket`, labels: { ...l, le: le === '+Inf' ? le : String(le / divisor) }, value: count })),
      { metricName: `${prefix}${name}_sum`, labels: l, value: sum / divisor },
      { metricName: `${prefix}${name}_count`, labels: l, value: count }
    ]))
  const metrics = [
    metric('operations_total', 'Store operations answered, by kind.', 'counter', (all) => all.flatMap(([labels, m]) =>
      Object.entries(m.operations).map(([operation, c]) => ({ labels: { ...labels, operation }, value: c.count })))),
    metric('errors_total', 'Store operations that failed, by error code.', 'counter', (all) => all.flatMap(([labels, m]) =>
      Object.entries(m.errors).map(([code, value]) => ({ labels: { ...labels, code }, value })))),
    metric('outages_total', 'Times the store lost its server (disconnect events).', 'counter', (all) => all.map(([labels, m]) => ({ labels, value: m.outages }))),
    metric('connected', '1 while the store can reach its server, 0 during an outage.', 'gauge', (all) => all.map(([labels, m]) => ({ labels, value: m.connected ? 1 : 0 }))),
    metric('in_flight', 'Store operations waiting for an answer.', 'gauge', (all) => all.map(([labels, m]) => ({ labels, value: m.inFlight }))),
    metric('operation_duration_seconds', 'Time from a store call to its callback.', 'histogram',
      histogram('operation_duration_seconds', (labels, m) => Object.entries(m.operations).map(([operation, c]) =>
        [{ ...labels, operation }, { buckets: c.latencyMs.buckets, sum: c.latencyMs.sum, count: c.count }]), 1000)),
    metric('requests_per_native_call', 'get/set/touch/destroy requests carried by one call into the native core (batching).', 'histogram',
      histogram('requests_per_native_call', (labels, { batches: b }) => [[labels, { buckets: b.sizes, sum: b.requests, count: b.nativeCalls }]]))
  ]
  for (const m of metrics) registry.registerMetric(m)
  return metrics.map((m) => m.name)
}

module.exports = { StoreMetrics, registerMetrics, LATENCY_MS, BATCH_SIZES }
