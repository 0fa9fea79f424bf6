'use strict'
// One entry point: the store for a URL. No URL gives the embedded SqliteStore.

const { optionError } = require('./errors')
const { forStore } = require('./options')
const { STORES, SCHEMES, storeForScheme, classOf } = require('./stores')

/** The store without a URL: the embedded one. */
const DEFAULT_BACKEND = 'sqlite'

function createStore (url, options = {}) {
  if (url !== undefined && url !== null && typeof url !== 'string') {
    throw optionError(`ferrosession createStore: the URL must be a string, got ${typeof url}`)
  }
  if (!url) return new (classOf(STORES.find((s) => s.backend === DEFAULT_BACKEND)))(forStore(options, DEFAULT_BACKEND))
  const scheme = url.slice(0, url.indexOf(':') + 1).toLowerCase()
  const store = storeForScheme(scheme)
  if (!store) {
    const shown = withoutCredentials(url)
    const got = scheme ? `scheme ${JSON.stringify(scheme)} (in ${JSON.stringify(shown)})` : `${JSON.stringify(shown)}, which has no scheme`
    throw new Error(`ferrosession createStore: unsupported store URL ${got}; ` +
      `supported: ${SCHEMES.join(', ')}, or no URL for the embedded SQLite store`)
  }
  return new (classOf(store))({ ...forStore(options, store.backend), ...store.fromUrl(url) })
}

/**
 * A store URL fit to print: `user:pass@` becomes `…@` and a password in the query
 * (`?password=`, libpq's `sslpassword=`) becomes `…`, so no password is ever echoed.
 */
function withoutCredentials (url) {
  return url.replace(/\/\/[^/@]*@/, '//…@').replace(/([?&](?:password|pass|pwd|sslpassword)=)[^&#]*/gi, '$1…')
}

module.exports = { createStore, SCHEMES, withoutCredentials }
