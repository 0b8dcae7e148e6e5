'use strict';
// libiotdm against a real iotdm-hub: the C test device (tests/e2e/bin/device.c) on the library's
// public API, driven through stdin and checked through the official azure-iothub SDK and the
// /iotdm/events stream: connection, twin, PnP acks, methods, telemetry, C2D, the durable outbox
// across hub outages and kill -9, refused credentials, SAS renewal, X.509, the host-loop mode.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { CDevice } = require('./lib/device_c');

const MODEL_ID = 'dtmi:iotdm:DeviceManagement;1';
let reg;
let svc;

before(async () => {
  await h.startHub();
  reg = h.registry();
  svc = h.serviceClient();
});
after(() => h.stopAll());

function makeDevice(id, auth, args = [], stateDir) {
  const dev = new CDevice({
    host: h.host, deviceId: id, ca: h.caPath, ...auth, args,
    stateDir: stateDir || fs.mkdtempSync(path.join(h.root, `state-${id}-`)),
    logPath: path.join(h.root, `device-${id}.log`),
  });
  h.track(() => dev.stop().catch(() => dev.kill9()));
  return dev;
}

// A registered device running the C program, connected and past its first full twin read.
async function onlineDevice(id, args = []) {
  const d = await h.createDevice(reg, id);
  const key = d.authentication.symmetricKey.primaryKey;
  const dev = makeDevice(id, { key }, args);
  await dev.start();
  await dev.connected();
  await dev.waitFor((e) => e.event === 'desired' && e.full, 15000, 'the first full desired read');
  return { dev, key };
}

async function twin(id) {
  return (await reg.getTwin(id)).responseBody;
}

async function reportedWhere(id, pred, what, timeoutMs = 15000) {
  return h.waitUntil(async () => {
    const t = await twin(id);
    return pred(t.properties.reported, t) ? t : null;
  }, { timeoutMs, what });
}

async function setDesired(id, desired) {
  const { responseBody } = await reg.updateTwin(id, { properties: { desired } }, '*');
  return responseBody.properties.desired.$version;
}

function invoke(id, methodName, payload) {
  return h.withTimeout(svc.invokeDeviceMethod(id, { methodName, payload, responseTimeoutInSeconds: 10 }),
    20000, `invoke ${methodName}`);
}

// Events of the hub's retained history for one device, from the start.
async function history(id) {
  return h.events({ from: 'start', deviceId: id });
}

test('connects with the model id; initial state, reported patches and read-only properties reach the twin', async () => {
  const { dev } = await onlineDevice('lib-basic');
  const t0 = await twin('lib-basic');
  assert.equal(t0.connectionState, 'Connected');
  assert.equal(t0.modelId, MODEL_ID, 'model-id from the CONNECT user name');
  // every handler's read_state is reported once, as a PnP device value (ac 203)
  const init = await reportedWhere('lib-basic', (r) => r.e2e && r.e2e.setting && r.e2e.failing, 'initial handler state');
  assert.equal(init.properties.reported.e2e.__t, 'c');
  assert.deepEqual(init.properties.reported.e2e.setting, { value: 'device-default', ac: 203, av: 0, ad: 'reported by the device' });

  const r = await dev.command('report {"app":{"x":1,"list":[1,2]},"flag":true}');
  assert.equal(r.result, 0, r.message);
  const p = await dev.command('prop e2e readOnly {"a":"b"}');
  assert.equal(p.result, 0, p.message);
  const t = await reportedWhere('lib-basic', (rep) => rep.app && rep.e2e.readOnly, 'reported patches in the twin');
  assert.deepEqual(t.properties.reported.app, { x: 1, list: [1, 2] });
  assert.equal(t.properties.reported.flag, true);
  assert.deepEqual(t.properties.reported.e2e.readOnly, { a: 'b' });

  // malformed and oversized patches are refused by the library, not sent
  assert.notEqual((await dev.command('report [1,2]')).result, 0);
  assert.notEqual((await dev.command(`report {"big":"${'x'.repeat(5000)}"}`)).result, 0);
  const stats = await dev.stats();
  assert.equal(stats.reported, 0, 'nothing left in the outbox');
});

