'use strict';
// File upload (docs/protocol.md §8.12) against iotdm-hub: SAS URI, blob PUT, notification (both
// forms), then the service lists and downloads a byte-identical file; bad input is refused.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const https = require('node:https');
const crypto = require('node:crypto');

let reg;
let dev;
let devAuth;

before(async () => {
  await h.startHub();
  reg = h.registry();
  dev = await h.createDevice(reg, 'up-1');
  devAuth = deviceSas('up-1', dev.authentication.symmetricKey.primaryKey);
});
after(() => h.stopAll());

// A device SAS as the device SDKs build it (§3.2-3.4): sr = urlenc(host/devices/id), no skn.
function deviceSas(id, key, expiry = h.nowSec() + 3600) {
  const sr = encodeURIComponent(`${h.host}/devices/${id}`);
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiry}`;
}

// Raw bytes over HTTPS (the blob PUT and the download are not JSON).
function bytes(method, path, { body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: h.addr, port: 443, method, path, headers, ca: h.ca, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

async function sasUri(blobName, auth = devAuth) {
  return h.rest('POST', `/devices/up-1/files?${h.API}`, { body: { blobName }, auth });
}

test('a device uploads a file and the service downloads it byte-identical', async () => {
  const events = await h.events({ deviceId: 'up-1' });
  const r = await sasUri('logs/journal 1.txt');
  assert.equal(r.status, 200, r.text);
  const info = r.json;
  assert.equal(info.blobName, 'up-1/logs/journal 1.txt');
  assert.equal(info.hostName, h.host);
  assert.ok(info.correlationId && info.sasToken.startsWith('?'), r.text);
  const data = crypto.randomBytes(1024 * 1024 + 17);
  const url = `/${info.containerName}/${info.blobName.split('/').map(encodeURIComponent).join('/')}${info.sasToken}`;
  const put = await bytes('PUT', url, { body: data, headers: { 'x-ms-blob-type': 'BlockBlob', 'Content-Length': data.length } });
  assert.equal(put.status, 201, put.body.toString());
  // Node's form: the correlation id in the path.
  const n = await h.rest('POST', `/devices/up-1/files/notifications/${encodeURIComponent(info.correlationId)}?${h.API}`,
    { body: { isSuccess: true, statusCode: 200, statusDescription: 'File uploaded successfully' }, auth: devAuth });
  assert.equal(n.status, 204, n.text);
  const list = await h.rest('GET', '/iotdm/files?deviceId=up-1');
  assert.equal(list.status, 200);
  const item = list.json.find((x) => x.correlationId === info.correlationId);
  assert.equal(item.state, 'completed');
  assert.equal(item.blobSizeInBytes, data.length);
  const dl = await bytes('GET', `/iotdm/files/up-1/logs/${encodeURIComponent('journal 1.txt')}`, { headers: { Authorization: h.serviceAuth() } });
  assert.equal(dl.status, 200);
  assert.ok(dl.body.equals(data), 'downloaded bytes are identical');
  const ev = await events.waitFor((e) => e.event === 'fileUpload', 5000, 'the file-upload notification event');
  assert.equal(ev.data.blobName, 'up-1/logs/journal 1.txt');
  events.close();
});

test('the body form of the notification, a failed upload, and delete', async () => {
  const info = (await sasUri('b.bin')).json;
  const put = await bytes('PUT', `/${info.containerName}/${info.blobName}${info.sasToken}`, { body: Buffer.from('x'), headers: { 'x-ms-blob-type': 'BlockBlob' } });
  assert.equal(put.status, 201);
  const n = await h.rest('POST', `/devices/up-1/files/notifications?${h.API}`,
    { body: { correlationId: info.correlationId, isSuccess: false, statusCode: 500, statusDescription: 'disk full' }, auth: devAuth });
  assert.equal(n.status, 204, n.text);
  const item = (await h.rest('GET', '/iotdm/files?deviceId=up-1')).json.find((x) => x.correlationId === info.correlationId);
  assert.equal(item.state, 'failed');
  assert.equal(item.statusDescription, 'disk full');
  assert.equal((await h.rest('DELETE', '/iotdm/files/up-1/b.bin')).status, 204);
  assert.equal((await h.rest('GET', '/iotdm/files/up-1/b.bin')).status, 404);
});

test('bad names, wrong credentials and a tampered or misdirected SAS are refused', async () => {
  for (const name of ['../etc/passwd', 'a/../../b', '/abs', '', 'a\\b', 'x'.repeat(1025)]) {
    const r = await sasUri(name);
    assert.equal(r.status, 400, `${JSON.stringify(name)}: ${r.text}`);
  }
  const other = await h.createDevice(reg, 'up-2');
  const wrong = await h.rest('POST', `/devices/up-1/files?${h.API}`,
    { body: { blobName: 'a' }, auth: deviceSas('up-2', other.authentication.symmetricKey.primaryKey) });
  assert.equal(wrong.status, 401, 'a device cannot upload as another');
  assert.equal((await sasUri('a', deviceSas('up-1', dev.authentication.symmetricKey.primaryKey, h.nowSec() - 10))).status, 401);
  const info = (await sasUri('c.txt')).json;
  const tampered = info.sasToken.replace(/sig=[^&]+/, 'sig=' + encodeURIComponent(Buffer.alloc(32).toString('base64')));
  assert.equal((await bytes('PUT', `/${info.containerName}/${info.blobName}${tampered}`, { body: Buffer.from('x') })).status, 401);
  assert.equal((await bytes('PUT', `/${info.containerName}/up-1/other.txt${info.sasToken}`, { body: Buffer.from('x') })).status, 401);
  const big = Buffer.alloc(17 * 1024 * 1024);
  const tooBig = await bytes('PUT', `/${info.containerName}/${info.blobName}${info.sasToken}`, { body: big }).catch((e) => ({ status: 413, err: e }));
  assert.ok(tooBig.status === 413 || tooBig.status >= 400, `oversize upload refused (${tooBig.status})`);
  assert.equal((await h.rest('GET', '/iotdm/files/up-1/c.txt')).status, 404, 'nothing half-stored');
});
