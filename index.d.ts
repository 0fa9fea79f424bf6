import { Store, SessionData } from 'express-session'
import expressSession = require('express-session')

type Callback<T = void> = (err: Error | null, value?: T) => void
type StoredSession = SessionData & { [key: string]: unknown }

export interface Serializer {
  stringify(session: unknown): string
  parse(text: string): unknown | Promise<unknown>
}

/** Options every ferrosession store takes. */
export interface CommonOptions {
  /** `{ stringify, parse }`; `parse` may return a Promise. Default: `JSON`. */
  serializer?: Serializer
  /** Make `touch` a no-op. */
  disableTouch?: boolean
  /** Refuse sessions whose serialised form is over this many bytes. */
  maxSize?: number
  /** Milliseconds to open a connection (default 5000). */
  connectTimeout?: number
  /** Milliseconds within which every callback fires (default 3000). */
  commandTimeout?: number
  /** Called once per session whose stored value cannot be read (treated as absent). Default console.error. */
  errorLog?: (...args: unknown[]) => void
  /**
   * Lazy touch (connect-mongo's): a touch within this many seconds of the last write is skipped.
   * Stored expiries run this far ahead of the cookie's, so a skipped touch never shortens a session.
   */
  touchAfter?: number
  /** Encryption at rest (AES-256-GCM in Rust). */
  encryption?: EncryptionOptions
}

export interface EncryptionOptions {
  /** The first encrypts; all decrypt (rotation). A 32-byte Buffer, or a passphrase of 16+ characters. */
  keys: Array<Uint8Array | string>
  /** Read sessions stored before encryption was turned on (they are re-written encrypted). Default false. */
  readPlaintext?: boolean
  /** The secret given to connect-mongo's createWebCryptoAdapter: its sessions stay readable. */
  connectMongoSecret?: string
}

/** Errors passed to callbacks carry one of these codes. */
export type StoreErrorCode =
  | 'ESESSION_UNAVAILABLE' | 'ESESSION_TIMEOUT' | 'ESESSION_BACKEND'
  | 'ESESSION_INVALID' | 'ESESSION_CLOSED' | 'ESESSION_PANIC'
  | 'ESESSION_TOO_LARGE' | 'ESESSION_UNPARSABLE'

/** Prometheus-style cumulative buckets in rising order: how many at or under each bound, '+Inf' last. */
export type CumulativeBuckets = Array<{ le: number | '+Inf', count: number }>

/** What `store.metrics()` answers: counted since the store was made. */
export interface StoreMetrics {
  backend: string
  /** false from a `disconnect` event until the next `connect`. */
  connected: boolean
  /** Operations waiting for an answer now. */
  inFlight: number
  /** By operation (get, set, touch, destroy, patch, all, ids, length, clear, prune, ready; close is not counted). */
  operations: Record<string, { count: number, errors: number, latencyMs: { sum: number, buckets: CumulativeBuckets } }>
  /** Failed operations by error code. */
  errors: Partial<Record<StoreErrorCode | 'other', number>>
  /** `disconnect` events. */
  outages: number
  /** get/set/touch/destroy requests per call into the native core (1: sent alone). */
  batches: { nativeCalls: number, requests: number, sizes: CumulativeBuckets }
}

declare abstract class NativeBackedStore extends Store {
  serializer: Serializer
  disableTouch: boolean
  get(sid: string, callback: Callback<StoredSession | null>): void
  get(sid: string): Promise<StoredSession | null>
  set(sid: string, session: SessionData, callback: Callback): void
  set(sid: string, session: SessionData): Promise<void>
  touch(sid: string, session: SessionData, callback: Callback): void
  touch(sid: string, session: SessionData): Promise<void>
  destroy(sid: string, callback?: Callback): void
  destroy(sid: string): Promise<void>
  all(callback: Callback<Array<StoredSession & { id: string }>>): void
  all(): Promise<Array<StoredSession & { id: string }>>
  ids(callback: Callback<string[]>): void
  ids(): Promise<string[]>
  length(callback: Callback<number>): void
  length(): Promise<number>
  clear(callback: Callback<number>): void
  clear(): Promise<number>
  /** Removes expired sessions now; resolves with how many. */
  prune(callback: Callback<number>): void
  prune(): Promise<number>
  /** Resolves after one round trip to the server. */
  ready(callback: Callback): void
  ready(): Promise<void>
  /** Operation counts, errors, outages, latency and batch sizes since the store was made. */
  metrics(): StoreMetrics
  /** Releases connections and timers. */
  close(callback: Callback): void
  close(): Promise<void>
}

export interface RedisStoreOptions extends CommonOptions {
  /** For rediss://: PEM root certificate(s) to trust instead of the system's. */
  tls?: { ca?: string | Buffer | Array<string | Buffer> }
  /** `redis://[user:password@]host:port[/db]`. Default `redis://127.0.0.1:6379`. */
  url?: string
  /** An existing node-redis (v4-v6) or ioredis client whose connection settings are used. */
  client?: unknown
  /** Key prefix, default `"sess:"`. */
  prefix?: string
  /** Seconds, or a function of the session returning seconds. Default 86400. */
  ttl?: number | ((session: SessionData) => number)
  /** Store keys without expiry. */
  disableTTL?: boolean
  /** COUNT hint for SCAN, default 100. */
  scanCount?: number
}

