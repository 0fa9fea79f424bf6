'use strict'
// Prints how long each test file took, slowest first, after the run: CI's time goes where this
// says, and a file creeping towards its timeout shows here before it fails.

const path = require('node:path')

class TimingsReporter {
  constructor (globalConfig) {
    this._root = globalConfig.rootDir
    this._files = []
  }

  onTestResult (test, result) {
    const { start, end } = result.perfStats
    this._files.push([path.relative(this._root, result.testFilePath), (end - start) / 1000])
  }

  onRunComplete () {
    const rows = this._files.sort((a, b) => b[1] - a[1])
    const total = rows.reduce((sum, [, s]) => sum + s, 0)
    const lines = rows.map(([file, s]) => `${s.toFixed(1).padStart(7)} s  ${file}`)
    console.log(`\nJest time per file (${total.toFixed(0)} s in all):\n${lines.join('\n')}`)
  }
}

module.exports = TimingsReporter
