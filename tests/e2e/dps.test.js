'use strict';
// DPS in iotdm-hub: Microsoft's provisioning SDKs (device over MQTT and HTTPS, service) against the
// hub (docs/protocol.md §7, §10.3): symmetric keys (individual, group), X.509, enrollment CRUD, and
// the refusals (wrong key, unknown registration id, disabled enrollment, ids and device ids
// breaking the rules) that must create nothing.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt: DpsMqtt } = require('azure-iot-provisioning-device-mqtt');
const { Http: DpsHttp } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt: DeviceMqtt } = require('azure-iot-device-mqtt');

let idScope;
let svc;
let svcAuth; // Authorization for raw calls to the DPS service API (provisioningserviceowner)
let reg;

before(async () => {
  await h.startHub();
  idScope = fs.readFileSync(path.join(h.dataDir, 'idscope'), 'utf8').trim();
  const connStr = fs.readFileSync(path.join(h.dataDir, 'dps.connstr'), 'utf8').trim();
  svc = ProvisioningServiceClient.fromConnectionString(connStr);
  const cs = Object.fromEntries(connStr.split(';').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  svcAuth = h.serviceAuth(cs.SharedAccessKeyName, cs.SharedAccessKey);
  reg = h.registry();
});

// DPS's error body (docs/protocol.md §7.5, §7.11), not IoT Hub's {"Message":"ErrorCode:…"}.
function assertDpsError(text, status, messagePattern) {
  const j = JSON.parse(text);
  assert.deepEqual(Object.keys(j).sort(), ['errorCode', 'message', 'timestampUtc', 'trackingId'], text);
  assert.equal(Math.floor(j.errorCode / 1000), status, text);
  assert.ok(j.trackingId && !Number.isNaN(Date.parse(j.timestampUtc)), text);
  assert.match(j.message, messagePattern);
  return j;
}
after(() => h.stopAll());

function transport(kind) {
  return kind === 'http' ? new DpsHttp() : new DpsMqtt();
}

function register(regId, key, kind = 'mqtt', payload) {
  const sec = new SymmetricKeySecurityClient(regId, key);
  const client = ProvisioningDeviceClient.create(h.host, idScope, transport(kind), sec);
  if (payload) client.setProvisioningPayload(payload);
  return h.withTimeout(client.register(), 20000, `registration of ${regId}`);
}

function deriveKey(groupKey, regId) {
  return crypto.createHmac('sha256', Buffer.from(groupKey, 'base64')).update(regId).digest('base64');
}

// The assigned device connects to the hub with the key DPS accepted and reads its twin.
async function connectAndGetTwin(hub, deviceId, key) {
  const cs = `HostName=${hub};DeviceId=${deviceId};SharedAccessKey=${key}`;
  const client = DeviceClient.fromConnectionString(cs, DeviceMqtt);
  h.track(() => client.close());
  await h.withTimeout(client.open(), 10000, 'device open');
  const twin = await h.withTimeout(client.getTwin(), 10000, 'twin');
  await client.close();
  return twin;
}

for (const kind of ['mqtt', 'http']) {
  test(`individual symmetric key over ${kind}: assigned, initial twin, payload, record`, async () => {
    const regId = h.uid(`sk-${kind}`);
    const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({
      registrationId: regId,
      attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: '', secondaryKey: '' } },
      initialTwin: { tags: { site: 'lab' }, properties: { desired: { telemetryLevel: 3 } } },
    });
    const key = e.attestation.symmetricKey.primaryKey;
    assert.ok(Buffer.from(key, 'base64').length >= 16, 'a key was generated');
    assert.equal(e.provisioningStatus, 'enabled');
    assert.ok(e.etag);

    const res = await register(regId, key, kind, { modelId: 'dtmi:iotdm:dm;1' });
    assert.equal(res.assignedHub, h.host);
    assert.equal(res.deviceId, regId);
    assert.equal(res.status, 'assigned');
    assert.equal(res.substatus, 'initialAssignment');
    assert.deepEqual(res.payload, { modelId: 'dtmi:iotdm:dm;1' });

    const { responseBody: d } = await reg.get(regId);
    assert.equal(d.authentication.symmetricKey.primaryKey, key);
    const twin = await connectAndGetTwin(res.assignedHub, res.deviceId, key);
    assert.equal(twin.properties.desired.telemetryLevel, 3);
    const { responseBody: t } = await reg.getTwin(regId);
    assert.deepEqual(t.tags, { site: 'lab' });

    const { responseBody: rec } = await svc.getDeviceRegistrationState(regId);
    assert.equal(rec.deviceId, regId);
    assert.equal(rec.status, 'assigned');

    // Re-provisioning a known device: same device, twin kept.
    const again = await register(regId, e.attestation.symmetricKey.secondaryKey, kind);
    assert.equal(again.deviceId, regId);
    assert.equal(again.substatus, 'deviceDataMigrated');
  });

  test(`group symmetric key over ${kind}: derived keys, one device per registration id`, async () => {
    const groupId = h.uid(`grp-${kind}`);
    const { responseBody: g } = await svc.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: groupId,
      attestation: { type: 'symmetricKey', symmetricKey: {} },
      initialTwin: { properties: { desired: { fromGroup: true } } },
    });
    const gk = g.attestation.symmetricKey.primaryKey;
    const ids = [h.uid('gdev'), h.uid('gdev')];
    for (const id of ids) {
      const res = await register(id, deriveKey(gk, id), kind);
      assert.equal(res.deviceId, id);
      assert.equal(res.assignedHub, h.host);
      const twin = await connectAndGetTwin(res.assignedHub, id, deriveKey(gk, id));
      assert.equal(twin.properties.desired.fromGroup, true);
    }
    const q = svc.createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, groupId);
    const { responseBody: result } = await q.next();
    assert.deepEqual(result.map((r) => r.registrationId).sort(), ids.slice().sort());
  });
}

