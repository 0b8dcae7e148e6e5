'use strict';
// The iotdm CLI (src/cli) end to end: the real binary against a running hub, with devices played
// by the Azure Node device SDK. Checks what the CLI changed through the hub (registry, twin,
// device side), its --json output, its error messages and its exit codes.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { runCli, startCli, findCli, REPO } = require('./lib/cli');

let reg;
let home;

before(async () => {
  await h.startHub();
  reg = h.registry();
  // An empty HOME: no login file of the person running the tests is ever read.
  home = fs.mkdtempSync(path.join(h.root, 'home-'));
});
after(() => h.stopAll());

function baseEnv(extra = {}) {
  return {
    IOTDM_CONNECTION_STRING: h.ownerConnStr, IOTDM_CA: undefined, IOTDM_MODELS_DIR: undefined,
    HOME: home, XDG_CONFIG_HOME: undefined, ...extra,
  };
}

// iotdm --ca <hub CA> ...args
function iotdm(args, { env, ...opts } = {}) {
  return runCli(['--ca', h.caPath, ...args], { env: baseEnv(env), ...opts });
}

function ok(r, what) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}, stderr: ${r.stderr}`);
  return r;
}

async function twinOf(id) {
  const { responseBody } = await h.withTimeout(reg.getTwin(id), 10000, `get twin ${id}`);
  return responseBody;
}

async function onlineDevice(id) {
  const r = ok(await iotdm(['--json', 'device', 'create', '--device-id', id]), 'device create');
  const client = await h.openDevice(h.deviceConnStr(r.json));
  return { device: r.json, client };
}

test('device create, show, list, connection-string, disable/enable, delete', async () => {
  const c = ok(await iotdm(['device', 'create', '--device-id', 'cli-dev1', '--json']), 'create');
  assert.equal(c.json.deviceId, 'cli-dev1');
  assert.equal(c.json.authentication.type, 'sas');
  assert.equal(Buffer.from(c.json.authentication.symmetricKey.primaryKey, 'base64').length, 32);
  const { responseBody: got } = await reg.get('cli-dev1');
  assert.equal(got.authentication.symmetricKey.primaryKey, c.json.authentication.symmetricKey.primaryKey);

  const show = ok(await iotdm(['device', 'show', '--device-id', 'cli-dev1']), 'show');
  assert.match(show.stdout, /^Device ID\s+cli-dev1$/m);
  assert.match(show.stdout, /^Status\s+enabled$/m);
  const showJson = ok(await iotdm(['--json', 'device', 'show', '--device-id', 'cli-dev1']), 'show --json');
  assert.equal(showJson.json.etag, got.etag);

  const list = ok(await iotdm(['device', 'list', '--json']), 'list --json');
  assert.ok(Array.isArray(list.json));
  assert.ok(list.json.some((d) => d.deviceId === 'cli-dev1'));
  const table = ok(await iotdm(['device', 'list']), 'list');
  assert.match(table.lines[0], /^DEVICE ID\s+STATUS\s+CONNECTION/);
  assert.ok(table.lines.some((l) => /^cli-dev1\s+enabled\s+Disconnected\s+sas/.test(l)), table.stdout);

  const cs = ok(await iotdm(['device', 'connection-string', '--device-id', 'cli-dev1']), 'connection-string');
  assert.equal(cs.stdout.trim(),
    `HostName=${h.host};DeviceId=cli-dev1;SharedAccessKey=${c.json.authentication.symmetricKey.primaryKey}`);
  const cs2 = ok(await iotdm(['--json', 'device', 'connection-string', '--device-id', 'cli-dev1', '--key', 'secondary']), 'cs --json');
  assert.match(cs2.json.connectionString, new RegExp(`SharedAccessKey=${c.json.authentication.symmetricKey.secondaryKey.replace(/[+/=]/g, '\\$&')}$`));
  // The printed connection string is one a device can use.
  const client = await h.openDevice(cs.stdout.trim());
  await client.close();

  ok(await iotdm(['device', 'disable', '--device-id', 'cli-dev1', '--reason', 'maintenance']), 'disable');
  let d = (await reg.get('cli-dev1')).responseBody;
  assert.equal(d.status, 'disabled');
  assert.equal(d.statusReason, 'maintenance');
  ok(await iotdm(['device', 'enable', '--device-id', 'cli-dev1']), 'enable');
  d = (await reg.get('cli-dev1')).responseBody;
  assert.equal(d.status, 'enabled');

  const x = ok(await iotdm(['--json', 'device', 'create', '--device-id', 'cli-x509', '--auth', 'x509',
    '--primary-thumbprint', 'AB'.repeat(20)]), 'create x509');
  assert.equal(x.json.authentication.type, 'selfSigned');
  assert.equal(x.json.authentication.x509Thumbprint.primaryThumbprint.toUpperCase(), 'AB'.repeat(20));
  const xcs = ok(await iotdm(['device', 'connection-string', '--device-id', 'cli-x509']), 'x509 cs');
  assert.equal(xcs.stdout.trim(), `HostName=${h.host};DeviceId=cli-x509;x509=true`);

  const del = ok(await iotdm(['device', 'delete', '--device-id', 'cli-dev1', '--json']), 'delete');
  assert.deepEqual(del.json, { deviceId: 'cli-dev1', deleted: true });
  await assert.rejects(reg.get('cli-dev1'), (e) => e.name === 'DeviceNotFoundError');
});

test('twin update and show: tags and desired, inline and from files, etag', async () => {
  ok(await iotdm(['device', 'create', '--device-id', 'cli-twin']), 'create');
  const u = ok(await iotdm(['--json', 'twin', 'update', '--device-id', 'cli-twin',
    '--tags', '{"site":"b1","floor":3}', '--desired', '{"telemetry":{"period":5}}']), 'update');
  assert.deepEqual(u.json.tags, { site: 'b1', floor: 3 });
  let t = await twinOf('cli-twin');
  assert.deepEqual(t.tags, { site: 'b1', floor: 3 });
  assert.deepEqual(t.properties.desired.telemetry, { period: 5 });

  const file = path.join(h.root, 'desired.json');
  fs.writeFileSync(file, JSON.stringify({ telemetry: { period: null, level: 'full' } }));
  ok(await iotdm(['twin', 'update', '--device-id', 'cli-twin', '--desired', `@${file}`]), 'update @file');
  const setFile = path.join(h.root, 'patch.json');
  fs.writeFileSync(setFile, JSON.stringify({ tags: { floor: null, room: 'r2' }, properties: { desired: { mode: 'eco' } } }));
  const s = ok(await iotdm(['twin', 'update', '--device-id', 'cli-twin', '--set-file', setFile]), 'update --set-file');
  assert.match(s.stdout, /^Updated the twin of cli-twin \(desired \$version \d+, etag /);
  t = await twinOf('cli-twin');
  assert.deepEqual(t.tags, { site: 'b1', room: 'r2' });
  assert.deepEqual(t.properties.desired.telemetry, { level: 'full' });
  assert.equal(t.properties.desired.mode, 'eco');

  const show = ok(await iotdm(['--json', 'twin', 'show', '--device-id', 'cli-twin']), 'show --json');
  assert.equal(show.json.etag, t.etag);
  assert.deepEqual(show.json.properties.desired.telemetry, { level: 'full' });
  const human = ok(await iotdm(['twin', 'show', '--device-id', 'cli-twin']), 'show');
  assert.match(human.stdout, /^Tags:$/m);
  assert.match(human.stdout, /^Desired \(\$version \d+\):$/m);
  assert.doesNotMatch(human.stdout, /\$metadata/);

  const stale = await iotdm(['twin', 'update', '--device-id', 'cli-twin', '--tags', '{"a":1}', '--etag', 'AAAAAAAAAAE=']);
  assert.equal(stale.code, 5, stale.stderr);
  assert.match(stale.stderr, /PreconditionFailed/);
  ok(await iotdm(['twin', 'update', '--device-id', 'cli-twin', '--tags', '{"a":1}', '--etag', show.json.etag]), 'matching etag');

  const bad = await iotdm(['twin', 'update', '--device-id', 'cli-twin', '--desired', '{oops']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--desired: invalid JSON/);
});

test('method invoke: payload both ways, device error status, offline device', async () => {
  const { client } = await onlineDevice('cli-meth');
  const seen = [];
  client.onDeviceMethod('echo', (req, res) => { seen.push(req.payload); res.send(200, { got: req.payload }, () => {}); });
  client.onDeviceMethod('fail', (req, res) => res.send(500, { error: 'broken' }, () => {}));
  await h.barrier(client);

  const r = ok(await iotdm(['--json', 'method', 'invoke', '--device-id', 'cli-meth', '--method-name', 'echo',
    '--payload', '{"a":1,"b":[true,null]}', '--timeout', '10']), 'invoke');
  assert.deepEqual(r.json, { status: 200, payload: { got: { a: 1, b: [true, null] } } });
  assert.deepEqual(seen[0], { a: 1, b: [true, null] });

  const human = ok(await iotdm(['method', 'invoke', '--device-id', 'cli-meth', '--method-name', 'echo']), 'invoke');
  assert.match(human.stdout, /^Status: 200$/m);
  assert.equal(seen[1], null, 'no --payload sends JSON null');

  const f = await iotdm(['--json', 'method', 'invoke', '--device-id', 'cli-meth', '--method-name', 'fail']);
  assert.equal(f.code, 10, f.stderr);
  assert.deepEqual(f.json, { status: 500, payload: { error: 'broken' } });

  ok(await iotdm(['device', 'create', '--device-id', 'cli-offline']), 'create');
  const off = await iotdm(['method', 'invoke', '--device-id', 'cli-offline', '--method-name', 'x']);
  assert.equal(off.code, 6, off.stderr);
  assert.match(off.stderr, /DeviceNotOnline: /);
});

test('job create --wait, show, list, cancel: a twin job and a method job over a condition', async () => {
  const { client } = await onlineDevice('cli-job-a');
  client.onDeviceMethod('ping', (req, res) => res.send(200, { pong: true }, () => {}));
  await h.barrier(client);
  ok(await iotdm(['device', 'create', '--device-id', 'cli-job-b']), 'create');
  const twin = ok(await iotdm(['--json', 'job', 'create', '--job-id', 'cli-twin-job', '--job-type', 'twin',
    '--query', "deviceId IN ['cli-job-a', 'cli-job-b']", '--twin-patch', '{"tags":{"wave":2}}', '--wait']), 'twin job --wait');
  assert.equal(twin.json.status, 'completed');
  assert.equal(twin.json.deviceJobStatistics.succeededCount, 2);
  assert.equal((await twinOf('cli-job-b')).tags.wave, 2);

  // A method job where one device is offline: it ends with a failure, exit code 10.
  const meth = await iotdm(['job', 'create', '--job-id', 'cli-method-job', '--job-type', 'method',
    '--query', "deviceId IN ['cli-job-a', 'cli-job-b']", '--method-name', 'ping', '--ttl', '3', '--wait']);
  assert.equal(meth.code, 10, meth.stderr);
  assert.match(meth.stdout, /^Status: +completed$/m);
  assert.match(meth.stdout, /succeeded 1, failed 1/);
  assert.match(meth.stderr, /1 device\(s\) failed/);

  const list = ok(await iotdm(['job', 'list', '--job-type', 'twin']), 'job list');
  assert.match(list.stdout, /^cli-twin-job\s+scheduleUpdateTwin\s+completed\s+2\s+0\s/m);
  assert.doesNotMatch(list.stdout, /cli-method-job/);
  const show = ok(await iotdm(['job', 'show', '--job-id', 'cli-method-job']), 'job show');
  assert.match(show.stdout, /^Job: +cli-method-job \(scheduleDeviceMethod\)$/m);

  const later = new Date(Date.now() + 3600e3).toISOString();
  ok(await iotdm(['job', 'create', '--job-id', 'cli-later', '--job-type', 'twin', '--query', '*',
    '--twin-patch', '{"tags":{"x":1}}', '--start', later]), 'scheduled job');
  const cancelled = ok(await iotdm(['--json', 'job', 'cancel', '--job-id', 'cli-later']), 'job cancel');
  assert.equal(cancelled.json.status, 'cancelled');
  const missing = await iotdm(['job', 'show', '--job-id', 'no-such-job']);
  assert.equal(missing.code, 3, missing.stderr);
  assert.match(missing.stderr, /JobNotFound: /);
  const usage = await iotdm(['job', 'create', '--job-id', 'j', '--job-type', 'twin', '--query', '*']);
  assert.equal(usage.code, 2, usage.stderr);
});

test('c2d send arrives at the device with its properties; purge', async () => {
  const { client } = await onlineDevice('cli-c2d');
  const got = [];
  client.on('message', (m) => { got.push(m); client.complete(m).catch(() => {}); });
  await h.barrier(client);
  const r = ok(await iotdm(['--json', 'c2d', 'send', '--device-id', 'cli-c2d', '--data', 'hello from the cli',
    '--props', 'color=blue,size=XL', '--message-id', 'cli-m1', '--ttl', '600']), 'c2d send');
  assert.equal(r.json.messageId, 'cli-m1');
  const m = await h.waitUntil(() => got.find((x) => x.messageId === 'cli-m1'), { timeoutMs: 10000, what: 'the C2D message' });
  assert.equal(m.data.toString(), 'hello from the cli');
  assert.equal(m.properties.getValue('color'), 'blue');
  assert.equal(m.properties.getValue('size'), 'XL');

  ok(await iotdm(['device', 'create', '--device-id', 'cli-c2d-off']), 'create');
  for (let i = 0; i < 3; i++) ok(await iotdm(['c2d', 'send', '--device-id', 'cli-c2d-off', '--data', `m${i}`]), 'send');
  const p = ok(await iotdm(['--json', 'c2d', 'purge', '--device-id', 'cli-c2d-off']), 'purge');
  assert.deepEqual(p.json, { deviceId: 'cli-c2d-off', totalMessagesPurged: 3 });
  const badProps = await iotdm(['c2d', 'send', '--device-id', 'cli-c2d', '--data', 'x', '--props', 'novalue']);
  assert.equal(badProps.code, 2);
});

test('query follows continuation tokens page by page; --top limits', async () => {
  const ids = [];
  for (let i = 0; i < 7; i++) {
    const id = `cli-q${i}`;
    ids.push(id);
    ok(await iotdm(['device', 'create', '--device-id', id]), 'create');
    ok(await iotdm(['twin', 'update', '--device-id', id, '--tags', '{"batch":"cliq"}']), 'tag');
  }
  const q = "SELECT * FROM devices WHERE tags.batch = 'cliq'";
  const r = ok(await iotdm(['--json', '--verbose', 'query', q, '--page-size', '2']), 'query');
  assert.deepEqual(r.json.map((t) => t.deviceId).sort(), ids);
  const requests = r.stderr.split('\n').filter((l) => l.startsWith('> POST'));
  assert.equal(requests.length, 4, `7 results in pages of 2 take 4 requests:\n${r.stderr}`);

  const top = ok(await iotdm(['--json', 'query', q, '--top', '3', '--page-size', '2']), 'query --top');
  assert.equal(top.json.length, 3);
  const proj = ok(await iotdm(['query', "SELECT deviceId, tags.batch AS batch FROM devices WHERE tags.batch = 'cliq'"]), 'projection');
  assert.match(proj.lines[0], /^deviceId\s+batch$/);
  assert.equal(proj.lines.length, 8);
  const bad = await iotdm(['query', 'SELEKT nonsense']);
  assert.equal(bad.code, 2, bad.stderr);
  const missing = await iotdm(['query']);
  assert.equal(missing.code, 2);
});

test('monitor --json prints telemetry as JSON lines, live and from the start', async () => {
  const { client } = await onlineDevice('cli-mon');
  const msg = (n) => {
    const m = new h.Message(JSON.stringify({ n, temp: 21.5 }));
    m.properties.add('unit', 'C');
    return m;
  };
  // Live: started first; telemetry is sent until it shows up (the stream's start is not observable).
  const live = startCli(['--ca', h.caPath, '--json', 'monitor', '--device-id', 'cli-mon', '--max-events', '1',
    '--timeout', '30'], { env: baseEnv() });
  let exited = false;
  live.done.then(() => { exited = true; });
  for (let n = 0; !exited && n < 40; n++) {
    await h.withTimeout(client.sendEvent(msg(n)), 10000, 'sendEvent');
    await h.sleep(250);
  }
  const res = await live.done;
  assert.equal(res.code, 0, res.stderr);
  assert.equal(live.lines.length, 1, res.stdout);
  const ev = JSON.parse(live.lines[0]);
  assert.equal(ev.event, 'telemetry');
  assert.equal(ev.deviceId, 'cli-mon');
  assert.equal(JSON.parse(ev.body).temp, 21.5);
  assert.equal(ev.properties.unit, 'C');

  // From the start of the retained history: every event of this device, then --timeout ends it.
  const t0 = Date.now();
  const all = ok(await iotdm(['--json', 'monitor', '--device-id', 'cli-mon', '--from', 'start', '--timeout', '3']), 'monitor --from start');
  assert.ok(Date.now() - t0 >= 2500, 'ends after --timeout');
  const events = all.lines.map((l) => JSON.parse(l));
  assert.ok(events.every((e) => e.deviceId === 'cli-mon'), all.stdout);
  assert.ok(events.some((e) => e.event === 'connection' && e.connectionState === 'Connected'), all.stdout);
  assert.ok(events.filter((e) => e.event === 'telemetry').length >= 1);

  const human = ok(await iotdm(['monitor', '--device-id', 'cli-mon', '--from', 'start', '--max-events', '50', '--timeout', '2']), 'monitor');
  assert.ok(human.lines.some((l) => /^\S+Z\s+telemetry\s+cli-mon\s+\{"n":\d+,"temp":21.5\} unit=C$/.test(l)), human.stdout);

  // Ctrl-C ends it cleanly.
  const intr = startCli(['--ca', h.caPath, 'monitor'], { env: baseEnv() });
  await h.sleep(1000);
  intr.child.kill('SIGINT');
  const ir = await h.withTimeout(intr.done, 5000, 'monitor exit on SIGINT');
  assert.equal(ir.code, 0, ir.stderr);
});

test('dm shortcuts: set-time-zone patches the PnP component, commands invoke dm*, status shows acks', async () => {
  const { client } = await onlineDevice('cli-dm');
  const twin = await h.withTimeout(client.getTwin(), 10000, 'device twin');
  const patches = [];
  twin.on('properties.desired', (p) => patches.push(p));
  const calls = [];
  client.onDeviceMethod('dm*reboot', (req, res) => { calls.push(['reboot', req.payload]); res.send(202, { state: 'pending' }, () => {}); });
  client.onDeviceMethod('dm*factoryReset', (req, res) => { calls.push(['factoryReset', req.payload]); res.send(202, { state: 'pending' }, () => {}); });
  await h.barrier(client);

  const s = ok(await iotdm(['dm', 'set-time-zone', '--device-id', 'cli-dm', '--time-zone', 'Europe/Berlin']), 'set-time-zone');
  assert.match(s.stdout, /^Updated dm\.timeInfo of cli-dm/);
  let t = await twinOf('cli-dm');
  assert.deepEqual(t.properties.desired.dm, { __t: 'c', timeInfo: { timeZone: 'Europe/Berlin' } });
  await h.waitUntil(() => patches.some((p) => p.dm && p.dm.timeInfo && p.dm.timeInfo.timeZone === 'Europe/Berlin'),
    { what: 'the desired patch at the device' });

  ok(await iotdm(['dm', 'set-time-info', '--device-id', 'cli-dm', '--ntp-servers', 'ntp1.example,ntp2.example']), 'set-time-info');
  ok(await iotdm(['dm', 'schedule-reboot', '--device-id', 'cli-dm', '--daily-reboot-time', '2030-01-01T03:00:00Z']), 'schedule-reboot');
  ok(await iotdm(['dm', 'set-reboot-policy', '--device-id', 'cli-dm', '--reboots-allowed', '--active-hours-start', '8',
    '--active-hours-end', '18']), 'set-reboot-policy');
  t = await twinOf('cli-dm');
  assert.deepEqual(t.properties.desired.dm.timeInfo, { timeZone: 'Europe/Berlin', ntpServers: ['ntp1.example', 'ntp2.example'] });
  assert.deepEqual(t.properties.desired.dm.rebootInfo, { dailyRebootTime: '2030-01-01T03:00:00Z' });
  assert.deepEqual(t.properties.desired.dm.rebootPolicy, { rebootsAllowed: true, activeHoursStart: 8, activeHoursEnd: 18 });

  const rb = ok(await iotdm(['--json', 'dm', 'reboot', '--device-id', 'cli-dm']), 'reboot');
  assert.deepEqual(rb.json, { status: 202, payload: { state: 'pending' } });
  ok(await iotdm(['dm', 'factory-reset', '--device-id', 'cli-dm', '--keep-provisioning']), 'factory-reset');
  assert.deepEqual(calls, [['reboot', null], ['factoryReset', { keepProvisioning: true }]]);

  // Acks, the PnP way: none yet -> pending; 200 for the current version -> ok; 400 -> failed.
  let st = ok(await iotdm(['--json', 'dm', 'status', '--device-id', 'cli-dm']), 'status');
  assert.equal(st.json.properties.timeInfo.ack.state, 'pending');
  assert.deepEqual(st.json.properties.timeInfo.desired, t.properties.desired.dm.timeInfo);
  const version = t.properties.desired.$version;
  await h.reportedUpdate(twin, { dm: { __t: 'c', timeInfo: { value: { timeZone: 'Europe/Berlin', localTime: 'x' }, ac: 200, av: version, ad: 'applied' } } });
  st = ok(await iotdm(['--json', 'dm', 'status', '--device-id', 'cli-dm']), 'status');
  assert.deepEqual(st.json.properties.timeInfo.ack, { state: 'ok', code: 200, version, desiredVersion: st.json.properties.timeInfo.ack.desiredVersion, description: 'applied' });
  assert.equal(st.json.properties.timeInfo.reported.timeZone, 'Europe/Berlin');
  await h.reportedUpdate(twin, { dm: { __t: 'c', rebootPolicy: { value: {}, ac: 400, av: version, ad: 'activeHoursEnd out of range' } } });
  const human = ok(await iotdm(['dm', 'status', '--device-id', 'cli-dm']), 'status');
  assert.match(human.stdout, /^timeInfo\s.*\sok \(200: applied\)$/m);
  assert.match(human.stdout, /^rebootPolicy\s.*\sfailed \(400: activeHoursEnd out of range\)$/m);
  assert.match(human.stdout, /^rebootInfo\s.*\spending/m);

  const badEnum = await iotdm(['dm', 'set-time-service', '--device-id', 'cli-dm', '--source-priority', 'sideways']);
  assert.equal(badEnum.code, 2);
  assert.match(badEnum.stderr, /expected one of local\|remote/);
  const badInt = await iotdm(['dm', 'set-reboot-policy', '--device-id', 'cli-dm', '--active-hours-end', 'six']);
  assert.equal(badInt.code, 2);
  const unknown = await iotdm(['dm', 'make-coffee', '--device-id', 'cli-dm']);
  assert.equal(unknown.code, 2);

  // The same shortcuts from a models folder instead of the hub's /iotdm/models.
  const local = ok(await iotdm(['--models-dir', path.join(REPO, 'models'), 'dm', 'set-time-zone', '--device-id', 'cli-dm',
    '--time-zone', 'UTC']), 'set-time-zone with --models-dir');
  assert.match(local.stdout, /Updated dm\.timeInfo/);
  assert.equal((await twinOf('cli-dm')).properties.desired.dm.timeInfo.timeZone, 'UTC');
});

test('errors: Azure message on stderr and documented exit codes', async () => {
  const nf = await iotdm(['device', 'show', '--device-id', 'cli-nobody']);
  assert.equal(nf.code, 3);
  assert.match(nf.stderr, /DeviceNotFound: Device with id 'cli-nobody' was not found\./);
  assert.equal(nf.stdout, '');
  const twinNf = await iotdm(['--json', 'twin', 'show', '--device-id', 'cli-nobody']);
  assert.equal(twinNf.code, 3);

  ok(await iotdm(['device', 'create', '--device-id', 'cli-dup']), 'create');
  const dup = await iotdm(['device', 'create', '--device-id', 'cli-dup']);
  assert.equal(dup.code, 5);
  assert.match(dup.stderr, /DeviceAlreadyExists: /);

  for (const args of [['device', 'show'], ['device', 'show', '--device-id'], ['device', 'frobnicate'],
    ['nonsense'], ['device', 'list', '--top', 'many'], ['device', 'list', '--wat'], [],
    ['method', 'invoke', '--device-id', 'x', '--method-name', 'm', '--payload', '{']]) {
    const r = await iotdm(args);
    assert.equal(r.code, 2, `iotdm ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /iotdm: |Usage:/);
  }

  const key = Buffer.alloc(32, 7).toString('base64');
  const wrong = await iotdm(['device', 'list'], { env: { IOTDM_CONNECTION_STRING: `HostName=${h.host};SharedAccessKeyName=iothubowner;SharedAccessKey=${key}` } });
  assert.equal(wrong.code, 4);
  assert.match(wrong.stderr, /IotHubUnauthorizedAccess/);
  const none = await iotdm(['device', 'list'], { env: { IOTDM_CONNECTION_STRING: undefined } });
  assert.equal(none.code, 4);
  assert.match(none.stderr, /not logged in/);
  const deviceCs = await iotdm(['device', 'list'], { env: { IOTDM_CONNECTION_STRING: `HostName=${h.host};DeviceId=d;SharedAccessKey=${key}` } });
  assert.equal(deviceCs.code, 2);
  assert.match(deviceCs.stderr, /device connection string/);
  // No --ca: the hub's own CA is not in the system trust store.
  const untrusted = await runCli(['device', 'list'], { env: baseEnv() });
  assert.equal(untrusted.code, 7);
  assert.match(untrusted.stderr, /--ca/);
});

