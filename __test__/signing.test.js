'use strict'
// sign/unsign against the real npm cookie-signature: same output on random input (Unicode
// included), same answers for tampered cookies, same TypeErrors.

const crypto = require('node:crypto')
const cookieSignature = require('cookie-signature')
const { sign, unsign } = require('..')

// A seeded generator, so a failure reproduces.
function rng (seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const ALPHABETS = [
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.',
  'aé☃.ß😀中文 \u2028\u0000=s:'
]

function randomString (next, maxLen) {
  const alphabet = [...ALPHABETS[Math.floor(next() * ALPHABETS.length)]]
  const len = Math.floor(next() * maxLen)
  let out = ''
  for (let i = 0; i < len; i++) out += alphabet[Math.floor(next() * alphabet.length)]
  return out
}

test('matches the documented vectors', () => {
  expect(sign('hello', 'tobiiscool')).toBe('hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI')
  expect(sign('hello', Buffer.from('00112233445566778899aabbccddeeff', 'hex'))).toBe('hello.JVg0BbNb1kpvjQgpxnajty2wZ+uA7fPbo6QF1m3HqU4')
  expect(unsign('.aJcKKTu8Uv0mRiw7LTI435t+pOa+giU/WLAuLCKGEFc', 'keyboard cat')).toBe('')
})

test('10,000 random values and secrets sign and unsign exactly as cookie-signature does', () => {
  const next = rng(20261127)
  for (let i = 0; i < 10000; i++) {
    const value = randomString(next, 64)
    // Never empty: an empty secret is refused (see the test below).
    const secret = next() < 0.2 ? crypto.randomBytes(1 + Math.floor(next() * 100)) : randomString(next, 80) || 's'
    const signed = cookieSignature.sign(value, secret)
    expect(sign(value, secret)).toBe(signed)
    expect(unsign(signed, secret)).toBe(cookieSignature.unsign(signed, secret))
    // A tampered copy: both must refuse it.
    const pos = Math.floor(next() * signed.length)
    const tampered = signed.slice(0, pos) + String.fromCharCode(signed.charCodeAt(pos) ^ 1) + signed.slice(pos + 1)
    expect(unsign(tampered, secret)).toBe(cookieSignature.unsign(tampered, secret))
  }
})

test('an array of secrets is tried in order, for rotation', () => {
  const signedOld = cookieSignature.sign('sid', 'old secret')
  expect(unsign(signedOld, ['new secret', 'old secret'])).toBe('sid')
  expect(unsign(signedOld, ['new secret'])).toBe(false)
  expect(unsign(signedOld, [Buffer.from('old secret')])).toBe('sid')
})

test('tampered, truncated and padded cookies are refused', () => {
  const signed = sign('Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC', 'keyboard cat')
  for (const bad of [signed + 'x', signed + '=', signed.slice(0, -5), signed.replace('.', ''), signed.replace('.', '..'), 'Zo8dYfHvFZCmLWRWlhXHjNBZdaSsl0sC', '']) {
    expect(unsign(bad, 'keyboard cat')).toBe(false)
  }
})

test('throws cookie-signature\'s TypeErrors for non-string input', () => {
  for (const fn of [() => sign(1, 's'), () => sign(undefined, 's'), () => sign('v'), () => unsign(1, 's'), () => unsign('v.x')]) {
    expect(fn).toThrow(TypeError)
  }
  expect(() => sign(1, 's')).toThrow('Cookie value must be provided as a string.')
  expect(() => sign('v', null)).toThrow('Secret key must be provided.')
  expect(() => unsign(null, 's')).toThrow('Signed cookie string must be provided.')
  expect(() => unsign('v.x', undefined)).toThrow('Secret key must be provided.')
  expect(() => cookieSignature.sign(1, 's')).toThrow('Cookie value must be provided as a string.')
})

test('1,000,000 tampered and truncated signed cookies: none is accepted', () => {
  const next = rng(1000000)
  const secrets = ['keyboard cat', 'clé secrète ☃', crypto.randomBytes(32)]
  const signed = Array.from({ length: 1000 }, (_, i) => sign(`s${i}-${randomString(next, 40)}`, secrets[i % 3]))
  const tamper = [
    (s, r) => { const p = Math.floor(r * s.length); return s.slice(0, p) + String.fromCharCode(s.charCodeAt(p) ^ (1 << Math.floor(r * 7))) + s.slice(p + 1) },
    (s, r) => s.slice(0, Math.floor(r * (s.length - 1))), // truncated anywhere
    (s) => s.replace(/\.(?=[^.]*$)/, ''), // separator removed
    (s) => s.replace(/\.(?=[^.]*$)/, '..'), // separator doubled
    (s) => s + '=', // padding added
    (s) => s + '==',
    (s, r) => s + String.fromCharCode(32 + Math.floor(r * 90)) // trailing garbage
  ]
  let accepted = 0
  let checked = 0
  for (let i = 0; i < 1000000; i++) {
    const k = i % signed.length
    const bad = tamper[i % tamper.length](signed[k], next())
    if (bad === signed[k]) continue // a no-op tamper (flipping to the same char cannot happen, but be exact)
    checked++
    if (unsign(bad, secrets[k % 3]) !== false) accepted++
  }
  // The right cookies with the wrong secret.
  for (let k = 0; k < signed.length; k++) {
    checked++
    if (unsign(signed[k], secrets[(k + 1) % 3]) !== false) accepted++
  }
  expect(checked).toBeGreaterThanOrEqual(1000000)
  expect(accepted).toBe(0)
}, 60000)

test('an empty secret is refused, alone or in an array, where cookie-signature would sign with it', () => {
  // cookie-signature signs with '': a cookie anyone can forge for a known session id.
  const forged = cookieSignature.sign('known-sid', '')
  expect(cookieSignature.unsign(forged, '')).toBe('known-sid')
  for (const empty of ['', Buffer.alloc(0), new Uint8Array(0)]) {
    expect(() => sign('x', empty)).toThrow(/Secret key must not be empty/)
    expect(() => unsign(forged, empty)).toThrow(/Secret key must not be empty/)
    expect(() => unsign(forged, ['real secret', empty])).toThrow(/Secret key must not be empty/)
  }
  expect(unsign(forged, 'real secret')).toBe(false)
})