// Over HTTPS the hub's listener asks for (but does not require) a client certificate.
for (const kind of ['mqtt', 'http']) {
  test(`X.509 individual enrollment over ${kind}: the device connects with its certificate`, async () => {
    const regId = h.uid(`x509-${kind}`);
    const c = h.selfSignedCert(regId);
    await svc.createOrUpdateIndividualEnrollment({
      registrationId: regId,
      attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: c.cert } } } },
    });
    const { responseBody: e } = await svc.getIndividualEnrollment(regId);
    const info = e.attestation.x509.clientCertificates.primary.info;
    assert.equal(info.sha1Thumbprint.toUpperCase(), c.thumbprint);
    assert.equal(e.attestation.x509.clientCertificates.primary.certificate, undefined);

    const sec = new X509Security(regId, { cert: c.cert, key: c.key });
    const client = ProvisioningDeviceClient.create(h.host, idScope, transport(kind), sec);
    const res = await h.withTimeout(client.register(), 20000, 'x509 registration');
    assert.equal(res.deviceId, regId);
    assert.ok(res.x509, 'x509 section in the registration state');

    const dev = DeviceClient.fromConnectionString(`HostName=${res.assignedHub};DeviceId=${regId};x509=true`, DeviceMqtt);
    dev.setOptions({ cert: c.cert, key: c.key });
    h.track(() => dev.close());
    await h.withTimeout(dev.open(), 10000, 'x509 device open');
    await dev.close();
  });

  test(`X.509 group over ${kind}: a device certificate signed by the group CA is accepted`, async () => {
    const dir = fs.mkdtempSync(path.join(h.root, 'ca-'));
    const run = (args) => require('node:child_process').execFileSync('openssl', args, { stdio: 'pipe', cwd: dir });
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=group-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
    const regId = h.uid(`x509g-${kind}`);
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', 'dev.key', '-out', 'dev.csr', '-subj', `/CN=${regId}`]);
    run(['x509', '-req', '-in', 'dev.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', 'dev.pem', '-days', '2']);
    const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');
    const groupId = h.uid(`x509grp-${kind}`);
    await svc.createOrUpdateEnrollmentGroup({
      enrollmentGroupId: groupId,
      attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: read('ca.pem') } } } },
    });
    const sec = new X509Security(regId, { cert: read('dev.pem'), key: read('dev.key') });
    const client = ProvisioningDeviceClient.create(h.host, idScope, transport(kind), sec);
    const res = await h.withTimeout(client.register(), 20000, 'x509 group registration');
    assert.equal(res.deviceId, regId);
    assert.equal(res.x509.enrollmentGroupId, groupId);
    assert.ok(await h.deviceExists(regId));
  });
}

