'use strict';
// A hub cluster for the end-to-end tests: NODES iotdm-hub processes sharing one PostgreSQL schema,
// behind HAProxy in TCP mode on the address the tests use for "the hub". It has the Hub class's
// surface (start, stop, kill9, killSync, running, dataDir, extraArgs, wrapper, env, logTail), so a
// test file runs unchanged against one hub or against the cluster: IOTDM_E2E_CLUSTER=1 (with
// IOTDM_E2E_PG_DIR naming a server from scripts/pg-tmp.sh) switches makeHub to it.
//
// Addresses: the balancer listens on the file's own 127.0.0.N (bootstrap.js allocates it), node k
// on 127.0.k.N, so files running in parallel never share one. Every node is told the balancer's
// address as its hostname: the SAS audience and the certificate's name are the cluster's, not a
// node's. Node 1 keeps its data in dataDir (owner.connstr, ca.pem where the tests read them);
// nodes 2.. in dataDir-nodeK. The CA is the cluster's (cluster_files), so every node's certificate
// chains to the one the tests trust.

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Hub, pgStoreFor, sleep, tailFile } = require('./hub');

const NODES = Number(process.env.IOTDM_E2E_NODES || 3);

function nodeAddr(addr, k) {
  const parts = addr.split('.');
  return `${parts[0]}.${parts[1]}.${k}.${parts[3]}`;
}

// Resolves once something accepts TCP connections on host:port.
async function waitListening(host, port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host, port }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function haproxyConfig(addr, nodes) {
  const servers = (port) => nodes.map((n, i) =>
    `    server node${i + 1} ${n.addr}:${port} check port 443 check-ssl verify none inter 500 fall 2 rise 1`).join('\n');
  // TCP mode: TLS ends at the nodes (client certificates, SNI-free SDKs). The health check asks
  // each node's /iotdm/health over TLS: a node whose bus lost the database is taken out.
  return `global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    option redispatch
    retries 2
frontend mqtt
    bind ${addr}:8883
    default_backend mqtt_nodes
frontend https
    bind ${addr}:443
    default_backend https_nodes
backend mqtt_nodes
    balance leastconn
    option httpchk
    http-check send meth GET uri /iotdm/health
${servers(8883)}
backend https_nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /iotdm/health
${servers(443)}
`;
}

class Cluster {
  constructor({ bin, dataDir, addr, logPath, logLevel }) {
    this.addr = addr;
    this.dataDir = dataDir;
    this.logPath = logPath;
    this.extraArgs = [];
    this.wrapper = [];
    this.env = {};
    this.root = path.dirname(logPath);
    this.haproxy = null;
    this.store = pgStoreFor(dataDir); // one schema for the cluster, named after node 1's data
    this.nodes = [];
    for (let k = 1; k <= NODES; k++) {
      const node = new Hub({
        bin,
        dataDir: k === 1 ? dataDir : `${dataDir}-node${k}`,
        addr: nodeAddr(addr, k),
        logPath: k === 1 ? logPath : path.join(this.root, `hub-node${k}.log`),
        logLevel,
      });
      node.store = this.store;
      this.nodes.push(node);
    }
  }

  get running() { return this.nodes.every((n) => n.running); }
  get pid() { return this.nodes[0].pid; }
  get unexpectedExit() {
    const n = this.nodes.find((x) => x.unexpectedExit);
    return n ? n.unexpectedExit : null;
  }

  // Every node takes the test's options; the hostname is the balancer's.
  configure() {
    this.nodes.forEach((n, i) => {
      if (i === 0) n.dataDir = this.dataDir;
      n.wrapper = this.wrapper;
      n.env = this.env;
      n.extraArgs = ['--hostname', this.addr, ...this.extraArgs];
      fs.appendFileSync(n.logPath, '');
    });
  }

  async start({ timeoutMs = 30000 } = {}) {
    this.configure();
    // Node 1 first: on empty data it makes the cluster's identity, which the others then take.
    await this.nodes[0].start({ timeoutMs });
    await Promise.all(this.nodes.slice(1).map((n) => n.start({ timeoutMs })));
    await this.startBalancer(timeoutMs);
    return this;
  }

  async startBalancer(timeoutMs = 20000) {
    if (this.haproxy && this.haproxy.exitCode === null) return;
    const cfg = path.join(this.root, 'haproxy.cfg');
    fs.writeFileSync(cfg, haproxyConfig(this.addr, this.nodes));
    const log = fs.openSync(path.join(this.root, 'haproxy.log'), 'a');
    // Debian installs it in /usr/sbin, which a user's PATH may lack.
    const bin = fs.existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';
    this.haproxy = spawn(bin, ['-db', '-f', cfg], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.haproxy.unref();
    await waitListening(this.addr, 443, timeoutMs);
    await waitListening(this.addr, 8883, timeoutMs);
    await sleep(600); // the first round of health checks
  }

  async stopBalancer() {
    const p = this.haproxy;
    if (!p || p.exitCode !== null || p.signalCode) return;
    const exited = new Promise((resolve) => p.once('exit', resolve));
    p.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    this.haproxy = null;
  }

  // Like Hub.stop: {code, signal} of node 1, after every node stopped; a node that did not exit
  // cleanly is reported as node 1's failure would be.
  async stop(opts) {
    await this.stopBalancer();
    const results = await Promise.all(this.nodes.map((n) => n.stop(opts)));
    return results.find((r) => r && r.code !== 0) || results[0];
  }

  async kill9() {
    await this.stopBalancer();
    const results = await Promise.all(this.nodes.map((n) => n.kill9()));
    return results[0];
  }

  killSync() {
    for (const n of this.nodes) n.killSync();
    if (this.haproxy) {
      try { this.haproxy.kill('SIGKILL'); } catch (_) { /* gone */ }
    }
  }

  logTail(lines = 200) {
    const per = Math.max(20, Math.floor(lines / this.nodes.length));
    return this.nodes.map((n, i) => `----- node ${i + 1} (${n.addr})\n${n.logTail(per)}`).join('\n') +
      `\n----- haproxy\n${tailFile(path.join(this.root, 'haproxy.log'), 20)}`;
  }
}

// The hub a test file talks to: one process, or the cluster behind its balancer.
function makeHub(opts) {
  if (process.env.IOTDM_E2E_CLUSTER === '1') {
    if (!process.env.IOTDM_E2E_PG_DIR) throw new Error('IOTDM_E2E_CLUSTER=1 needs IOTDM_E2E_PG_DIR (scripts/pg-tmp.sh)');
    return new Cluster(opts);
  }
  return new Hub(opts);
}

module.exports = { Cluster, makeHub, nodeAddr, haproxyConfig };
