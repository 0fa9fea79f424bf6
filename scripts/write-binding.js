'use strict'
// Writes binding.js (napi-rs's platform loader) and binding.d.ts (the types of every Rust export)
// from what napi-derive recorded while cargo compiled the crate, as `napi build --platform` does,
// without its second cargo build. scripts/native-build.js runs this after every build in a
// checkout; CI fails when the result differs from what is committed.

const fs = require('node:fs')
const path = require('node:path')
const { generateTypeDef, writeJsBinding } = require('@napi-rs/cli')

async function main (typeDefDir) {
  const root = path.join(__dirname, '..')
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  // Closed sets (string enums) as unions of their strings: lib/ passes the strings as such.
  const { exports, dts } = await generateTypeDef({ typeDefDir, cwd: root, declareBindingTarget: true, constEnum: false })
  if (exports.length === 0) throw new Error(`no exports recorded in ${typeDefDir}: the crate was not compiled with NAPI_TYPE_DEF_TMP_FOLDER set`)
  fs.writeFileSync(path.join(root, 'binding.d.ts'), dts)
  await writeJsBinding({
    platform: true,
    idents: exports,
    jsBinding: 'binding.js',
    binaryName: pkg.napi.binaryName,
    packageName: pkg.name,
    version: pkg.version,
    outputDir: root
  })
}

main(process.argv[2]).catch((err) => {
  console.error(`write-binding: ${err.message}`)
  process.exit(1)
})
