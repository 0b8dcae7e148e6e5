'use strict';
// Raw device MQTT against the hub: refused CONNECTs, cross-device access,
// protocol violations and malformed packets, twin limits, takeover,
// keep-alive, persistent sessions (docs/protocol.md §2, §4-§6, §9.1-§9.2).
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { connectPacket, publishHeader, packet, PINGREQ, deviceSas, deviceUsername, randomKey } = h.raw;

let reg;
const keys = {};
let watcher; // a well-behaved device that must keep working throughout

before(async () => {
  await h.startHub();
  reg = h.registry();
  for (const id of ['neg-a', 'neg-b', 'neg-w', 'neg-m', 'neg-t', 'neg-twin', 'neg-take', 'neg-ka', 'neg-s', 'neg-c2d']) {
    const d = await h.createDevice(reg, id);
    keys[id] = d.authentication.symmetricKey.primaryKey;
  }
  const off = await h.createDevice(reg, 'neg-off', { status: 'disabled' });
  keys['neg-off'] = off.authentication.symmetricKey.primaryKey;
  watcher = await h.rawConnect({ deviceId: 'neg-w', key: keys['neg-w'] });
  await watcher.subscribe('$iothub/twin/res/#');
});
after(() => h.stopAll());

async function watcherStillServed(what) {
  assert.ok(h.hub.running, `the hub process died (${what})`);
  assert.ok(!watcher.closed, `the well-behaved device was disconnected (${what})`);
  const r = await watcher.twinGet(5000);
  assert.equal(r.status, 200, `watcher twin GET after ${what}: ${r.status} ${r.text}`);
}

async function refused(opts, what) {
  const err = await h.rejects(h.rawConnect(opts), 15000, what);
  assert.equal(err.returnCode, 5, `${what}: expected CONNACK 5, got: ${err.message}`);
}

// ------------------------------------------------------------------ CONNECT

test('the right key connects (control)', async () => {
  const c = await h.rawConnect({ deviceId: 'neg-a', key: keys['neg-a'] });
  assert.equal(c.connack.returnCode, 0);
  const c2 = await h.rawConnect({ deviceId: 'neg-a', key: keys['neg-a'], username: `${h.host}/neg-a/?api-version=2020-09-30&DeviceClientType=azsdk-c%2F1.5.0&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1` });
  assert.equal(c2.connack.returnCode, 0, 'a C-SDK style username must be accepted');
  await c2.end();
  await c.end();
});

test('wrong key -> CONNACK 5', () => refused({ deviceId: 'neg-a', key: randomKey() }, 'wrong key'));

test('expired token -> CONNACK 5', () => refused({ deviceId: 'neg-a', key: keys['neg-a'], expiry: h.nowSec() - 3600 }, 'expired token'));

test('disabled device -> CONNACK 5', () => refused({ deviceId: 'neg-off', key: keys['neg-off'] }, 'disabled device'));

test('unknown device -> CONNACK 5', () => refused({ deviceId: 'neg-nobody', key: randomKey() }, 'unknown device'));

test("another device's token -> CONNACK 5", () => refused({
  deviceId: 'neg-a', password: deviceSas(h.host, 'neg-b', keys['neg-b']),
}, "token of neg-b used by neg-a"));

test('username naming another device than the client id -> refused', async () => {
  const err = await h.rejects(h.rawConnect({
    deviceId: 'neg-a', key: keys['neg-a'], username: deviceUsername(h.host, 'neg-b'),
  }), 15000, 'username/clientId mismatch');
  assert.ok(err.returnCode > 0 || err.closedWithoutConnack, err.message);
});

test('disabling a connected device closes its connection', async () => {
  const d = await h.createDevice(reg, 'neg-live-off');
  const c = await h.rawConnect({ deviceId: 'neg-live-off', key: d.authentication.symmetricKey.primaryKey });
  await reg.update({ deviceId: 'neg-live-off', status: 'disabled', authentication: d.authentication });
  await c.waitClosed(5000, 'device disabled');
});

// ------------------------------------------------------- topic authorization

