'use strict'
// A Redis Cluster (3 masters, 3 replicas) and a Sentinel setup (1 master, 1 replica, 3 sentinels)
// of the test suite's own, on free loopback ports, in temporary directories, stopped by PID.

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { waitForPort } = require('./servers')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const cli = (port, ...args) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8' }).trim()

function isFree (port) {
  return new Promise((resolve) => {
    const srv = net.createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/** `count` free ports below 55000 whose cluster bus port (port + 10000) is free too. */
async function freePorts (count, bus = false) {
  const ports = []
  while (ports.length < count) {
    const port = 20000 + Math.floor(Math.random() * 30000)
    if (ports.includes(port) || !(await isFree(port)) || (bus && !(await isFree(port + 10000)))) continue
    ports.push(port)
  }
  return ports
}

async function until (check, what, ms = 20000) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    try {
      if (check()) return
    } catch {}
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}

function redisProcess (dir, port, args) {
  const node = { port, child: null }
  node.start = async () => {
    node.child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: 'ignore', cwd: dir })
    await waitForPort(port)
  }
  node.kill = async () => {
    if (!node.child) return
    const child = node.child
    node.child = null
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      process.kill(child.pid, 'SIGKILL')
      await exited
    }
  }
  return node
}

/** A replica that never synced cannot take over: wait until every replica's link is up. */
async function replicasInSync (ports) {
  await until(() => ports.every((p) => {
    const info = cli(p, 'info', 'replication')
    return info.includes('role:master') || info.includes('master_link_status:up')
  }), 'the replicas to sync')
}

/** Three masters with a replica each, `cluster-node-timeout` 1000 ms for a quick failover. */
async function startRedisCluster () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-redis-'))
  const ports = await freePorts(6, true)
  const nodes = ports.map((port) => {
    const nodeDir = path.join(dir, String(port))
    fs.mkdirSync(nodeDir)
    return redisProcess(nodeDir, port, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '1000'])
  })
  await Promise.all(nodes.map((n) => n.start()))
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { stdio: 'ignore' })
  await until(() => ports.every((p) => cli(p, 'cluster', 'info').includes('cluster_state:ok')), 'the cluster to be ok')
  await replicasInSync(ports)
  const cluster = {
    dir,
    nodes,
    rootNodes: ports.slice(0, 3).map((p) => ({ url: `redis://127.0.0.1:${p}` })),
    /** The ports of the current masters (from a live node's view). */
    masters () {
      const live = nodes.find((n) => n.child)
      return cli(live.port, 'cluster', 'nodes').split('\n').filter((l) => l.includes('master') && !l.includes('fail')).map((l) => Number(l.split(' ')[1].split(':')[1].split('@')[0]))
    },
    node: (port) => nodes.find((n) => n.port === port),
    async waitHealthy () {
      const live = nodes.filter((n) => n.child).map((n) => n.port)
      await until(() => live.every((p) => cli(p, 'cluster', 'info').includes('cluster_state:ok')), 'the cluster to be ok again')
      await replicasInSync(live)
    },
    async stop () {
      await Promise.all(nodes.map((n) => n.kill()))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  return cluster
}

/** One master, one replica, three sentinels watching `mymaster` (down-after 1000 ms). */
async function startRedisSentinel (name = 'mymaster') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-redis-'))
  const [masterPort, replicaPort, ...sentinelPorts] = await freePorts(5)
  const master = redisProcess(dir, masterPort, [])
  const replica = redisProcess(dir, replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)])
  await master.start()
  await replica.start()
  await until(() => cli(masterPort, 'info', 'replication').includes('connected_slaves:1'), 'the replica to attach')
  const sentinels = sentinelPorts.map((port) => {
    const conf = path.join(dir, `sentinel-${port}.conf`)
    fs.writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      `sentinel parallel-syncs ${name} 1`, ''
    ].join('\n'))
    const s = { port, child: null }
    s.start = async () => {
      s.child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore', cwd: dir })
      await waitForPort(port)
    }
    s.kill = async () => {
      if (!s.child) return
      const child = s.child
      s.child = null
      const exited = new Promise((resolve) => child.once('exit', resolve))
      process.kill(child.pid, 'SIGKILL')
      await exited
    }
    return s
  })
  await Promise.all(sentinels.map((s) => s.start()))
  await until(() => cli(sentinelPorts[0], 'sentinel', 'ckquorum', name).startsWith('OK'), 'the sentinels to reach quorum')
  await until(() => cli(sentinelPorts[0], 'sentinel', 'replicas', name).includes(String(replicaPort)), 'the sentinels to see the replica')
  const setup = {
    name,
    master,
    replica,
    sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
    /** The master's port, as the sentinels report it now. */
    masterPort: () => Number(cli(sentinelPorts[0], 'sentinel', 'get-master-addr-by-name', name).split('\n')[1]),
    failover: () => cli(sentinelPorts[0], 'sentinel', 'failover', name),
    role: (port) => cli(port, 'role').split('\n')[0],
    until,
    async stop () {
      await Promise.all([...sentinels, master, replica].map((n) => n.kill()))
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  return setup
}

module.exports = { startRedisCluster, startRedisSentinel, until }
