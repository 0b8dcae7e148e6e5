'use strict';
// DPS operations survive a hub restart: the 202 of a register promises the device its result, so a
// poll after kill -9 and a restart still gets 200 with the same registrationState. Operations past
// their 10 minutes (or unknown, or made for another registration id) stay 404, and the
// housekeeping deletes the expired ones. TPM challenges survive it too: limpet on a software TPM
// (swtpm) registers while the hub is killed and restarted between its challenge and its signed
// register, or between the 202 and its poll.
const h = require('./lib/harness');
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync, spawn } = require('node:child_process');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { startSwtpm } = require('./lib/swtpm');

const DPS_API = 'api-version=2019-03-31';
const TTL_MS = 10 * 60 * 1000;
let idScope;
let svc;

before(async () => {
  await h.startHub();
  idScope = fs.readFileSync(path.join(h.dataDir, 'idscope'), 'utf8').trim();
  svc = ProvisioningServiceClient.fromConnectionString(
    fs.readFileSync(path.join(h.dataDir, 'dps.connstr'), 'utf8').trim());
});
after(() => h.stopAll());

function dpsSas(regId, keyB64, expiry = h.nowSec() + 600) {
  const sr = encodeURIComponent(`${idScope}/registrations/${regId}`);
  const sig = crypto.createHmac('sha256', Buffer.from(keyB64, 'base64')).update(`${sr}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiry}&skn=registration`;
}

// What azure-iot-provisioning-device-http sends, one request at a time, so the test decides when
// the device polls.
async function rawRegister(regId, key) {
  const r = await h.rest('PUT', `/${idScope}/registrations/${encodeURIComponent(regId)}/register?${DPS_API}`,
    { auth: dpsSas(regId, key), body: { registrationId: regId } });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.status, 'assigning', r.text);
  assert.match(r.json.operationId, /^4\.[0-9a-f]{16}\.[0-9a-f]{16}$/, r.text);
  return r.json.operationId;
}

function rawPoll(regId, key, operationId) {
  return h.rest('GET', `/${idScope}/registrations/${encodeURIComponent(regId)}/operations/${encodeURIComponent(operationId)}?${DPS_API}`,
    { auth: dpsSas(regId, key) });
}

async function enroll(prefix) {
  const regId = h.uid(prefix);
  const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({
    registrationId: regId,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: '', secondaryKey: '' } },
  });
  return { regId, key: e.attestation.symmetricKey.primaryKey };
}

function assertUnknown(r, operationId) {
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json.errorCode, 404001, r.text);
  assert.match(r.json.message, new RegExp(`unknown operation '${operationId.replace(/\./g, '\\.')}'`));
}

// The hub's database, read (or changed while the hub is down) with the sqlite3 shell.
function sql(statement) {
  return execFileSync('sqlite3', [path.join(h.dataDir, 'hub.db'), statement], { encoding: 'utf8' }).trim();
}

async function restartAfterKill9() {
  const r = await h.hub.kill9(); // right after the 202: nothing is closed gracefully
  assert.equal(r.signal, 'SIGKILL');
  await h.closeTracked();
  await h.hub.start();
}

test('an operation answered 202 before kill -9 is polled after the restart', async () => {
  const a = await enroll('rst-a'); // polled before the kill as well: the answer must not change
  const b = await enroll('rst-b'); // polled only after the restart: the case devices hit
  const opA = await rawRegister(a.regId, a.key);
  const before = await rawPoll(a.regId, a.key, opA);
  assert.equal(before.status, 200, before.text);
  assert.equal(before.json.status, 'assigned', before.text);
  const opB = await rawRegister(b.regId, b.key);

  await restartAfterKill9();

  const afterA = await rawPoll(a.regId, a.key, opA);
  assert.equal(afterA.status, 200, afterA.text);
  assert.deepEqual(afterA.json, before.json);

  const rB = await rawPoll(b.regId, b.key, opB);
  assert.equal(rB.status, 200, rB.text);
  assert.equal(rB.json.operationId, opB);
  assert.equal(rB.json.status, 'assigned');
  const rs = rB.json.registrationState;
  assert.equal(rs.registrationId, b.regId);
  assert.equal(rs.deviceId, b.regId);
  assert.equal(rs.assignedHub, h.host);
  assert.equal(rs.status, 'assigned');
  assert.equal(rs.substatus, 'initialAssignment');
  // The same state the service API keeps, and the device exists with the key it registered with.
  const { responseBody: rec } = await svc.getDeviceRegistrationState(b.regId);
  assert.equal(rec.deviceId, rs.deviceId);
  assert.equal(rec.createdDateTimeUtc, rs.createdDateTimeUtc);
  assert.equal(rec.etag, rs.etag);
  const { responseBody: d } = await h.registry().get(b.regId);
  assert.equal(d.authentication.symmetricKey.primaryKey, b.key);

  // The registration id is matched case-insensitively, as before; another one's is not.
  const upper = await rawPoll(b.regId.toUpperCase(), b.key, opB);
  assert.equal(upper.status, 200, upper.text);
  assert.deepEqual(upper.json, rB.json);
  assertUnknown(await rawPoll(a.regId, a.key, opB), opB);
});

