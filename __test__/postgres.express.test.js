'use strict'
const { runExpress, runReadiness } = require('./support/express')
const { backends } = require('./support/backends')

runExpress(backends.postgres, require('express'), 'Express 5')
runExpress(backends.postgres, require('express4'), 'Express 4')
runReadiness(backends.postgres, require('express'))
