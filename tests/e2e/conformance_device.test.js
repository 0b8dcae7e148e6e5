'use strict';
// azure-iot-device + azure-iot-device-mqtt as devices, azure-iothub as the
// operator, /iotdm/events and /iotdm/devices/{id}/messages as the extensions.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Client: DeviceClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

let reg;
let svc;

before(async () => {
  await h.startHub();
  reg = h.registry();
  svc = h.serviceClient();
});
after(() => h.stopAll());

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

function isIsoTime(s) {
  return typeof s === 'string' && !Number.isNaN(Date.parse(s));
}

test('open with a connection string, primary and secondary key', async () => {
  const d = await h.createDevice(reg, 'dev-open');
  const ev = await h.events({ deviceId: 'dev-open' });
  const c1 = await h.openDevice(h.deviceConnStr(d, 'primaryKey'));
  await ev.waitFor((e) => e.event === 'connection' && e.data.deviceId === 'dev-open' &&
    e.data.connectionState === 'Connected', 5000, 'connection event Connected for dev-open');
  await c1.close();
  await ev.waitFor((e) => e.event === 'connection' && e.data.deviceId === 'dev-open' &&
    e.data.connectionState === 'Disconnected', 5000, 'connection event Disconnected for dev-open');
  const c2 = await h.openDevice(h.deviceConnStr(d, 'secondaryKey'));
  const twin = await h.barrier(c2);
  assert.equal(typeof twin.properties.desired.$version, 'number');
  await c2.close();
});

test('open with a self-signed X.509 certificate (thumbprint); unregistered certificate refused', async () => {
  const c1 = h.selfSignedCert('dev-x509');
  const c2 = h.selfSignedCert('dev-x509');
  const c3 = h.selfSignedCert('dev-x509');
  const { responseBody: d } = await reg.create({
    deviceId: 'dev-x509',
    authentication: {
      type: 'selfSigned',
      x509Thumbprint: { primaryThumbprint: c1.thumbprint, secondaryThumbprint: c2.thumbprint },
    },
  });
  assert.equal(d.authentication.type, 'selfSigned');
  assert.equal(d.authentication.x509Thumbprint.primaryThumbprint.toUpperCase(), c1.thumbprint);
  assert.equal(d.authentication.x509Thumbprint.secondaryThumbprint.toUpperCase(), c2.thumbprint);

  const cs = `HostName=${h.host};DeviceId=dev-x509;x509=true`;
  const ev = await h.events({ deviceId: 'dev-x509' });
  const client = await h.openDevice(cs, { x509: { cert: c1.cert, key: c1.key } });
  const twin = await h.barrier(client);
  await h.reportedUpdate(twin, { via: 'x509' });
  const { responseBody: st } = await reg.getTwin('dev-x509');
  assert.equal(st.properties.reported.via, 'x509');
  const msg = new Message('x509 hello');
  msg.messageId = h.uid('x509');
  await h.withTimeout(client.sendEvent(msg), 10000, 'sendEvent (x509)');
  const e = await ev.waitFor((x) => x.event === 'telemetry' && x.data.systemProperties &&
    x.data.systemProperties['message-id'] === msg.messageId, 5000, 'x509 telemetry event');
  assert.equal(e.data.deviceId, 'dev-x509');
  assert.equal(e.data.body, 'x509 hello');
  await client.close();

  const second = await h.openDevice(cs, { x509: { cert: c2.cert, key: c2.key } });
  await h.barrier(second);
  await second.close();

  const bad = h.makeDeviceClient(cs, { x509: { cert: c3.cert, key: c3.key }, noRetry: true });
  await bad.setOptions(bad.e2eOptions);
  const err = await h.rejects(bad.open(), 15000, 'open with an unregistered certificate');
  assert.equal(err.name, 'UnauthorizedError', `${err.name}: ${err.message}`);
});

