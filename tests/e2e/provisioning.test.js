'use strict';
// iotdm-agent provisions itself through the hub's DPS (docs/protocol.md §7): first boot registers
// (individual symmetric key, group key with a derived device key, X.509, and last the full TPM
// chain through limpet), stores the assignment and connects; later starts reuse it without DPS;
// dm*reprovision and a hub that refuses the identity make it register again; DPS refusals and bad
// configuration give clear reasons. Enrollments are made with Microsoft's provisioning service SDK.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { SimDevice, findBinary } = require('./lib/agent');
const { startSwtpm } = require('./lib/swtpm');
const { DmTestbed, dm, T0 } = require('./lib/dm');

const bench = new DmTestbed(h);
const sims = [];
let swtpm = null; // lib/swtpm.js, started by the TPM test
let idScope;
let svc;

before(async () => {
  await bench.start();
  idScope = fs.readFileSync(path.join(h.dataDir, 'idscope'), 'utf8').trim();
  svc = ProvisioningServiceClient.fromConnectionString(
    fs.readFileSync(path.join(h.dataDir, 'dps.connstr'), 'utf8').trim());
});

after(async () => {
  for (const s of sims) await s.stop();
  if (swtpm) swtpm.stop();
  await bench.stop();
});

// A simulated device (agent + sandboxed configd) whose identity comes from DPS only.
function dpsDevice(name, args) {
  const sim = new SimDevice({
    dir: fs.mkdtempSync(path.join(h.root, `dps-${name}-`)), connStr: null, caPath: h.caPath,
    freshStateDir: true, // first boot: provisioning runs before anything made the state directory
    extraAgentArgs: ['--dps-id-scope', idScope, '--dps-endpoint', h.host, '--dps-retry-max', '2', ...args],
  });
  sims.push(sim);
  sim.setClock(T0);
  return sim;
}

function secretFile(name, text) {
  const p = path.join(fs.mkdtempSync(path.join(h.root, 'secret-')), name);
  fs.writeFileSync(p, `${text}\n`, { mode: 0o600 });
  return p;
}

function logOf(sim) {
  return fs.readFileSync(sim.log, 'utf8');
}

function count(re, text) {
  return (text.match(new RegExp(re.source, 'g')) || []).length;
}

function assignmentOf(sim) {
  const p = path.join(sim.stateDir, 'identity', 'provisioning.json');
  return { mode: fs.statSync(p).mode & 0o777, text: fs.readFileSync(p, 'utf8'), json: JSON.parse(fs.readFileSync(p, 'utf8')) };
}

// A method call that must reach the device: retried while the device is (re)connecting.
async function invokeWhenOnline(id, command, payload = null) {
  return h.waitUntil(async () => {
    const r = await bench.svc.invokeDeviceMethod(id, { methodName: `dm*${command}`, payload, responseTimeoutInSeconds: 10 });
    return r.result;
  }, { timeoutMs: 30000, intervalMs: 300, what: `dm*${command} on ${id}` });
}

async function connected(sim, id, what) {
  try {
    await h.waitUntil(async () => dm(await bench.twin(id)).deviceInfo, { timeoutMs: 30000, what: `${id} to connect and report` });
  } catch (e) {
    const errors = logOf(sim).split('\n').filter((l) => /ERROR|WARN agent/.test(l)).slice(-5).join('\n');
    throw new Error(`${what || id}: ${e.message}\nlast agent errors:\n${errors}`);
  }
}

