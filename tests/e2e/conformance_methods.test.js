'use strict';
// Direct methods: azure-iothub Client.invokeDeviceMethod -> POST /twins/{id}/methods -> device (docs/protocol.md §4.5, §8.8).
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

let reg;
let svc;

before(async () => {
  await h.startHub();
  reg = h.registry();
  svc = h.serviceClient();
});
after(() => h.stopAll());

function invoke(deviceId, params, ms = 30000) {
  return h.withTimeout(svc.invokeDeviceMethod(deviceId, params), ms, `invoke ${params.methodName} on ${deviceId}`);
}

async function onlineDevice(id) {
  const d = await h.createDevice(reg, id);
  const client = await h.openDevice(h.deviceConnStr(d));
  return { d, client };
}

test('payloads both ways and a custom status', async () => {
  const { client } = await onlineDevice('m-echo');
  const seen = [];
  client.onDeviceMethod('echo', (req, res) => {
    seen.push({ name: req.methodName, payload: req.payload });
    res.send(201, { got: req.payload, n: 42, nested: { ok: true } }, () => {});
  });
  client.onDeviceMethod('nothing', (req, res) => { seen.push({ name: req.methodName, payload: req.payload }); res.send(204, () => {}); });
  client.onDeviceMethod('teapot', (req, res) => res.send(418, 'short and stout', () => {}));
  await h.barrier(client);

  const payload = { a: 1, b: 'x', list: [1, 2, { c: null }], unicode: 'ünï' };
  const { result, message } = await invoke('m-echo', { methodName: 'echo', payload, responseTimeoutInSeconds: 10 });
  assert.equal(message.statusCode, 200);
  assert.equal(result.status, 201);
  assert.deepEqual(result.payload, { got: payload, n: 42, nested: { ok: true } });
  assert.deepEqual(seen[0], { name: 'echo', payload });

  const r2 = await invoke('m-echo', { methodName: 'nothing', responseTimeoutInSeconds: 10 });
  assert.equal(r2.result.status, 204);
  assert.equal(r2.result.payload, null);
  assert.equal(seen[1].payload, null, 'a method invoked without payload must get JSON null');

  const r3 = await invoke('m-echo', { methodName: 'teapot', payload: 'tea?', responseTimeoutInSeconds: 10 });
  assert.equal(r3.result.status, 418);
  assert.equal(r3.result.payload, 'short and stout');

  const r4 = await invoke('m-echo', { methodName: 'echo', payload: 12.5, responseTimeoutInSeconds: 10 });
  assert.deepEqual(r4.result.payload.got, 12.5);
});

test('large payloads (100 KB) both ways', async () => {
  const { client } = await onlineDevice('m-big');
  client.onDeviceMethod('big', (req, res) => res.send(200, { back: req.payload.data.split('').reverse().join('') }, () => {}));
  await h.barrier(client);
  const data = 'abcdefghij'.repeat(10 * 1024);
  const { result } = await invoke('m-big', { methodName: 'big', payload: { data }, responseTimeoutInSeconds: 15 });
  assert.equal(result.status, 200);
  assert.equal(result.payload.back.length, data.length);
  assert.equal(result.payload.back, data.split('').reverse().join(''));
});

test('no response within responseTimeoutInSeconds -> 504 GatewayTimeoutError', async () => {
  const { client } = await onlineDevice('m-slow');
  let called = 0;
  client.onDeviceMethod('slow', () => { called += 1; /* never answers */ });
  await h.barrier(client);
  const t0 = Date.now();
  const err = await h.rejects(svc.invokeDeviceMethod('m-slow', { methodName: 'slow', responseTimeoutInSeconds: 5 }),
    20000, 'invoke that times out');
  const elapsed = Date.now() - t0;
  assert.equal(err.name, 'GatewayTimeoutError', `${err.name}: ${err.message} ${err.responseBody}`);
  assert.equal(err.response.statusCode, 504);
  assert.equal(h.errorCode(err.responseBody), 'GatewayTimeout', err.responseBody);
  assert.ok(elapsed >= 4500 && elapsed < 9000, `timed out after ${elapsed} ms, expected about 5 s`);
  assert.equal(called, 1, 'the device should have received the request once');
});