test('enrollment service API: create, read, query with paging, etag, delete', async () => {
  const ids = [h.uid('svc'), h.uid('svc'), h.uid('svc')];
  for (const id of ids) {
    await svc.createOrUpdateIndividualEnrollment({
      registrationId: id, deviceId: `${id}-dev`,
      attestation: { type: 'symmetricKey', symmetricKey: {} },
    });
  }
  const { responseBody: got } = await svc.getIndividualEnrollment(ids[0]);
  assert.equal(got.registrationId, ids[0]);
  assert.equal(got.deviceId, `${ids[0]}-dev`);
  assert.equal(got.iotHubHostName, h.host);

  // Update with the etag, then a stale etag is refused.
  got.provisioningStatus = 'disabled';
  const { responseBody: upd } = await svc.createOrUpdateIndividualEnrollment(got);
  assert.equal(upd.provisioningStatus, 'disabled');
  assert.notEqual(upd.etag, got.etag);
  await assert.rejects(svc.deleteIndividualEnrollment(ids[0], got.etag), (e) => e.response.statusCode === 412);

  const q = svc.createIndividualEnrollmentQuery({ query: '*' }, 2);
  const seen = [];
  do {
    // next() without an argument would start over: the SDK only keeps the token for callers.
    const { responseBody: result } = await q.next(q.continuationToken);
    assert.ok(result.length <= 2);
    seen.push(...result.map((r) => r.registrationId));
  } while (q.hasMoreResults);
  for (const id of ids) assert.ok(seen.includes(id), `${id} in the query`);

  const { responseBody: att } = await svc.getIndividualEnrollmentAttestationMechanism(ids[1]);
  assert.equal(att.type, 'symmetricKey');

  await svc.deleteIndividualEnrollment(ids[0], upd.etag);
  await svc.deleteIndividualEnrollment(ids[1]);
  await assert.rejects(svc.getIndividualEnrollment(ids[0]), (e) => e.response.statusCode === 404);

  // Another policy cannot touch enrollments.
  const owner = ProvisioningServiceClient.fromConnectionString(h.ownerConnStr);
  await assert.rejects(owner.getIndividualEnrollment(ids[2]), (e) => e.response.statusCode === 401);
});

test('refusals: wrong key, unknown registration id, disabled enrollment create nothing', async () => {
  const regId = h.uid('neg');
  const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({
    registrationId: regId, attestation: { type: 'symmetricKey', symmetricKey: {} },
  });
  const wrong = crypto.randomBytes(32).toString('base64');
  for (const kind of ['mqtt', 'http']) {
    const err = await h.rejects(register(regId, wrong, kind), 20000, 'wrong key');
    assert.match(JSON.stringify(err.result) + err.message, /credentials do not match/);
    const unknown = h.uid('nobody');
    const err2 = await h.rejects(register(unknown, wrong, kind), 20000, 'unknown id');
    assert.match(JSON.stringify(err2.result) + err2.message, /no enrollment for registration id/);
    assert.equal(await h.deviceExists(unknown), false);
  }
  assert.equal(await h.deviceExists(regId), false);

  e.provisioningStatus = 'disabled';
  await svc.createOrUpdateIndividualEnrollment(e);
  const err3 = await h.rejects(register(regId, e.attestation.symmetricKey.primaryKey), 20000, 'disabled');
  assert.match(err3.message, /status is disabled/);
  assert.equal(err3.result.registrationState.errorMessage, 'the enrollment is disabled');
  assert.equal(await h.deviceExists(regId), false);
  await assert.rejects(svc.getDeviceRegistrationState(regId), (x) => x.response.statusCode === 404);
});

test('GET /iotdm/dps names the ID scope and the global endpoint (provisioningserviceowner only)', async () => {
  const r = await h.rest('GET', '/iotdm/dps?api-version=2021-10-01', { auth: svcAuth });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { idScope, globalEndpoint: h.host });

  // The enrollment-read right is needed: iothubowner has none, as for the enrollment API.
  const owner = await h.rest('GET', '/iotdm/dps?api-version=2021-10-01');
  assert.equal(owner.status, 401);
  assertDpsError(owner.text, 401, /lacks the permission/);
  assert.equal(owner.headers['iothub-errorcode'], undefined);
  const none = await h.rest('GET', '/iotdm/dps/other', { auth: svcAuth });
  assert.equal(none.status, 404);
  assertDpsError(none.text, 404, /no such provisioning service operation/);
});