test("device A subscribing to B's C2D topic is disconnected", async () => {
  const c = await h.rawConnect({ deviceId: 'neg-a', key: keys['neg-a'] });
  c.client.subscribe('devices/neg-b/messages/devicebound/#', { qos: 1 }, () => {});
  await c.waitClosed(5000, "SUBSCRIBE to another device's topic");
  await watcherStillServed('foreign SUBSCRIBE');
});

test("device A publishing on B's telemetry topic is disconnected and nothing reaches B's stream", async () => {
  const ev = await h.events({ deviceId: 'neg-b' });
  const c = await h.rawConnect({ deviceId: 'neg-a', key: keys['neg-a'] });
  c.client.publish('devices/neg-b/messages/events/%24.mid=forged', 'forged', { qos: 1 }, () => {});
  await c.waitClosed(5000, "PUBLISH on another device's topic");
  const leaked = await ev.absent((x) => x.event === 'telemetry', 1000);
  assert.equal(leaked, null, `forged telemetry reached neg-b's stream: ${leaked && leaked.raw}`);
});

test('a QoS 2 publish closes the connection', async () => {
  const c = await h.rawConnect({ deviceId: 'neg-a', key: keys['neg-a'] });
  c.client.publish('devices/neg-a/messages/events/', 'qos2', { qos: 2 }, () => {});
  await c.waitClosed(5000, 'QoS 2 PUBLISH');
});

test('publishing on an unknown topic closes the connection', async () => {
  const c = await h.rawConnect({ deviceId: 'neg-a', key: keys['neg-a'] });
  c.client.publish('some/random/topic', 'x', { qos: 1 }, () => {});
  await c.waitClosed(5000, 'PUBLISH on a non-IoT-Hub topic');
});

// ---------------------------------------------------------- malformed input

test('garbage bytes before CONNECT: that connection is closed, others keep working', async () => {
  const s = await h.rawTls();
  await s.write(Buffer.from([0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06]));
  await s.waitClosed(5000, 'garbage');
  await watcherStillServed('garbage bytes');
});

test('a packet other than CONNECT first closes the connection', async () => {
  const s = await h.rawTls();
  await s.write(PINGREQ);
  await s.waitClosed(5000, 'PINGREQ before CONNECT');
  assert.equal(s.countPackets(13), 0, 'no PINGRESP before CONNECT');
  await watcherStillServed('PINGREQ before CONNECT');
});

test('a truncated CONNECT followed by close leaves the hub serving', async () => {
  const s = await h.rawTls();
  const full = connectPacket({ clientId: 'neg-m', username: deviceUsername(h.host, 'neg-m'), password: deviceSas(h.host, 'neg-m', keys['neg-m']) });
  await s.write(full.subarray(0, Math.floor(full.length / 2)));
  await h.sleep(200);
  s.end();
  await s.waitClosed(5000, 'our own close');
  await watcherStillServed('truncated CONNECT');
  const c = await h.rawConnect({ deviceId: 'neg-m', key: keys['neg-m'] });
  await c.end();
});

async function connectedRaw(id) {
  const s = await h.rawTls();
  await s.write(connectPacket({ clientId: id, username: deviceUsername(h.host, id), password: deviceSas(h.host, id, keys[id]) }));
  const rc = await s.waitConnack(5000);
  assert.equal(rc, 0, `raw CONNECT of ${id} refused with ${rc}`);
  return s;
}

test('a remaining length of 5 bytes closes the connection', async () => {
  const s = await connectedRaw('neg-m');
  await s.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x01, 0x61]));
  await s.waitClosed(5000, '5-byte remaining length');
  await watcherStillServed('5-byte remaining length');
});

test('a PUBLISH declaring 300 KB is refused without waiting for the body', async () => {
  const s = await connectedRaw('neg-m');
  await s.write(Buffer.concat([publishHeader('devices/neg-m/messages/events/', 300 * 1024, 1), Buffer.alloc(1024, 0x61)]));
  await s.waitClosed(5000, 'PUBLISH declaring 300 KB');
  await watcherStillServed('oversize PUBLISH');
});

