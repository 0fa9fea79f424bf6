'use strict'
// The session cookie's Set-Cookie value, byte-identical to cookie 0.7's serialize(name, value,
// cookie.data) (the call express-session makes), without re-checking on every request what
// cannot have changed. cookie.serialize validates the name, path and domain with regular
// expressions each time; here a (name, path, domain) triple it accepted once is remembered, and
// anything unusual (another encoder, maxAge, a priority or sameSite it would refuse) goes to
// cookie.serialize itself, so its output and its TypeErrors stay the reference.

const cookie = require('cookie')

// Null-prototype tables: a priority of 'constructor' must miss, not find Object's.
const table = (entries) => Object.freeze(Object.assign(Object.create(null), entries))
const PRIORITY = table({ low: '; Priority=Low', medium: '; Priority=Medium', high: '; Priority=High' })
const SAME_SITE = table({ lax: '; SameSite=Lax', strict: '; SameSite=Strict', none: '; SameSite=None' })
const toStringOf = Object.prototype.toString

// The last triple cookie.serialize accepted. One app has one or two: a cache of one suffices.
let checkedName = null
let checkedPath = null
let checkedDomain = null

function serialize (name, val, opt) {
  if (opt.encode !== undefined || opt.maxAge != null) return cookie.serialize(name, val, opt)
  if (name !== checkedName || opt.path !== checkedPath || opt.domain !== checkedDomain) {
    cookie.serialize(name, '', { path: opt.path, domain: opt.domain }) // throws as it would
    checkedName = name
    checkedPath = opt.path
    checkedDomain = opt.domain
  }
  // encodeURIComponent's output is always a valid cookie value (no quote, comma, semicolon,
  // backslash or space), which is the check cookie.serialize makes of it.
  let str = name + '=' + encodeURIComponent(val)
  if (opt.domain) str += '; Domain=' + opt.domain
  if (opt.path) str += '; Path=' + opt.path
  const expires = opt.expires
  if (expires) {
    if (toStringOf.call(expires) !== '[object Date]' || isNaN(expires.valueOf())) return cookie.serialize(name, val, opt)
    str += '; Expires=' + expires.toUTCString()
  }
  if (opt.httpOnly) str += '; HttpOnly'
  if (opt.secure) str += '; Secure'
  if (opt.partitioned) str += '; Partitioned'
  if (opt.priority) {
    const priority = typeof opt.priority === 'string' ? PRIORITY[opt.priority.toLowerCase()] : undefined
    if (priority === undefined) return cookie.serialize(name, val, opt)
    str += priority
  }
  if (opt.sameSite) {
    const sameSite = opt.sameSite === true ? SAME_SITE.strict : typeof opt.sameSite === 'string' ? SAME_SITE[opt.sameSite.toLowerCase()] : undefined
    if (sameSite === undefined) return cookie.serialize(name, val, opt)
    str += sameSite
  }
  return str
}

module.exports = { serialize }