test('an X.509 enrollment or group read back (certificates as info only) and PUT with a change keeps its certificates', async () => {
  const regId = h.uid('x509-upd');
  const c = h.selfSignedCert(regId);
  await svc.createOrUpdateIndividualEnrollment({
    registrationId: regId,
    attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: c.cert } } } },
  });
  const { responseBody: e } = await svc.getIndividualEnrollment(regId);
  const before = e.attestation.x509.clientCertificates.primary.info;
  assert.equal(e.attestation.x509.clientCertificates.primary.certificate, undefined);

  // As `az iot dps enrollment update` does: the enrollment as read back, one field changed.
  e.provisioningStatus = 'disabled';
  const { responseBody: upd } = await svc.createOrUpdateIndividualEnrollment(e);
  assert.equal(upd.provisioningStatus, 'disabled');
  assert.deepEqual(upd.attestation.x509.clientCertificates.primary.info, before);
  const registerX509 = () => ProvisioningDeviceClient.create(h.host, idScope, new DpsHttp(),
    new X509Security(regId, { cert: c.cert, key: c.key })).register();
  const disabled = await h.rejects(registerX509(), 20000, 'disabled x509 registration');
  assert.equal(disabled.result.registrationState.errorMessage, 'the enrollment is disabled');

  upd.provisioningStatus = 'enabled';
  const { responseBody: again } = await svc.createOrUpdateIndividualEnrollment(upd);
  assert.equal(again.attestation.x509.clientCertificates.primary.info.sha256Thumbprint, before.sha256Thumbprint);
  const res = await h.withTimeout(registerX509(), 20000, 'x509 registration after the update');
  assert.equal(res.deviceId, regId);
  const { responseBody: d } = await reg.get(regId);
  assert.equal(d.authentication.x509Thumbprint.primaryThumbprint.toLowerCase(), before.sha256Thumbprint.toLowerCase());

  // A group the same way.
  const groupId = h.uid('x509-grp-upd');
  const ca = h.selfSignedCert('upd-ca');
  await svc.createOrUpdateEnrollmentGroup({
    enrollmentGroupId: groupId,
    attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: ca.cert } } } },
  });
  const { responseBody: g } = await svc.getEnrollmentGroup(groupId);
  g.initialTwin = { tags: { updated: true } };
  const { responseBody: gu } = await svc.createOrUpdateEnrollmentGroup(g);
  assert.deepEqual(gu.initialTwin.tags, { updated: true });
  assert.deepEqual(gu.attestation.x509.signingCertificates.primary.info, g.attestation.x509.signingCertificates.primary.info);

  // A create has no stored certificate to keep: info alone is refused, and nothing is stored.
  const other = h.uid('x509-new');
  const err = await h.rejects(svc.createOrUpdateIndividualEnrollment({
    registrationId: other,
    attestation: { type: 'x509', x509: { clientCertificates: { primary: { info: before } } } },
  }), 10000, 'create with info only');
  assert.equal(err.response.statusCode, 400);
  assert.equal(err.constructor.name, 'ArgumentError');
  assert.match(err.message, /clientCertificates\.primary\.certificate is required/);
  assertDpsError(err.responseBody, 400, /clientCertificates\.primary\.certificate is required/);
  await assert.rejects(svc.getIndividualEnrollment(other), (x) => x.response.statusCode === 404);
});

test('registration and group ids are checked (§7.1): 400 with the reason, nothing stored', async () => {
  const sym = { type: 'symmetricKey', symmetricKey: {} };
  const cases = [
    ['BAD ID', /not spaces/],
    ['a'.repeat(129), /129 characters long; at most 128/],
    ['trailing.', /must end with a letter, a digit or '-'/],
    ['semi;colon', /not ';'/],
    ['x/y', /not '\/'/],
  ];
  for (const [id, why] of cases) {
    const e = await h.rejects(svc.createOrUpdateIndividualEnrollment({ registrationId: id, attestation: sym }), 10000, id);
    assert.equal(e.response.statusCode, 400, id);
    assertDpsError(e.responseBody, 400, why);
    assert.match(JSON.parse(e.responseBody).message, /^the registration id /);
    const g = await h.rejects(svc.createOrUpdateEnrollmentGroup({ enrollmentGroupId: id, attestation: sym }), 10000, id);
    assert.equal(g.response.statusCode, 400, id);
    assertDpsError(g.responseBody, 400, why);
    assert.match(JSON.parse(g.responseBody).message, /^the enrollment group id /);
  }
  // Every allowed character, and the longest id.
  for (const id of ['Az09-._:x', 'dev-', 'b'.repeat(128)]) {
    const { responseBody: ok } = await svc.createOrUpdateIndividualEnrollment({ registrationId: id, attestation: sym });
    assert.equal(ok.registrationId, id);
    await svc.deleteIndividualEnrollment(id);
  }
  // The body's id must be the path's, case aside.
  const id = h.uid('case');
  const put = (body) => h.rest('PUT', `/enrollments/${id}?api-version=2021-10-01`, { auth: svcAuth, body });
  const mismatch = await put({ registrationId: `${id}-other`, attestation: sym });
  assert.equal(mismatch.status, 400);
  assertDpsError(mismatch.text, 400, /registrationId in the body must match the one in the path/);
  assert.equal((await put({ registrationId: id.toUpperCase(), attestation: sym })).status, 200);

  const { responseBody: all } = await svc.createIndividualEnrollmentQuery({ query: '*' }, 1000).next();
  const { responseBody: groups } = await svc.createEnrollmentGroupQuery({ query: '*' }, 1000).next();
  for (const [bad] of cases) {
    assert.ok(!all.some((x) => x.registrationId === bad), `${bad} was not stored`);
    assert.ok(!groups.some((x) => x.enrollmentGroupId === bad), `${bad} was not stored`);
  }
});

