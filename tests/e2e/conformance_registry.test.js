'use strict';
// Device identity registry through azure-iothub's Registry (docs/protocol.md §8.6, §9.3).
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Registry } = require('azure-iothub');

let reg;

before(async () => {
  await h.startHub();
  reg = h.registry();
});
after(() => h.stopAll());

function assertKey(k, what) {
  assert.equal(typeof k, 'string', `${what} is not a string`);
  const bytes = Buffer.from(k, 'base64');
  assert.ok(bytes.length >= 16, `${what} should be base64 of >= 16 random bytes, got ${JSON.stringify(k)}`);
  assert.equal(bytes.toString('base64'), k, `${what} is not canonical base64`);
}

test('create without keys generates two distinct keys; get returns the same device', async () => {
  const { responseBody: d, httpResponse } = await reg.create({ deviceId: 'reg-gen' });
  assert.equal(httpResponse.statusCode, 200);
  assert.match(httpResponse.headers['content-type'] || '', /application\/json/);
  assert.equal(d.deviceId, 'reg-gen');
  assert.equal(d.status, 'enabled');
  assert.equal(d.connectionState, 'Disconnected');
  assert.equal(d.authentication.type, 'sas');
  assertKey(d.authentication.symmetricKey.primaryKey, 'primaryKey');
  assertKey(d.authentication.symmetricKey.secondaryKey, 'secondaryKey');
  assert.notEqual(d.authentication.symmetricKey.primaryKey, d.authentication.symmetricKey.secondaryKey);
  assert.ok(d.etag && typeof d.etag === 'string', 'etag missing');
  assert.ok(d.generationId, 'generationId missing');
  assert.equal(d.cloudToDeviceMessageCount, 0);

  const { responseBody: g } = await reg.get('reg-gen');
  assert.equal(g.deviceId, 'reg-gen');
  assert.deepEqual(g.authentication.symmetricKey, d.authentication.symmetricKey);
  assert.equal(g.etag, d.etag);
  assert.equal(g.generationId, d.generationId);
});

test('create keeps the keys it is given', async () => {
  const primaryKey = h.raw.randomKey();
  const secondaryKey = h.raw.randomKey();
  const { responseBody: d } = await reg.create({
    deviceId: 'reg-keys',
    authentication: { type: 'sas', symmetricKey: { primaryKey, secondaryKey } },
  });
  assert.equal(d.authentication.symmetricKey.primaryKey, primaryKey);
  assert.equal(d.authentication.symmetricKey.secondaryKey, secondaryKey);
});

test('creating an existing device fails with 409 DeviceAlreadyExistsError', async () => {
  await reg.create({ deviceId: 'reg-dup' });
  const err = await h.rejects(reg.create({ deviceId: 'reg-dup' }), 10000, 'duplicate create');
  assert.equal(err.name, 'DeviceAlreadyExistsError', `got ${err.name}: ${err.message}`);
  assert.equal(err.constructor.name, 'DeviceAlreadyExistsError');
  assert.equal(err.response.statusCode, 409);
  assert.equal(h.errorCode(err.responseBody), 'DeviceAlreadyExists', `body: ${err.responseBody}`);
});

test('get of an unknown device fails with 404 DeviceNotFoundError (legacy body + iothub-errorcode)', async () => {
  const err = await h.rejects(reg.get('reg-nope'), 10000, 'get unknown device');
  assert.equal(err.name, 'DeviceNotFoundError', `got ${err.name}: ${err.message}; body ${err.responseBody}`);
  assert.equal(err.constructor.name, 'DeviceNotFoundError');
  assert.equal(err.response.statusCode, 404);
  assert.equal(err.response.headers['iothub-errorcode'], 'DeviceNotFound');
  assert.match(err.response.headers['content-type'] || '', /application\/json/);
});

test('list returns the created devices; ?top limits the count', async () => {
  const { responseBody: list } = await reg.list();
  const ids = list.map((d) => d.deviceId);
  for (const id of ['reg-gen', 'reg-keys', 'reg-dup']) assert.ok(ids.includes(id), `${id} missing from ${ids}`);
  const r = await h.rest('GET', `/devices?top=2&${h.API}`);
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.json) && r.json.length === 2, `top=2 gave ${r.text.slice(0, 200)}`);
});