test('individual symmetric key: first start provisions, stores the assignment; a restart does not ask DPS again', async () => {
  const regId = h.uid('sk');
  const deviceId = `${regId}-dev`;
  const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({
    registrationId: regId, deviceId,
    attestation: { type: 'symmetricKey', symmetricKey: {} },
    initialTwin: { tags: { site: 'lab' }, properties: { desired: { dm: { __t: 'c', timeInfo: { timeZone: 'Europe/Berlin' } } } } },
  });
  const key = e.attestation.symmetricKey.primaryKey;
  const sim = dpsDevice('sk', ['--dps-registration-id', regId, '--dps-key-file', secretFile('dps.key', key)]);
  await sim.start();
  await connected(sim, deviceId);

  // The initial twin of the enrollment reached the registry and the device, which applied it.
  const ack = await h.waitUntil(async () => {
    const p = dm(await bench.twin(deviceId)).timeInfo;
    return p && p.ac === 200 ? p : null;
  }, { timeoutMs: 20000, what: 'the enrollment\'s timeInfo acknowledged' });
  assert.equal(ack.value.timeZone, 'Europe/Berlin');
  assert.deepEqual((await bench.twin(deviceId)).tags, { site: 'lab' });
  const r = await invokeWhenOnline(deviceId, 'reportAll');
  assert.equal(r.status, 200, JSON.stringify(r));
  assert.equal(r.payload.state, 'completed');

  const a = assignmentOf(sim);
  assert.equal(a.mode, 0o600);
  assert.equal(a.json.method, 'symmetricKey');
  assert.equal(a.json.registrationId, regId);
  assert.equal(a.json.deviceId, deviceId);
  assert.equal(a.json.assignedHub, h.host);
  assert.equal(a.json.idScope, idScope);
  assert.ok(!a.text.includes(key), 'no key in the stored assignment');
  assert.ok(!logOf(sim).includes(key), 'no key in the log');
  const { responseBody: rec } = await svc.getDeviceRegistrationState(regId);
  assert.equal(rec.deviceId, deviceId);

  // DPS would now refuse: a restart that works cannot have asked it.
  e.provisioningStatus = 'disabled';
  await svc.createOrUpdateIndividualEnrollment(e);
  sim.logLine('restart with the enrollment disabled');
  await sim.killAgent();
  await h.waitUntil(() => sim.agentStarts === 2, { what: 'the agent to start again' });
  const again = await invokeWhenOnline(deviceId, 'reportAll');
  assert.equal(again.status, 200);
  const log = logOf(sim);
  assert.equal(count(/dps: registering/, log), 1, 'DPS was contacted once, on first start');
  assert.match(log.split('restart with the enrollment disabled')[1], /using the stored DPS assignment: hub=\S+ device=\S+-dev/);
});

test('group enrollment: the device key is derived from the group key', async () => {
  const groupId = h.uid('grp');
  const { responseBody: g } = await svc.createOrUpdateEnrollmentGroup({
    enrollmentGroupId: groupId,
    attestation: { type: 'symmetricKey', symmetricKey: {} },
    initialTwin: { properties: { desired: { fromGroup: true } } },
  });
  const regId = h.uid('gdev');
  const sim = dpsDevice('grp', ['--dps-registration-id', regId,
    '--dps-group-key-file', secretFile('group.key', g.attestation.symmetricKey.primaryKey)]);
  await sim.start();
  await connected(sim, regId);
  const twin = await bench.twin(regId);
  assert.equal(twin.properties.desired.fromGroup, true);
  const r = await invokeWhenOnline(regId, 'reportAll');
  assert.equal(r.status, 200);
  assert.equal(assignmentOf(sim).json.method, 'groupKey');
  // The hub holds the derived key, not the group key.
  const { responseBody: d } = await bench.reg.get(regId);
  assert.notEqual(d.authentication.symmetricKey.primaryKey, g.attestation.symmetricKey.primaryKey);
  assert.ok(!logOf(sim).includes(g.attestation.symmetricKey.primaryKey));
});

test('X.509 enrollment: the registration id is the certificate\'s CN; the device connects with it', async () => {
  const regId = h.uid('x509');
  const c = h.selfSignedCert(regId);
  await svc.createOrUpdateIndividualEnrollment({
    registrationId: regId,
    attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: c.cert } } } },
  });
  const sim = dpsDevice('x509', ['--cert-file', secretFile('cert.pem', c.cert), '--key-file', secretFile('key.pem', c.key)]);
  await sim.start();
  await connected(sim, regId);
  const r = await invokeWhenOnline(regId, 'reportAll');
  assert.equal(r.status, 200);
  const a = assignmentOf(sim).json;
  assert.equal(a.method, 'x509');
  assert.equal(a.registrationId, regId);
  const { responseBody: d } = await bench.reg.get(regId);
  assert.equal(d.authentication.type, 'selfSigned');
});

test('dm*reprovision moves the device to the device id the enrollment now names', async () => {
  const regId = h.uid('rp');
  const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({
    registrationId: regId, deviceId: `${regId}-a`, attestation: { type: 'symmetricKey', symmetricKey: {} },
  });
  const sim = dpsDevice('rp', ['--dps-registration-id', regId,
    '--dps-key-file', secretFile('dps.key', e.attestation.symmetricKey.primaryKey)]);
  await sim.start();
  await connected(sim, `${regId}-a`);

  e.deviceId = `${regId}-b`;
  await svc.createOrUpdateIndividualEnrollment(e);
  const r = await invokeWhenOnline(`${regId}-a`, 'reprovision');
  assert.equal(r.status, 202, JSON.stringify(r));
  assert.equal(r.payload.state, 'pending');
  await connected(sim, `${regId}-b`, 'the device under its new id');
  const b = await invokeWhenOnline(`${regId}-b`, 'reportAll');
  assert.equal(b.status, 200);
  assert.equal(assignmentOf(sim).json.deviceId, `${regId}-b`);
  assert.equal(sim.agentStarts, 1, 'the agent re-provisioned without restarting');
  assert.equal(count(/dps: registering/, logOf(sim)), 2);

  // A device without DPS says why it cannot.
  const plain = h.uid('plain');
  await bench.newDevice(plain);
  const no = await bench.invoke(plain, 'reprovision');
  assert.equal(no.status, 409);
  assert.match(no.payload.message, /not provisioned through DPS/);
});