function dpsSas(regId, keyB64, expiry = h.nowSec() + 600) {
  const sr = encodeURIComponent(`${idScope}/registrations/${regId}`);
  const sig = crypto.createHmac('sha256', Buffer.from(keyB64, 'base64')).update(`${sr}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiry}&skn=registration`;
}

async function deviceIds() {
  const { responseBody: list } = await reg.list();
  return new Set(list.map((d) => d.deviceId));
}

test('the register API applies the registration id rule (§7.1) over MQTT and HTTPS: 400, nothing created', async () => {
  // A symmetric-key group takes any registration id whose SAS is signed with the key derived for
  // it: without the rule, each of these would become a device (the group's device id is the
  // registration id).
  const groupId = h.uid('grp-ids');
  const { responseBody: g } = await svc.createOrUpdateEnrollmentGroup({
    enrollmentGroupId: groupId, attestation: { type: 'symmetricKey', symmetricKey: {} },
  });
  const gk = g.attestation.symmetricKey.primaryKey;
  const cases = [
    [`bad id ${h.uid('x')}`, /not spaces/],
    [`${h.uid('trailing')}.`, /must end with a letter, a digit or '-', not '\.'/],
    [`${h.uid('semi')};colon`, /not ';'/],
    [`${h.uid('plus')}+sign`, /not '\+'/],
  ];
  // Microsoft's device SDKs, both transports. (The HTTP one puts the id into the URL unescaped,
  // and Node refuses a space there before anything is sent: raw requests below cover it.)
  for (const kind of ['mqtt', 'http']) {
    for (const [id, why] of cases.filter(([x]) => kind === 'mqtt' || !x.includes(' '))) {
      const err = await h.rejects(register(id, deriveKey(gk, id), kind), 20000, `${kind} register of '${id}'`);
      assert.match(`${err.message} ${JSON.stringify(err.result)} ${JSON.stringify(err.responseBody)}`, why, `${kind} '${id}'`);
    }
  }
  // Raw HTTPS: DPS's error body, also for what a URL can carry but the SDKs would not send.
  const raw = [...cases, [`${'a'.repeat(129)}`, /129 characters long; at most 128/], [`x/${h.uid('y')}`, /not '\/'/]];
  for (const [id, why] of raw) {
    const r = await h.rest('PUT', `/${idScope}/registrations/${encodeURIComponent(id)}/register?api-version=2019-03-31`,
      { auth: dpsSas(id, deriveKey(gk, id)), body: { registrationId: id } });
    assert.equal(r.status, 400, `${id}: ${r.text}`);
    const j = assertDpsError(r.text, 400, why);
    assert.equal(j.errorCode, 400004);
    assert.match(j.message, /^the registration id /);
  }
  // Raw MQTT: the response topic carries 400 and the same body.
  const [id0, why0] = cases[0];
  const c = await h.rawConnect({
    clientId: id0, clean: true, username: `${idScope}/registrations/${id0}/api-version=2019-03-31`,
    password: dpsSas(id0, deriveKey(gk, id0)),
  });
  await new Promise((resolve, reject) => c.client.subscribe('$dps/registrations/res/#', { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  c.client.publish('$dps/registrations/PUT/iotdps-register/?$rid=9', JSON.stringify({ registrationId: id0 }), { qos: 1 });
  const m = await c.waitMessage((x) => x.topic.startsWith('$dps/registrations/res/'), 10000, 'DPS response');
  assert.equal(m.topic, '$dps/registrations/res/400/?$rid=9');
  assertDpsError(m.payload.toString(), 400, why0);
  c.client.end(true);
  // Over MQTT an id longer than 128 characters cannot name a session: CONNECT is refused.
  const long = 'a'.repeat(129);
  const refused = await h.rejects(h.rawConnect({
    clientId: long, clean: true, username: `${idScope}/registrations/${long}/api-version=2019-03-31`,
  }), 15000, 'CONNECT with a 129-character registration id');
  assert.equal(refused.returnCode, 4);

  // Nothing was created: no device, no registration record.
  const devices = await deviceIds();
  for (const [id] of raw) {
    assert.ok(!devices.has(id), `no device '${id}'`);
    await assert.rejects(svc.getDeviceRegistrationState(id), (x) => x.response.statusCode === 404, id);
  }
  const { responseBody: recs } = await svc.createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, groupId).next();
  assert.deepEqual(recs, []);
  // The group itself works: a valid id registers.
  const ok = h.uid('gdev-ok');
  const res = await register(ok, deriveKey(gk, ok), 'http');
  assert.equal(res.deviceId, ok);
});

test("an enrollment's deviceId follows IoT Hub's device id rule (§6.3): 400, nothing stored", async () => {
  const sym = { type: 'symmetricKey', symmetricKey: {} };
  const cases = [
    ['bad id', /^the device id may contain only ASCII letters, digits and - \. % _ \* \? ! \( \) , : = @ \$ ', not spaces$/],
    ['a+b', /not '\+'/],
    ['a#b', /not '#'/],
    ['a/b', /not '\/'/],
    ['caf\u00e9', /not byte 0xc3/],
    ['d'.repeat(129), /the device id is 129 characters long; at most 128 are allowed/],
    [42, /deviceId must be a string/],
  ];
  for (const [deviceId, why] of cases) {
    const id = h.uid('devid');
    const e = await h.rejects(svc.createOrUpdateIndividualEnrollment({ registrationId: id, deviceId, attestation: sym }), 10000, String(deviceId));
    assert.equal(e.response.statusCode, 400, String(deviceId));
    assert.equal(e.constructor.name, 'ArgumentError');
    assertDpsError(e.responseBody, 400, why);
    await assert.rejects(svc.getIndividualEnrollment(id), (x) => x.response.statusCode === 404);
  }
  // An update is refused the same way and leaves the stored enrollment as it was.
  const id = h.uid('devid-upd');
  const { responseBody: stored } = await svc.createOrUpdateIndividualEnrollment({ registrationId: id, deviceId: `${id}-dev`, attestation: sym });
  const e = await h.rejects(svc.createOrUpdateIndividualEnrollment({ ...stored, deviceId: 'bad id' }), 10000, 'update');
  assert.equal(e.response.statusCode, 400);
  const { responseBody: after } = await svc.getIndividualEnrollment(id);
  assert.equal(after.deviceId, `${id}-dev`);
  assert.equal(after.etag, stored.etag);

  // Every character the rule allows: stored, and the device registers under that very id.
  const special = `${h.uid('dev')}-._%*?!(),:=@$'`;
  const regId = h.uid('devid-ok');
  const { responseBody: okEnr } = await svc.createOrUpdateIndividualEnrollment({ registrationId: regId, deviceId: special, attestation: sym });
  assert.equal(okEnr.deviceId, special);
  const res = await register(regId, okEnr.attestation.symmetricKey.primaryKey, 'http');
  assert.equal(res.deviceId, special);
  const { responseBody: d } = await reg.get(special);
  assert.equal(d.deviceId, special);
});

test('HTTPS asks for a client certificate naming only an authority that issues none (no browser prompt)', () => {
  // Browsers offer only certificates from the authorities a server names; devices send theirs
  // anyway (the X.509-over-HTTP tests above register with one).
  const r = require('node:child_process').spawnSync('openssl',
    ['s_client', '-connect', `${h.addr}:443`, '-servername', h.host, '-CAfile', h.caPath],
    { input: '', encoding: 'utf8', timeout: 10000 });
  const names = /Acceptable client certificate CA names\n([\s\S]*?)\n(Requested|Client Certificate Types|---)/.exec(r.stdout);
  assert.ok(names, `no certificate request in:\n${r.stdout.slice(0, 2000)}`);
  assert.deepEqual(names[1].trim().split('\n'), ['CN = iotdm-hub devices (certificates are matched by thumbprint)']);
});