test('login sources: --login, --login-file, the default file', async () => {
  const file = path.join(h.root, 'login.txt');
  fs.writeFileSync(file, `# owner\n${h.ownerConnStr}\n`, { mode: 0o600 });
  ok(await iotdm(['--login-file', file, 'device', 'list'], { env: { IOTDM_CONNECTION_STRING: undefined } }), '--login-file');
  ok(await iotdm(['device', 'list', '--login', h.ownerConnStr], { env: { IOTDM_CONNECTION_STRING: undefined } }), '--login');
  fs.mkdirSync(path.join(home, '.config', 'iotdm'), { recursive: true });
  fs.writeFileSync(path.join(home, '.config', 'iotdm', 'connection'), `${h.ownerConnStr}\n`);
  ok(await iotdm(['device', 'list'], { env: { IOTDM_CONNECTION_STRING: undefined } }), 'default login file');
  fs.rmSync(path.join(home, '.config'), { recursive: true });
});

test('--help on every command and subcommand; exit codes documented', async () => {
  const top = ok(await iotdm(['--help']), '--help');
  for (const n of ['0', '1', '2', '3', '4', '5', '6', '7']) assert.match(top.stdout, new RegExp(`^  ${n}\\s+\\S`, 'm'));
  const cmds = [['device', 'create', 'list', 'show', 'delete', 'connection-string', 'enable', 'disable'],
    ['twin', 'show', 'update'], ['method', 'invoke'], ['job', 'create', 'show', 'list', 'cancel'],
    ['c2d', 'send', 'purge']];
  for (const [group, ...subs] of cmds) {
    const g = ok(await iotdm([group, '--help']), `${group} --help`);
    for (const s of subs) {
      assert.match(g.stdout, new RegExp(`^  ${s}\\s`, 'm'));
      const r = ok(await iotdm([group, s, '--help']), `${group} ${s} --help`);
      assert.match(r.stdout, new RegExp(`^Usage: iotdm ${group} ${s}`));
    }
  }
  for (const c of [['monitor', '--help'], ['query', '--help'], ['dm', '--help'], ['dm', 'reboot', '--help'],
    ['dm', 'set-time-zone', '-h'], ['dm', 'status', '--help']]) {
    const r = ok(await iotdm(c, { env: { IOTDM_CONNECTION_STRING: undefined } }), c.join(' '));
    assert.match(r.stdout, /^Usage: /);
  }
  const dm = ok(await iotdm(['dm', '--help']), 'dm --help');
  for (const s of ['reboot', 'factory-reset', 'set-time-zone', 'schedule-reboot', 'set-time-info', 'status']) {
    assert.match(dm.stdout, new RegExp(`^  ${s}\\s`, 'm'));
  }
});

test('bash completion: commands, options, dm shortcuts and device ids', async () => {
  ok(await iotdm(['device', 'create', '--device-id', 'cli-compl-1']), 'create');
  const script = path.join(REPO, 'packaging', 'iotdm.bash-completion');
  const complete = (...words) => {
    const r = spawnSync('bash', ['-c',
      'source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($#-1)); _iotdm; printf "%s\\n" "${COMPREPLY[@]}"', script, ...words], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${path.dirname(findCli())}:${process.env.PATH}`, HOME: home,
        IOTDM_CONNECTION_STRING: h.ownerConnStr, IOTDM_CA: h.caPath },
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean);
  };
  assert.deepEqual(complete('iotdm', 'dev'), ['device']);
  assert.ok(complete('iotdm', 'device', '').includes('connection-string'));
  assert.ok(complete('iotdm', 'device', 'create', '--').includes('--primary-thumbprint'));
  assert.deepEqual(complete('iotdm', 'dm', 'set-time-z'), ['set-time-zone']);
  assert.deepEqual(complete('iotdm', 'dm', 'factory-reset', '--keep'), ['--keep-provisioning']);
  assert.deepEqual(complete('iotdm', 'device', 'show', '--device-id', 'cli-compl'), ['cli-compl-1']);
});
