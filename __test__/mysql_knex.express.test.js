'use strict'
const { runExpress, runReadiness } = require('./support/express')
const { backends } = require('./support/backends')

runExpress(backends.mysql_knex, require('express'), 'Express 5')
runExpress(backends.mysql_knex, require('express4'), 'Express 4')
runReadiness(backends.mysql_knex, require('express'))
