'use strict'
// Errors reach callbacks as plain `Error`s with a `code` (never ENOENT, which express-session
// would silently treat as "no session") and a message naming backend, operation and reason.

const CODES = {
  invalid: 'ESESSION_INVALID',
  closed: 'ESESSION_CLOSED',
  unparsable: 'ESESSION_UNPARSABLE'
}

function storeError (code, message) {
  const err = new Error(message)
  err.code = code
  return err
}

/** Bad input refused on the JS side, before anything is sent to storage. */
function invalidInput (backend, op, reason) {
  return storeError(CODES.invalid, `ferrosession ${backend} ${op}: ${reason}`)
}

/**
 * A setting a store refuses when it is made (an unknown option, a value of the wrong kind): a
 * TypeError, as the anchors throw, with the code every refused input has.
 */
function optionError (message) {
  const err = new TypeError(message)
  err.code = CODES.invalid
  return err
}

/** A setting the native side refused when a store was made (a URL, a certificate, a key). */
function refusedSetting (err, backend) {
  const message = String(err.message)
  const refused = optionError(message.startsWith('ferrosession ') ? message : `ferrosession ${backend} options: ${message}`)
  refused.cause = err
  return refused
}

/** A request made after close(): refused at once, before anything reaches the backend. */
function closedError (backend, op) {
  return storeError(CODES.closed, `ferrosession ${backend} ${op}: the store was closed`)
}

module.exports = { storeError, invalidInput, optionError, refusedSetting, closedError, CODES }
