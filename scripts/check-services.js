'use strict'
// Fails loudly when a server the test suite needs does not answer (scripts/services.js lists
// them): a backend test must never pass, or be skipped, because its server is missing.

const { SERVICES } = require('./services')

async function main () {
  let failed = false
  for (const { name, url, check } of SERVICES) {
    try {
      await check(url)
      console.log(`services: ${name} at ${url} answers`)
    } catch (err) {
      failed = true
      console.error(`services: ${name} at ${url} is UNREACHABLE: ${err.message}`)
    }
  }
  if (failed) {
    console.error('services: the test suite needs these servers; start them (see README "Running the tests") and retry.')
    process.exit(1)
  }
}

main()
