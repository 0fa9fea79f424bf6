'use strict'
const { runContract } = require('./support/contract')
const { backends } = require('./support/backends')

runContract(backends.mongodb)