test('desired patches arrive in $version order, are dispatched property by property and acknowledged the PnP way', async () => {
  const { dev } = await onlineDevice('lib-desired');
  const since = dev.mark();
  const v1 = await setDesired('lib-desired', { e2e: { __t: 'c', setting: 'a' } });
  const v2 = await setDesired('lib-desired', { e2e: { __t: 'c', setting: 'b' } });
  const v3 = await setDesired('lib-desired', {
    e2e: { __t: 'c', setting: 'c', failing: 5, other: { x: 1 }, appOnly: 'z' }, plain: 1,
  });
  assert.ok(v1 < v2 && v2 < v3);
  await dev.waitFor((e) => e.event === 'handler' && e.property === 'other', 15000, 'the third patch', since);
  const handled = dev.events.filter((e) => e.index >= since && e.event === 'handler');
  assert.deepEqual(handled.map((e) => [e.property, e.version, JSON.parse(e.value)]), [
    ['setting', v1, 'a'], ['setting', v2, 'b'], ['setting', v3, 'c'], ['failing', v3, 5], ['other', v3, { x: 1 }],
  ]);
  // the application sees only what no handler claims (its callback may run after the handlers')
  await dev.waitFor((e) => e.event === 'desired' && e.version === v3, 10000, "the application's part", since);
  const app = dev.events.filter((e) => e.index >= since && e.event === 'desired');
  assert.deepEqual(app.map((e) => e.version), [v3]);
  assert.deepEqual(JSON.parse(app[0].json), { e2e: { __t: 'c', appOnly: 'z' }, plain: 1, $version: v3 });

  const t = await reportedWhere('lib-desired', (r) => r.e2e && r.e2e.other && r.e2e.other.av === v3, 'acks for the third patch');
  const e2e = t.properties.reported.e2e;
  assert.deepEqual(e2e.setting, { value: 'c', ac: 200, av: v3, ad: 'applied' });
  assert.deepEqual(e2e.failing, { value: 5, ac: 400, av: v3, ad: 'refused on purpose' });
  assert.deepEqual(e2e.other, { value: { x: 1 }, ac: 200, av: v3, ad: 'applied' });
  assert.equal(e2e.__t, 'c');

  // a delta patch hands the handler the merged value of its property
  await setDesired('lib-desired', { e2e: { other: { y: 2 } } });
  const ev = await dev.waitFor((e) => e.event === 'handler' && e.property === 'other' && e.version > v3, 10000, 'merged other');
  assert.deepEqual(JSON.parse(ev.value), { x: 1, y: 2 });
  const copy = await dev.command('desired', 'desired-copy');
  assert.deepEqual(JSON.parse(copy.json).e2e.other, { x: 1, y: 2 });
});

test('a restart applies what changed while the device was away, and only that', async () => {
  const id = 'lib-restart';
  const { dev, key } = await onlineDevice(id);
  const v1 = await setDesired(id, { e2e: { __t: 'c', setting: 'one', other: 'same' } });
  await reportedWhere(id, (r) => r.e2e.other && r.e2e.other.av === v1, 'acks before the restart');
  await dev.stop();
  const v2 = await setDesired(id, { e2e: { setting: 'two' } });

  const again = makeDevice(id, { key }, [], dev.opts.stateDir);
  await again.start();
  await again.connected();
  const ev = await again.waitFor((e) => e.event === 'handler' && e.property === 'setting', 15000, 'the change made offline');
  assert.equal(ev.version, v2);
  assert.equal(JSON.parse(ev.value), 'two');
  await again.waitFor((e) => e.event === 'desired' && e.full, 5000, 'the full desired read');
  assert.ok(!again.events.some((e) => e.event === 'handler' && e.property === 'other'),
    'an unchanged, already applied value must not be applied again');
  const t = await reportedWhere(id, (r) => r.e2e.setting.av === v2, 'ack of the offline change');
  assert.equal(t.properties.reported.e2e.setting.value, 'two');
  assert.equal(t.properties.reported.e2e.other.av, v1);
});

