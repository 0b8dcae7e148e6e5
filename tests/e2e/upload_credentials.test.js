'use strict';
// Log upload (dm*uploadLogFile through the hub's file-upload API) from agents with no symmetric key
// on disk: a TPM slot (SAS tokens signed inside swtpm, handed to iotdm-transfer ready-made), a
// self-signed X.509 identity (iotdm-transfer presents the certificate; the hub authenticates the
// HTTPS calls by it), and an X.509 identity that came from DPS. Each uploaded blob downloads
// byte-identical. A certificate acts only for its own device: on another device's path it gets
// 401 and nothing is created.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { SimDevice } = require('./lib/agent');
const { startSwtpm } = require('./lib/swtpm');
const { DmTestbed, T0 } = require('./lib/dm');

const bench = new DmTestbed(h);
const sims = [];
let tpm = null; // lib/swtpm.js

before(() => bench.start());

after(async () => {
  for (const s of sims) await s.stop();
  await bench.stop();
  if (tpm) tpm.stop();
});

function secretFile(name, text) {
  const p = path.join(fs.mkdtempSync(path.join(h.root, 'secret-')), name);
  fs.writeFileSync(p, text, { mode: 0o600 });
  return p;
}

// An agent + sandboxed configd with the identity given by args only (no connection string).
async function startSim(name, args) {
  const sim = new SimDevice({
    dir: fs.mkdtempSync(path.join(h.root, `dev-${name}-`)), connStr: null, caPath: h.caPath,
    extraAgentArgs: args,
  });
  sims.push(sim);
  sim.setClock(T0);
  await sim.start();
  return sim;
}

// Collects one log file on the device (a collector started, a line in the simulated journal, the
// collector stopped), uploads it with dm*uploadLogFile and checks the blob the service downloads.
async function uploadRoundTrip(sim, id) {
  const collector = { units: ['ssh.service'], identifiers: ['sshd'], priority: 'info' };
  const ack = async (v) => {
    const a = await bench.waitAck(id, 'logCollectors', v, { timeoutMs: 20000 });
    assert.equal(a.ac, 200, JSON.stringify(a));
  };
  await ack(await bench.setDesired(id, { logCollectors: { ssh: { ...collector, started: true } } }));
  const journal = path.join(sim.root, 'var', 'lib', 'iotdm-sandbox', 'journald.jsonl');
  fs.appendFileSync(journal, `${JSON.stringify({
    __REALTIME_TIMESTAMP: String(Date.now() * 1000), _SYSTEMD_UNIT: 'ssh.service', SYSLOG_IDENTIFIER: 'sshd',
    _PID: '77', PRIORITY: '6', _HOSTNAME: 'sim', MESSAGE: `Accepted publickey for ${id}`,
  })}\n`);
  await ack(await bench.setDesired(id, { logCollectors: { ssh: { ...collector, started: false } } }));
  const files = await bench.invoke(id, 'listLogFiles', { folder: 'ssh' });
  assert.equal(files.status, 200, JSON.stringify(files));
  assert.equal(files.payload.length, 1);
  const name = files.payload[0].name;
  const onDisk = fs.readFileSync(path.join(sim.stateDir, 'logs', 'ssh', name));
  assert.match(onDisk.toString(), new RegExp(`Accepted publickey for ${id}`));

  const up = await bench.invoke(id, 'uploadLogFile', { folder: 'ssh', file: name }, 30);
  assert.equal(up.status, 200, JSON.stringify(up));
  assert.equal(up.payload.blobName, `${id}/logs/ssh/${name}`);
  const item = (await h.rest('GET', `/iotdm/files?deviceId=${id}`)).json.find((x) => x.blobName === up.payload.blobName);
  assert.equal(item.state, 'completed', JSON.stringify(item));
  assert.equal(item.blobSizeInBytes, onDisk.length);
  const dl = await bytes('GET', `/iotdm/files/${id}/logs/ssh/${encodeURIComponent(name)}`, { headers: { Authorization: h.serviceAuth() } });
  assert.equal(dl.status, 200);
  assert.ok(dl.body.equals(onDisk), 'the downloaded log is byte-identical to the file on the device');
}

