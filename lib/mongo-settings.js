'use strict'
// Where a MongoStore connects: connect-mongo's `mongoUrl` + `mongoOptions`, or the settings of the
// app's own MongoClient (`client`, or what `clientPromise` resolves to), read and turned into one
// connection string for the Rust driver. Settings are used or refused, never dropped: an option
// the native driver cannot honour is named in the error.

/** MongoClient options that have the same name as a connection-string option. */
const { optionError } = require('./errors')
const URL_OPTIONS = new Set(['tls', 'ssl', 'tlsCAFile', 'tlsCertificateKeyFile', 'tlsCertificateKeyFilePassword',
  'tlsAllowInvalidCertificates', 'tlsAllowInvalidHostnames', 'tlsInsecure', 'authSource', 'authMechanism',
  'replicaSet', 'directConnection', 'loadBalanced', 'maxPoolSize', 'minPoolSize', 'maxIdleTimeMS', 'maxConnecting',
  'connectTimeoutMS', 'socketTimeoutMS', 'serverSelectionTimeoutMS', 'heartbeatFrequencyMS', 'localThresholdMS',
  'appName', 'retryWrites', 'retryReads', 'readPreference', 'w', 'journal', 'wtimeoutMS', 'srvMaxHosts', 'srvServiceName',
  'zlibCompressionLevel', 'compressors'])
/** MongoClient options that only shape the JS driver's own behaviour: nothing to carry over. */
const JS_ONLY = new Set(['monitorCommands', 'promoteValues', 'promoteBuffers', 'promoteLongs', 'bsonRegExp',
  'raw', 'useBigInt64', 'enableUtf8Validation', 'serverApi', 'driverInfo', 'forceServerObjectId', 'noDelay',
  'keepAlive', 'keepAliveInitialDelay', 'family', 'mongodbLogPath', 'mongodbLogComponentSeverities',
  'mongodbLogMaxDocumentLength', 'proxyHost', 'proxyPort', 'proxyUsername', 'proxyPassword'])

function refuse (what) {
  return optionError(`ferrosession mongodb: ${what}`)
}

/**
 * `mongoUrl` + `mongoOptions` as one connection string. `ignoreUndefined` is returned apart: it
 * decides how the store itself writes `stringify: false` sessions.
 */
function fromUrlAndOptions (mongoUrl, mongoOptions = {}) {
  if (typeof mongoUrl !== 'string' || !/^mongodb(\+srv)?:\/\//i.test(mongoUrl)) {
    throw refuse(`option mongoUrl must be a mongodb:// or mongodb+srv:// URL, got ${typeof mongoUrl === 'string' ? JSON.stringify(redact(mongoUrl)) : typeof mongoUrl}`)
  }
  if (mongoOptions === null || typeof mongoOptions !== 'object') throw refuse('option mongoOptions must be an object')
  const url = new URL(mongoUrl)
  const unsupported = []
  let ignoreUndefined = false
  for (const [key, value] of Object.entries(mongoOptions)) {
    if (value === undefined) continue
    if (key === 'ignoreUndefined') ignoreUndefined = Boolean(value)
    else if (key === 'auth') setCredentials(url, value)
    else if (key === 'dbName') url.pathname = `/${encodeURIComponent(value)}`
    else if (URL_OPTIONS.has(key)) {
      if (key === 'readPreference' && typeof value === 'object') unsupported.push(`${key} (as an object; give its mode as a string)`)
      else url.searchParams.set(key, Array.isArray(value) ? value.join(',') : String(value))
    } else if (!JS_ONLY.has(key)) unsupported.push(key)
  }
  if (unsupported.length > 0) {
    throw refuse(`mongoOptions ${unsupported.join(', ')} cannot be honoured by the native driver; ` +
      'give TLS files as tlsCAFile/tlsCertificateKeyFile paths and everything else in the connection string')
  }
  return { url: url.href, ignoreUndefined }
}

function setCredentials (url, auth) {
  if (!auth || typeof auth !== 'object') throw refuse('mongoOptions.auth must be { username, password }')
  if (auth.username !== undefined) url.username = encodeURIComponent(auth.username)
  if (auth.password !== undefined) url.password = encodeURIComponent(auth.password)
}

/**
 * The app's MongoClient: its connection string (which holds what was given in it) plus what was
 * given as options, read from the client's parsed options.
 */
function fromClient (client) {
  if (!client || typeof client !== 'object' || !client.s || typeof client.s.url !== 'string' || !client.options) {
    throw refuse('option client must be a MongoClient from the mongodb package (or clientPromise a Promise of one)')
  }
  const o = client.options
  const url = new URL(client.s.url)
  const unsupported = []
  if (o.autoEncryption) unsupported.push('autoEncryption')
  for (const key of ['ca', 'cert', 'key', 'secureContext', 'pfx']) if (o[key] !== undefined) unsupported.push(`${key} (in memory; give tlsCAFile/tlsCertificateKeyFile paths)`)
  if (o.proxyHost) unsupported.push('proxyHost')
  if (unsupported.length > 0) throw refuse(`the MongoClient's ${unsupported.join(', ')} cannot be honoured by the native driver`)
  const credentials = o.credentials
  if (credentials && credentials.username && !url.username) {
    url.username = encodeURIComponent(credentials.username)
    if (credentials.password) url.password = encodeURIComponent(credentials.password)
  }
  const params = url.searchParams
  const carry = (name, value) => { if (value !== undefined && value !== null && !params.has(name)) params.set(name, String(value)) }
  if (credentials && credentials.username) {
    carry('authSource', credentials.source)
    if (credentials.mechanism && credentials.mechanism !== 'DEFAULT') carry('authMechanism', credentials.mechanism)
  }
  if (o.tls) {
    carry('tls', true)
    carry('tlsCAFile', o.tlsCAFile)
    carry('tlsCertificateKeyFile', o.tlsCertificateKeyFile)
    if (o.tlsAllowInvalidCertificates) carry('tlsAllowInvalidCertificates', true)
    if (o.tlsAllowInvalidHostnames) carry('tlsAllowInvalidHostnames', true)
  }
  carry('replicaSet', o.replicaSet)
  if (o.directConnection) carry('directConnection', true)
  if (o.loadBalanced) carry('loadBalanced', true)
  if (o.maxPoolSize !== 100) carry('maxPoolSize', o.maxPoolSize)
  if (o.appName) carry('appName', o.appName)
  return { url: url.href, dbName: o.dbName, ignoreUndefined: Boolean(o.ignoreUndefined) }
}

/** A URL for error messages: without its password. */
function redact (text) {
  return text.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
}

module.exports = { fromUrlAndOptions, fromClient, redact }
