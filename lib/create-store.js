'use strict'
// One entry point: the store for a URL. No URL gives the embedded SqliteStore.

const { forStore } = require('./options')

const SCHEMES = ['redis://', 'rediss://', 'postgres://', 'postgresql://', 'mysql://', 'mariadb://', 'mongodb://', 'mongodb+srv://', 'sqlite:<path>', 'memory:']

function createStore (url, options = {}) {
  if (url !== undefined && url !== null && typeof url !== 'string') {
    throw new TypeError(`ferrosession createStore: the URL must be a string, got ${typeof url}`)
  }
  if (!url) return new (require('./sqlite-store').SqliteStore)(forStore(options, 'sqlite'))
  const scheme = url.slice(0, url.indexOf(':') + 1).toLowerCase()
  switch (scheme) {
    case 'redis:':
    case 'rediss:':
      return new (require('./redis-store').RedisStore)({ ...forStore(options, 'redis'), url })
    case 'postgres:':
    case 'postgresql:':
      return new (require('./postgres-store').PostgresStore)({ ...forStore(options, 'postgres'), conString: url })
    case 'mysql:':
    case 'mariadb:':
      return new (require('./mysql-store').MySqlStore)({ ...forStore(options, 'mysql'), url })
    case 'mongodb:':
    case 'mongodb+srv:':
      return new (require('./mongo-store').MongoStore)({ ...forStore(options, 'mongodb'), mongoUrl: url })
    case 'sqlite:':
      return new (require('./sqlite-store').SqliteStore)({ ...forStore(options, 'sqlite'), path: sqlitePath(url) })
    case 'memory:':
      return new (require('./memory-store').MemoryStore)(forStore(options, 'memory'))
    default: {
      const shown = withoutCredentials(url)
      const got = scheme ? `scheme ${JSON.stringify(scheme)} (in ${JSON.stringify(shown)})` : `${JSON.stringify(shown)}, which has no scheme`
      throw new Error(`ferrosession createStore: unsupported store URL ${got}; ` +
        `supported: ${SCHEMES.join(', ')}, or no URL for the embedded SQLite store`)
    }
  }
}

/** A store URL fit to print: `user:pass@` becomes `…@`, so no password is ever echoed. */
function withoutCredentials (url) {
  return url.replace(/\/\/[^/@]*@/, '//…@')
}

/**
 * The file of a `sqlite:` URL, as sqlx reads them: `sqlite:app.db` and `sqlite://app.db` are
 * relative to the working directory, `sqlite:/var/x.db` and `sqlite:///var/x.db` absolute. (Taken
 * literally, `sqlite://app.db` would be `//app.db`, a file at the filesystem root.)
 */
function sqlitePath (url) {
  let rest = url.slice('sqlite:'.length)
  if (rest.startsWith('//')) rest = rest.slice(2)
  return rest || undefined
}

module.exports = { createStore, SCHEMES, withoutCredentials }