export declare class RedisStore extends NativeBackedStore {
  constructor(options?: RedisStoreOptions)
  client: unknown
  prefix: string
  ttl: number | ((session: SessionData) => number)
  disableTTL: boolean
  scanCount: number
}

export interface PostgresStoreOptions extends CommonOptions {
  pool?: unknown
  pgPromise?: unknown
  conObject?: { host?: string; port?: number | string; user?: string; password?: string; database?: string; connectionString?: string; max?: number }
  conString?: string
  schemaName?: string
  tableName?: string
  /** Seconds for sessions whose cookie has no expiry, default 86400. */
  ttl?: number
  createTableIfMissing?: boolean
  /** Seconds between prunes (default 900), or false. */
  pruneSessionInterval?: number | false
  pruneSessionRandomizedInterval?: ((ms: number) => number) | false
  errorLog?: (...args: unknown[]) => void
  poolSize?: number
  /** Milliseconds; sets statement_timeout on the store's connections. */
  statementTimeout?: number
  /** 'knex': connect-session-knex's `sessions` table instead of connect-pg-simple's. */
  layout?: 'connect-pg-simple' | 'knex'
  /** knex layout: connect-session-knex's options. */
  sidFieldName?: string
  createTable?: boolean
  cleanupInterval?: number
  onDbCleanupError?: (err: Error) => void
}

export declare class PostgresStore extends NativeBackedStore {
  constructor(options?: PostgresStoreOptions)
  schemaName?: string
  tableName: string
  ttl: number
  pruneSessions(callback: Callback<number>): void
  pruneSessions(): Promise<number>
  quotedTable(): string
}

/** mysql2's `ssl`: TLS is required once given. */
export interface MySqlTlsOptions {
  ca?: string | Buffer | Array<string | Buffer>
  cert?: string | Buffer
  key?: string | Buffer
  rejectUnauthorized?: boolean
  /** The name the server certificate must carry, when it is not the host. */
  servername?: string
  verifyIdentity?: boolean
}

export interface MySqlStoreOptions extends CommonOptions {
  host?: string
  port?: number
  user?: string
  password?: string
  database?: string
  socketPath?: string
  /** `mysql://user:pass@host:port/database` (or `mariadb://`). */
  url?: string
  ssl?: MySqlTlsOptions | boolean
  connectionLimit?: number
  /** ms pooled connections may stay idle (default 10000; 0 keeps them). */
  idleTimeout?: number
  poolSize?: number
  schema?: { tableName?: string; columnNames?: { session_id?: string; expires?: string; data?: string } }
  createDatabaseTable?: boolean
  /** ms for sessions whose cookie has no expiry (default 86400000). */
  expiration?: number
  /** Seconds, or a function of the session (wins over `expiration`). */
  ttl?: number | ((session: SessionData) => number)
  clearExpired?: boolean
  /** ms between deletes of expired rows (default 900000). */
  checkExpirationInterval?: number
  endConnectionOnClose?: boolean
  /** A utf8mb4 collation for the created table (default utf8mb4_bin). */
  charset?: string
  /** 'knex': connect-session-knex's `sessions` table instead of express-mysql-session's. */
  layout?: 'express-mysql-session' | 'knex'
  tableName?: string
  sidFieldName?: string
  createTable?: boolean
  cleanupInterval?: number
  onDbCleanupError?: (err: Error) => void
}

declare class MySqlStoreClass extends NativeBackedStore {
  /** `connection`: the app's mysql2 or mysql pool or connection, whose settings are read. */
  constructor(options?: MySqlStoreOptions, connection?: unknown)
  options: MySqlStoreOptions
  connection?: unknown
  state: 'INITIALIZING' | 'INITIALIZED' | 'CLOSING' | 'CLOSED'
  onReady(): Promise<void>
  clearExpiredSessions(callback: Callback<number>): void
  clearExpiredSessions(): Promise<number>
}
export interface MongoStoreOptions extends CommonOptions {
  /** Exactly one of mongoUrl, client, clientPromise. */
  mongoUrl?: string
  /** MongoClient options with a connection-string equivalent (tls, tlsCAFile, auth, replicaSet, ...). */
  mongoOptions?: Record<string, unknown>
  /** The app's MongoClient: its settings are read and connected to natively. */
  client?: unknown
  clientPromise?: Promise<unknown>
  dbName?: string
  /** Default `sessions`. */
  collectionName?: string
  /** Seconds a session without a cookie expiry lives (default 1209600, 14 days), or a function of the session. */
  ttl?: number | ((session: SessionData) => number)
  /** Default `native` (a TTL index on `expires`). */
  autoRemove?: 'native' | 'interval' | 'disabled'
  /** Minutes between removals with autoRemove: 'interval' (default 10). */
  autoRemoveInterval?: number
  /** false: `session` is a BSON document instead of a JSON string. Default true. */
  stringify?: boolean
  /** `createdAt` / `updatedAt` fields. */
  timestamps?: boolean
  writeOperationOptions?: { w?: number | string, j?: boolean, wtimeout?: number }
  /** The `_id` a session id is stored under. */
  transformId?: (sid: string) => string
  poolSize?: number
}

