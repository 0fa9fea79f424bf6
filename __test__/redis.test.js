'use strict'
// What only RedisStore does: refusing clients it cannot honour.

const { createCluster, createSentinel } = require('redis')
const IORedis = require('ioredis')
const { RedisStore } = require('..')

describe('a Cluster or Sentinel client is refused, not quietly turned into a single-node connection', () => {
  test.each([
    ['node-redis createCluster', () => createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:7000' }] }), /Redis Cluster client/],
    ['ioredis Cluster', () => new IORedis.Cluster([{ host: '127.0.0.1', port: 7000 }], { lazyConnect: true }), /Redis Cluster client/],
    ['node-redis createSentinel', () => createSentinel({ name: 'mymaster', sentinelRootNodes: [{ host: '127.0.0.1', port: 26379 }] }), /Redis Sentinel client/],
    ['ioredis with sentinels', () => new IORedis({ sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster', lazyConnect: true }), /Redis Sentinel client/]
  ])('%s', async (_label, make, message) => {
    const client = make()
    try {
      expect(() => new RedisStore({ client })).toThrow(message)
    } finally {
      if (typeof client.disconnect === 'function') await Promise.resolve(client.disconnect()).catch(() => {})
    }
  })
})