test('a hub that refuses the identity (device deleted) makes the agent register again', async () => {
  const regId = h.uid('ref');
  const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({
    registrationId: regId, attestation: { type: 'symmetricKey', symmetricKey: {} },
  });
  const sim = dpsDevice('ref', ['--dps-registration-id', regId,
    '--dps-key-file', secretFile('dps.key', e.attestation.symmetricKey.primaryKey)]);
  await sim.start();
  await connected(sim, regId);
  const before = await bench.reg.get(regId);

  sim.logLine('deleting the device');
  await bench.reg.delete(regId);
  // The hub drops the connection; the reconnect is refused (CONNACK 5); DPS creates it again.
  await connected(sim, regId, 'the device re-provisioned after the refusal');
  const after = await bench.reg.get(regId);
  assert.notEqual(after.responseBody.generationId, before.responseBody.generationId, 'a new device');
  const r = await invokeWhenOnline(regId, 'reportAll');
  assert.equal(r.status, 200);
  const log = logOf(sim).split('deleting the device')[1];
  assert.match(log, /the hub refused device \S+ \(CONNACK 5: not authorized\): registering with DPS again/);
  assert.match(log, /provisioned through DPS: registration=\S+ hub=\S+ device=\S+/);
  assert.equal(sim.agentStarts, 1);
});

test('disabled and unknown enrollments: a clear reason, no crash, retried until DPS accepts', async () => {
  const regId = h.uid('dis');
  const { responseBody: e } = await svc.createOrUpdateIndividualEnrollment({
    registrationId: regId, provisioningStatus: 'disabled', attestation: { type: 'symmetricKey', symmetricKey: {} },
  });
  const key = e.attestation.symmetricKey.primaryKey;
  const sim = dpsDevice('dis', ['--dps-registration-id', regId, '--dps-key-file', secretFile('dps.key', key)]);
  await sim.start();
  await h.waitUntil(() => count(/provisioning failed: DPS registration disabled: the enrollment is disabled; retrying in \d+ s/, logOf(sim)) >= 2,
    { timeoutMs: 20000, what: 'the disabled enrollment to be reported twice' });

  const unknown = h.uid('nobody');
  const sim2 = dpsDevice('unknown', ['--dps-registration-id', unknown, '--dps-key-file', secretFile('dps.key', key)]);
  await sim2.start();
  await h.waitUntil(() => /provisioning failed: DPS refused the registration \(401\): no enrollment for registration id/.test(logOf(sim2)),
    { timeoutMs: 20000, what: 'the unknown registration id to be reported' });
  await assert.rejects(bench.reg.get(unknown));
  assert.ok(!fs.existsSync(path.join(sim2.stateDir, 'identity', 'provisioning.json')));

  // Once the operator enables the enrollment, the waiting agent gets through.
  const { responseBody: cur } = await svc.getIndividualEnrollment(regId);
  cur.provisioningStatus = 'enabled';
  await svc.createOrUpdateIndividualEnrollment(cur);
  await connected(sim, regId);
  for (const s of [sim, sim2]) {
    assert.equal(s.agentStarts, 1, 'the agent never exited');
    assert.equal(s.agent.exitCode, null);
    assert.ok(!logOf(s).includes(key));
  }
});

