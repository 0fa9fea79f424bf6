'use strict'
// CPU time the database servers spend, to compare per operation: Redis reports its own in INFO;
// for PostgreSQL and MariaDB (same machine) we add up utime+stime of their server processes,
// for the MongoDB-compatible test server that of its one process.

const fs = require('node:fs')

const CLK_TCK = 100 // Linux's USER_HZ

async function redisCpuUs (client) {
  const info = await client.info('cpu')
  const field = (name) => Number((info.match(new RegExp(`${name}:([0-9.]+)`)) || [0, 0])[1])
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6
}

/** utime+stime of every process whose command name is `name` (postgres, mariadbd). */
function processCpuUs (names) {
  let us = 0
  for (const pid of fs.readdirSync('/proc')) {
    if (/^\d+$/.test(pid)) us += pidCpuUs(pid, names)
  }
  return us
}

/** utime+stime of one process (0 if it has ended, or if `names` is given and it is not one of them). */
function pidCpuUs (pid, names = null) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    if (names && !names.includes(comm)) return 0
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * (1e6 / CLK_TCK) // utime, stime
  } catch {
    return 0 // the process ended meanwhile
  }
}

const postgresCpuUs = () => processCpuUs(['postgres'])
const mysqlCpuUs = () => processCpuUs(['mariadbd', 'mysqld'])

module.exports = { redisCpuUs, postgresCpuUs, mysqlCpuUs, pidCpuUs }
