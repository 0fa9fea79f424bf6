'use strict'
// Lazy touch (touchAfter) needs to know, at a touch, what expiry the stored copy already has: a
// get learns it, the touch that follows reads it. Kept here, once per process, by the place the
// sessions live (the backend and the settings that locate them) rather than by store instance,
// so a touch made through another store instance on the same sessions than the get skips its
// write too. A store whose sessions are its own alone (memory, SQLite's :memory:) has a place of
// its own.

/** At most this many sids' stored expiries are remembered between a get and its touch. */
const MAX = 50000
const known = new Map() // `${place}\n${sid}` -> the expiry its stored copy is known to have

function remember (place, sid, at) {
  if (known.size >= MAX) known.clear() // forgetting only costs touches
  known.set(`${place}\n${sid}`, at)
}

/** The remembered expiry of `sid` at `place`, forgotten as it is read (one touch per get). */
function take (place, sid) {
  const key = `${place}\n${sid}`
  const at = known.get(key)
  known.delete(key)
  return at
}

function forget (place, sid) {
  known.delete(`${place}\n${sid}`)
}

/** The native settings (src/napi_stores.rs) that say where sessions live, of every backend. */
const LOCATION = ['url', 'cluster', 'sentinel', 'prefix', 'connectionString', 'host', 'port', 'socketPath', 'database',
  'schemaName', 'dbName', 'tableName', 'collectionName', 'layout', 'sidColumn', 'sidFieldName', 'path']

/**
 * Where a store's sessions live, as far as lazy touch is concerned: stores share what they learn
 * only with stores on the same sessions that pad expiries by the same touchAfter.
 */
function placeOf (backend, storeId, settings, touchPadMs) {
  if (backend === 'memory' || settings.path === ':memory:') return `${backend}#${storeId}`
  return `${backend}\n${touchPadMs}\n${JSON.stringify(LOCATION.map((key) => settings[key] ?? null))}`
}

module.exports = { remember, take, forget, placeOf }