test('getTwin, reported update visible to the service and on the event stream', async () => {
  const d = await h.createDevice(reg, 'dev-twin');
  const client = await h.openDevice(h.deviceConnStr(d));
  const twin = await h.withTimeout(client.getTwin(), 10000, 'getTwin');
  const rv0 = twin.properties.reported.$version;
  assert.equal(typeof rv0, 'number', `reported.$version: ${JSON.stringify(plain(twin.properties))}`);
  assert.equal(typeof twin.properties.desired.$version, 'number');

  const ev = await h.events({ deviceId: 'dev-twin' });
  await h.reportedUpdate(twin, { temp: 21, fw: { version: '1.2.3' } });
  const { responseBody: st } = await reg.getTwin('dev-twin');
  const rep = st.properties.reported;
  assert.equal(rep.temp, 21);
  assert.deepEqual(rep.fw, { version: '1.2.3' });
  assert.ok(rep.$version > rv0, `reported $version ${rep.$version} should be > ${rv0}`);
  assert.ok(rep.$metadata && isIsoTime(rep.$metadata.$lastUpdated), `$metadata: ${JSON.stringify(rep.$metadata)}`);
  assert.ok(rep.$metadata.temp && isIsoTime(rep.$metadata.temp.$lastUpdated), 'no $metadata.temp.$lastUpdated');
  assert.ok(rep.$metadata.fw && rep.$metadata.fw.version && isIsoTime(rep.$metadata.fw.version.$lastUpdated),
    'no $metadata.fw.version.$lastUpdated');

  const e = await ev.waitFor((x) => x.event === 'twin' && x.data.deviceId === 'dev-twin' &&
    x.data.section === 'reported' && x.data.patch && x.data.patch.temp === 21, 5000, 'twin event for the reported patch');
  assert.equal(e.data.version, rep.$version);

  // null deletes
  await h.reportedUpdate(twin, { temp: null });
  const { responseBody: st2 } = await reg.getTwin('dev-twin');
  assert.ok(!('temp' in st2.properties.reported), 'temp should be deleted by null');
  assert.equal(st2.properties.reported.$version, rep.$version + 1);
  await client.close();
});

test('desired update by the service arrives at the device with its $version', async () => {
  const d = await h.createDevice(reg, 'dev-desired');
  const client = await h.openDevice(h.deviceConnStr(d));
  const twin = await h.withTimeout(client.getTwin(), 10000, 'getTwin');
  const deltas = [];
  twin.on('properties.desired', (delta) => deltas.push(plain(delta)));
  await h.barrier(client); // the desired SUBSCRIBE has been processed

  const { responseBody: stwin } = await reg.getTwin('dev-desired');
  const v0 = stwin.properties.desired.$version;
  await stwin.update({ properties: { desired: { setpoint: 22, mode: { fan: 'auto' } } } });
  const v1 = stwin.properties.desired.$version;
  assert.ok(v1 > v0, `desired $version ${v1} should be > ${v0}`);
  assert.equal(stwin.properties.desired.setpoint, 22);
  assert.equal(stwin.properties.desired.$metadata.$lastUpdatedVersion, v1);

  const delta = await h.waitUntil(() => deltas.find((x) => x.setpoint === 22 && x.$version === v1),
    { timeoutMs: 5000, what: `desired notification with setpoint 22 and $version ${v1}; got ${JSON.stringify(deltas)}` });
  assert.deepEqual(delta.mode, { fan: 'auto' });
  assert.equal(twin.properties.desired.setpoint, 22);

  await stwin.update({ properties: { desired: { setpoint: null } } });
  const v2 = stwin.properties.desired.$version;
  assert.equal(v2, v1 + 1);
  await h.waitUntil(() => deltas.find((x) => x.$version === v2 && 'setpoint' in x && x.setpoint === null),
    { timeoutMs: 5000, what: `desired notification deleting setpoint with $version ${v2}; got ${JSON.stringify(deltas)}` });
  assert.ok(!('setpoint' in twin.properties.desired), 'device twin should have dropped setpoint');
  const fresh = await h.barrier(client);
  assert.equal(fresh.properties.desired.$version, v2);
  assert.deepEqual(plain(fresh.properties.desired.mode), { fan: 'auto' });
  await client.close();
});

