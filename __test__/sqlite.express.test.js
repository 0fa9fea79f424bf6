'use strict'
const { runExpress } = require('./support/express')
const { backends } = require('./support/backends')

runExpress(backends.sqlite, require('express'), 'Express 5')
runExpress(backends.sqlite, require('express4'), 'Express 4')
