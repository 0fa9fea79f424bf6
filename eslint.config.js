'use strict'
// JS lint: neostandard (the "standard" style this code is written in, for ESLint 9), applied to
// the package, its tests, benchmarks, scripts and examples. `npm run lint`; CI runs it.

const neostandard = require('neostandard')

module.exports = [
  ...neostandard({ ignores: ['node_modules/**', 'target/**', '.mongo-venv/**', 'binding.js', 'binding.d.ts', '**/*.d.ts', '__test__/fixtures/**'] }),
  {
    files: ['__test__/**/*.js'],
    languageOptions: { globals: { describe: 'readonly', test: 'readonly', expect: 'readonly', beforeAll: 'readonly', afterAll: 'readonly', beforeEach: 'readonly', afterEach: 'readonly', jest: 'readonly' } }
  }
]