test('CONNECT with protocol level 3 is refused', async () => {
  const s = await h.rawTls();
  await s.write(connectPacket({ clientId: 'neg-m', username: deviceUsername(h.host, 'neg-m'), password: deviceSas(h.host, 'neg-m', keys['neg-m']), level: 3 }));
  const rc = await s.waitConnack(5000);
  assert.ok(rc === null || rc === 1, `expected CONNACK 1 or a close, got CONNACK ${rc}`);
  await s.waitClosed(5000, 'protocol level 3');
});

test('a second CONNECT on the same connection closes it', async () => {
  const s = await connectedRaw('neg-m');
  await s.write(connectPacket({ clientId: 'neg-m', username: deviceUsername(h.host, 'neg-m'), password: deviceSas(h.host, 'neg-m', keys['neg-m']) }));
  await s.waitClosed(5000, 'second CONNECT');
  assert.equal(s.countPackets(2), 1, 'only one CONNACK');
  await watcherStillServed('second CONNECT');
});

// -------------------------------------------------------------- telemetry

test('telemetry topic variants and property bags are accepted (QoS 0 and 1)', async () => {
  const ev = await h.events({ deviceId: 'neg-t' });
  const c = await h.rawConnect({ deviceId: 'neg-t', key: keys['neg-t'] });
  await c.publish('devices/neg-t/messages/events/%24.mid=v1', 'v1', { qos: 1 });
  await c.publish('devices/neg-t/messages/events/$.mid=v2&k=raw%20dollar', 'v2', { qos: 1 });
  await c.publish('devices/neg-t/messages/events/%24.mid=v3&%24.ct=application%2Fjson&%24.ce=utf-8&flag', '{"v":3}', { qos: 1 });
  await c.publish('devices/neg-t/messages/events/%24.mid=v4&k=v/', 'v4', { qos: 1 });
  await c.publish('devices/neg-t/messages/events/', 'plain-qos0', { qos: 0 });
  await c.publish('devices/neg-t/messages/events', 'no-slash', { qos: 1 });
  const byMid = (mid) => (x) => x.event === 'telemetry' && x.data.systemProperties && x.data.systemProperties['message-id'] === mid;
  const byBody = (b) => (x) => x.event === 'telemetry' && x.data.body === b;
  const e1 = await ev.waitFor(byMid('v1'), 5000, 'v1');
  assert.equal(e1.data.body, 'v1');
  const e2 = await ev.waitFor(byMid('v2'), 5000, 'v2 (raw $ in the bag)');
  assert.equal(e2.data.properties.k, 'raw dollar');
  const e3 = await ev.waitFor(byMid('v3'), 5000, 'v3');
  assert.ok('flag' in e3.data.properties, `property without "=": ${JSON.stringify(e3.data.properties)}`);
  assert.ok(!('$.ct' in e3.data.properties) && !('%24.ct' in e3.data.properties), 'system property leaked');
  const e4 = await ev.waitFor(byMid('v4'), 5000, 'v4 (trailing slash after the bag)');
  assert.equal(e4.data.properties.k, 'v');
  await ev.waitFor(byBody('plain-qos0'), 5000, 'QoS 0 message');
  await ev.waitFor(byBody('no-slash'), 5000, 'topic without the trailing slash');
  await c.end();
});

