'use strict';
// DPS TPM attestation in iotdm-hub (docs/protocol.md §7.10, §7.11): a software TPM (swtpm) and limpet
// register against the hub over HTTPS (401 challenge with an activation blob, SAS signed inside the
// TPM, 202, poll, the hub key delivered in a second blob); the device then connects with SAS tokens
// signed by the TPM. Plus the refusals, which must create nothing (enrollments whose EK or SRK is
// no TPM key among them), and TPM over MQTT refused.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt: DeviceMqtt } = require('azure-iot-device-mqtt');
const { startSwtpm } = require('./lib/swtpm');

const DPS_API = 'api-version=2019-03-31';
let idScope;
let svc;
let reg;
let swtpm = null; // lib/swtpm.js: { tcti, limpet, limpetJson, stop }
let tcti = null;
let tpm; // { registrationId, ek, srk } of the swtpm, as `limpet enrollment-info` harvests them
const limpet = (...args) => swtpm.limpet(...args);
const limpetJson = (...args) => swtpm.limpetJson(...args);

function dpsRegister(slot) {
  return limpet('--json', String(slot), 'dps-register', h.host, idScope, '--ca-file', h.caPath);
}

// RFC 4648 base32, lower case, unpadded: the registration id of an EK (computed here independently).
function registrationIdOf(ekB64) {
  const digest = crypto.createHash('sha256').update(Buffer.from(ekB64, 'base64')).digest();
  const abc = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = '';
  for (const b of digest) bits += b.toString(2).padStart(8, '0');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += abc[parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)];
  return out;
}

// Another TPM's EK, as far as the hub can tell: the swtpm's EK with one modulus byte changed.
function otherEk() {
  const b = Buffer.from(tpm.ek, 'base64');
  b[b.length - 7] ^= 0x5a;
  return b.toString('base64');
}

function enroll(registrationId, ek, extra = {}) {
  return svc.createOrUpdateIndividualEnrollment({
    registrationId, attestation: { type: 'tpm', tpm: { endorsementKey: ek } }, ...extra,
  });
}

// A raw DPS register over HTTPS, as azure-iot-provisioning-device-http sends it.
function rawRegister(regId, tpmSection, auth = null) {
  return h.rest('PUT', `/${idScope}/registrations/${encodeURIComponent(regId)}/register?${DPS_API}`,
    { body: { registrationId: regId, tpm: tpmSection }, auth });
}