declare class MongoStoreClass extends NativeBackedStore {
  constructor(options: MongoStoreOptions)
  static create(options: MongoStoreOptions): MongoStoreClass
  options: MongoStoreOptions
}
/** connect-mongo 6's class (`MongoStore.create(options)` or `new MongoStore(options)`). */
export declare const MongoStore: typeof MongoStoreClass & ((session?: unknown) => typeof MongoStoreClass)
export type MongoStore = MongoStoreClass

/** A class, and express-mysql-session's factory shape: `MySqlStore(session)` is `MySqlStore`. */
export declare const MySqlStore: typeof MySqlStoreClass & ((session?: unknown) => typeof MySqlStoreClass & ((session?: unknown) => unknown))
export type MySqlStore = MySqlStoreClass
export { MySqlStore as MySQLStore }

export interface KnexStoreOptions {
  /** The app's knex instance (PostgreSQL, MySQL/MariaDB or SQLite); none: SQLite in ./connect-session-knex.sqlite. */
  knex?: { client: unknown }
  tableName?: string
  sidFieldName?: string
  createTable?: boolean
  cleanupInterval?: number
  onDbCleanupError?: (err: Error) => void
  [option: string]: unknown
}

/** connect-session-knex 5's class (and v4's factory): the native store for knex's database. */
export declare const KnexStore: {
  new (options?: KnexStoreOptions): PostgresStore | MySqlStoreClass | SqliteStore
  (session?: unknown): typeof KnexStore
}
export { KnexStore as ConnectSessionKnexStore }

export interface SqliteStoreOptions extends CommonOptions {
  /** Database file (default ./sessions.sqlite) or ':memory:'. */
  path?: string
  tableName?: string
  sidFieldName?: string
  createTable?: boolean
  /** Seconds for sessions whose cookie has no expiry, default 86400. */
  ttl?: number
  /** ms between deletes of expired rows (default 60000); 0 disables. */
  cleanupInterval?: number
  disableDbCleanup?: boolean
  onDbCleanupError?: (err: Error) => void
  /** ms a write waits for another process's lock (default 5000). */
  busyTimeout?: number
}

export declare class SqliteStore extends NativeBackedStore {
  constructor(options?: SqliteStoreOptions)
  path: string
  tableName: string
  sidFieldName: string
}

export interface MemoryStoreOptions extends CommonOptions {
  /** Most sessions kept (default 100000); Infinity for no limit. */
  max?: number
  /** Most bytes of ids plus serialised sessions kept. */
  maxBytes?: number
  /** Milliseconds (as in memorystore) for sessions without a cookie expiry, or a function. */
  ttl?: number | ((options: MemoryStoreOptions, session: SessionData) => number)
  /** ms between sweeps of expired sessions. */
  checkPeriod?: number
}

export declare class MemoryStore extends NativeBackedStore {
  constructor(options?: MemoryStoreOptions)
  max?: number
  stopInterval(): void
}

/** The store for a URL: redis://, rediss://, postgres://, postgresql://, mysql://, mariadb://, sqlite:<path>, memory:; none gives SqliteStore. */
export declare function createStore(url?: string, options?: object): RedisStore | PostgresStore | MySqlStore | MongoStore | SqliteStore | MemoryStore

/** cookie-signature's sign: `value + '.' + base64(HMAC-SHA256(secret, value))` without padding. */
export declare function sign(value: string, secret: string | Buffer | ArrayBufferView): string
/** The value if the signature matches one of the secrets, else false. */
export declare function unsign(signed: string, secret: string | Buffer | ArrayBufferView | Array<string | Buffer | ArrayBufferView>): string | false

/**
 * Registers every open store's metrics on a prom-client Registry (the app's own prom-client;
 * ferrosession does not depend on it), read at scrape time; labels `backend` and `store` (the
 * order the app created its stores in). Answers the metric names it registered.
 */
export declare function registerMetrics(registry: { registerMetric(metric: object): void }, options?: { prefix?: string }): string[]

/**
 * express-session 1.19's middleware on ferrosession's native core: the same options, `req.session`
 * API and Set-Cookie bytes, with `Store`, `MemoryStore` (ferrosession's), `Cookie` and `Session`.
 * Typed by express-session's own declarations, so `declare module 'express-session' { interface
 * SessionData { ... } }` augmentations an app already has apply unchanged.
 */
export declare const session: typeof expressSession

declare module 'express-session' {
  interface SessionOptions {
    /**
     * ferrosession's session() only: save a session the request loaded as what it changed (a JSON
     * merge patch the store merges into what is stored now), so concurrent requests keep each
     * other's changes and a logout is never undone. Default true; false writes whole sessions.
     */
    merge?: boolean
  }
}

export default RedisStore
