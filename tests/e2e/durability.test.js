'use strict';
// Everything the hub acknowledged survives kill -9; no $version goes back;
// SIGTERM is clean and a restart reuses the data directory.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

let reg;
const ID = 'dur-1';
let key;

before(async () => {
  await h.startHub();
  reg = h.registry();
  const d = await h.createDevice(reg, ID);
  key = d.authentication.symmetricKey.primaryKey;
});
after(() => h.stopAll());

async function restartAfterKill9() {
  const r = await h.hub.kill9(); // immediately: nothing is closed gracefully first
  assert.equal(r.signal, 'SIGKILL');
  await h.closeTracked();
  await h.hub.start();
  reg = h.registry();
}

test('acknowledged writes survive kill -9', async () => {
  // device side, raw MQTT so every acknowledgement is visible
  const c = await h.rawConnect({ deviceId: ID, key });
  await c.subscribe('$iothub/twin/res/#');
  let last;
  for (let i = 1; i <= 20; i++) {
    last = await c.patchReported({ counter: i, [`k${i}`]: `v${i}` });
    assert.equal(last.status, 204, `reported patch ${i}: ${last.status} ${last.text}`);
  }
  const reportedVersion = last.version;
  assert.equal(typeof reportedVersion, 'number');
  const mids = [];
  for (let i = 0; i < 20; i++) {
    const mid = `dur-tele-${i}`;
    mids.push(mid);
    await c.publish(`devices/${ID}/messages/events/%24.mid=${mid}&n=${i}`, `telemetry ${i}`, { qos: 1 }); // resolves on PUBACK
  }
  // service side
  const enq = await h.sendC2D(ID, { body: 'survives', messageId: 'dur-c2d', properties: { kind: 'durable' } });
  assert.equal(enq.status, 200, enq.text);
  const { responseBody: stwin } = await reg.getTwin(ID);
  await stwin.update({ tags: { site: 'durable' }, properties: { desired: { want: 'd1', nested: { a: 1 } } } });
  const desiredVersion = stwin.properties.desired.$version;
  assert.equal(typeof desiredVersion, 'number');

  await restartAfterKill9();

  // reported + desired + tags
  const { responseBody: t } = await reg.getTwin(ID);
  assert.equal(t.properties.reported.counter, 20);
  assert.equal(t.properties.reported.k20, 'v20');
  assert.equal(t.properties.reported.k1, 'v1');
  assert.ok(t.properties.reported.$version >= reportedVersion,
    `reported $version went back: ${t.properties.reported.$version} < ${reportedVersion}`);
  assert.equal(t.properties.desired.want, 'd1');
  assert.deepEqual(t.properties.desired.nested, { a: 1 });
  assert.ok(t.properties.desired.$version >= desiredVersion,
    `desired $version went back: ${t.properties.desired.$version} < ${desiredVersion}`);
  assert.equal(t.tags.site, 'durable');

  // telemetry from the retained history
  const ev = await h.events({ from: 'start', deviceId: ID });
  for (const mid of mids) {
    await ev.waitFor((x) => x.event === 'telemetry' && x.data.systemProperties &&
      x.data.systemProperties['message-id'] === mid, 5000, `telemetry ${mid} after restart`);
  }
  const e0 = ev.events.find((x) => x.event === 'telemetry' && x.data.systemProperties['message-id'] === 'dur-tele-0');
  assert.equal(e0.data.body, 'telemetry 0');
  assert.equal(e0.data.properties.n, '0');

  // the C2D message is delivered on reconnect
  const client = await h.openDevice(h.deviceConnStr({ deviceId: ID, authentication: { symmetricKey: { primaryKey: key } } }));
  const got = [];
  client.on('message', (m) => { got.push(m); client.complete(m).catch(() => {}); });
  const m = await h.waitUntil(() => got.find((x) => x.messageId === 'dur-c2d'), { timeoutMs: 10000, what: 'C2D message after restart' });
  assert.equal(m.data.toString(), 'survives');
  assert.equal(m.properties.getValue('kind'), 'durable');

  // versions keep increasing from where they were
  const twin = await h.barrier(client);
  await h.reportedUpdate(twin, { after: true });
  const { responseBody: t2 } = await reg.getTwin(ID);
  assert.ok(t2.properties.reported.$version > t.properties.reported.$version, 'reported $version must increase');
  await t2.update({ properties: { desired: { want: 'd2' } } });
  assert.ok(t2.properties.desired.$version > t.properties.desired.$version, 'desired $version must increase');
  await client.close();
});

test('kill -9 right after a burst of QoS 0 reported patches and service updates keeps every acknowledged one', async () => {
  const c = await h.rawConnect({ deviceId: ID, key });
  await c.subscribe('$iothub/twin/res/#');
  const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => c.patchReported({ burst: i, [`b${i}`]: i })));
  for (const a of acks) assert.equal(a.status, 204, a.text);
  const maxVersion = Math.max(...acks.map((a) => a.version));
  const acked = new Set(acks.map((a) => a.version));
  assert.equal(acked.size, 30, 'every patch must get its own $version');
  const svcVersions = [];
  for (let i = 0; i < 5; i++) {
    const { responseBody } = await reg.updateTwin(ID, { properties: { desired: { step: i } } }, '*');
    svcVersions.push(responseBody.properties.desired.$version);
  }
  for (let i = 1; i < svcVersions.length; i++) assert.ok(svcVersions[i] > svcVersions[i - 1], 'desired $version strictly increasing');

  await restartAfterKill9();

  const { responseBody: t } = await reg.getTwin(ID);
  for (let i = 0; i < 30; i++) assert.equal(t.properties.reported[`b${i}`], i, `acknowledged patch b${i} lost`);
  assert.ok(t.properties.reported.$version >= maxVersion);
  assert.equal(t.properties.desired.step, 4);
  assert.ok(t.properties.desired.$version >= svcVersions[svcVersions.length - 1]);
});

test('SIGTERM exits 0; a restart reuses the CA, the keys and the devices', async () => {
  const connstr = fs.readFileSync(path.join(h.dataDir, 'owner.connstr'), 'utf8');
  const caBefore = fs.readFileSync(h.caPath, 'utf8');
  await h.closeTracked();
  const r = await h.hub.stop();
  assert.deepEqual(r, { code: 0, signal: null }, 'SIGTERM must stop the hub cleanly');
  await h.hub.start();
  h.readOwner();
  assert.equal(fs.readFileSync(path.join(h.dataDir, 'owner.connstr'), 'utf8'), connstr, 'owner.connstr changed');
  assert.equal(fs.readFileSync(h.caPath, 'utf8'), caBefore, 'ca.pem changed');
  reg = h.registry();
  const { responseBody: d } = await reg.get(ID);
  assert.equal(d.authentication.symmetricKey.primaryKey, key);
  // NODE_EXTRA_CA_CERTS still names the original CA: this only works if the hub kept it
  const client = await h.openDevice(h.deviceConnStr(d));
  const twin = await h.barrier(client);
  assert.equal(twin.properties.reported.after, true);
  await client.close();
});