test('unknown and expired operations answer 404; the housekeeping deletes expired ones and expired TPM challenges', async () => {
  const c = await enroll('rst-c');
  assertUnknown(await rawPoll(c.regId, c.key, '4.0000000000000000.0000000000000000'), '4.0000000000000000.0000000000000000');
  const opC = await rawRegister(c.regId, c.key);
  const opD = await rawRegister(c.regId, c.key); // a second registration: its own operation
  assert.notEqual(opC, opD);
  assert.equal(sql(`SELECT COUNT(*) FROM dps_operations WHERE operation_id IN ('${opC}', '${opD}')`), '2');

  // Age opC past its 10 minutes while the hub is down, then restart.
  await h.closeTracked();
  await h.hub.stop();
  sql(`UPDATE dps_operations SET created_ms = created_ms - ${TTL_MS + 1000} WHERE operation_id = '${opC}'`);
  // Two TPM challenges, one past its expiry, as a hub that stopped before its housekeeping leaves.
  const challenge = (id, expiresMs) => `('${id}', randomblob(32), randomblob(32), x'01', ${expiresMs})`;
  sql(`INSERT INTO dps_tpm_challenges VALUES ${challenge('rst-expired', Date.now() - 1000)}, ${challenge('rst-live', Date.now() + TTL_MS)}`);
  await h.hub.start();

  // Expired: unknown at once, even before the housekeeping has run.
  assertUnknown(await rawPoll(c.regId, c.key, opC), opC);
  const rD = await rawPoll(c.regId, c.key, opD);
  assert.equal(rD.status, 200, rD.text);
  assert.equal(rD.json.status, 'assigned');
  assert.equal(rD.json.registrationState.substatus, 'deviceDataMigrated');
  // The housekeeping (every 10 s, one transaction) deletes the expired rows and keeps the live ones.
  await h.waitUntil(() => sql(`SELECT COUNT(*) FROM dps_operations WHERE operation_id = '${opC}'`) === '0',
    { timeoutMs: 15000, intervalMs: 500, what: 'the expired operation deleted by the housekeeping' });
  assert.equal(sql(`SELECT COUNT(*) FROM dps_operations WHERE operation_id = '${opD}'`), '1');
  assert.equal(sql("SELECT group_concat(registration_id) FROM dps_tpm_challenges WHERE registration_id LIKE 'rst-%'"), 'rst-live');
});

