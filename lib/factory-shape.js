'use strict'
// Anchors were imported two ways across their versions: a class (`new Store(options)`) and a
// factory called with express-session (`require('express-mysql-session')(session)`,
// `require('connect-session-knex')(session)` before v5). A class wrapped here works both ways:
// `new Wrapped(...)` constructs, and `Wrapped(session)` returns `Wrapped` itself (our stores
// need nothing from the session module). `instanceof Wrapped` and static members work as usual.

function withFactoryShape (Class) {
  const shaped = new Proxy(Class, {
    apply (target, _thisArg, args) {
      const session = args[0]
      if (args.length > 1 || (session !== undefined && typeof session !== 'function' && typeof session !== 'object')) {
        throw new TypeError(`${target.name}(session) takes express-session (or nothing); use new ${target.name}(options) to make a store`)
      }
      return shaped
    }
  })
  return shaped
}

module.exports = { withFactoryShape }
