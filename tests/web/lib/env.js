'use strict';
// The dashboard tests' world: a real iotdm-hub on its own loopback address (127.0.0.N, the real
// ports 443 and 8883, as the device SDKs need), a models folder with the repo's DTDL files plus
// the test fixtures, simulated devices, and headless chromium.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const REPO = path.resolve(__dirname, '..', '..', '..');

// The build tree: IOTDM_BUILD_DIR, else build/dev, else build/ci. The agent and configd are taken
// from the same tree as the hub.
function buildDir() {
  const rel = path.join('src', 'hub', 'iotdm-hub');
  if (process.env.IOTDM_BUILD_DIR) {
    const d = path.resolve(process.env.IOTDM_BUILD_DIR);
    if (!fs.existsSync(path.join(d, rel))) throw new Error(`no ${rel} under IOTDM_BUILD_DIR=${d}; build first`);
    return d;
  }
  for (const b of ['dev', 'ci']) {
    const d = path.join(REPO, 'build', b);
    if (fs.existsSync(path.join(d, rel))) return d;
  }
  throw new Error('iotdm-hub not built: run `make dev` (or set IOTDM_BUILD_DIR)');
}

const BUILD = buildDir();
process.env.IOTDM_BUILD_DIR = BUILD; // tests/e2e/lib/agent.js looks there first

const { Hub, sleep, tailFile } = require('../../e2e/lib/hub');
const { SimDevice } = require('../../e2e/lib/agent');

function agentBuilt() {
  return ['src/agent/iotdm-agent', 'src/configd/iotdm-configd'].every((r) => fs.existsSync(path.join(BUILD, r)));
}

// Addresses where something listens on 443 or 8883, from /proc/net/tcp.
function busyAddresses() {
  const out = new Set();
  let text = '';
  try { text = fs.readFileSync('/proc/net/tcp', 'utf8'); } catch (_) { return out; }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '0A') continue;
    const [ipHex, portHex] = f[1].split(':');
    const port = parseInt(portHex, 16);
    if (port !== 443 && port !== 8883) continue;
    const n = parseInt(ipHex, 16);
    out.add([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.'));
  }
  return out;
}

// A loopback address for this run, locked in the same directory as the e2e tests use so that
// both suites can run side by side.
function allocAddress(name) {
  const busy = busyAddresses();
  if (busy.has('0.0.0.0')) throw new Error('something listens on 0.0.0.0:443 or :8883; no loopback address is free');
  const base = path.join(os.tmpdir(), 'iotdm-e2e-addr-locks');
  fs.mkdirSync(base, { recursive: true });
  const start = crypto.createHash('sha1').update(name).digest().readUInt16BE(0);
  for (let i = 0; i < 230; i++) {
    const addr = `127.0.0.${20 + ((start + i) % 230)}`;
    if (busy.has(addr)) continue;
    const dir = path.join(base, addr);
    try {
      fs.mkdirSync(dir);
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let owner = NaN;
      try { owner = parseInt(fs.readFileSync(path.join(dir, 'pid'), 'utf8'), 10); } catch (_) { /* being made */ }
      let alive = true;
      try { process.kill(owner, 0); } catch (err) { alive = err.code === 'EPERM'; }
      if (!Number.isFinite(owner) || alive) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      try { fs.mkdirSync(dir); } catch (_) { continue; }
    }
    fs.writeFileSync(path.join(dir, 'pid'), String(process.pid));
    return { addr, release: () => fs.rmSync(dir, { recursive: true, force: true }) };
  }
  throw new Error('no free loopback address 127.0.0.20-249');
}

class WebHub extends Hub {
  constructor(opts) {
    super(opts);
    this.modelsDir = opts.modelsDir;
  }

  args() {
    return [...super.args(), '--models-dir', this.modelsDir, '--web-dir', path.join(REPO, 'web')];
  }
}

// Starts everything; returns {addr, url, root, dataDir, hub, connStr, ca, caPath, cleanup()}.
async function startEnv(name) {
  const lock = allocAddress(`web-${name}`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `iotdm-web-${name}-`));
  const dataDir = path.join(root, 'data');
  const modelsDir = path.join(root, 'models');
  fs.mkdirSync(dataDir);
  fs.mkdirSync(modelsDir);
  for (const dir of [path.join(REPO, 'models'), path.join(__dirname, '..', 'fixtures', 'models')]) {
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json'))) fs.copyFileSync(path.join(dir, f), path.join(modelsDir, f));
  }
  const hub = new WebHub({
    bin: path.join(BUILD, 'src', 'hub', 'iotdm-hub'), dataDir, addr: lock.addr, logPath: path.join(root, 'hub.log'),
    modelsDir, logLevel: process.env.IOTDM_WEB_LOG_LEVEL || 'info',
  });
  process.on('exit', () => { hub.killSync(); lock.release(); });
  await hub.start();
  const connStr = fs.readFileSync(path.join(dataDir, 'owner.connstr'), 'utf8').trim();
  const caPath = path.join(dataDir, 'ca.pem');
  return {
    addr: lock.addr, url: `https://${lock.addr}/`, root, dataDir, hub, connStr, caPath,
    ca: fs.readFileSync(caPath, 'utf8'), serverCertPath: path.join(dataDir, 'server.pem'),
    async cleanup({ keep = false } = {}) {
      if (hub.running) await hub.stop().catch(() => hub.killSync());
      lock.release();
      if (!keep) fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

module.exports = { startEnv, agentBuilt, SimDevice, sleep, tailFile, BUILD, REPO };