// A TCP relay in front of the hub's HTTPS port. It passes connections through untouched (TLS
// included), but holds the nth one, its request unread, until released: limpet (which opens a
// connection per request) waits for its answer while the test restarts the hub behind the relay.
async function holdingRelay(nth) {
  let count = 0;
  let onHeld;
  let release;
  const held = new Promise((resolve) => { onHeld = resolve; });
  const released = new Promise((resolve) => { release = resolve; });
  const sockets = new Set();
  const server = net.createServer((client) => {
    count += 1;
    sockets.add(client);
    client.on('error', () => {});
    client.pause();
    const go = count === nth ? (onHeld(), released) : Promise.resolve();
    go.then(() => {
      const upstream = net.connect(443, h.addr);
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  await new Promise((resolve) => server.listen(0, h.addr, resolve));
  return {
    endpoint: `${h.addr}:${server.address().port}`,
    held,
    release,
    connections: () => count,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('TPM registrations across a kill -9 and a restart', () => {
  let swtpm = null;
  let tpm; // { registrationId, ek } of the swtpm

  before(async () => {
    swtpm = await startSwtpm();
    const info = swtpm.limpetJson('enrollment-info')[0];
    tpm = { registrationId: info.registrationId, ek: info.attestation.tpm.endorsementKey };
  });
  after(() => { if (swtpm) swtpm.stop(); });

  // limpet SLOT dps-register through the relay, run asynchronously so that the relay (in this
  // process) can serve it.
  function dpsRegister(relay) {
    const p = spawn(swtpm.bin, ['--tcti', swtpm.tcti, '--json', '0', 'dps-register', relay.endpoint,
      idScope, '--ca-file', h.caPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 90000);
    return new Promise((resolve) => p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }));
  }

  async function enrollTpm() {
    const deviceId = h.uid('tpm-rst');
    await svc.createOrUpdateIndividualEnrollment({
      registrationId: tpm.registrationId, deviceId,
      attestation: { type: 'tpm', tpm: { endorsementKey: tpm.ek } },
    });
    return deviceId;
  }

  function assertAssigned(r, deviceId) {
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout),
      { slot: 0, registrationId: tpm.registrationId, status: 'assigned', assignedHub: h.host, deviceId });
  }

  // The key the TPM imported into slot 0 is the device's key in the registry: a SAS token signed
  // inside the TPM checks out against it.
  function assertTpmHolds(key) {
    const sas = swtpm.limpetJson('0', 'sas', '--expiry', '600');
    const sr = /sr=([^&]+)/.exec(sas.token)[1];
    const mac = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${sas.expiry}`).digest('base64');
    assert.equal(decodeURIComponent(/sig=([^&]+)/.exec(sas.token)[1]), mac);
  }

  test('a challenge made before kill -9 is answered after the restart: register and poll succeed', async () => {
    const deviceId = await enrollTpm();
    const relay = await holdingRelay(2); // 1: the challenge (401), 2: the signed register
    const run = dpsRegister(relay);
    try {
      await h.withTimeout(relay.held, 30000, "limpet's signed register");
      // The challenge was on the disk before its 401 left.
      const key = sql(`SELECT hex(key) FROM dps_tpm_challenges WHERE registration_id = '${tpm.registrationId}'`);
      assert.match(key, /^[0-9A-F]{64}$/);
      assert.equal(await h.deviceExists(deviceId), false);
      await restartAfterKill9();
      relay.release();
      const r = await run;
      assertAssigned(r, deviceId);
      assert.equal(relay.connections(), 3); // the challenge, the register, one poll: no retry
      const { responseBody: d } = await h.registry().get(deviceId);
      assertTpmHolds(d.authentication.symmetricKey.primaryKey);
      // The registration key is a secret: the hub never logs it.
      const log = fs.readFileSync(h.hub.logPath, 'utf8');
      for (const form of [key, key.toLowerCase(), Buffer.from(key, 'hex').toString('base64')]) {
        assert.equal(log.includes(form), false, 'the registration key is in the hub log');
      }
    } finally {
      relay.release();
      relay.close();
    }
  });

  test('a registration answered 202 before kill -9 is polled with the TPM-signed token after the restart', async () => {
    const deviceId = await enrollTpm();
    const relay = await holdingRelay(3); // 1: the challenge, 2: the register (202), 3: the poll
    const run = dpsRegister(relay);
    try {
      await h.withTimeout(relay.held, 30000, "limpet's poll");
      // The registration is done: the device exists with the key the 202's operation delivers.
      const { responseBody: d } = await h.registry().get(deviceId);
      const { responseBody: rec } = await svc.getDeviceRegistrationState(tpm.registrationId);
      assert.equal(rec.deviceId, deviceId);
      await restartAfterKill9();
      relay.release();
      const r = await run;
      assertAssigned(r, deviceId);
      assert.equal(relay.connections(), 3);
      // The same result as before the kill: the blob the poll delivered carries the key the
      // registry got then, and the registration record is unchanged.
      const { responseBody: after } = await h.registry().get(deviceId);
      assert.equal(after.authentication.symmetricKey.primaryKey, d.authentication.symmetricKey.primaryKey);
      assertTpmHolds(d.authentication.symmetricKey.primaryKey);
      const { responseBody: rec2 } = await svc.getDeviceRegistrationState(tpm.registrationId);
      assert.deepEqual(rec2, rec);
    } finally {
      relay.release();
      relay.close();
    }
  });
});
