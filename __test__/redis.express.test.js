'use strict'
const { runExpress, runReadiness } = require('./support/express')
const { backends } = require('./support/backends')

runExpress(backends.redis, require('express'), 'Express 5')
runExpress(backends.redis, require('express4'), 'Express 4')
runReadiness(backends.redis, require('express'))
