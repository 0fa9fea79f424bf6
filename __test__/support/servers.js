'use strict'
// Private database servers for fault tests: each starts on a free loopback port, in its own
// temporary directory, and is killed only by its own PID, never touching the shared services.

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { sleep } = require('./backends')
const { closedPort, waitForPort } = require('../../scripts/ports')

function killed (child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
  })
}

/**
 * The life of one private server process: `start()` spawns `launch()` and waits until it accepts
 * connections; `kill()` SIGKILLs exactly that PID; `stop()` also removes the data directory.
 */
function privateServer ({ port, url, dir, launch, settle = 0 }) {
  const server = {
    port,
    url,
    child: null,
    async start () {
      this.child = launch()
      await waitForPort(port)
      await sleep(settle)
    },
    async kill () {
      if (!this.child) return
      const child = this.child
      this.child = null
      process.kill(child.pid, 'SIGKILL')
      await killed(child)
      await sleep(settle)
    },
    async stop () {
      await this.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  return server
}

/**
 * A redis-server of our own. `kill()` SIGKILLs it; `start()` brings it back on the same port;
 * `{ appendOnly: true }` keeps its data across a kill. With `{ tls: true }` it speaks only TLS,
 * with a certificate from a throwaway CA whose PEM is `server.ca`.
 */
async function startRedis ({ tls = false, clientCertificates = false, replicaOf = null, appendOnly = false } = {}) {
  const port = await closedPort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-redis-'))
  // appendOnly: every write is on disk before it is answered, so a SIGKILL loses nothing.
  const args = ['--bind', '127.0.0.1', '--save', '', '--dir', dir,
    ...(appendOnly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])]
  if (replicaOf) args.push('--replicaof', '127.0.0.1', String(replicaOf))
  let certs = null
  if (tls) {
    certs = makeCertificates(dir)
    args.push('--port', '0', '--tls-port', String(port), '--tls-auth-clients', clientCertificates ? 'yes' : 'no',
      '--tls-cert-file', path.join(dir, 'server.crt'), '--tls-key-file', path.join(dir, 'server.key'), '--tls-ca-cert-file', path.join(dir, 'ca.crt'))
  } else {
    args.push('--port', String(port))
  }
  const server = privateServer({
    port,
    dir,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    launch: () => spawn('redis-server', args, { stdio: 'ignore' })
  })
  if (tls) {
    server.ca = certs.ca
    server.certs = certs
  }
  await server.start()
  return server
}

/**
 * A throwaway CA, a server certificate for 127.0.0.1 and localhost signed by it, a client
 * certificate for `clientName` signed by it, and an unrelated CA (`other-ca.crt`) for the
 * "unknown CA" cases, made with the openssl CLI. Keys are 0600, as servers and libpq require.
 */
function makeCertificates (dir, { clientName = 'certuser' } = {}) {
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=ferrosession test CA')
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '1', '-subj', '/CN=some other CA')
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1')
  fs.writeFileSync(path.join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost')
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'ext')
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', `/CN=${clientName}`)
  fs.writeFileSync(path.join(dir, 'client-ext'), 'extendedKeyUsage=clientAuth')
  ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '1', '-extfile', 'client-ext')
  for (const key of ['ca.key', 'other-ca.key', 'server.key', 'client.key']) fs.chmodSync(path.join(dir, key), 0o600)
  const read = (name) => fs.readFileSync(path.join(dir, name), 'utf8')
  return {
    dir,
    ca: read('ca.crt'),
    otherCa: read('other-ca.crt'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    file: (name) => path.join(dir, name)
  }
}

function pgBin (name) {
  const root = '/usr/lib/postgresql'
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : []
  for (const v of versions) {
    const p = path.join(root, v, 'bin', name)
    if (fs.existsSync(p)) return p
  }
  return name // hope it is on PATH
}

/**
 * A PostgreSQL cluster of our own (initdb into a temp dir, trust auth). As root, the server runs
 * as the `postgres` user, which initdb requires; the PID we kill is the postmaster itself.
 */
