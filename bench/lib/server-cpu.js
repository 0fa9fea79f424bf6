'use strict'
// CPU time the database servers spend, to compare per operation: Redis reports its own in INFO;
// for PostgreSQL and MariaDB (same machine) we add up utime+stime of their server processes.

const fs = require('node:fs')

const CLK_TCK = 100 // Linux's USER_HZ

async function redisCpuUs (client) {
  const info = await client.info('cpu')
  const field = (name) => Number((info.match(new RegExp(`${name}:([0-9.]+)`)) || [0, 0])[1])
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6
}

/** utime+stime of every process whose command name is `name` (postgres, mariadbd). */
function processCpuUs (names) {
  let ticks = 0
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      if (!names.includes(comm)) continue
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(fields[11]) + Number(fields[12]) // utime, stime
    } catch { /* the process ended meanwhile */ }
  }
  return ticks * (1e6 / CLK_TCK)
}

const postgresCpuUs = () => processCpuUs(['postgres'])
const mysqlCpuUs = () => processCpuUs(['mariadbd', 'mysqld'])

module.exports = { redisCpuUs, postgresCpuUs, mysqlCpuUs }
