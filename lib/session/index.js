'use strict'
// session(): a drop-in for express-session 1.19's middleware. The same options, the same
// `req.session` API, the same Set-Cookie bytes, the same store calls, so it works with any
// express-session store; what it does faster (docs/design.md, "The session middleware"):
// - the signed cookie is checked and made in Rust, with the keyed HMAC state cached;
// - only our cookie is read from the Cookie header (cookie.parse builds an object of all of them);
// - the cookie-path check parses the URL only when the answer can depend on it;
// - "has the session changed?" compares the session's JSON with the JSON it had, instead of
//   SHA-1 hashing both;
// - with ferrosession's stores, the JSON made for that comparison is also what gets stored (the
//   session is serialised once per request), and touch sends only the new expiry.

const deprecate = require('depd')('express-session')
const onHeaders = require('on-headers')
const parseUrl = require('parseurl')
const uid = require('uid-safe').sync

const Cookie = require('./cookie')
const Session = require('./session')
const Store = require('./store')
const { serialised, pendingPatches } = require('./serialised')
const { serialize } = require('./set-cookie')
const { sign, unsign, matchingSecretIndex } = require('../signing')

/* istanbul ignore next */
const defer = typeof setImmediate === 'function'
  ? setImmediate
  : function (fn) { process.nextTick(fn.bind.apply(fn, arguments)) }