async function startPostgres ({ tls = false } = {}) {
  const port = await closedPort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-pg-'))
  const asUser = {}
  if (process.getuid && process.getuid() === 0) {
    asUser.uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    asUser.gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
    fs.chownSync(dir, asUser.uid, asUser.gid)
  }
  const data = path.join(dir, 'data')
  execFileSync(pgBin('initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'], { stdio: 'ignore', ...asUser })
  const settings = ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=30']
  let certs = null
  if (tls) {
    // TLS only: a user `certuser` who must present a client certificate, everyone else by TLS
    // with trust, and no plaintext at all.
    certs = makeCertificates(fs.mkdtempSync(path.join(dir, 'certs-')))
    for (const name of ['server.crt', 'server.key', 'ca.crt']) {
      fs.copyFileSync(certs.file(name), path.join(data, name))
      if (asUser.uid !== undefined) fs.chownSync(path.join(data, name), asUser.uid, asUser.gid)
    }
    fs.chmodSync(path.join(data, 'server.key'), 0o600)
    fs.writeFileSync(path.join(data, 'pg_hba.conf'), [
      'local all all trust',
      'hostssl all certuser 127.0.0.1/32 cert',
      'hostssl all all 127.0.0.1/32 trust',
      'hostnossl all all 127.0.0.1/32 reject',
      ''
    ].join('\n'))
    settings.push('-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key', '-c', 'ssl_ca_file=ca.crt')
  }
  const server = privateServer({
    port,
    dir,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    launch: () => spawn(pgBin('postgres'), ['-D', data, '-p', String(port), '-k', dir, ...settings], { stdio: 'ignore', ...asUser }),
    // The postmaster listens a moment before it accepts logins; after a SIGKILL its orphaned
    // backends need a moment to notice and exit before the cluster can start again.
    settle: 200
  })
  server.certs = certs
  await server.start()
  if (tls) {
    // Over the Unix socket (local trust): the role that logs in with a certificate.
    execFileSync(pgBin('psql'), ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-qc', 'CREATE ROLE certuser LOGIN SUPERUSER'], { stdio: 'ignore' })
  }
  return server
}

/**
 * A MariaDB (or MySQL) server of our own: `mariadb-install-db` into a temp dir (root, no
 * password), then `mariadbd` on a free loopback port. With `{ tls: true }` it requires TLS
 * (`require_secure_transport`), with a certificate from a throwaway CA.
 */
async function startMariadb ({ tls = false } = {}) {
  const port = await closedPort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferro-mysql-'))
  const data = path.join(dir, 'data')
  const bin = (names) => names.find((n) => { try { execFileSync('sh', ['-c', `command -v ${n}`], { stdio: 'ignore' }); return true } catch { return false } })
  const install = bin(['mariadb-install-db', 'mysql_install_db'])
  const daemon = bin(['mariadbd', 'mysqld'])
  if (!install || !daemon) throw new Error('the MariaDB server (mariadbd, mariadb-install-db) is needed for this test')
  // --no-defaults keeps /etc/mysql (the shared server's port and socket) out; as root the server
  // must be told it may run as root.
  const asRoot = process.getuid && process.getuid() === 0 ? ['--user=root'] : []
  execFileSync(install, ['--no-defaults', `--datadir=${data}`, ...asRoot, '--auth-root-authentication-method=normal', '--skip-test-db'], { stdio: 'ignore' })
  const args = ['--no-defaults', `--datadir=${data}`, `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${path.join(dir, 'mysqld.sock')}`,
    `--pid-file=${path.join(dir, 'mysqld.pid')}`, ...asRoot, '--skip-log-bin', '--innodb-buffer-pool-size=16M', `--log-error=${path.join(dir, 'error.log')}`,
    '--max-connections=60']
  let certs = null
  if (tls) {
    certs = makeCertificates(fs.mkdtempSync(path.join(dir, 'certs-')))
    args.push(`--ssl-ca=${certs.file('ca.crt')}`, `--ssl-cert=${certs.file('server.crt')}`, `--ssl-key=${certs.file('server.key')}`, '--require-secure-transport=ON')
  }
  const server = privateServer({
    port,
    dir,
    url: `mysql://root@127.0.0.1:${port}/mysql`,
    launch: () => spawn(daemon, args, { stdio: 'ignore' }),
    // The port opens a moment before logins are accepted.
    settle: 200
  })
  server.certs = certs
  await server.start()
  return server
}

module.exports = { startRedis, startPostgres, startMariadb, waitForPort, makeCertificates }

/**
 * A store of `backend` on a private server: `{ server, create(options) }`. The caller owns the
 * server's life (`server.kill()`, `server.start()`, `server.stop()`).
 */
async function ownServer (backendName) {
  const { RedisStore, PostgresStore, MySqlStore, MongoStore } = require('../..')
  let n = 0
  if (backendName === 'mongodb') {
    const server = await require('../../scripts/mongo-server').startMongoServer()
    return { server, create: (options) => new MongoStore({ mongoUrl: server.url, dbName: 'own', collectionName: `own_${++n}`, ...options }) }
  }
  if (backendName === 'redis') {
    const server = await startRedis()
    return { server, create: (options) => new RedisStore({ url: server.url, prefix: `own${++n}:`, ...options }) }
  }
  if (backendName === 'mysql' || backendName === 'mysql_knex') {
    const server = await startMariadb()
    const layout = backendName === 'mysql_knex' ? { layout: 'knex', tableName: `own_${++n}`, cleanupInterval: 0 } : { schema: { tableName: `own_${++n}` }, clearExpired: false }
    return { server, create: (options) => new MySqlStore({ url: server.url, ...layout, ...options }) }
  }
  if (backendName === 'postgres_knex') {
    const server = await startPostgres()
    return { server, create: (options) => new PostgresStore({ conString: server.url, tableName: `own_${++n}`, layout: 'knex', cleanupInterval: 0, ...options }) }
  }
  const server = await startPostgres()
  return {
    server,
    create: (options) => new PostgresStore({
      conString: server.url, tableName: `own_${++n}`, createTableIfMissing: true, pruneSessionInterval: false, ...options
    })
  }
}

module.exports.ownServer = ownServer

/** A TCP listener that accepts connections and never answers: a hung server. */
async function silentServer () {
  const sockets = new Set()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(resolve)
    })
  }
}

module.exports.silentServer = silentServer
