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

// ---- bulk (POST /devices, §8.6)

test('bulk: addDevices, updateDevices with the device etag, removeDevices (the Node SDK)', async () => {
  const ids = ['bulk-a', 'bulk-b', 'bulk-c'];
  const added = await reg.addDevices(ids.map((deviceId) => ({ deviceId })));
  assert.equal(added.responseBody.isSuccessful, true, JSON.stringify(added.responseBody));
  for (const id of ids) assert.equal((await reg.get(id)).responseBody.status, 'enabled');

  // The SDK sends each device's own "etag" (lowercase) for UpdateIfMatchETag.
  const { responseBody: a } = await reg.get('bulk-a');
  const upd = await reg.updateDevices([{ ...a, status: 'disabled' }], false);
  assert.equal(upd.responseBody.isSuccessful, true, JSON.stringify(upd.responseBody));
  assert.equal((await reg.get('bulk-a')).responseBody.status, 'disabled');

  // The same etag again is stale now: that item fails with 412, the other one is applied.
  const { responseBody: b } = await reg.get('bulk-b');
  const stale = await h.rest('POST', `/devices?${h.API}`, {
    body: [
      { id: 'bulk-a', importMode: 'UpdateIfMatchETag', etag: a.etag, status: 'enabled' },
      { id: 'bulk-b', importMode: 'UpdateIfMatchETag', etag: b.etag, status: 'disabled' },
    ],
  });
  assert.equal(stale.status, 400, stale.text);
  assert.equal(stale.json.isSuccessful, false);
  assert.deepEqual(stale.json.errors.map((e) => e.deviceId), ['bulk-a'], stale.text);
  assert.equal((await reg.get('bulk-a')).responseBody.status, 'disabled');
  assert.equal((await reg.get('bulk-b')).responseBody.status, 'disabled');

  const removed = await reg.removeDevices(ids.map((deviceId) => ({ deviceId })), true);
  assert.equal(removed.responseBody.isSuccessful, true, JSON.stringify(removed.responseBody));
  for (const id of ids) assert.equal(await h.deviceExists(id), false, `${id} still exists`);
});

test('bulk: tags and desired properties of an item become the twin\'s; updateTwin modes change only the twin', async () => {
  const r = await h.rest('POST', `/devices?${h.API}`, {
    body: [{
      id: 'bulk-twin', importMode: 'create',
      tags: { site: 'lyon', rack: 4 },
      properties: { desired: { interval: 30 } },
    }],
  });
  assert.equal(r.status, 200, r.text);
  let { responseBody: t } = await reg.getTwin('bulk-twin');
  assert.deepEqual(t.tags, { site: 'lyon', rack: 4 });
  assert.equal(t.properties.desired.interval, 30);
  const q = await reg.createQuery("SELECT * FROM devices WHERE tags.site = 'lyon'").nextAsTwin();
  assert.deepEqual(q.result.map((x) => x.deviceId), ['bulk-twin']);

  // A connected device hears of a desired change made in bulk.
  const { responseBody: d } = await reg.get('bulk-twin');
  const client = await h.openDevice(h.deviceConnStr(d));
  const twin = await client.getTwin();
  const heard = new Promise((resolve) => {
    twin.on('properties.desired', (patch) => { if (patch.interval === 60) resolve(patch); });
  });
  const u = await h.rest('POST', `/devices?${h.API}`, {
    body: [{ id: 'bulk-twin', importMode: 'updateTwin', tags: { site: 'oslo' }, properties: { desired: { interval: 60 } } }],
  });
  assert.equal(u.status, 200, u.text);
  await h.withTimeout(heard, 10000, 'desired patch from a bulk updateTwin');
  ({ responseBody: t } = await reg.getTwin('bulk-twin'));
  assert.deepEqual(t.tags, { site: 'oslo' }, 'updateTwin replaces the tags');
  assert.equal((await reg.get('bulk-twin')).responseBody.etag, d.etag, 'the identity is unchanged');

  // updateTwinIfMatchETag: a stale twin etag changes nothing.
  const stale = await h.rest('POST', `/devices?${h.API}`, {
    body: [{ id: 'bulk-twin', importMode: 'updateTwinIfMatchETag', twinETag: 'AAAAAAAAAAE=', tags: { site: 'rome' } }],
  });
  assert.equal(stale.status, 400, stale.text);
  assert.equal(stale.json.errors[0].errorCode, 'PreconditionFailed', stale.text);
  const fresh = await h.rest('POST', `/devices?${h.API}`, {
    body: [{ id: 'bulk-twin', importMode: 'updateTwinIfMatchETag', twinETag: t.etag, tags: { site: 'rome' } }],
  });
  assert.equal(fresh.status, 200, fresh.text);
  assert.deepEqual((await reg.getTwin('bulk-twin')).responseBody.tags, { site: 'rome' });
  await client.close();
});

test('bulk: an item with a bad twin is refused whole and changes nothing; the others are applied', async () => {
  let deep = { leaf: 1 };
  for (let i = 0; i < 12; i++) deep = { n: deep };
  const r = await h.rest('POST', `/devices?${h.API}`, {
    body: [
      { id: 'bulk-deep', importMode: 'create', tags: deep },
      { id: 'bulk-reported', importMode: 'create', properties: { reported: { fw: '1.0' } } },
      { id: 'bulk-notag', importMode: 'updateTwin' },
      { id: 'bulk-fine', importMode: 'createOrUpdate', tags: { ok: true } },
    ],
  });
  assert.equal(r.status, 400, r.text);
  const byId = Object.fromEntries(r.json.errors.map((e) => [e.deviceId, e]));
  assert.deepEqual(Object.keys(byId).sort(), ['bulk-deep', 'bulk-notag', 'bulk-reported'], r.text);
  assert.equal(byId['bulk-deep'].errorCode, 'ArgumentInvalid', r.text);
  assert.match(byId['bulk-reported'].errorStatus, /reported/);
  assert.equal(await h.deviceExists('bulk-deep'), false, 'a refused item created its device');
  assert.equal(await h.deviceExists('bulk-reported'), false, 'a refused item created its device');
  assert.deepEqual((await reg.getTwin('bulk-fine')).responseBody.tags, { ok: true });
});
