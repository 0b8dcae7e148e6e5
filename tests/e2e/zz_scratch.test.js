'use strict';
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
before(() => h.startHub());
after(() => h.stopAll());
test('registry via NODE_EXTRA_CA_CERTS', async () => {
  const reg = h.registry();
  const { responseBody: d } = await reg.create({ deviceId: 'x1' });
  assert.ok(d.authentication.symmetricKey.primaryKey);
  const e = await h.rejects(reg.get('nope'), 5000, 'get');
  assert.equal(e.name, 'DeviceNotFoundError');
  assert.equal(e.response.headers['iothub-errorcode'], 'DeviceNotFound');
  const e2 = await h.rejects(reg.create({ deviceId: 'x1' }), 5000, 'dup');
  assert.equal(e2.name, 'DeviceAlreadyExistsError');
  assert.equal(h.errorCode(e2.responseBody), 'DeviceAlreadyExists');
});
test('sse', async () => {
  const ev = await h.events({ from: 'start' });
  const e = await ev.waitFor((x) => x.data.seq === 3, 3000, 'seq 3');
  assert.equal(e.id, '3'); assert.equal(e.event, 'telemetry'); assert.equal(e.data.body, 'b3');
});
test('raw mqtt + tls', async () => {
  const c = await h.rawConnect({ deviceId: 'x1', key: h.raw.randomKey() });
  assert.equal(c.connack.returnCode, 0);
  const s = await h.rawTls();
  await s.write(Buffer.from([0, 1, 2]));
  await s.waitClosed(3000, 'garbage');
  const dev = h.selfSignedCert('x');
  assert.equal(dev.thumbprint.length, 40);
});
test('device sdk open', async () => {
  const c = await h.openDevice(`HostName=${h.host};DeviceId=x1;SharedAccessKey=${h.raw.randomKey()}`);
  assert.ok(c);
});
test('fails on purpose', () => { if (process.env.FAILME) assert.fail('boom'); });
test('hang', async () => { if (process.env.HANG) await h.sleep(60000); });