test('404 DeviceNotOnline for an offline device, an online device not subscribed to methods; 404 DeviceNotFound for an unknown one', async () => {
  await h.createDevice(reg, 'm-offline');
  let err = await h.rejects(invoke('m-offline', { methodName: 'x', responseTimeoutInSeconds: 5 }), 10000, 'invoke offline');
  assert.equal(err.response.statusCode, 404, `${err.name}: ${err.responseBody}`);
  assert.equal(h.errorCode(err.responseBody), 'DeviceNotOnline', err.responseBody);
  assert.equal(err.response.headers['iothub-errorcode'], 'DeviceNotOnline');

  const { client } = await onlineDevice('m-nosub');
  await h.barrier(client); // connected, twin subscribed, but no method subscription
  err = await h.rejects(invoke('m-nosub', { methodName: 'x', responseTimeoutInSeconds: 5 }), 10000, 'invoke unsubscribed');
  assert.equal(err.response.statusCode, 404, `${err.name}: ${err.responseBody}`);
  assert.equal(h.errorCode(err.responseBody), 'DeviceNotOnline', err.responseBody);

  err = await h.rejects(invoke('m-unknown', { methodName: 'x', responseTimeoutInSeconds: 5 }), 10000, 'invoke unknown');
  assert.equal(err.name, 'DeviceNotFoundError', `${err.name}: ${err.responseBody}`);
  assert.equal(err.response.statusCode, 404);
});

test('connectTimeoutInSeconds: the call waits for the device to connect and subscribe', async () => {
  const d = await h.createDevice(reg, 'm-late');
  const t0 = Date.now();
  const pending = invoke('m-late', {
    methodName: 'hello', payload: { q: 1 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 15,
  }, 40000);
  pending.catch(() => {}); // examined below
  await h.sleep(1500);
  const client = h.makeDeviceClient(h.deviceConnStr(d));
  await client.setOptions(client.e2eOptions);
  await h.withTimeout(client.open(), 10000, 'late device open');
  client.onDeviceMethod('hello', (req, res) => res.send(200, { hi: req.payload.q }, () => {}));
  const { result } = await pending;
  assert.ok(Date.now() - t0 >= 1500);
  assert.equal(result.status, 200);
  assert.deepEqual(result.payload, { hi: 1 });
});

test('connectTimeoutInSeconds expires -> 404 DeviceNotOnline after about that long', async () => {
  await h.createDevice(reg, 'm-never');
  const t0 = Date.now();
  const err = await h.rejects(invoke('m-never', {
    methodName: 'x', responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 2,
  }), 15000, 'invoke with a connect timeout that expires');
  const elapsed = Date.now() - t0;
  assert.equal(err.response.statusCode, 404, `${err.name}: ${err.responseBody}`);
  assert.equal(h.errorCode(err.responseBody), 'DeviceNotOnline', err.responseBody);
  assert.ok(elapsed >= 1500 && elapsed < 6000, `answered after ${elapsed} ms, expected about 2 s`);
});

test('a response arriving after the timeout is dropped and the device keeps working', async () => {
  const { client } = await onlineDevice('m-tardy');
  const pendingRes = [];
  client.onDeviceMethod('tardy', (req, res) => pendingRes.push(res));
  client.onDeviceMethod('quick', (req, res) => res.send(200, 'ok', () => {}));
  await h.barrier(client);
  const err = await h.rejects(invoke('m-tardy', { methodName: 'tardy', responseTimeoutInSeconds: 5 }), 15000, 'tardy');
  assert.equal(err.response.statusCode, 504);
  assert.equal(pendingRes.length, 1);
  await new Promise((resolve) => pendingRes[0].send(200, 'too late', () => resolve()));
  const { result } = await invoke('m-tardy', { methodName: 'quick', responseTimeoutInSeconds: 5 });
  assert.equal(result.status, 200);
  assert.equal(result.payload, 'ok');
});
