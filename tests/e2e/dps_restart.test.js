'use strict';
// DPS operations survive a hub restart: the 202 of a register promises the device its result, so a
// poll after kill -9 and a restart still gets 200 with the same registrationState. Operations past
// their 10 minutes (or unknown, or made for another registration id) stay 404, and the
// housekeeping deletes the expired ones.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');

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

test('unknown and expired operations answer 404; the housekeeping deletes expired ones', async () => {
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
  await h.hub.start();

  // Expired: unknown at once, even before the housekeeping has run.
  assertUnknown(await rawPoll(c.regId, c.key, opC), opC);
  const rD = await rawPoll(c.regId, c.key, opD);
  assert.equal(rD.status, 200, rD.text);
  assert.equal(rD.json.status, 'assigned');
  assert.equal(rD.json.registrationState.substatus, 'deviceDataMigrated');
  // The housekeeping (every 10 s) deletes the expired row and keeps the live one.
  await h.waitUntil(() => sql(`SELECT COUNT(*) FROM dps_operations WHERE operation_id = '${opC}'`) === '0',
    { timeoutMs: 15000, intervalMs: 500, what: 'the expired operation deleted by the housekeeping' });
  assert.equal(sql(`SELECT COUNT(*) FROM dps_operations WHERE operation_id = '${opD}'`), '1');
});
