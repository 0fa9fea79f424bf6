#!/usr/bin/env node
'use strict'
// The `ferrosession` command: see `ferrosession --help`. Arguments are parsed by Node's own
// util.parseArgs; the progress bar is cli-progress's.

const { parseArgs } = require('node:util')
const { inspect, migrate, describe } = require('../lib/migrate')
const { SCHEMES } = require('../lib/stores')
const { closest } = require('../lib/options')

const USAGE = `Usage:
  ferrosession inspect <url>                    how many sessions, how many expire within the hour
                                                and the day, size percentiles (JSON)
  ferrosession migrate --from <url> --to <url>  copy every live session the target does not have,
                                                keeping its expiry

Store URLs are createStore's: ${SCHEMES.join(', ')};
"" is the embedded SQLite store (./sessions.sqlite).

Options:
  --dry-run               migrate: read everything, write nothing, say what would be copied
  --chunk <n>             migrate: sessions per round trip (default 500)
  --retry-for <seconds>   migrate: keep retrying an unreachable store this long (default 30)
  --from-options <json>   store options for the source, e.g. '{"prefix":"sess:"}'
  --to-options <json>     store options for the target, e.g. '{"createTableIfMissing":true}'
  --options <json>        inspect: store options (--from-options is taken too)

Exit status: 0 when everything was copied or already there, 1 when a session could not be
copied or the command was used wrongly, 2 when a store stayed unreachable (run it again: it
copies only what is missing).`

const OPTIONS = {
  from: { type: 'string' },
  to: { type: 'string' },
  'dry-run': { type: 'boolean' },
  chunk: { type: 'string' },
  'retry-for': { type: 'string' },
  'from-options': { type: 'string' },
  'to-options': { type: 'string' },
  options: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
}

function json (text, name) {
  if (text === undefined) return {}
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new Error(`--${name} must be JSON: ${err.message}`)
  }
}

function number (text, name, fallback) {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${text}`)
  return n
}

async function main () {
  let parsed
  try {
    parsed = parseArgs({ args: process.argv.slice(2), options: OPTIONS, allowPositionals: true })
  } catch (err) {
    // Node's words for a mistyped flag, plus the flag it was probably meant to be.
    const flag = err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && /'(-{1,2}[^']+)'/.exec(err.message)
    const near = flag && closest(flag[1].replace(/^-+/, ''), Object.keys(OPTIONS))
    const said = String(err.message).replace(/\. To specify[\s\S]*$/, '')
    console.error(`ferrosession: ${said}${near ? `; did you mean --${near}?` : ''}\n\n${USAGE}`)
    return 1
  }
  const { values, positionals: [command, ...rest] } = parsed
  if (values.help || !command) {
    console.log(USAGE)
    return values.help ? 0 : 1
  }
  if (command === 'inspect' && rest.length === 1) {
    const options = values.options !== undefined ? json(values.options, 'options') : json(values['from-options'], 'from-options')
    const report = await inspect({ url: rest[0], options })
    console.log(JSON.stringify(report, null, 2))
    return 0
  }
  if (command === 'migrate' && values.from !== undefined && values.to !== undefined && rest.length === 0) {
    let summary
    try {
      summary = await migrate({
        from: values.from,
        to: values.to,
        fromOptions: json(values['from-options'], 'from-options'),
        toOptions: json(values['to-options'], 'to-options'),
        dryRun: Boolean(values['dry-run']),
        chunk: number(values.chunk, 'chunk', 500),
        retryFor: number(values['retry-for'], 'retry-for', 30) * 1000
      })
    } catch (err) {
      if (err.summary) console.error(describe(err.summary))
      console.error(err.message)
      return err.transient ? 2 : 1
    }
    console.error(describe(summary))
    return summary.failed ? 1 : 0
  }
  const why = command === 'inspect'
    ? 'inspect takes one store URL'
    : command === 'migrate' ? `migrate takes --from <url> and --to <url>${values.from === undefined ? ' (--from is missing; "" is the embedded SQLite store)' : ''}` : `unknown command ${JSON.stringify(command)}`
  console.error(`ferrosession: ${why}\n\n${USAGE}`)
  return 1
}

main().then(
  (code) => { process.exitCode = code },
  (err) => {
    console.error(err.message.startsWith('ferrosession') ? err.message : `ferrosession: ${err.message}`)
    process.exitCode = 1
  }
)
