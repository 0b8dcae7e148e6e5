'use strict';
// `iotdm dps …` end to end: enrollments and enrollment groups made with the CLI (logged in with
// DATA/dps.connstr), devices registered with Microsoft's provisioning device SDK over MQTT, the
// registration records, deletion and the exit codes.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt: DpsMqtt } = require('azure-iot-provisioning-device-mqtt');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { runCli } = require('./lib/cli');

let idScope;
let dpsConnPath;
let home;
let reg;

before(async () => {
  await h.startHub();
  idScope = fs.readFileSync(path.join(h.dataDir, 'idscope'), 'utf8').trim();
  dpsConnPath = path.join(h.dataDir, 'dps.connstr');
  reg = h.registry();
  home = fs.mkdtempSync(path.join(h.root, 'home-dps-'));
});
after(() => h.stopAll());

// iotdm --ca <hub CA> --login-file DATA/dps.connstr ...args, with no other login source.
function iotdm(args, { login = true } = {}) {
  const env = {
    IOTDM_CONNECTION_STRING: undefined, IOTDM_CA: undefined, IOTDM_MODELS_DIR: undefined,
    HOME: home, XDG_CONFIG_HOME: undefined,
  };
  const pre = login ? ['--ca', h.caPath, '--login-file', dpsConnPath] : ['--ca', h.caPath];
  return runCli([...pre, ...args], { env });
}

