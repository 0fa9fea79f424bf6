'use strict'
// One entry point: the store for a URL. No URL gives the embedded SqliteStore.

const SCHEMES = ['redis://', 'rediss://', 'postgres://', 'postgresql://', 'mysql://', 'mariadb://', 'mongodb://', 'mongodb+srv://', 'sqlite:<path>', 'memory:']

function createStore (url, options = {}) {
  if (url !== undefined && url !== null && typeof url !== 'string') {
    throw new TypeError(`ferrosession createStore: the URL must be a string, got ${typeof url}`)
  }
  if (!url) return new (require('./sqlite-store').SqliteStore)(options)
  const scheme = url.slice(0, url.indexOf(':') + 1).toLowerCase()
  switch (scheme) {
    case 'redis:':
    case 'rediss:':
      return new (require('./redis-store').RedisStore)({ ...options, url })
    case 'postgres:':
    case 'postgresql:':
      return new (require('./postgres-store').PostgresStore)({ ...options, conString: url })
    case 'mysql:':
    case 'mariadb:':
      return new (require('./mysql-store').MySqlStore)({ ...options, url })
    case 'mongodb:':
    case 'mongodb+srv:':
      return new (require('./mongo-store').MongoStore)({ ...options, mongoUrl: url })
    case 'sqlite:':
      return new (require('./sqlite-store').SqliteStore)({ ...options, path: url.slice('sqlite:'.length) || undefined })
    case 'memory:':
      return new (require('./memory-store').MemoryStore)(options)
    default:
      throw new Error(`ferrosession createStore: unsupported store URL ${JSON.stringify(url.split('@').pop())}; ` +
        `supported: ${SCHEMES.join(', ')}, or no URL for the embedded SQLite store`)
  }
}

module.exports = { createStore, SCHEMES }