function dpsSas(regId, keyB64, expiry = h.nowSec() + 600) {
  const sr = encodeURIComponent(`${idScope}/registrations/${regId}`);
  const sig = crypto.createHmac('sha256', Buffer.from(keyB64, 'base64')).update(`${sr}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiry}&skn=registration`;
}

before(async () => {
  swtpm = await startSwtpm();
  tcti = swtpm.tcti;
  await h.startHub();
  idScope = fs.readFileSync(path.join(h.dataDir, 'idscope'), 'utf8').trim();
  svc = ProvisioningServiceClient.fromConnectionString(fs.readFileSync(path.join(h.dataDir, 'dps.connstr'), 'utf8').trim());
  reg = h.registry();
  const info = JSON.parse(limpet('enrollment-info', '--format', 'json').stdout)[0];
  tpm = { registrationId: info.registrationId, ek: info.attestation.tpm.endorsementKey, srk: info.attestation.tpm.storageRootKey };
  assert.equal(tpm.registrationId, registrationIdOf(tpm.ek));
});

after(async () => {
  await h.stopAll();
  if (swtpm) swtpm.stop();
});

test('limpet registers by TPM attestation; the device connects with TPM-signed SAS tokens', async () => {
  const deviceId = h.uid('tpm-dev');
  // Disabled first: the registration ends "disabled" and creates nothing.
  const { responseBody: e } = await enroll(tpm.registrationId, tpm.ek, {
    deviceId, provisioningStatus: 'disabled',
    initialTwin: { tags: { provisioned: 'tpm' }, properties: { desired: { telemetryLevel: 2 } } },
  });
  let r = dpsRegister(0);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /registration disabled: the enrollment is disabled/);
  assert.equal(await h.deviceExists(deviceId), false);

  e.provisioningStatus = 'enabled';
  await svc.createOrUpdateIndividualEnrollment(e);
  r = dpsRegister(0);
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.deepEqual(res, { slot: 0, registrationId: tpm.registrationId, status: 'assigned', assignedHub: h.host, deviceId });
  assert.equal(limpet('0', 'uri').stdout.trim(), `${h.host}/${deviceId}`);

  // The registry holds a SAS device whose key only the TPM has: the TPM's signature checks out.
  const { responseBody: d } = await reg.get(deviceId);
  assert.equal(d.authentication.type, 'sas');
  const key = d.authentication.symmetricKey.primaryKey;
  assert.equal(Buffer.from(key, 'base64').length, 32);
  const sas = limpetJson('0', 'sas', '--expiry', '600');
  const sr = /sr=([^&]+)/.exec(sas.token)[1];
  const mac = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${sas.expiry}`).digest('base64');
  assert.equal(decodeURIComponent(/sig=([^&]+)/.exec(sas.token)[1]), mac);

  // The device connects with that token, gets its initial twin and reports a property.
  const client = DeviceClient.fromSharedAccessSignature(sas.token, DeviceMqtt);
  h.track(() => client.close());
  await h.withTimeout(client.open(), 10000, 'device open with a TPM-signed SAS');
  const twin = await h.withTimeout(client.getTwin(), 10000, 'twin');
  assert.equal(twin.properties.desired.telemetryLevel, 2);
  await h.reportedUpdate(twin, { attestedBy: 'tpm' });
  await client.close();
  const { responseBody: t } = await reg.getTwin(deviceId);
  assert.equal(t.properties.reported.attestedBy, 'tpm');
  assert.deepEqual(t.tags, { provisioned: 'tpm' });

  // The registration record; the blob that carried the key is not kept in it.
  const { responseBody: rec } = await svc.getDeviceRegistrationState(tpm.registrationId);
  assert.equal(rec.deviceId, deviceId);
  assert.equal(rec.status, 'assigned');
  assert.equal(rec.tpm, undefined);

  // Re-registration: the same device gets a new key, the twin is kept.
  r = dpsRegister(0);
  assert.equal(r.status, 0, r.stderr);
  const { responseBody: d2 } = await reg.get(deviceId);
  assert.notEqual(d2.authentication.symmetricKey.primaryKey, key);
  const { responseBody: rec2 } = await svc.getDeviceRegistrationState(tpm.registrationId);
  assert.equal(rec2.substatus, 'deviceDataMigrated');
  const again = DeviceClient.fromSharedAccessSignature(limpetJson('0', 'sas').token, DeviceMqtt);
  h.track(() => again.close());
  await h.withTimeout(again.open(), 10000, 'device open after re-registration');
  await again.close();
});

test('the challenge: exactly 401 with an activation blob; a wrong signature is refused', async () => {
  const challenge = await rawRegister(tpm.registrationId, { endorsementKey: tpm.ek, storageRootKey: tpm.srk });
  assert.equal(challenge.status, 401, challenge.text);
  assert.equal(challenge.json.message, 'Authorization required, resend request using supplied key');
  assert.equal(challenge.json.keyName, 'registration');
  const blob = Buffer.from(challenge.json.authenticationKey, 'base64');
  // TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET (RSA-2048), TPM2B_PRIVATE, TPM2B_ENCRYPTED_SECRET,
  // TPM2B_PUBLIC, TPM2B_DATA (empty): six size-prefixed parts and nothing else.
  const sizes = [];
  for (let off = 0; off < blob.length; off += 2 + sizes[sizes.length - 1]) sizes.push(blob.readUInt16BE(off));
  assert.equal(sizes.length, 6);
  assert.deepEqual([sizes[1], sizes[3], sizes[5]], [256, 256, 0]);

  const forged = await rawRegister(tpm.registrationId, { endorsementKey: tpm.ek, storageRootKey: tpm.srk },
    dpsSas(tpm.registrationId, crypto.randomBytes(32).toString('base64')));
  assert.equal(forged.status, 401);
  assert.equal(forged.json.errorCode, 401002);
  assert.match(forged.json.message, /not signed with the key of the TPM challenge/);
  assert.equal(forged.json.authenticationKey, undefined);
});

test('refusals: registration id not from the EK, another EK, no challenge, unknown id', async () => {
  const keys = { endorsementKey: tpm.ek, storageRootKey: tpm.srk };
  const custom = h.uid('tpm-custom');
  await enroll(custom, tpm.ek, { deviceId: custom });
  let r = await rawRegister(custom, keys);
  assert.equal(r.status, 401);
  assert.match(r.json.message, new RegExp(`registration id '${custom}' is not the one the endorsement key gives \\('${tpm.registrationId}'`));

  // An enrollment naming another TPM's EK: the swtpm's EK does not match it.
  const other = otherEk();
  const otherId = registrationIdOf(other);
  await enroll(otherId, tpm.ek);
  r = await rawRegister(otherId, { endorsementKey: other, storageRootKey: tpm.srk });
  assert.equal(r.status, 401);
  assert.match(r.json.message, /the endorsement key does not match the TPM enrollment/);

  // A signed register with no challenge before it.
  r = await rawRegister(custom, undefined, dpsSas(custom, crypto.randomBytes(32).toString('base64')));
  assert.equal(r.status, 401);
  assert.match(r.json.message, /no TPM challenge is pending/);

  // No enrollment at all for the id the EK gives.
  await svc.deleteIndividualEnrollment(otherId);
  r = await rawRegister(otherId, { endorsementKey: other, storageRootKey: tpm.srk });
  assert.equal(r.status, 401);
  assert.match(r.json.message, /no TPM enrollment for registration id/);

  // Missing SRK, or an EK that is not base64 of a TPM2B_PUBLIC: 400.
  r = await rawRegister(tpm.registrationId, { endorsementKey: tpm.ek });
  assert.equal(r.status, 400);
  assert.match(r.json.message, /tpm.storageRootKey is required/);
  r = await rawRegister(tpm.registrationId, { endorsementKey: '%%%', storageRootKey: tpm.srk });
  assert.equal(r.status, 400);

  for (const id of [custom, otherId]) assert.equal(await h.deviceExists(id), false);
  await assert.rejects(svc.getDeviceRegistrationState(custom), (x) => x.response.statusCode === 404);
});

// The swtpm's EK with one thing changed: its attributes, its type, or cut short.
function alteredEk(change) {
  const b = Buffer.from(tpm.ek, 'base64');
  change(b);
  return b.toString('base64');
}

test('a TPM enrollment is refused when its EK or SRK is no usable key: 400 with the reason, nothing stored', async () => {
  const bad = [
    ['endorsementKey', '%%%', /attestation\.tpm\.endorsementKey must be base64 of the endorsement key's TPM2B_PUBLIC/],
    ['endorsementKey', crypto.randomBytes(314).toString('base64'), /endorsementKey is not usable as the endorsement key: /],
    ['endorsementKey', Buffer.from(tpm.ek, 'base64').subarray(0, 100).toString('base64'), /not a marshaled TPM2B_PUBLIC/],
    // TPMA_OBJECT sign set: a signing key cannot protect a credential.
    ['endorsementKey', alteredEk((b) => { b[7] |= 0x04; }), /not a restricted decryption key/],
    ['endorsementKey', alteredEk((b) => { b.writeUInt16BE(0x0023, 2); }), /only RSA keys are supported/],
    ['endorsementKey', crypto.randomBytes(1100).toString('base64'), /larger than 1024 bytes/],
    ['storageRootKey', crypto.randomBytes(80).toString('base64'), /storageRootKey is not usable as the storage root key/],
    ['storageRootKey', 'not base64!', /storageRootKey must be base64/],
  ];
  for (const [field, value, why] of bad) {
    const id = h.uid('tpm-bad');
    const section = { endorsementKey: tpm.ek, storageRootKey: tpm.srk, [field]: value };
    const e = await h.rejects(svc.createOrUpdateIndividualEnrollment({ registrationId: id, attestation: { type: 'tpm', tpm: section } }), 10000, `${field} ${why}`);
    assert.equal(e.response.statusCode, 400, String(why));
    const body = JSON.parse(e.responseBody);
    assert.equal(body.errorCode, 400004);
    assert.match(body.message, why);
    await assert.rejects(svc.getIndividualEnrollment(id), (x) => x.response.statusCode === 404);
  }
  // An update with a bad EK leaves the stored enrollment as it was.
  const id = h.uid('tpm-upd');
  const { responseBody: stored } = await enroll(id, tpm.ek);
  const e = await h.rejects(svc.createOrUpdateIndividualEnrollment({ ...stored, attestation: { type: 'tpm', tpm: { endorsementKey: alteredEk((b) => { b[7] |= 0x04; }) } } }), 10000, 'update');
  assert.equal(e.response.statusCode, 400);
  const { responseBody: after } = await svc.getIndividualEnrollment(id);
  assert.equal(after.attestation.tpm.endorsementKey, tpm.ek);
  assert.equal(after.etag, stored.etag);

  // A real EK and SRK are stored as given; the SRK may be left out. Any registration id is
  // accepted here, as Azure does: only registration insists on the one the EK gives (above).
  const { responseBody: ok } = await svc.createOrUpdateIndividualEnrollment({
    registrationId: id, attestation: { type: 'tpm', tpm: { endorsementKey: tpm.ek, storageRootKey: tpm.srk } },
  });
  assert.equal(ok.attestation.tpm.storageRootKey, tpm.srk);
  await svc.deleteIndividualEnrollment(id);
});

test('TPM attestation over MQTT is refused with a clear error', async () => {
  const c = await h.rawConnect({
    clientId: tpm.registrationId, clean: true,
    username: `${idScope}/registrations/${tpm.registrationId}/${DPS_API}`,
  });
  await new Promise((resolve, reject) => c.client.subscribe('$dps/registrations/res/#', { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  c.client.publish('$dps/registrations/PUT/iotdps-register/?$rid=7', JSON.stringify({
    registrationId: tpm.registrationId, tpm: { endorsementKey: tpm.ek, storageRootKey: tpm.srk },
  }), { qos: 1 });
  const m = await c.waitMessage((x) => x.topic.startsWith('$dps/registrations/res/'), 10000, 'DPS response');
  assert.equal(m.topic, '$dps/registrations/res/400/?$rid=7');
  assert.match(JSON.parse(m.payload.toString()).message, /TPM attestation is not supported over MQTT/);
  c.client.end(true);
});
