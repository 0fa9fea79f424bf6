'use strict'
// registerMetrics on a real prom-client registry, as an app's /metrics route serves it. What each
// store counts is in the contract suite (metrics() on every backend); here: the exposition a
// Prometheus server scrapes, labels, histograms, and stores coming and going.

const client = require('prom-client')
const { registerMetrics, RedisStore, MemoryStore } = require('..')
const { REDIS_URL, RUN, sessionData, closedPort } = require('./support/backends')

const prefix = `ferrotest:metrics:${RUN}:`

/** The exposition's sample lines as { 'name{labels}': value }. */
async function samples (registry) {
  const text = await registry.metrics()
  return Object.fromEntries(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const at = l.lastIndexOf(' ')
    return [l.slice(0, at), Number(l.slice(at + 1))]
  }))
}

test('every open store\'s counts, labelled by backend and store, read at scrape time', async () => {
  const registry = new client.Registry()
  expect(registerMetrics(registry)).toEqual([
    'ferrosession_operations_total', 'ferrosession_errors_total', 'ferrosession_outages_total', 'ferrosession_connected',
    'ferrosession_in_flight', 'ferrosession_operation_duration_seconds', 'ferrosession_requests_per_native_call'
  ])
  const redis = new RedisStore({ url: REDIS_URL, prefix })
  const memory = new MemoryStore()
  const dead = new RedisStore({ url: `redis://127.0.0.1:${await closedPort()}`, prefix, commandTimeout: 1000, connectTimeout: 500 })
  dead.on('disconnect', () => {})
  try {
    await redis.set('a', sessionData())
    await Promise.all([redis.get('a'), redis.get('a'), redis.get('b')])
    await memory.set('m', sessionData())
    const err = await dead.get('x').catch((e) => e)
    const [r, m, d] = [redis, memory, dead].map((s) => String(s._storeId))

    const got = await samples(registry)
    expect(got[`ferrosession_operations_total{backend="redis",store="${r}",operation="set"}`]).toBe(1)
    expect(got[`ferrosession_operations_total{backend="redis",store="${r}",operation="get"}`]).toBe(3)
    expect(got[`ferrosession_operations_total{backend="memory",store="${m}",operation="set"}`]).toBe(1)
    expect(got[`ferrosession_errors_total{backend="redis",store="${d}",code="${err.code}"}`]).toBe(1)
    expect(got[`ferrosession_outages_total{backend="redis",store="${d}"}`]).toBe(1)
    expect(got[`ferrosession_connected{backend="redis",store="${d}"}`]).toBe(0)
    expect(got[`ferrosession_connected{backend="redis",store="${r}"}`]).toBe(1)
    expect(got[`ferrosession_in_flight{backend="redis",store="${r}"}`]).toBe(0)
    // A histogram in seconds: cumulative buckets up to +Inf, which equals the count.
    const gets = `backend="redis",store="${r}",operation="get"`
    expect(got[`ferrosession_operation_duration_seconds_bucket{${gets},le="+Inf"}`]).toBe(3)
    expect(got[`ferrosession_operation_duration_seconds_count{${gets}}`]).toBe(3)
    expect(got[`ferrosession_operation_duration_seconds_bucket{${gets},le="10"}`]).toBe(3)
    expect(got[`ferrosession_operation_duration_seconds_sum{${gets}}`]).toBeGreaterThan(0)
    expect(got[`ferrosession_operation_duration_seconds_sum{${gets}}`]).toBeLessThan(3)
    expect(got[`ferrosession_requests_per_native_call_count{backend="redis",store="${r}"}`]).toBeGreaterThanOrEqual(2)
    expect(got[`ferrosession_requests_per_native_call_sum{backend="redis",store="${r}"}`]).toBe(4)

    // Counted at scrape time: later work shows in the next scrape; a closed store's series go.
    await redis.destroy('a')
    await memory.close()
    const next = await samples(registry)
    expect(next[`ferrosession_operations_total{backend="redis",store="${r}",operation="destroy"}`]).toBe(1)
    expect(Object.keys(next).filter((k) => k.includes(`store="${m}"`))).toEqual([])
    expect(await registry.getMetricsAsJSON()).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'ferrosession_operations_total', type: 'counter' })]))
  } finally {
    await redis.clear()
    await Promise.all([redis.close(), memory.close(), dead.close()])
  }
})

test('OpenMetrics: counters keep one _total, histogram buckets rise', async () => {
  const registry = new client.Registry(client.Registry.OPENMETRICS_CONTENT_TYPE)
  registerMetrics(registry)
  const redis = new RedisStore({ url: REDIS_URL, prefix })
  try {
    await redis.get('nobody')
    const text = await registry.metrics()
    expect(text).toContain('# TYPE ferrosession_operations counter')
    expect(text).toMatch(new RegExp(`^ferrosession_operations_total\\{backend="redis",store="${redis._storeId}",operation="get"\\} 1$`, 'm'))
    expect(text).not.toContain('_total_total')
    const les = [...text.matchAll(new RegExp(`^ferrosession_operation_duration_seconds_bucket\\{[^}]*store="${redis._storeId}",operation="get",le="([^"]+)"\\}`, 'gm'))].map((m) => m[1])
    expect(les).toEqual(['0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'])
  } finally {
    await redis.close()
  }
})

test('a store whose constructor threw is not scraped', async () => {
  const registry = new client.Registry()
  registerMetrics(registry)
  expect(() => new MemoryStore({ max: 0 })).toThrow()
  expect(await registry.metrics()).not.toContain('backend="memory"')
})

test('a prefix of the app\'s own; registering twice on one registry is prom-client\'s error', () => {
  const registry = new client.Registry()
  expect(registerMetrics(registry, { prefix: 'app_sessions_' })[0]).toBe('app_sessions_operations_total')
  expect(() => registerMetrics(registry, { prefix: 'app_sessions_' })).toThrow(/already been registered/)
})

test('anything but a registry is refused with words that say what to pass', () => {
  expect(() => registerMetrics()).toThrow(/pass a prom-client Registry/)
  expect(() => registerMetrics(client)).toThrow(/pass a prom-client Registry/)
})