test('tags are invisible to the device and do not notify it', async () => {
  const d = await h.createDevice(reg, 'dev-tags');
  await reg.updateTwin('dev-tags', { tags: { secret: 'tag-s3cr3t' } }, '*');
  const key = d.authentication.symmetricKey.primaryKey;
  const rc = await h.rawConnect({ deviceId: 'dev-tags', key });
  await rc.subscribe('$iothub/twin/res/#');
  await rc.subscribe('$iothub/twin/PATCH/properties/desired/#');
  const r = await rc.twinGet();
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json).sort(), ['desired', 'reported'], r.text);
  assert.ok(!r.text.includes('tag-s3cr3t'), `device twin leaks tags: ${r.text}`);

  const { responseBody: before } = await reg.getTwin('dev-tags');
  await reg.updateTwin('dev-tags', { tags: { secret: 'tag-changed', more: 1 } }, '*');
  const { responseBody: after } = await reg.getTwin('dev-tags');
  assert.equal(after.tags.secret, 'tag-changed');
  assert.equal(after.properties.desired.$version, before.properties.desired.$version,
    'a tag change must not change the desired $version');
  await h.sleep(1000);
  const leaked = rc.messages.filter((m) => m.topic.startsWith('$iothub/twin/PATCH/properties/desired'));
  assert.equal(leaked.length, 0, `tag update notified the device: ${leaked.map((m) => m.payload.toString())}`);
  // positive control: a desired change does notify
  await reg.updateTwin('dev-tags', { properties: { desired: { x: 1 } } }, '*');
  const n = await rc.waitMessage((m) => m.topic.startsWith('$iothub/twin/PATCH/properties/desired/'), 5000,
    'desired notification');
  assert.equal(JSON.parse(n.payload.toString()).x, 1);
  assert.ok(!n.payload.toString().includes('tag-changed'));
});

test('telemetry with properties arrives on the event stream (utf-8 and binary bodies)', async () => {
  const d = await h.createDevice(reg, 'dev-tele');
  const ev = await h.events({ deviceId: 'dev-tele' });
  const client = await h.openDevice(h.deviceConnStr(d));
  const m1 = new Message(JSON.stringify({ t: 21.5 }));
  m1.messageId = h.uid('m');
  m1.correlationId = 'corr-42';
  m1.contentType = 'application/json';
  m1.contentEncoding = 'utf-8';
  m1.properties.add('alert', 'true');
  m1.properties.add('unit name', 'deg C/100 & more');
  await h.withTimeout(client.sendEvent(m1), 10000, 'sendEvent m1');
  const e1 = await ev.waitFor((x) => x.event === 'telemetry' && x.data.systemProperties &&
    x.data.systemProperties['message-id'] === m1.messageId, 5000, 'telemetry event for m1');
  const t = e1.data;
  assert.equal(t.deviceId, 'dev-tele');
  assert.equal(t.body, JSON.stringify({ t: 21.5 }));
  assert.ok(!t.bodyEncoding || t.bodyEncoding === 'utf-8', `bodyEncoding ${t.bodyEncoding}`);
  assert.equal(t.properties.alert, 'true');
  assert.equal(t.properties['unit name'], 'deg C/100 & more');
  assert.equal(t.systemProperties['iothub-connection-device-id'], 'dev-tele');
  assert.ok(isIsoTime(t.systemProperties['iothub-enqueuedtime']), JSON.stringify(t.systemProperties));
  assert.equal(t.systemProperties['correlation-id'], 'corr-42', JSON.stringify(t.systemProperties));
  assert.ok(isIsoTime(t.enqueuedTimeUtc));
  assert.equal(String(t.seq), e1.id, 'SSE id must be the event seq');
  for (const k of Object.keys(t.properties)) {
    assert.ok(!k.startsWith('$.') && !k.startsWith('%24'), `system property leaked into app properties: ${k}`);
  }

  const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]);
  const m2 = new Message(bytes);
  m2.messageId = h.uid('bin');
  await h.withTimeout(client.sendEvent(m2), 10000, 'sendEvent m2');
  const e2 = await ev.waitFor((x) => x.event === 'telemetry' && x.data.systemProperties &&
    x.data.systemProperties['message-id'] === m2.messageId, 5000, 'telemetry event for the binary message');
  assert.equal(e2.data.bodyEncoding, 'base64');
  assert.deepEqual(Buffer.from(e2.data.body, 'base64'), bytes);
  assert.ok(Number(e2.id) > Number(e1.id), 'event ids must increase');
  await client.close();
});

