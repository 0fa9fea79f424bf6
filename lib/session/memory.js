'use strict'
// session.MemoryStore: ferrosession's bounded in-process store (express-session's grows without
// limit), also the middleware's default store.

module.exports = require('../memory-store').MemoryStore