function session (options) {
  const opts = options || {}
  const cookieOptions = opts.cookie || {}
  const generateId = opts.genid || generateSessionId
  const name = opts.name || opts.key || 'connect.sid'
  // Loaded here, not at the top: the memory store needs the native addon, the classes do not.
  const store = opts.store || new (require('./memory'))()
  const trustProxy = opts.proxy
  let resaveSession = opts.resave
  const rollingSessions = Boolean(opts.rolling)
  let saveUninitializedSession = opts.saveUninitialized
  let secret = opts.secret

  if (typeof generateId !== 'function') throw new TypeError('genid option must be a function')
  if (resaveSession === undefined) {
    deprecate('undefined resave option; provide resave option')
    resaveSession = true
  }
  if (saveUninitializedSession === undefined) {
    deprecate('undefined saveUninitialized option; provide saveUninitialized option')
    saveUninitializedSession = true
  }
  if (opts.unset && opts.unset !== 'destroy' && opts.unset !== 'keep') {
    throw new TypeError('unset option must be "destroy" or "keep"')
  }
  const unsetDestroy = opts.unset === 'destroy'
  // Concurrent requests of one browser merge their changes (docs/design.md, "Concurrent
  // requests"): with a store that takes patches, a loaded session is saved as what this request
  // changed. `merge: false` writes whole sessions, as express-session does.
  const mergeSaves = opts.merge !== false
  if (Array.isArray(secret) && secret.length === 0) throw new TypeError('secret option array must contain one or more strings')
  // express-session takes '' as "no secret" and lets an empty entry of an array sign cookies that
  // anyone can forge; both are refused here.
  if ([].concat(secret).some(isEmptySecret)) {
    throw new TypeError('secret option must not be empty (nor contain an empty entry): anyone could forge cookies signed with it')
  }
  if (secret && !Array.isArray(secret)) secret = [secret]
  if (!secret) deprecate('req.secret; provide secret option')

  store.generate = function (req) {
    req.sessionID = generateId(req)
    req.session = new Session(req)
    req.session.cookie = new Cookie(typeof cookieOptions === 'function' ? cookieOptions(req) : cookieOptions)
    const isSecure = issecure(req, trustProxy)
    if (cookieOptions.secure === 'auto') req.session.cookie.secure = isSecure
    if (cookieOptions.sameSite === 'auto') req.session.cookie.sameSite = isSecure ? 'none' : 'lax'
  }

  const storeImplementsTouch = typeof store.touch === 'function'
  let storeReady = true
  store.on('disconnect', function ondisconnect () { storeReady = false })
  store.on('connect', function onconnect () { storeReady = true })

  return function session (req, res, next) {
    if (req.session) return next()
    // Handle the request as if there were no session while the store is disconnected.
    if (!storeReady) return next()

    const resolvedCookieOptions = typeof cookieOptions === 'function' ? cookieOptions(req) : cookieOptions
    if (!onCookiePath(req, resolvedCookieOptions.path || '/')) return next()

    if (!secret && !req.secret) {
      next(new Error('secret option required for sessions'))
      return
    }
    // req.secret comes from cookie-parser: backwards compatibility for signed cookies.
    const secrets = secret || [req.secret]

    let originalState
    let originalId
    let savedState
    let touched = false
    let loaded = null // what the store gave this request (its JSON), while it is the session
    // The session could not be serialised: the request fails through next(err) (express-session
    // would hang the response), and the error handler's own response goes out untouched.
    let failed = false
    const fail = (err) => {
      failed = true
      if (!res.headersSent) res.removeHeader('Content-Length') // the body it counted is not sent
      defer(next, err)
    }

    req.sessionStore = store
    const verified = { signed: undefined }
    const cookieId = req.sessionID = getcookie(req, name, secrets, verified)

    onHeaders(res, function () {
      if (failed || !req.session) return
      try {
        if (!shouldSetCookie(req)) return
      } catch (err) {
        fail(err)
        return
      }
      // only send secure cookies via https
      if (req.session.cookie.secure && !issecure(req, trustProxy)) return
      if (!touched) {
        req.session.touch()
        touched = true
      }
      try {
        // The cookie that came in, checked against the first secret, is what signing gives again.
        const signed = req.sessionID === cookieId ? verified.signed : undefined
        setcookie(res, name, req.sessionID, secrets[0], req.session.cookie.data, signed)
      } catch (err) {
        defer(next, err)
      }
    })

    // proxy end() to commit the session: the response's last chunk waits for the store.
    // express-session writes all but the last byte at once and that byte later; the headers are
    // fixed at the same moment here, but the whole final chunk is held and sent with them in one
    // write when the store answers: the same bytes, one write and one TCP segment fewer per
    // request (about a quarter more requests per second in bench/).
    const _end = res.end
    let ended = false
    res.end = function end (chunk, encoding) {
      if (failed) return _end.call(res, chunk, encoding)
      if (ended) return false
      ended = true
      let answered = false
      let ret = true

      function writeend (err) {
        if (err) defer(next, err)
        answered = true
        ret = _end.call(res, chunk, encoding)
      }

      function hold () {
        if (!answered && !res._header) res._implicitHeader()
        return ret
      }

      if (shouldDestroy(req)) {
        store.destroy(req.sessionID, function ondestroy (err) { writeend(err) })
        return hold()
      }

      // no session to save
      if (!req.session) return _end.call(res, chunk, encoding)

      if (!touched) {
        req.session.touch()
        touched = true
      }

      lastState = null
      lastStateOf = null
      let save, touch
      try {
        save = shouldSave(req)
        touch = !save && storeImplementsTouch && shouldTouch(req)
      } catch (err) {
        fail(err) // nothing was written yet: next(err) answers
        return true
      }
      if (save) {
        // The JSON that shouldSave just computed from this very session object (if it did: it
        // may have decided on the ids alone) is what a ferrosession store writes.
        const sess = req.session
        if (lastStateOf === sess) serialised.set(sess, lastState)
        try {
          // Saved through store.set as express-session saves; a ferrosession store merges the
          // patch handed to it alongside instead of writing the whole session.
          const patch = patchFor(sess)
          if (patch !== null) pendingPatches.set(sess, patch)
          sess.save(function onsave (err) { writeend(err) })
        } catch (err) {
          if (!answered) writeend(err) // a store whose set throws instead of calling back
        } finally {
          serialised.delete(sess)
          pendingPatches.delete(sess)
        }
        return hold()
      } else if (touch) {
        store.touch(req.sessionID, req.session, function ontouch (err) { writeend(err) })
        return hold()
      }

      return _end.call(res, chunk, encoding)
    }

    // the state last computed by isModified/isSaved, and of which object, for the store to reuse
    let lastState = null
    let lastStateOf = null
    function stateNow (sess) {
      lastState = stateOf(sess)
      lastStateOf = sess
      return lastState
    }

    function generate () {
      store.generate(req)
      loaded = null // new, or regenerated: written whole
      originalId = req.sessionID
      originalState = stateOf(req.session)
      wrapmethods(req.session)
    }

    function inflate (req, sess) {
      // The cookie as stored (createSession puts a Cookie in its place and leaves it unchanged):
      // what a merged save diffs against, with no serialising on requests that do not save.
      const storedCookie = sess.cookie
      store.createSession(req, sess)
      originalId = req.sessionID
      originalState = stateOf(sess)
      loaded = { session: req.session, id: req.sessionID, state: originalState, cookie: storedCookie }
      if (!resaveSession) savedState = originalState
      wrapmethods(req.session)
    }

    function rewrapmethods (sess, callback) {
      return function () {
        if (req.session !== sess) wrapmethods(req.session)
        callback.apply(this, arguments)
      }
    }

    function wrapmethods (sess) {
      const _reload = sess.reload
      const _save = sess.save

      function reload (callback) {
        _reload.call(this, rewrapmethods(this, callback))
      }

      function save (callback) {
        try {
          savedState = serialised.get(this) ?? stateOf(this)
        } catch (err) {
          if (typeof callback === 'function') defer(callback, err)
          return this
        }
        return _save.apply(this, arguments)
      }

      Object.defineProperty(sess, 'reload', { configurable: true, enumerable: false, value: reload, writable: true })
      Object.defineProperty(sess, 'save', { configurable: true, enumerable: false, value: save, writable: true })
    }

    /**
     * What this request changed in the session it loaded, as a JSON merge patch, when the store
     * takes patches; null for a whole write (a new or regenerated session, merge: false, another
     * store, or a change a merge patch cannot say: a member set to null).
     */
    function patchFor (sess) {
      if (!mergeSaves || loaded === null || loaded.session !== sess || loaded.id !== req.sessionID) return null
      if (typeof store.patch !== 'function' || store.mergesPatches !== true) return null
      const before = { cookie: loaded.cookie, ...JSON.parse(loaded.state) }
      // The JSON shouldSave just computed (without the cookie), when it did.
      const state = serialised.get(sess)
      const after = state === undefined ? JSON.parse(JSON.stringify(sess)) : { cookie: JSON.parse(JSON.stringify(sess.cookie)), ...JSON.parse(state) }
      return mergePatch(before, after)
    }

    function isModified (sess) {
      return originalId !== sess.id || originalState !== stateNow(sess)
    }

    function isSaved (sess) {
      return originalId === sess.id && savedState === stateNow(sess)
    }

    function shouldDestroy (req) {
      return req.sessionID && unsetDestroy && req.session == null
    }

    function shouldSave (req) {
      // cannot set cookie without a session ID
      if (typeof req.sessionID !== 'string') return false
      return !saveUninitializedSession && !savedState && cookieId !== req.sessionID
        ? isModified(req.session)
        : !isSaved(req.session)
    }

    function shouldTouch (req) {
      if (typeof req.sessionID !== 'string') return false
      return cookieId === req.sessionID && !shouldSave(req)
    }

    function shouldSetCookie (req) {
      if (typeof req.sessionID !== 'string') return false
      return cookieId !== req.sessionID
        ? saveUninitializedSession || isModified(req.session)
        : rollingSessions || (req.session.cookie.expires != null && isModified(req.session))
    }

    // generate a session if the browser doesn't send a sessionID
    if (!req.sessionID) {
      generate()
      next()
      return
    }

    store.get(req.sessionID, function (err, sess) {
      if (err && err.code !== 'ENOENT') {
        next(err)
        return
      }
      try {
        if (err || !sess) generate()
        else inflate(req, sess)
      } catch (e) {
        next(e)
        return
      }
      next()
    })
  }
}

