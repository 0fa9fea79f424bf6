'use strict'
const { runExpress } = require('./support/express')
const { backends } = require('./support/backends')

runExpress(backends.memory, require('express'), 'Express 5')
runExpress(backends.memory, require('express4'), 'Express 4')