test('direct methods: payload back, PnP command, failure status, unknown name', async () => {
  const { dev } = await onlineDevice('lib-methods');
  const r1 = await invoke('lib-methods', 'echo', { a: [1, 2], s: 'ünï' });
  assert.equal(r1.result.status, 200);
  assert.deepEqual(r1.result.payload, { a: [1, 2], s: 'ünï' });
  const r2 = await invoke('lib-methods', 'e2e*ping', null);
  assert.equal(r2.result.status, 200);
  assert.equal(r2.result.payload, null);
  // The device reports the call on its stdout before it answers over MQTT, but the two travel on
  // separate paths: the answer may reach the service first.
  await dev.waitFor((e) => e.event === 'method' && e.name === 'e2e*ping' && e.payload === 'null', 5000,
    'the e2e*ping call on the device');
  const r3 = await invoke('lib-methods', 'fail', 1);
  assert.equal(r3.result.status, 500);
  assert.deepEqual(r3.result.payload, { error: 'failed on purpose' });
  const r4 = await invoke('lib-methods', 'nope', {});
  assert.equal(r4.result.status, 404);
  assert.deepEqual(r4.result.payload, { message: 'no such method' });
});

test('telemetry with its properties reaches /iotdm/events; C2D messages reach the device', async () => {
  const { dev } = await onlineDevice('lib-tele');
  const ev = await h.events({ from: 'start', deviceId: 'lib-tele' });
  assert.equal((await dev.command('telemetry tele-1 hello world')).result, 0);
  const t = await ev.waitFor((x) => x.event === 'telemetry' && x.data.systemProperties['message-id'] === 'tele-1', 10000, 'telemetry tele-1');
  assert.equal(t.data.body, 'hello world');
  assert.equal(t.data.systemProperties['content-type'], 'text/plain');
  assert.equal(t.data.systemProperties['content-encoding'], 'utf-8');
  assert.equal(t.data.properties.origin, 'libiotdm e2e');

  const enq = await h.sendC2D('lib-tele', { body: 'to the device', messageId: 'c2d-1', properties: { kind: 'test', 'sp ace': 'a/b&c' } });
  assert.equal(enq.status, 200, enq.text);
  const m = await dev.waitFor((e) => e.event === 'c2d', 10000, 'the C2D message');
  assert.equal(m.body, 'to the device');
  assert.equal(m.properties.kind, 'test');
  assert.equal(m.properties['sp ace'], 'a/b&c');
  assert.equal(m.properties['$.mid'], 'c2d-1');
  const d = await h.waitUntil(async () => {
    const x = (await reg.get('lib-tele')).responseBody;
    return x.cloudToDeviceMessageCount === 0 ? x : null;
  }, { what: 'the C2D message completed' });
  assert.equal(d.cloudToDeviceMessageCount, 0);
});

test('outbox: reported patches and telemetry made while the hub is down arrive in order after it returns', async () => {
  const id = 'lib-outage';
  const { dev } = await onlineDevice(id, ['--backoff-max', '2']);
  await dev.command('report {"phase":"before"}');
  await reportedWhere(id, (r) => r.phase === 'before', 'the first patch');
  const since = dev.mark();
  assert.equal((await h.hub.stop()).code, 0);
  await dev.disconnected(since);

  for (let i = 1; i <= 5; i++) {
    assert.equal((await dev.command(`report {"seq":${i},"o${i}":${i}}`)).result, 0);
    assert.equal((await dev.command(`telemetry out-${i} offline ${i}`)).result, 0);
  }
  const queued = await dev.stats();
  assert.equal(queued.reported, 5);
  assert.equal(queued.telemetry, 5);

  await h.hub.start();
  await dev.connected(since);
  const t = await reportedWhere(id, (r) => r.seq === 5 && r.o1 === 1 && r.o5 === 5, 'the queued patches', 20000);
  assert.equal(t.properties.reported.phase, 'before');
  const ev = await history(id);
  await ev.waitFor((x) => x.event === 'telemetry' && x.data.systemProperties['message-id'] === 'out-5', 15000, 'telemetry out-5');
  await h.sleep(300);
  const mids = ev.events.filter((x) => x.event === 'telemetry' && /^out-/.test(x.data.systemProperties['message-id']))
    .map((x) => x.data.systemProperties['message-id']);
  assert.deepEqual([...new Set(mids)], ['out-1', 'out-2', 'out-3', 'out-4', 'out-5']);
  const seqs = ev.events.filter((x) => x.event === 'twin' && x.data.section === 'reported' && x.data.patch.seq)
    .map((x) => x.data.patch.seq);
  assert.deepEqual(seqs, [1, 2, 3, 4, 5], 'reported patches in the order they were made');
  const after = await h.waitUntil(async () => {
    const s = await dev.stats();
    return s.reported === 0 && s.telemetry === 0 ? s : null;
  }, { what: 'an empty outbox' });
  assert.equal(after.dropped, 0);
});