/**
 * Whether the request's original path starts with the cookie's path, as express-session checks
 * it. The common case, cookie path '/' and a URL that starts with '/' (so its path does), is
 * answered without parsing the URL.
 */
function onCookiePath (req, cookiePath) {
  const url = typeof req.originalUrl === 'string' ? req.originalUrl : req.url
  if (cookiePath === '/' && typeof url === 'string' && url.charCodeAt(0) === 0x2f) return true
  return (parseUrl.original(req).pathname || '/').indexOf(cookiePath) === 0
}

function generateSessionId () {
  return uid(24)
}

/**
 * The session's data as JSON without its top-level `cookie` (changes to the cookie alone never
 * count as a modification), exactly what express-session hashes: comparing these strings is
 * comparing its SHA-1 hashes, without the hashing.
 */
function stateOf (sess) {
  const { cookie, ...data } = sess
  try {
    return JSON.stringify(data)
  } catch (err) {
    // A BigInt, a circular reference, nesting deeper than the stack: name the problem (its first
    // line only: V8's circular-structure text lists the app's keys).
    const e = new Error(`session cannot be serialised: ${String(err.message).split('\n')[0]}`)
    e.code = 'ESESSION_INVALID'
    e.cause = err
    throw e
  }
}

/**
 * The session id from the request's cookie, signature checked, or undefined. A Cookie header
 * value signed with the first secret is left in `verified.signed`.
 */
function getcookie (req, name, secrets, verified) {
  const header = req.headers.cookie
  let raw
  let val
  if (header) {
    raw = readCookie(header, name)
    if (raw) {
      if (raw.substr(0, 2) === 's:') {
        const signed = raw.slice(2)
        const index = matchingSecretIndex(signed, secrets)
        if (index >= 0) val = signed.slice(0, signed.lastIndexOf('.'))
        if (index === 0 && val) verified.signed = signed
      }
    }
  }
  // back-compat read from cookieParser() signedCookies data
  if (!val && req.signedCookies) {
    val = req.signedCookies[name]
    if (val) deprecate('cookie should be available in req.headers.cookie')
  }
  // back-compat read from cookieParser() cookies data
  if (!val && req.cookies) {
    raw = req.cookies[name]
    if (raw) {
      if (raw.substr(0, 2) === 's:') {
        val = unsigncookie(raw.slice(2), secrets)
        if (val) deprecate('cookie should be available in req.headers.cookie')
        if (val === false) val = undefined
      }
    }
  }
  return val
}

