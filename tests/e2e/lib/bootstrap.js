'use strict';
// Why a two-process design: azure-iothub (Registry, Client.invokeDeviceMethod)
// has no option for a custom CA -- it builds its own keep-alive https.Agent --
// and NODE_EXTRA_CA_CERTS is read only when node starts. The hub generates its
// own CA on first start. So when a test file is loaded without
// IOTDM_E2E_CHILD set (as `node --test` or `node file.test.js` load it), this
// module, synchronously and before any test is declared:
//   1. picks a free loopback address 127.0.0.N (lock directory per address),
//   2. makes a temp dir under os.tmpdir() and runs lib/prepare.js, which starts
//      the hub once on <tmp>/data (creating ca.pem) and stops it,
//   3. re-runs the same test file with the same node flags as a child with
//      NODE_EXTRA_CA_CERTS=<tmp>/data/ca.pem and stdio inherited, so the
//      child's test-runner output is the file's output,
//   4. on failure prints the tail of the hub log (and keeps the temp dir);
//      on success removes the temp dir; exits with the child's status.
// The child starts and owns the hub itself (see harness.js).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const { findHubBinary, tailFile } = require('./hub');

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

// Listening TCP sockets on port 8883 or 443, from /proc/net/tcp (Linux):
// a set of dotted IPv4 addresses ('0.0.0.0' for a wildcard listener).
function busyAddresses() {
  const out = new Set();
  let text;
  try { text = fs.readFileSync('/proc/net/tcp', 'utf8'); } catch (_) { return out; }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '0A') continue; // 0A = LISTEN
    const [ipHex, portHex] = f[1].split(':');
    const port = parseInt(portHex, 16);
    if (port !== 8883 && port !== 443) continue;
    const n = parseInt(ipHex, 16);
    out.add([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.'));
  }
  return out;
}

// A lock directory per address, holding the owner's pid; stale locks (dead
// owner) are taken over; addresses where something already listens on 8883 or
// 443 are skipped. N is in 20..249, starting from a hash of the file name.
function allocAddress(name) {
  const busy = busyAddresses();
  if (busy.has('0.0.0.0')) {
    throw new Error('something listens on 0.0.0.0:8883 or 0.0.0.0:443; no loopback address is free for a test hub');
  }
  const base = path.join(os.tmpdir(), 'iotdm-e2e-addr-locks');
  fs.mkdirSync(base, { recursive: true });
  const h = crypto.createHash('sha1').update(name).digest().readUInt16BE(0);
  const span = 230;
  for (let i = 0; i < span; i++) {
    const n = 20 + ((h + i) % span);
    const addr = `127.0.0.${n}`;
    if (busy.has(addr)) continue;
    const dir = path.join(base, addr);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, 'pid'), String(process.pid));
        return { addr, release: () => fs.rmSync(dir, { recursive: true, force: true }) };
      } catch (e) {
        if (e.code !== 'EEXIST') throw e;
        let owner = NaN;
        try { owner = parseInt(fs.readFileSync(path.join(dir, 'pid'), 'utf8'), 10); } catch (_) { /* being created */ }
        if (Number.isFinite(owner) && !pidAlive(owner)) {
          fs.rmSync(dir, { recursive: true, force: true });
          continue;
        }
        break;
      }
    }
  }
  throw new Error('no free loopback address 127.0.0.20-249 (all locked)');
}

function fail(msg) {
  process.stderr.write(`e2e: ${msg}\n`);
  process.exit(1);
}

function runParent() {
  const testFile = process.argv[1];
  const name = path.basename(testFile).replace(/\.test\.js$/, '').replace(/\.js$/, '');
  let bin;
  try {
    bin = findHubBinary();
  } catch (e) {
    fail(e.message);
  }
  let lock;
  try {
    lock = allocAddress(name);
  } catch (e) {
    fail(e.message);
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `iotdm-e2e-${name}-`));
  const dataDir = path.join(root, 'data');
  fs.mkdirSync(dataDir);
  const logPath = path.join(root, 'hub.log');
  const env = {
    ...process.env,
    IOTDM_E2E_HUB_BIN: bin,
    IOTDM_E2E_ADDR: lock.addr,
    IOTDM_E2E_ROOT: root,
  };
  let code = 1;
  let why = '';
  try {
    const prep = spawnSync(process.execPath, [path.join(__dirname, 'prepare.js')], {
      stdio: ['ignore', 2, 2], env, timeout: 60000,
    });
    if (prep.status !== 0) {
      why = `preparing the hub failed (status ${prep.status}, signal ${prep.signal})`;
    } else {
      const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
        stdio: 'inherit',
        env: { ...env, IOTDM_E2E_CHILD: '1', NODE_EXTRA_CA_CERTS: path.join(dataDir, 'ca.pem') },
      });
      if (child.error) why = `could not run the test process: ${child.error.message}`;
      code = child.status === null ? 1 : child.status;
      if (child.signal) why = `test process killed by ${child.signal}`;
    }
  } finally {
    lock.release();
  }
  if (code === 0 && !process.env.IOTDM_E2E_KEEP) {
    fs.rmSync(root, { recursive: true, force: true });
  } else {
    process.stderr.write(`\ne2e: ${name} on ${lock.addr} failed${why ? ': ' + why : ''}; ` +
      `data dir and hub log kept in ${root}\n`);
    process.stderr.write(`----- tail of ${logPath} -----\n${tailFile(logPath, 150)}\n----- end of hub log -----\n`);
  }
  process.exit(code === 0 && why ? 1 : code);
}

function ensureChild() {
  if (process.env.IOTDM_E2E_CHILD === '1') return;
  runParent();
}

module.exports = { ensureChild };