test('event stream: from=start replays, Last-Event-ID resumes after that id, deviceId filters', async () => {
  const d = await h.createDevice(reg, 'dev-sse');
  const client = await h.openDevice(h.deviceConnStr(d));
  const mids = [h.uid('a'), h.uid('b')];
  for (const mid of mids) {
    const m = new Message(`body ${mid}`);
    m.messageId = mid;
    await h.withTimeout(client.sendEvent(m), 10000, `sendEvent ${mid}`);
  }
  const isMid = (mid) => (x) => x.event === 'telemetry' && x.data.systemProperties &&
    x.data.systemProperties['message-id'] === mid;
  const all = await h.events({ from: 'start', deviceId: 'dev-sse' });
  const a = await all.waitFor(isMid(mids[0]), 5000, 'replayed first message');
  await all.waitFor(isMid(mids[1]), 5000, 'replayed second message');
  assert.ok(all.events.every((x) => x.data.deviceId === 'dev-sse'), 'deviceId filter let other devices through');

  const resumed = await h.events({ deviceId: 'dev-sse', lastEventId: a.id });
  await resumed.waitFor(isMid(mids[1]), 5000, 'second message after Last-Event-ID');
  assert.equal(resumed.events.find(isMid(mids[0])), undefined, 'Last-Event-ID must resume after that id');

  const live = await h.events({ deviceId: 'dev-sse' }); // default: from=end
  const m3 = new Message('live');
  m3.messageId = h.uid('c');
  await h.withTimeout(client.sendEvent(m3), 10000, 'sendEvent live');
  await live.waitFor(isMid(m3.messageId), 5000, 'live message');
  assert.equal(live.events.find(isMid(mids[0])), undefined, 'default from=end must not replay history');
  await client.close();
});