/**
 * The value of cookie `name` in a Cookie header, exactly as `cookie.parse(header)[name]` gives it
 * (cookie 0.7: the first occurrence wins, whitespace trimmed, one pair of quotes removed,
 * percent-decoded when that succeeds), without building an object of every cookie.
 */
function readCookie (str, name) {
  const len = str.length
  if (len < 2) return undefined
  let index = 0
  do {
    const eqIdx = str.indexOf('=', index)
    if (eqIdx === -1) break
    const colonIdx = str.indexOf(';', index)
    const endIdx = colonIdx === -1 ? len : colonIdx
    if (eqIdx > endIdx) {
      // backtrack on prior semicolon
      index = str.lastIndexOf(';', eqIdx - 1) + 1
      continue
    }
    const keyStart = startIndex(str, index, eqIdx)
    const keyEnd = endIndex(str, eqIdx, keyStart)
    if (keyEnd - keyStart === name.length && str.startsWith(name, keyStart)) {
      let valStart = startIndex(str, eqIdx + 1, endIdx)
      let valEnd = endIndex(str, endIdx, valStart)
      if (str.charCodeAt(valStart) === 0x22 && str.charCodeAt(valEnd - 1) === 0x22) {
        valStart++
        valEnd--
      }
      return tryDecode(str.slice(valStart, valEnd))
    }
    index = endIdx + 1
  } while (index < len)
  return undefined
}

function startIndex (str, index, max) {
  do {
    const code = str.charCodeAt(index)
    if (code !== 0x20 && code !== 0x09) return index
  } while (++index < max)
  return max
}

function endIndex (str, index, min) {
  while (index > min) {
    const code = str.charCodeAt(--index)
    if (code !== 0x20 && code !== 0x09) return index + 1
  }
  return min
}

function tryDecode (str) {
  if (str.indexOf('%') === -1) return str
  try {
    return decodeURIComponent(str)
  } catch {
    return str
  }
}

function issecure (req, trustProxy) {
  // socket is https server
  if (req.connection && req.connection.encrypted) return true
  // do not trust proxy
  if (trustProxy === false) return false
  // no explicit trust; try req.secure from express
  if (trustProxy !== true) return req.secure === true
  // read the proto from x-forwarded-proto header
  const header = req.headers['x-forwarded-proto'] || ''
  const index = header.indexOf(',')
  const proto = index !== -1 ? header.substr(0, index).toLowerCase().trim() : header.toLowerCase().trim()
  return proto === 'https'
}

function setcookie (res, name, val, secret, options, alreadySigned) {
  const signed = 's:' + (alreadySigned ?? sign(val, secret))
  const data = serialize(name, signed, options)
  const prev = res.getHeader('Set-Cookie') || []
  const header = Array.isArray(prev) ? prev.concat(data) : [prev, data]
  res.setHeader('Set-Cookie', header)
}

/**
 * The JSON merge patch (RFC 7396) from `before` to `after` (both parsed JSON): members removed
 * become null, changed ones are given (plain objects member by member, anything else whole),
 * unchanged ones are left out. null when a merge patch cannot say it (a member set to null, which
 * a patch reads as "remove"): the caller then writes the session whole.
 */
function mergePatch (before, after) {
  const patch = Object.create(null) // a "__proto__" member is a member like any other
  for (const key of Object.keys(before)) {
    if (!Object.hasOwn(after, key)) patch[key] = null
  }
  for (const key of Object.keys(after)) {
    const now = after[key]
    const had = Object.hasOwn(before, key)
    if (had && JSON.stringify(before[key]) === JSON.stringify(now)) continue
    if (had && isPlainObject(now) && isPlainObject(before[key])) {
      const inner = mergePatch(before[key], now)
      if (inner === null) return null
      patch[key] = inner
    } else {
      if (holdsNull(now)) return null
      patch[key] = now
    }
  }
  return patch
}

function isPlainObject (value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** null as the value, or as a member of a nested object (arrays are replaced whole: fine). */
function holdsNull (value) {
  if (value === null) return true
  return isPlainObject(value) && Object.keys(value).some((k) => holdsNull(value[k]))
}

function isEmptySecret (s) {
  return s === '' || (s != null && typeof s !== 'string' && s.length === 0)
}

/** Tries every secret in order (key rotation); the value, or false. */
function unsigncookie (val, secrets) {
  return secrets.length === 1 ? unsign(val, secrets[0]) : unsign(val, secrets)
}

session.Store = Store
session.Cookie = Cookie
session.Session = Session
Object.defineProperty(session, 'MemoryStore', { enumerable: true, get: () => require('./memory') })

module.exports = session
