'use strict'
// A hand-off between the session middleware and ferrosession's stores, so that a session is
// serialised once per request: to decide whether to save, the middleware has just computed the
// session's JSON without its cookie; the store completes it with the cookie instead of running
// JSON.stringify over the whole session again. Set right before save() and removed right after.

const serialised = new WeakMap()

/**
 * The whole session's JSON, from `state` (its JSON without `cookie`) and its cookie: the same text
 * JSON.stringify(sess) gives, provided `cookie` is the session's first key (it is for every
 * session the middleware made or loaded from a JSON store). Otherwise undefined.
 */
function wholeJson (sess, state) {
  // Only the first key is wanted, without building the array Object.keys() would.
  // eslint-disable-next-line no-unreachable-loop
  for (const key in sess) {
    if (key !== 'cookie') return undefined
    break
  }
  if (typeof state !== 'string' || sess.cookie === undefined) return undefined
  const cookieJson = JSON.stringify(sess.cookie)
  if (cookieJson === undefined) return undefined
  return state === '{}' ? `{"cookie":${cookieJson}}` : `{"cookie":${cookieJson},${state.slice(1)}`
}

/**
 * The other hand-off of the end-of-request save: the JSON merge patch of a session the request
 * loaded (docs/design.md, "Concurrent requests"). The middleware saves through `store.set`, as
 * express-session does (the same store calls, in the same order); a ferrosession store that finds
 * a patch here for the session it is given merges it instead of writing the session whole.
 */
const pendingPatches = new WeakMap()

module.exports = { serialised, wholeJson, pendingPatches }
