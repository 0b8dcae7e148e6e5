'use strict';
// limpet and the TPM on a software TPM (swtpm): enrollment info, a connection string stored in a
// TPM slot, and iotdm-agent connecting with SAS tokens signed inside the TPM (no key on disk).
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const { SimDevice, findBinary } = require('./lib/agent');
const { startSwtpm } = require('./lib/swtpm');
const { DmTestbed, dm, T0 } = require('./lib/dm');

const bench = new DmTestbed(h);
let tpm = null; // lib/swtpm.js: { tcti, limpet, limpetJson, stop }
let tcti = null;
const sims = [];
const limpet = (...args) => tpm.limpet(...args);
const limpetJson = (...args) => tpm.limpetJson(...args);

before(async () => {
  tpm = await startSwtpm();
  tcti = tpm.tcti;
  await bench.start();
});

after(async () => {
  for (const s of sims) await s.stop();
  await bench.stop();
  if (tpm) tpm.stop();
});

test('enrollment info: the registration id is base32(SHA-256(EK TPM2B_PUBLIC))', () => {
  const ek = limpetJson('ek');
  const list = JSON.parse(limpet('enrollment-info', '--format', 'json').stdout);
  assert.equal(list.length, 1);
  assert.equal(list[0].attestation.type, 'tpm');
  assert.equal(list[0].attestation.tpm.endorsementKey, ek.ek);
  const digest = crypto.createHash('sha256').update(Buffer.from(ek.ek, 'base64')).digest();
  // RFC 4648 base32, lower case, no padding: computed here independently.
  const abc = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = '';
  for (const b of digest) bits += b.toString(2).padStart(8, '0');
  let expected = '';
  for (let i = 0; i < bits.length; i += 5) expected += abc[parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)];
  assert.equal(list[0].registrationId, expected);
  assert.equal(limpet('registration-id').stdout.trim(), expected);
  const csv = limpet('enrollment-info', '--format', 'csv').stdout.trim().split('\n');
  assert.equal(csv[0], 'registrationId,endorsementKey,storageRootKey');
  assert.ok(csv[1].startsWith(`${expected},${ek.ek},`));
});

test('clear is refused without --force; unknown commands and missing slots are usage errors', () => {
  const r = limpet('clear');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--force/);
  assert.equal(limpet('frobnicate').status, 2);
  assert.equal(limpet('sas').status, 2);
  assert.equal(limpet('sas', '--help').status, 0);
});

test('the agent connects with TPM-signed SAS tokens and applies a DM patch', async () => {
  const id = 'tpm-dev';
  const d = await h.createDevice(bench.reg, id);
  const stored = limpetJson('0', 'import-connection-string', h.deviceConnStr(d));
  assert.equal(stored.deviceId, id);
  assert.equal(limpet('0', 'uri').stdout.trim(), `${stored.hostName}/${id}`);
  // The token limpet prints is valid for the hub: the signature checks out with the device key.
  const sas = limpetJson('0', 'sas', '--expiry', '600');
  const sig = decodeURIComponent(/sig=([^&]+)/.exec(sas.token)[1]);
  const sr = /sr=([^&]+)/.exec(sas.token)[1];
  const mac = crypto.createHmac('sha256', Buffer.from(d.authentication.symmetricKey.primaryKey, 'base64'))
    .update(`${sr}\n${sas.expiry}`).digest('base64');
  assert.equal(sig, mac);

  const sim = new SimDevice({
    dir: fs.mkdtempSync(path.join(h.root, 'dev-tpm-')), connStr: null, caPath: h.caPath,
    extraAgentArgs: ['--tpm-slot', '0', '--tpm-tcti', tcti],
  });
  sims.push(sim);
  sim.setClock(T0);
  await sim.start();
  await bench.connected(id);
  const log = fs.readFileSync(sim.log, 'utf8');
  assert.match(log, /SAS signed in the TPM/);
  const v = await bench.setDesired(id, { timeInfo: { timeZone: 'Europe/Berlin' } });
  const ack = await bench.waitAck(id, 'timeInfo', v, { timeoutMs: 15000 });
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.equal(dm(await bench.twin(id)).timeInfo.value.timeZone, 'Europe/Berlin');
});

test('an agent whose TPM slot is empty refuses to start with a clear reason', () => {
  const dir = fs.mkdtempSync(path.join(h.root, 'dev-tpm-empty-'));
  const r = spawnSync(findBinary('src/agent/iotdm-agent'), ['--config', '/dev/null', '--ca-file', h.caPath,
    '--state-dir', path.join(dir, 'state'), '--configd-socket', path.join(dir, 'none.sock'),
    '--tpm-slot', '5', '--tpm-tcti', tcti], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /TPM slot 5: no URI or no HMAC key/);
});
