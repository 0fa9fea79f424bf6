'use strict'
const { runExpress, runReadiness } = require('./support/express')
const { backends } = require('./support/backends')

runExpress(backends.mongodb, require('express'), 'Express 5')
runExpress(backends.mongodb, require('express4'), 'Express 4')
runReadiness(backends.mongodb, require('express'))