test('bad DPS configuration stops the agent with a clear reason and no secret', () => {
  const dir = fs.mkdtempSync(path.join(h.root, 'dps-bad-'));
  const key = secretFile('k', 'c2VjcmV0LXNlY3JldC1zZWNyZXQ=');
  const notKey = secretFile('n', 'this-is-not-a-key!!');
  const run = (...args) => spawnSync(findBinary('src/agent/iotdm-agent'), ['--config', '/dev/null',
    '--state-dir', path.join(dir, 'state'), '--configd-socket', path.join(dir, 'none.sock'), ...args],
  { encoding: 'utf8', timeout: 10000 });
  const cases = [
    [['--dps-id-scope', idScope, '--dps-registration-id', 'r1'], /DPS needs credentials/],
    [['--dps-id-scope', idScope, '--dps-registration-id', 'r1', '--dps-key-file', key, '--dps-group-key-file', key], /exclude each other/],
    [['--dps-id-scope', idScope, '--dps-key-file', key], /dps-registration-id is required/],
    [['--dps-registration-id', 'r1', '--dps-key-file', key], /need dps-id-scope/],
    [['--dps-id-scope', idScope, '--dps-registration-id', 'r1', '--dps-key-file', path.join(dir, 'missing.key')], /cannot read dps-key-file .*missing\.key: No such file/],
    [['--dps-id-scope', idScope, '--dps-registration-id', 'r1', '--dps-key-file', notKey], /does not hold a base64 key/],
    [['--dps-id-scope', idScope, '--dps-registration-id', 'bad id', '--dps-key-file', key], /dps-registration-id must be/],
    [['--dps-id-scope', idScope, '--dps-registration-id', 'r1', '--dps-key-file', key, '--connection-string', 'HostName=h;DeviceId=d;SharedAccessKey=a2V5'], /cannot be combined with dps-id-scope/],
    [['--dps-id-scope', idScope, '--tpm-slot', '0', '--dps-registration-id', 'r1'], /not used with tpm-slot/],
    [['--dps-id-scope', idScope, '--dps-frobnicate', 'x'], /unknown setting 'dps-frobnicate'/],
  ];
  for (const [args, re] of cases) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.ok(!r.stderr.includes('c2VjcmV0') && !r.stderr.includes('this-is-not-a-key'), r.stderr);
  }
  // A certificate that cannot be read is found at registration and stops the agent too.
  const r = run('--dps-id-scope', idScope, '--dps-endpoint', h.host, '--ca-file', h.caPath,
    '--cert-file', path.join(dir, 'nope.pem'), '--key-file', path.join(dir, 'nope.key'));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /DPS registration impossible: provisioning config: .*certificate's subject CN cannot be read/);
});

// ---------------------------------------------------------------- TPM (last)

test('TPM: limpet harvests the EK, the agent registers through DPS with TPM attestation and connects with TPM-signed SAS', async () => {
  swtpm = await startSwtpm();
  const { tcti, bin: limpetBin } = swtpm;
  const info = swtpm.limpet('enrollment-info', '--format', 'json');
  assert.equal(info.status, 0, `limpet enrollment-info: ${info.stderr}`);
  const [enrollment] = JSON.parse(info.stdout);
  assert.equal(enrollment.attestation.type, 'tpm');
  const regId = enrollment.registrationId;
  const deviceId = `tpm-${h.uid('dev')}`;
  await svc.createOrUpdateIndividualEnrollment({ ...enrollment, deviceId });

  const sim = dpsDevice('tpm', ['--tpm-slot', '0', '--tpm-tcti', tcti, '--limpet', limpetBin]);
  await sim.start();
  await connected(sim, deviceId, 'the TPM device (registered by limpet through DPS)');
  const log = logOf(sim);
  assert.match(log, /registering TPM slot 0 with DPS/);
  assert.match(log, /SAS signed in the TPM/);
  const r = await invokeWhenOnline(deviceId, 'reportAll');
  assert.equal(r.status, 200);
  const a = assignmentOf(sim).json;
  assert.equal(a.method, 'tpm');
  assert.equal(a.registrationId, regId);
  assert.equal(a.deviceId, deviceId);
  // The slot holds the assignment (the agent lets go of the TPM while limpet reads it).
  await sim.killAgent({ restart: false });
  const uri = spawnSync(limpetBin, ['--tcti', tcti, '0', 'uri'], { encoding: 'utf8', timeout: 30000 });
  assert.equal(uri.stdout.trim(), `${h.host}/${deviceId}`);

  // Re-provisioning a TPM device runs limpet again into the same slot, now under another id.
  sim.startAgent();
  await invokeWhenOnline(deviceId, 'reportAll');
  const moved = `tpm-${h.uid('moved')}`;
  const { responseBody: cur } = await svc.getIndividualEnrollment(regId);
  cur.deviceId = moved;
  await svc.createOrUpdateIndividualEnrollment(cur);
  const rp = await invokeWhenOnline(deviceId, 'reprovision');
  assert.equal(rp.status, 202, JSON.stringify(rp));
  await connected(sim, moved, 'the TPM device under its new id');
  assert.equal(count(/registering TPM slot 0 with DPS/, logOf(sim)), 2);
  assert.equal(assignmentOf(sim).json.deviceId, moved);
});