test('update disables and re-enables a device (If-Match "*"); etag changes', async () => {
  const { responseBody: d0 } = await reg.create({ deviceId: 'reg-upd' });
  const { responseBody: d1 } = await reg.update({
    deviceId: 'reg-upd', status: 'disabled', statusReason: 'e2e says no', authentication: d0.authentication,
  });
  assert.equal(d1.status, 'disabled');
  assert.equal(d1.statusReason, 'e2e says no');
  assert.notEqual(d1.etag, d0.etag, 'etag must change on update');
  const { responseBody: g1 } = await reg.get('reg-upd');
  assert.equal(g1.status, 'disabled');
  // the keys sent back with the update are kept
  assert.deepEqual(g1.authentication.symmetricKey, d0.authentication.symmetricKey);

  const { responseBody: d2 } = await reg.update({ deviceId: 'reg-upd', status: 'enabled', authentication: g1.authentication });
  assert.equal(d2.status, 'enabled');
  const { responseBody: g2 } = await reg.get('reg-upd');
  assert.equal(g2.status, 'enabled');
});

test('update with a stale etag fails with 412; update of an unknown device with 404', async () => {
  const { responseBody: d } = await reg.get('reg-upd');
  const r = await h.rest('PUT', `/devices/reg-upd?${h.API}`, {
    body: { deviceId: 'reg-upd', status: 'disabled', authentication: d.authentication },
    headers: { 'If-Match': '"bm90LXRoZS1ldGFn"' },
  });
  assert.equal(r.status, 412, r.text);
  const ok = await h.rest('PUT', `/devices/reg-upd?${h.API}`, {
    body: { deviceId: 'reg-upd', status: 'enabled', authentication: d.authentication },
    headers: { 'If-Match': `"${d.etag}"` },
  });
  assert.equal(ok.status, 200, ok.text);
  const err = await h.rejects(reg.update({ deviceId: 'reg-ghost', status: 'disabled' }), 10000, 'update unknown device');
  assert.equal(err.response.statusCode, 404, `${err.name}: ${err.responseBody}`);
});

test('delete removes the device; deleting it again is 404 DeviceNotFoundError', async () => {
  await reg.create({ deviceId: 'reg-del' });
  const { httpResponse } = await reg.delete('reg-del');
  assert.ok([200, 204].includes(httpResponse.statusCode), `delete returned ${httpResponse.statusCode}`);
  const e1 = await h.rejects(reg.get('reg-del'), 10000, 'get deleted device');
  assert.equal(e1.name, 'DeviceNotFoundError');
  const e2 = await h.rejects(reg.delete('reg-del'), 10000, 'delete deleted device');
  assert.equal(e2.name, 'DeviceNotFoundError', `${e2.name}: ${e2.responseBody}`);
});

test('registry and service statistics', async () => {
  const { responseBody: list } = await reg.list();
  const enabled = list.filter((d) => d.status === 'enabled').length;
  const disabled = list.filter((d) => d.status === 'disabled').length;
  await reg.create({ deviceId: 'reg-stat-off', status: 'disabled' });
  const { responseBody: s } = await reg.getRegistryStatistics();
  assert.equal(s.totalDeviceCount, list.length + 1, JSON.stringify(s));
  assert.equal(s.enabledDeviceCount, enabled, JSON.stringify(s));
  assert.equal(s.disabledDeviceCount, disabled + 1, JSON.stringify(s));

  const before = await h.rest('GET', `/statistics/service?${h.API}`);
  assert.equal(before.status, 200, before.text);
  assert.equal(before.json.connectedDeviceCount, 0, before.text);
  const { responseBody: d } = await reg.get('reg-gen');
  const client = await h.openDevice(h.deviceConnStr(d));
  await h.waitUntil(async () => {
    const r = await h.rest('GET', `/statistics/service?${h.API}`);
    return r.json && r.json.connectedDeviceCount === 1;
  }, { what: 'connectedDeviceCount == 1 while a device is connected' });
  const { responseBody: g } = await reg.get('reg-gen');
  assert.equal(g.connectionState, 'Connected');
  await client.close();
  await h.waitUntil(async () => (await reg.get('reg-gen')).responseBody.connectionState === 'Disconnected',
    { what: 'connectionState Disconnected after close' });
});

test('a wrong policy key is refused with 401 UnauthorizedError', async () => {
  const bad = Registry.fromConnectionString(
    `HostName=${h.host};SharedAccessKeyName=iothubowner;SharedAccessKey=${h.raw.randomKey()}`);
  const err = await h.rejects(bad.get('reg-gen'), 10000, 'get with a wrong key');
  assert.equal(err.name, 'UnauthorizedError', `${err.name}: ${err.responseBody}`);
  assert.equal(err.response.statusCode, 401);
  const none = await h.rest('GET', `/devices/reg-gen?${h.API}`, { auth: null });
  assert.equal(none.status, 401, `no Authorization header: ${none.status} ${none.text}`);
});