test("a device cannot set the hub's stamps; a property that is not UTF-8 closes the connection", async () => {
  const ev = await h.events({ deviceId: 'neg-t' });
  const c = await h.rawConnect({ deviceId: 'neg-t', key: keys['neg-t'] });
  await c.publish('devices/neg-t/messages/events/%24.mid=s1&%24.iothub-connection-device-id=neg-a' +
    '&%24.iothub-message-source=twinChangeEvents&%24.iothub-enqueuedtime=1999&q=%22%5C%0A', 's1', { qos: 1 });
  const e = await ev.waitFor((x) => x.data && x.data.systemProperties &&
    x.data.systemProperties['message-id'] === 's1', 5000, 's1');
  assert.equal(e.event, 'telemetry');
  assert.equal(e.data.systemProperties['iothub-connection-device-id'], 'neg-t');
  assert.equal(e.data.systemProperties['iothub-message-source'], 'Telemetry');
  assert.match(e.data.systemProperties['iothub-enqueuedtime'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(e.data.properties.q, '"\\\n', 'quote, backslash and newline survive the stored JSON');
  c.client.publish('devices/neg-t/messages/events/k=%FF', 'not utf-8', { qos: 1 }, () => {});
  await c.waitClosed(5000, 'a property value that is not UTF-8');
  const again = await h.rawConnect({ deviceId: 'neg-t', key: keys['neg-t'] });
  await again.publish('devices/neg-t/messages/events/%24.mid=s2', 's2', { qos: 1 });
  await ev.waitFor((x) => x.data && x.data.systemProperties && x.data.systemProperties['message-id'] === 's2', 5000, 's2');
  await again.end();
});

// ------------------------------------------------------------ twin limits

test('twin: oversize (> 32 KB) and malformed reported patches -> 400 with an errorCode body', async () => {
  const c = await h.rawConnect({ deviceId: 'neg-twin', key: keys['neg-twin'] });
  await c.subscribe('$iothub/twin/res/#');
  const ok = {};
  for (let i = 0; i < 7; i++) ok[`k${i}`] = 'x'.repeat(3900); // ~27 KB: allowed
  const r0 = await c.patchReported(ok);
  assert.equal(r0.status, 204, `27 KB patch: ${r0.status} ${r0.text}`);
  assert.equal(r0.text, '', '204 must have an empty body');
  assert.equal(typeof r0.version, 'number', 'the 204 topic carries $version');

  const big = {};
  for (let i = 0; i < 9; i++) big[`b${i}`] = 'y'.repeat(3900); // ~35 KB on top: over 32 KB
  const r1 = await c.patchReported(big);
  assert.equal(r1.status, 400, `oversize patch: ${r1.status} ${r1.text}`);
  assert.ok(r1.json && typeof r1.json.errorCode === 'number', `error body must be JSON with errorCode: ${r1.text}`);
  assert.equal(r1.json.errorCode, 400004, r1.text);

  const r2 = await c.patchReported('{"not json');
  assert.equal(r2.status, 400, `malformed JSON: ${r2.status} ${r2.text}`);
  assert.ok(r2.json && typeof r2.json.errorCode === 'number', `error body must be JSON with errorCode: ${r2.text}`);

  const g = await c.twinGet();
  assert.equal(g.status, 200);
  assert.equal(g.json.reported.$version, r0.version, 'rejected patches must not change the reported $version');
  assert.ok(!('b0' in g.json.reported), 'the oversize patch must not be applied');
  await c.end();
});

test('twin: 10 levels of nesting accepted, 11 levels -> 400 errorCode 400004', async () => {
  const c = await h.rawConnect({ deviceId: 'neg-twin', key: keys['neg-twin'] });
  await c.subscribe('$iothub/twin/res/#');
  const nest = (levels) => {
    let o = { property: 'value' };
    for (let i = levels; i >= 1; i--) o = { [`l${i}`]: o };
    return o; // `levels` nested objects below the reported root
  };
  const r10 = await c.patchReported({ deep10: nest(9) });
  assert.equal(r10.status, 204, `depth 10: ${r10.status} ${r10.text}`);
  const r11 = await c.patchReported({ deep11: nest(10) });
  assert.equal(r11.status, 400, `depth 11: ${r11.status} ${r11.text}`);
  assert.ok(r11.json && r11.json.errorCode === 400004, `error body: ${r11.text}`);
  await c.end();
});

test('twin: reported patch with a stale $version -> 412', async () => {
  const c = await h.rawConnect({ deviceId: 'neg-twin', key: keys['neg-twin'] });
  await c.subscribe('$iothub/twin/res/#');
  const g = await c.twinGet();
  const v = g.json.reported.$version;
  const r1 = await c.patchReported({ cas: 1 }, { version: v });
  assert.equal(r1.status, 204, `matching $version: ${r1.status} ${r1.text}`);
  assert.equal(r1.version, v + 1);
  const r2 = await c.patchReported({ cas: 2 }, { version: v });
  assert.equal(r2.status, 412, `stale $version: ${r2.status} ${r2.text}`);
  assert.ok(r2.json && typeof r2.json.errorCode === 'number', `412 body: ${r2.text}`);
  const { responseBody: st } = await reg.getTwin('neg-twin');
  assert.equal(st.properties.reported.cas, 1);
  assert.equal(st.properties.reported.$version, v + 1);
  await c.end();
});

// ------------------------------------------------------ sessions & liveness

test('a second connection with the same device id takes over (the first is closed)', async () => {
  const c1 = await h.rawConnect({ deviceId: 'neg-take', key: keys['neg-take'] });
  await c1.subscribe('$iothub/twin/res/#');
  const c2 = await h.rawConnect({ deviceId: 'neg-take', key: keys['neg-take'] });
  await c1.waitClosed(5000, 'takeover by a new connection');
  const r = await c2.twinGet();
  assert.equal(r.status, 200);
  await h.sleep(300);
  assert.ok(!c2.closed, 'the new connection must stay open');
});

test('keep-alive: silence for 1.5 x keepalive closes the connection; PINGREQs keep it open', async () => {
  const quiet = await h.rawTls();
  const pinger = await h.rawTls();
  const pkt = connectPacket({ clientId: 'neg-ka', username: deviceUsername(h.host, 'neg-ka'), password: deviceSas(h.host, 'neg-ka', keys['neg-ka']), keepalive: 2 });
  await quiet.write(pkt);
  assert.equal(await quiet.waitConnack(5000), 0);
  const t0 = Date.now();
  await pinger.write(connectPacket({ clientId: 'neg-t', username: deviceUsername(h.host, 'neg-t'), password: deviceSas(h.host, 'neg-t', keys['neg-t']), keepalive: 2 }));
  assert.equal(await pinger.waitConnack(5000), 0);
  const timer = setInterval(() => { pinger.write(PINGREQ); }, 1000);
  try {
    const closedAt = await quiet.waitClosed(8000, 'keep-alive 2 s and no traffic');
    const elapsed = closedAt - t0;
    assert.ok(elapsed >= 2500 && elapsed <= 6000, `closed after ${elapsed} ms, expected about 3 s (1.5 x 2 s)`);
    await h.sleep(Math.max(0, 5000 - (Date.now() - t0)));
    assert.ok(!pinger.closed, 'a client that pings must not be disconnected');
    assert.ok(pinger.countPackets(13) >= 3, `PINGRESPs received: ${pinger.countPackets(13)}`);
  } finally {
    clearInterval(timer);
  }
});

test('CleanSession=0 keeps subscriptions (Session-Present 1); CleanSession=1 discards them', async () => {
  const id = 'neg-s';
  const c1 = await h.rawConnect({ deviceId: id, key: keys[id], clean: false });
  await c1.subscribe('$iothub/twin/res/#');
  await c1.end(false); // DISCONNECT
  const c2 = await h.rawConnect({ deviceId: id, key: keys[id], clean: false });
  assert.equal(c2.connack.sessionPresent, true, 'Session-Present must be 1');
  const r = await c2.twinGet(5000); // no SUBSCRIBE on this connection
  assert.equal(r.status, 200);
  await c2.end(false);

  const c3 = await h.rawConnect({ deviceId: id, key: keys[id], clean: true });
  assert.equal(c3.connack.sessionPresent, false, 'Session-Present must be 0 with CleanSession=1');
  await c3.publish(`$iothub/twin/GET/?$rid=clean1`, ' ', { qos: 0 });
  await h.sleep(1500);
  assert.equal(c3.messages.length, 0, 'a clean session must have no subscriptions');
  assert.ok(!c3.closed);
  await c3.end(false);
  const c4 = await h.rawConnect({ deviceId: id, key: keys[id], clean: false });
  assert.equal(c4.connack.sessionPresent, false, 'the clean session must not have left a session behind');
  await c4.end(false);
});

test('an unacknowledged C2D message is redelivered with DUP on the next session, then not again', async () => {
  const id = 'neg-c2d';
  const r = await h.sendC2D(id, { body: 'again', messageId: 'redeliver-1', properties: { p: 'a/b' } });
  assert.equal(r.status, 200, r.text);
  const c1 = await h.rawConnect({ deviceId: id, key: keys[id], clean: false, withholdPuback: true });
  // no await: the hub may send the message before the SUBACK, and this client stops
  // reading after the first unacknowledged PUBLISH
  c1.client.subscribe(`devices/${id}/messages/devicebound/#`, { qos: 1 }, () => {});
  const first = await h.waitUntil(() => c1.publishes.find((p) => p.topic.startsWith(`devices/${id}/messages/devicebound/`)),
    { timeoutMs: 5000, what: 'first C2D delivery' });
  assert.equal(first.qos, 1);
  assert.equal(first.dup, false, 'first delivery must not have DUP');
  assert.equal(first.retain, false);
  const segs = first.topic.split('/');
  assert.equal(segs.length, 5, `the property bag must be fully percent-encoded: ${first.topic}`);
  const bag = Object.fromEntries(segs[4].split('&').map((kv) => kv.split('=').map(decodeURIComponent)));
  assert.equal(bag['$.mid'], 'redeliver-1', first.topic);
  assert.equal(bag.p, 'a/b', first.topic);
  assert.equal(first.payload.toString(), 'again');
  await c1.end(true); // drop without PUBACK

  const c2 = await h.rawConnect({ deviceId: id, key: keys[id], clean: false });
  assert.equal(c2.connack.sessionPresent, true);
  const again = await c2.waitMessage((m) => m.topic.startsWith(`devices/${id}/messages/devicebound/`), 5000,
    'redelivery without re-subscribing');
  assert.equal(again.packet.dup, true, 'redelivery must set DUP');
  assert.equal(again.payload.toString(), 'again');
  await h.sleep(300); // let the automatic PUBACK reach the hub
  await c2.end(false);

  await h.waitUntil(async () => (await reg.get(id)).responseBody.cloudToDeviceMessageCount === 0,
    { timeoutMs: 5000, what: 'queue empty after PUBACK' });
  const c3 = await h.rawConnect({ deviceId: id, key: keys[id], clean: false });
  await h.sleep(1000);
  assert.equal(c3.publishes.length, 0, 'an acknowledged message must not be delivered again');
  await c3.end(false);
});

test('twin GETs beyond 20 per second on one connection: one 429, then the connection waits out the second', async () => {
  const c = await h.rawConnect({ deviceId: 'neg-a', key: keys['neg-a'] });
  await c.subscribe('$iothub/twin/res/#');
  // All at once, without waiting: the hub sees them within one second.
  const sentAt = Date.now();
  const answers = await Promise.all(Array.from({ length: 40 }, () =>
    c.twinGet(10000).then((a) => ({ ...a, at: Date.now() - sentAt }))));
  const statuses = answers.map((a) => a.status);
  const first429 = statuses.indexOf(429);
  assert.ok(first429 >= 1 && first429 <= 20, `at most 20 served before the 429: ${statuses.join(',')}`);
  assert.equal(statuses.filter((s) => s === 429).length, 1,
    `a flood costs one 429, not one per request: ${statuses.join(',')}`);
  assert.equal(answers[first429].json.errorCode, 429001, answers[first429].text);
  // The rest waited unread until the second was over, then were served.
  const later = answers.slice(first429 + 1);
  assert.ok(later.every((a) => a.status === 200), `served after the pause: ${statuses.join(',')}`);
  const earliest = Math.min(...later.map((a) => a.at));
  assert.ok(earliest >= 900, `the requests after the 429 were answered after ${earliest} ms, not after the second`);
  // Waiting did not count against the connection: it is still open and served.
  assert.equal((await c.twinGet(5000)).status, 200, 'served again after the second');
  await c.end();
});