test('outbox: kill -9 with queued patches; the restarted device delivers them', async () => {
  const id = 'lib-kill';
  const { dev, key } = await onlineDevice(id, ['--backoff-max', '2']);
  const since = dev.mark();
  assert.equal((await h.hub.stop()).code, 0);
  await dev.disconnected(since);
  for (let i = 1; i <= 3; i++) {
    assert.equal((await dev.command(`report {"q${i}":"queued ${i}","last":${i}}`)).result, 0);
  }
  assert.equal((await dev.command('telemetry killed-1 survives kill -9')).result, 0);
  const r = await dev.kill9();
  assert.equal(r.signal, 'SIGKILL');

  await h.hub.start();
  const again = makeDevice(id, { key }, ['--backoff-max', '2'], dev.opts.stateDir);
  await again.start();
  await again.connected();
  const t = await reportedWhere(id, (rep) => rep.q3 && rep.q1, 'patches queued before kill -9', 20000);
  assert.equal(t.properties.reported.last, 3);
  assert.equal(t.properties.reported.q2, 'queued 2');
  const ev = await history(id);
  await ev.waitFor((x) => x.event === 'telemetry' && x.data.systemProperties['message-id'] === 'killed-1', 15000, 'telemetry queued before kill -9');
});

test('refused credentials: state "refused", and retries wait refused_retry_s instead of hot-looping', async () => {
  await h.createDevice(reg, 'lib-refused');
  const dev = makeDevice('lib-refused', { key: Buffer.alloc(32, 7).toString('base64') }, ['--refused-retry', '3']);
  await dev.start();
  const ev = await dev.waitFor((e) => e.event === 'connection' && e.state === 'refused', 10000, 'refused');
  assert.match(ev.reason, /CONNACK 5/);
  await h.sleep(4500);
  const attempts = dev.events.filter((e) => e.event === 'connection' && e.state === 'connecting').length;
  assert.ok(attempts >= 2 && attempts <= 3, `expected 2 or 3 attempts in ~5 s, saw ${attempts}`);
});

test('SAS renewal before expiry keeps methods and desired notifications working', async () => {
  const id = 'lib-renew';
  const { dev } = await onlineDevice(id, ['--sas-ttl', '5']);
  const since = dev.mark();
  await h.sleep(10000);
  const reconnects = dev.events.filter((e) => e.index >= since && e.event === 'connection' && e.state === 'connected').length;
  assert.ok(reconnects >= 2, `expected the token to be renewed twice in 10 s, saw ${reconnects} reconnects`);
  const r = await h.waitUntil(async () => {
    const x = await invoke(id, 'echo', 'after renewal');
    return x.result.status === 200 ? x : null;
  }, { what: 'a method call after renewals' });
  assert.equal(r.result.payload, 'after renewal');
  const v = await setDesired(id, { e2e: { __t: 'c', setting: 'renewed' } });
  await dev.waitFor((e) => e.event === 'handler' && e.version === v, 10000, 'desired after renewals');
});

test('X.509 client certificate, with the client in the host application\'s poll loop', async () => {
  const id = 'lib-x509';
  const cert = h.selfSignedCert(id);
  const dir = fs.mkdtempSync(path.join(h.root, 'x509-'));
  fs.writeFileSync(path.join(dir, 'cert.pem'), cert.cert);
  fs.writeFileSync(path.join(dir, 'key.pem'), cert.key);
  await h.createDevice(reg, id, { authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: cert.thumbprint } } });
  const dev = makeDevice(id, { cert: path.join(dir, 'cert.pem'), keyFile: path.join(dir, 'key.pem') }, ['--loop']);
  await dev.start();
  assert.equal(dev.events[0].mode, 'loop');
  await dev.connected();
  assert.equal((await dev.command('report {"auth":"x509"}')).result, 0);
  await reportedWhere(id, (r) => r.auth === 'x509', 'a patch over the X.509 connection');
  const r = await invoke(id, 'echo', 7);
  assert.equal(r.result.payload, 7);
});
