'use strict'
// The one table of stores: each backend's class, the URL schemes createStore maps to it and how a
// URL becomes that class's options. createStore, the CLI's help and the tests' lists of backends
// are derived from it; a new store adds one line here (and its options' line in lib/options.js).

/** `server`: the store talks to a server (it can have outages; the tests start private ones). */
const STORES = [
  { backend: 'redis', className: 'RedisStore', file: './redis-store', schemes: ['redis:', 'rediss:'], server: true, fromUrl: (url) => ({ url }) },
  { backend: 'postgres', className: 'PostgresStore', file: './postgres-store', schemes: ['postgres:', 'postgresql:'], server: true, fromUrl: (url) => ({ conString: url }) },
  { backend: 'mysql', className: 'MySqlStore', file: './mysql-store', schemes: ['mysql:', 'mariadb:'], server: true, fromUrl: (url) => ({ url }) },
  { backend: 'mongodb', className: 'MongoStore', file: './mongo-store', schemes: ['mongodb:', 'mongodb+srv:'], server: true, fromUrl: (url) => ({ mongoUrl: url }) },
  { backend: 'sqlite', className: 'SqliteStore', file: './sqlite-store', schemes: ['sqlite:'], shown: ['sqlite:<path>'], server: false, fromUrl: (url) => ({ path: sqlitePath(url) }) },
  { backend: 'memory', className: 'MemoryStore', file: './memory-store', schemes: ['memory:'], shown: ['memory:'], server: false, fromUrl: () => ({}) }
].map((store) => ({ shown: store.schemes.map((s) => `${s}//`), ...store }))

/** Every URL form createStore takes, as the CLI's help and createStore's errors list them. */
const SCHEMES = STORES.flatMap((store) => store.shown)

/** The store for a URL scheme (`redis:`, lower case), or undefined. */
function storeForScheme (scheme) {
  return STORES.find((store) => store.schemes.includes(scheme))
}

/** The class of a table entry, loaded only when used (an app on Redis never loads the others). */
function classOf (store) {
  return require(store.file)[store.className]
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

module.exports = { STORES, SCHEMES, storeForScheme, classOf }