function ok(r, what) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}, stderr: ${r.stderr}`);
  return r;
}

function register(regId, key) {
  const sec = new SymmetricKeySecurityClient(regId, key);
  const client = ProvisioningDeviceClient.create(h.host, idScope, new DpsMqtt(), sec);
  return h.withTimeout(client.register(), 20000, `registration of ${regId}`);
}

test('individual enrollment: create, list, show, register, registration show, delete', async () => {
  const regId = h.uid('cli-enr');
  const devId = h.uid('cli-enr-dev');
  const c = ok(await iotdm(['--json', 'dps', 'enrollment', 'create', '--registration-id', regId,
    '--device-id', devId, '--initial-tags', '{"site":"b1"}', '--initial-desired', '{"level":2}']),
  'enrollment create');
  assert.equal(c.json.registrationId, regId);
  assert.equal(c.json.deviceId, devId);
  assert.equal(c.json.attestation.type, 'symmetricKey');
  assert.equal(c.json.provisioningStatus, 'enabled');
  const key = c.json.attestation.symmetricKey.primaryKey;
  assert.ok(Buffer.from(key, 'base64').length >= 16, 'the hub generated a key');

  const list = ok(await iotdm(['dps', 'enrollment', 'list', '--json']), 'enrollment list --json');
  assert.ok(Array.isArray(list.json));
  assert.ok(list.json.some((e) => e.registrationId === regId));
  const table = ok(await iotdm(['dps', 'enrollment', 'list']), 'enrollment list');
  assert.match(table.lines[0], /^REGISTRATION ID\s+DEVICE ID\s+ATTESTATION\s+STATUS/);
  assert.ok(table.lines.some((l) => l.startsWith(regId) && /symmetricKey\s+enabled/.test(l)), table.stdout);

  const show = ok(await iotdm(['dps', 'enrollment', 'show', '--registration-id', regId, '--json']), 'show --json');
  assert.equal(show.json.attestation.symmetricKey.primaryKey, key);
  assert.equal(show.json.etag, c.json.etag);
  const showText = ok(await iotdm(['dps', 'enrollment', 'show', '--registration-id', regId]), 'show');
  assert.match(showText.stdout, new RegExp(`^Registration ID\\s+${regId}$`, 'm'));
  assert.match(showText.stdout, /^Attestation\s+symmetricKey$/m);
  assert.ok(!showText.stdout.includes(key), 'keys only with --json');

  const res = await register(regId, key);
  assert.equal(res.status, 'assigned');
  assert.equal(res.deviceId, devId);
  assert.equal(res.assignedHub, h.host);
  const { responseBody: t } = await reg.getTwin(devId);
  assert.deepEqual(t.tags, { site: 'b1' });
  assert.equal(t.properties.desired.level, 2);

  const rec = ok(await iotdm(['--json', 'dps', 'registration', 'show', '--registration-id', regId]), 'registration show');
  assert.equal(rec.json.registrationId, regId);
  assert.equal(rec.json.deviceId, devId);
  assert.equal(rec.json.status, 'assigned');
  const recText = ok(await iotdm(['dps', 'registration', 'show', '--registration-id', regId]), 'registration show');
  assert.match(recText.stdout, /^Status\s+assigned$/m);

  const delRec = ok(await iotdm(['--json', 'dps', 'registration', 'delete', '--registration-id', regId]), 'registration delete');
  assert.deepEqual(delRec.json, { registrationId: regId, deleted: true });
  assert.equal((await iotdm(['dps', 'registration', 'show', '--registration-id', regId])).code, 3);

  const del = ok(await iotdm(['dps', 'enrollment', 'delete', '--registration-id', regId]), 'enrollment delete');
  assert.match(del.stdout, new RegExp(`Deleted enrollment ${regId}`));
  const gone = await iotdm(['dps', 'enrollment', 'show', '--registration-id', regId]);
  assert.equal(gone.code, 3, gone.stderr);
  assert.match(gone.stderr, /^iotdm: .*/);
  const list2 = ok(await iotdm(['dps', 'enrollment', 'list', '--json']), 'list after delete');
  assert.ok(!list2.json.some((e) => e.registrationId === regId));
  // A deleted enrollment registers nothing any more.
  await assert.rejects(register(regId, key));
});

test('group enrollment with a derived key: create, list, show, register, delete', async () => {
  const groupId = h.uid('cli-grp');
  const g = ok(await iotdm(['--json', 'dps', 'group', 'create', '--group-id', groupId,
    '--initial-desired', '{"fromGroup":true}']), 'group create');
  assert.equal(g.json.enrollmentGroupId, groupId);
  assert.equal(g.json.attestation.type, 'symmetricKey');
  const gk = g.json.attestation.symmetricKey.primaryKey;
  assert.ok(gk);

  const list = ok(await iotdm(['--json', 'dps', 'group', 'list']), 'group list');
  assert.ok(list.json.some((x) => x.enrollmentGroupId === groupId));
  const table = ok(await iotdm(['dps', 'group', 'list']), 'group list table');
  assert.match(table.lines[0], /^GROUP ID\s+ATTESTATION\s+STATUS/);
  assert.ok(table.lines.some((l) => l.startsWith(groupId)), table.stdout);
  const show = ok(await iotdm(['--json', 'dps', 'group', 'show', '--group-id', groupId]), 'group show');
  assert.equal(show.json.attestation.symmetricKey.primaryKey, gk);

  const devId = h.uid('cli-gdev');
  // derive-key needs no hub and no login.
  const dk = ok(await iotdm(['dps', 'derive-key', '--group-key', gk, '--registration-id', devId], { login: false }), 'derive-key');
  const expected = crypto.createHmac('sha256', Buffer.from(gk, 'base64')).update(devId).digest('base64');
  assert.equal(dk.stdout.trim(), expected);
  const dkJson = ok(await iotdm(['--json', 'dps', 'derive-key', '--group-key', gk, '--registration-id', devId], { login: false }), 'derive-key --json');
  assert.deepEqual(dkJson.json, { registrationId: devId, derivedKey: expected });

  const res = await register(devId, dk.stdout.trim());
  assert.equal(res.status, 'assigned');
  assert.equal(res.deviceId, devId);
  const { responseBody: d } = await reg.get(devId);
  assert.equal(d.authentication.symmetricKey.primaryKey, expected);

  const rec = ok(await iotdm(['--json', 'dps', 'registration', 'show', '--registration-id', devId]), 'registration show');
  assert.equal(rec.json.deviceId, devId);
  assert.equal(rec.json.status, 'assigned');

  const del = ok(await iotdm(['--json', 'dps', 'group', 'delete', '--group-id', groupId]), 'group delete');
  assert.deepEqual(del.json, { enrollmentGroupId: groupId, deleted: true });
  assert.equal((await iotdm(['dps', 'group', 'show', '--group-id', groupId])).code, 3);
});

test('dps errors: exit codes and messages', async () => {
  const missing = await iotdm(['dps', 'enrollment', 'show', '--registration-id', h.uid('nope')]);
  assert.equal(missing.code, 3, missing.stderr);
  // DPS's error body ({"errorCode":404201,"message":…}): its code and message.
  assert.match(missing.stderr, /404201: enrollment '.*' does not exist/);
  assert.equal((await iotdm(['dps', 'enrollment', 'delete', '--registration-id', h.uid('nope')])).code, 3);
  assert.equal((await iotdm(['dps', 'registration', 'show', '--registration-id', h.uid('nope')])).code, 3);

  // Bad usage, caught before any request.
  assert.equal((await iotdm(['dps', 'enrollment', 'create'])).code, 2);
  assert.equal((await iotdm(['dps', 'enrollment', 'create', '--registration-id', 'x', '--attestation', 'pgp'])).code, 2);
  assert.equal((await iotdm(['dps', 'enrollment', 'create', '--registration-id', 'x', '--attestation', 'x509'])).code, 2);
  assert.equal((await iotdm(['dps', 'group', 'create', '--group-id', 'x', '--attestation', 'tpm'])).code, 2);
  assert.equal((await iotdm(['dps', 'enrollment', 'create', '--registration-id', 'x', '--initial-tags', '{bad'])).code, 2);
  assert.equal((await iotdm(['dps', 'enrollment', 'frob'])).code, 2);
  assert.equal((await iotdm(['dps', 'derive-key', '--group-key', '***', '--registration-id', 'x'], { login: false })).code, 2);
  const help = ok(await iotdm(['dps', 'enrollment', 'create', '--help'], { login: false }), 'help');
  assert.match(help.stdout, /--registration-id/);

  // A certificate file that is not PEM.
  const notPem = path.join(home, 'not.pem');
  fs.writeFileSync(notPem, 'hello');
  const cert = await iotdm(['dps', 'enrollment', 'create', '--registration-id', 'x', '--certificate', notPem]);
  assert.equal(cert.code, 2, cert.stderr);
  assert.match(cert.stderr, /not a PEM certificate/);

  // The hub refuses a bad key (400 → 2), and the IoT hub owner policy has no DPS rights (401 → 4).
  const badKey = await iotdm(['dps', 'enrollment', 'create', '--registration-id', h.uid('bk'), '--primary-key', 'abc']);
  assert.equal(badKey.code, 2, badKey.stderr);
  const owner = await runCli(['--ca', h.caPath, '--login', h.ownerConnStr, 'dps', 'enrollment', 'list'],
    { env: { IOTDM_CONNECTION_STRING: undefined, HOME: home, XDG_CONFIG_HOME: undefined } });
  assert.equal(owner.code, 4, owner.stderr);
});

test('dps scope: the ID scope and the global endpoint (GET /iotdm/dps)', async () => {
  const j = ok(await iotdm(['--json', 'dps', 'scope']), 'scope --json');
  assert.deepEqual(j.json, { idScope, globalEndpoint: h.host });
  const t = ok(await iotdm(['dps', 'scope']), 'scope');
  assert.match(t.stdout, new RegExp(`^ID scope\\s+${idScope}$`, 'm'));
  assert.match(t.stdout, new RegExp(`^Global endpoint\\s+${h.host.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(ok(await iotdm(['dps', '--help'], { login: false }), 'help').stdout, /^ {2}scope\s/m);
  // The IoT hub's own policy has no DPS rights (401 → 4).
  const owner = await runCli(['--ca', h.caPath, '--login', h.ownerConnStr, 'dps', 'scope'],
    { env: { IOTDM_CONNECTION_STRING: undefined, HOME: home, XDG_CONFIG_HOME: undefined } });
  assert.equal(owner.code, 4, owner.stderr);
});

test('dps x509 enrollment from a PEM file', async () => {
  const regId = h.uid('cli-x509');
  const { cert } = h.selfSignedCert(regId);
  const file = path.join(home, `${regId}.pem`);
  fs.writeFileSync(file, cert);
  const c = ok(await iotdm(['--json', 'dps', 'enrollment', 'create', '--registration-id', regId, '--certificate', file]), 'x509 create');
  assert.equal(c.json.attestation.type, 'x509');
  assert.ok(c.json.attestation.x509.clientCertificates.primary.info.sha256Thumbprint);
  const show = ok(await iotdm(['dps', 'enrollment', 'show', '--registration-id', regId]), 'x509 show');
  assert.match(show.stdout, /^Attestation\s+x509$/m);
  assert.match(show.stdout, /^Thumbprint\s+[0-9A-Fa-f]{64}$/m);
  ok(await iotdm(['dps', 'enrollment', 'delete', '--registration-id', regId]), 'x509 delete');
});