test('C2D through the extension arrives at the SDK device with properties; complete drains the queue', async () => {
  const d = await h.createDevice(reg, 'dev-c2d');
  const mid = h.uid('c2d');
  const r = await h.sendC2D('dev-c2d', {
    body: 'hello device', messageId: mid, correlationId: 'corr-7', ack: 'full',
    properties: { color: 'blue', 'odd key': 'a/b&c=d %' },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.messageId, mid);
  assert.ok(isIsoTime(r.json.enqueuedTimeUtc) && isIsoTime(r.json.expiryTimeUtc), r.text);
  assert.ok(Date.parse(r.json.expiryTimeUtc) > Date.parse(r.json.enqueuedTimeUtc));
  const r2 = await h.sendC2D('dev-c2d', { body: Buffer.from([0, 1, 2, 255]).toString('base64'), bodyEncoding: 'base64' });
  assert.equal(r2.status, 200, r2.text);
  assert.ok(r2.json.messageId, 'a messageId is assigned when none is given');
  const pendingCount = (await reg.get('dev-c2d')).responseBody.cloudToDeviceMessageCount; // checked last

  const client = await h.openDevice(h.deviceConnStr(d));
  const got = [];
  client.on('message', (m) => got.push(m));
  await h.waitUntil(() => got.length >= 2, { timeoutMs: 10000, what: `2 C2D messages (got ${got.length})` });
  const m = got.find((x) => x.messageId === mid);
  assert.ok(m, `no message with id ${mid}: ${got.map((x) => x.messageId)}`);
  assert.equal(m.data.toString(), 'hello device');
  assert.equal(m.correlationId, 'corr-7');
  assert.equal(m.properties.getValue('color'), 'blue');
  assert.equal(m.properties.getValue('odd key'), 'a/b&c=d %');
  const b = got.find((x) => x.messageId === r2.json.messageId);
  assert.ok(b, 'binary message missing');
  assert.deepEqual(Buffer.from(b.data), Buffer.from([0, 1, 2, 255]));
  for (const x of got) await h.withTimeout(client.complete(x), 5000, 'complete');
  await client.close();
  assert.equal(pendingCount, 2, 'cloudToDeviceMessageCount with 2 messages queued');
  await h.waitUntil(async () => (await reg.get('dev-c2d')).responseBody.cloudToDeviceMessageCount === 0,
    { timeoutMs: 5000, what: 'cloudToDeviceMessageCount back to 0 after PUBACK' });
});

test('C2D enqueued while the device is offline arrives when it reconnects (persistent session)', async () => {
  const d = await h.createDevice(reg, 'dev-c2d-offline');
  const first = await h.openDevice(h.deviceConnStr(d));
  first.on('message', (m) => first.complete(m).catch(() => {}));
  await h.barrier(first); // the C2D subscription is in place and kept by the session
  await first.close();
  const r = await h.sendC2D('dev-c2d-offline', { body: 'while you were away', messageId: 'away-1' });
  assert.equal(r.status, 200, r.text);
  // The hub delivers the queued message right after CONNACK (the session keeps
  // the subscription), so the listener must exist before open, as in any app.
  const again = h.makeDeviceClient(h.deviceConnStr(d));
  await again.setOptions(again.e2eOptions);
  const got = [];
  again.on('message', (m) => { got.push(m); again.complete(m).catch(() => {}); });
  await h.withTimeout(again.open(), 15000, 'device reopen');
  const m = await h.waitUntil(() => got.find((x) => x.messageId === 'away-1'),
    { timeoutMs: 10000, what: 'the message queued while offline' });
  assert.equal(m.data.toString(), 'while you were away');
  await again.close();
});

test('C2D extension: 404 for unknown device, 403 beyond 50 pending, purge, expiry', async () => {
  const u = await h.sendC2D('dev-none', { body: 'x' });
  assert.equal(u.status, 404, u.text);
  assert.equal(h.errorCode(u.text), 'DeviceNotFound', u.text);

  const d = await h.createDevice(reg, 'dev-c2d-full');
  for (let i = 0; i < 50; i++) {
    const r = await h.sendC2D('dev-c2d-full', { body: `m${i}` });
    assert.equal(r.status, 200, `message ${i}: ${r.status} ${r.text}`);
  }
  const over = await h.sendC2D('dev-c2d-full', { body: 'one too many' });
  assert.equal(over.status, 403, over.text);
  assert.equal(h.errorCode(over.text), 'DeviceMaximumQueueDepthExceeded', over.text);

  const p = await h.rest('DELETE', `/devices/dev-c2d-full/commands?${h.API}`);
  assert.equal(p.status, 200, p.text);
  assert.equal(p.json.deviceId, 'dev-c2d-full');
  assert.equal(p.json.totalMessagesPurged, 50);
  assert.equal((await reg.get('dev-c2d-full')).responseBody.cloudToDeviceMessageCount, 0);

  const exp = await h.sendC2D('dev-c2d-full', { body: 'short-lived', messageId: 'exp-1', ttlSeconds: 1 });
  assert.equal(exp.status, 200, exp.text);
  const ttl = Date.parse(exp.json.expiryTimeUtc) - Date.parse(exp.json.enqueuedTimeUtc);
  assert.ok(ttl >= 900 && ttl <= 1100, `expiry should be enqueued + 1 s, got ${ttl} ms`);
  const keep = await h.sendC2D('dev-c2d-full', { body: 'kept', messageId: 'keep-1' });
  assert.equal(keep.status, 200, keep.text);
  await h.sleep(2000);
  const client = await h.openDevice(h.deviceConnStr(d));
  const got = [];
  client.on('message', (m) => { got.push(m.messageId); client.complete(m).catch(() => {}); });
  await h.waitUntil(() => got.includes('keep-1'), { timeoutMs: 10000, what: 'the unexpired message' });
  await h.sleep(1000);
  assert.deepEqual(got, ['keep-1'], 'the purged and expired messages must not be delivered');
  await client.close();
});

test('a disabled device is refused; disabling a connected device drops it', async () => {
  const d = await h.createDevice(reg, 'dev-off', { status: 'disabled' });
  const c = h.makeDeviceClient(h.deviceConnStr(d), { noRetry: true });
  await c.setOptions(c.e2eOptions);
  const err = await h.rejects(c.open(), 15000, 'open of a disabled device');
  assert.equal(err.name, 'UnauthorizedError', `${err.name}: ${err.message}`);

  const d2 = await h.createDevice(reg, 'dev-off2');
  const ev = await h.events({ deviceId: 'dev-off2' });
  const live = await h.openDevice(h.deviceConnStr(d2));
  // with a method listener the SDK reconnects after a drop; the hub must refuse it.
  // (The SDK keeps retrying for minutes: it turns a CONNACK 5 after the first
  // connection into a retryable NotConnectedError.)
  live.onDeviceMethod('noop', (req, res) => res.send(200, () => {}));
  await h.barrier(live);
  await ev.waitFor((x) => x.event === 'connection' && x.data.connectionState === 'Connected', 5000, 'Connected event');
  await reg.update({ deviceId: 'dev-off2', status: 'disabled', authentication: d2.authentication });
  const off = await ev.waitFor((x) => x.event === 'connection' && x.data.connectionState === 'Disconnected', 5000,
    'Disconnected event after disabling');
  await h.sleep(1500);
  const reconnected = ev.events.slice(ev.events.indexOf(off) + 1).filter((x) => x.event === 'connection');
  assert.deepEqual(reconnected.map((x) => x.data.connectionState), [], 'the SDK reconnected to a disabled device');
  assert.equal((await reg.get('dev-off2')).responseBody.connectionState, 'Disconnected');
});

test('SAS token renewal: the SDK reconnects without re-subscribing; twin and methods keep working', async () => {
  const d = await h.createDevice(reg, 'dev-sas');
  const key = d.authentication.symmetricKey.primaryKey;
  const exp1 = h.nowSec() + 8;
  const ev = await h.events({ deviceId: 'dev-sas' });
  const client = await h.openDevice(DeviceClient.fromSharedAccessSignature(h.raw.deviceSas(h.host, 'dev-sas', key, exp1), Mqtt));
  let calls = 0;
  client.onDeviceMethod('ping', (req, res) => {
    calls += 1;
    res.send(200, { pong: req.payload }, () => {});
  });
  const twin = await h.barrier(client);
  const deltas = [];
  twin.on('properties.desired', (x) => deltas.push(plain(x)));
  await h.barrier(client);
  const before = (await svc.invokeDeviceMethod('dev-sas', { methodName: 'ping', payload: 0, responseTimeoutInSeconds: 5 })).result;
  assert.equal(before.status, 200);

  const isConn = (x) => x.event === 'connection' && x.data.connectionState === 'Connected';
  const connectedBefore = ev.events.filter(isConn).length;
  await h.updateSas(client, h.raw.deviceSas(h.host, 'dev-sas', key, h.nowSec() + 3600));
  await h.waitUntil(() => ev.events.filter(isConn).length > connectedBefore,
    { timeoutMs: 5000, what: 'a new Connected event after the token update (the SDK reconnects)' });
  await h.sleep(500); // azure-iot-device-mqtt may reconnect twice for one update; let the events settle
  const eventsAfterRenewal = ev.events.length;

  // let the first token expire: the connection must be on the new token
  const wait = exp1 * 1000 + 2000 - Date.now();
  if (wait > 0) await h.sleep(wait);
  const late = ev.events.slice(eventsAfterRenewal).filter((x) => x.event === 'connection');
  assert.deepEqual(late.map((x) => x.data.connectionState), [], 'connection events after the renewal');

  await h.reportedUpdate(twin, { renewed: true });
  assert.equal((await reg.getTwin('dev-sas')).responseBody.properties.reported.renewed, true);
  const fresh = await h.barrier(client);
  assert.equal(fresh.properties.reported.renewed, true);
  const r = await svc.invokeDeviceMethod('dev-sas', { methodName: 'ping', payload: 'after', responseTimeoutInSeconds: 5 });
  assert.equal(r.result.status, 200);
  assert.deepEqual(r.result.payload, { pong: 'after' });
  assert.equal(calls, 2);
  const { responseBody: st } = await reg.getTwin('dev-sas');
  await st.update({ properties: { desired: { afterRenewal: 1 } } });
  await h.waitUntil(() => deltas.find((x) => x.afterRenewal === 1),
    { timeoutMs: 5000, what: 'desired notification after the renewal' });
  assert.equal(client.e2eDisconnects.length, 0, `SDK reported disconnects: ${client.e2eDisconnects}`);
  await client.close();
});
