'use strict';
// A throwaway software TPM (swtpm in socket mode on loopback) and limpet run against it, shared by
// the TPM tests. Ports are picked below Linux's ephemeral range (32768+), where the tests' own
// outgoing connections would collide with them; a port taken anyway makes swtpm exit, and another
// is tried.
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const { findBinary } = require('./agent');
const h = require('./harness');

function canConnect(port) {
  return new Promise((resolve) => {
    // destroy, not end: swtpm serves one connection at a time and must see this one gone.
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

// Starts a fresh TPM; returns { tcti, limpet(...args), limpetJson(...args), stop() }.
async function startSwtpm() {
  const dir = fs.mkdtempSync(path.join(h.root, 'swtpm-'));
  const log = path.join(h.root, 'swtpm.log');
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 21000 + 2 * Math.floor(Math.random() * 5000);
    const proc = spawn('swtpm', ['socket', '--tpmstate', `dir=${dir}`, '--server', `type=tcp,port=${port}`,
      '--ctrl', `type=tcp,port=${port + 1}`, '--tpm2', '--flags', 'not-need-init,startup-clear'],
    { stdio: ['ignore', 'ignore', fs.openSync(log, 'a')] });
    const up = await h.waitUntil(async () => (proc.exitCode !== null ? 'exited' : (await canConnect(port)) && 'up'),
      { timeoutMs: 5000, what: 'swtpm to listen' });
    if (up !== 'up') continue;
    // Let the probe's close reach swtpm before a synchronous limpet run blocks this process.
    await h.sleep(200);
    return tpmHandle(proc, `swtpm:host=127.0.0.1,port=${port}`);
  }
  throw new Error(`swtpm did not start; see ${log}`);
}

function tpmHandle(proc, tcti) {
  const bin = findBinary('src/limpet/limpet');
  const limpet = (...args) => {
    const r = spawnSync(bin, ['--tcti', tcti, ...args], { encoding: 'utf8', timeout: 60000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const limpetJson = (...args) => {
    const r = limpet('--json', ...args);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  return { tcti, bin, limpet, limpetJson, stop: () => proc.kill('SIGTERM') };
}

module.exports = { startSwtpm };