// Raw HTTPS; x509: {cert, key} presented as the TLS client certificate.
function bytes(method, p, { body, headers = {}, x509 = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: h.addr, port: 443, method, path: p, headers, ca: h.ca, agent: false, ...x509 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

function postJson(p, body, x509) {
  return bytes('POST', `${p}?${h.API}`, { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' }, x509 });
}

async function createX509Device(id, cert) {
  return h.createDevice(bench.reg, id, {
    authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: cert.thumbprint } },
  });
}

test('an agent on a TPM slot uploads a log with a SAS token signed in the TPM', async () => {
  tpm = await startSwtpm();
  const id = 'up-tpm';
  const d = await h.createDevice(bench.reg, id);
  const stored = tpm.limpetJson('0', 'import-connection-string', h.deviceConnStr(d));
  assert.equal(stored.deviceId, id);
  const sim = await startSim('tpm', ['--tpm-slot', '0', '--tpm-tcti', tpm.tcti]);
  await bench.connected(id);
  assert.match(fs.readFileSync(sim.log, 'utf8'), /SAS signed in the TPM/);
  await uploadRoundTrip(sim, id);
  assert.ok(!fs.readFileSync(sim.log, 'utf8').includes(d.authentication.symmetricKey.primaryKey));
  // The TPM serves one connection at a time: let go of it.
  await sim.stop();
});

test('an agent with an X.509 identity uploads a log; the hub knows it by its certificate', async () => {
  const id = 'up-x509';
  const cert = h.selfSignedCert(id);
  await createX509Device(id, cert);
  const sim = await startSim('x509', ['--hub-host', h.host, '--device-id', id,
    '--cert-file', secretFile('cert.pem', cert.cert), '--key-file', secretFile('key.pem', cert.key)]);
  await bench.connected(id);
  await uploadRoundTrip(sim, id);
});

test('an agent provisioned through DPS with X.509 uploads a log', async () => {
  const idScope = fs.readFileSync(path.join(h.dataDir, 'idscope'), 'utf8').trim();
  const dps = ProvisioningServiceClient.fromConnectionString(
    fs.readFileSync(path.join(h.dataDir, 'dps.connstr'), 'utf8').trim());
  const id = h.uid('up-dps');
  const cert = h.selfSignedCert(id);
  await dps.createOrUpdateIndividualEnrollment({
    registrationId: id,
    attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: cert.cert } } } },
  });
  const sim = await startSim('dps', ['--dps-id-scope', idScope, '--dps-endpoint', h.host, '--dps-retry-max', '2',
    '--cert-file', secretFile('cert.pem', cert.cert), '--key-file', secretFile('key.pem', cert.key)]);
  await bench.connected(id);
  assert.equal((await bench.reg.get(id)).responseBody.authentication.type, 'selfSigned');
  await uploadRoundTrip(sim, id);
});

test('a certificate acts only for its own device: on another device\'s path 401, nothing created', async () => {
  const a = h.selfSignedCert('up-cert-a');
  const b = h.selfSignedCert('up-cert-b');
  const stranger = h.selfSignedCert('up-cert-a');
  await createX509Device('up-cert-a', a);
  await createX509Device('up-cert-b', b);
  const sas = await h.createDevice(bench.reg, 'up-cert-sas');
  const asA = { cert: a.cert, key: a.key };

  // A's certificate on B's paths (both X.509 devices) and on a SAS device's path.
  for (const victim of ['up-cert-b', 'up-cert-sas']) {
    const r = await postJson(`/devices/${victim}/files`, { blobName: 'stolen.txt' }, asA);
    assert.equal(r.status, 401, r.body.toString());
    assert.match(r.body.toString(), /client certificate is not this device's/);
  }
  // Unregistered certificate, and neither a token nor a certificate.
  assert.equal((await postJson('/devices/up-cert-a/files', { blobName: 'x.txt' }, { cert: stranger.cert, key: stranger.key })).status, 401);
  assert.equal((await postJson('/devices/up-cert-a/files', { blobName: 'x.txt' })).status, 401);
  for (const id of ['up-cert-b', 'up-cert-sas', 'up-cert-a']) {
    const list = (await h.rest('GET', `/iotdm/files?deviceId=${id}`)).json;
    assert.deepEqual(list, [], `nothing created for ${id}`);
  }
  assert.ok(sas.authentication.symmetricKey.primaryKey);

  // A's own path with its certificate works, and its correlation id cannot be completed as B.
  const own = await postJson('/devices/up-cert-a/files', { blobName: 'own.txt' }, asA);
  assert.equal(own.status, 200, own.body.toString());
  const info = JSON.parse(own.body.toString());
  assert.equal(info.blobName, 'up-cert-a/own.txt');
  const note = { correlationId: info.correlationId, isSuccess: true, statusCode: 200, statusDescription: 'ok' };
  assert.equal((await postJson('/devices/up-cert-b/files/notifications', note, asA)).status, 401);
  assert.equal((await postJson('/devices/up-cert-a/files/notifications', note, asA)).status, 204);
});
