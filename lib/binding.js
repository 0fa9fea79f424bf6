'use strict'
// Loads the native addon (binding.js is napi-rs's generated loader), with an error that says how
// to build it when it is missing.

function loadBinding () {
  try {
    return require('../binding.js')
  } catch (err) {
    // npm may skip a dependency's install script (npm 11 asks apps to approve them), leaving
    // no addon: say how to build it rather than showing only the loader's list of attempts.
    const hint = new Error('ferrosession: the native addon for this platform is not built. Approve and run its build ' +
      'with `npm install-scripts approve ferrosession && npm rebuild ferrosession`, or run ' +
      '`node node_modules/ferrosession/scripts/install.js` (needs cargo: https://rustup.rs).')
    hint.cause = err
    throw hint
  }
}

module.exports = { binding: loadBinding() }
