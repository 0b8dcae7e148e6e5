'use strict';
// logCollectors and the log-file commands end to end: desired collectors through the official
// service SDK, configd on a sandbox root collecting from a simulated journal (journalctl -o json
// lines the test writes), files listed, uploaded through the hub's file-upload API and downloaded
// byte-identical through the service API, deleted; bad names refused with nothing touched.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const { DmTestbed, dm, T0 } = require('./lib/dm');

const bench = new DmTestbed(h);

before(() => bench.start());
after(() => bench.stop());

const newDevice = (id) => bench.newDevice(id);
const twin = (id) => bench.twin(id);
const setDesired = (id, patch) => bench.setDesired(id, patch);
const waitAck = (id, version) => bench.waitAck(id, 'logCollectors', version, { timeoutMs: 20000 });
const invoke = (id, command, payload = {}) => bench.invoke(id, command, payload, 30);

// The simulated journal: entries as `journalctl -o json` prints them (all values strings).
function journal(sim, entries) {
  const file = path.join(sim.root, 'var', 'lib', 'iotdm-sandbox', 'journald.jsonl');
  const now = Date.now() * 1000;
  const lines = entries.map(([unit, ident, prio, msg]) => JSON.stringify({
    __REALTIME_TIMESTAMP: String(now), _SYSTEMD_UNIT: unit, SYSLOG_IDENTIFIER: ident, _PID: '77',
    PRIORITY: String(prio), _HOSTNAME: 'sim', MESSAGE: msg,
  }));
  fs.appendFileSync(file, lines.join('\n') + '\n');
}

function logsDir(sim, folder = '') {
  return path.join(sim.root, 'var', 'lib', 'iotdm', 'logs', folder);
}

// Everything collected in a folder: finished files and the one still being written.
function folderText(sim, folder) {
  const dir = logsDir(sim, folder);
  return fs.readdirSync(dir).filter((f) => f.endsWith('.log')).sort()
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('');
}

function folderBytes(sim, folder) {
  const dir = logsDir(sim, folder);
  return fs.readdirSync(dir).filter((f) => f.endsWith('.log'))
    .reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

// Raw bytes from the service API (the download is not JSON).
function download(p) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: h.addr, port: 443, method: 'GET', path: p, headers: { Authorization: h.serviceAuth() }, ca: h.ca, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const SSH = { units: ['ssh.service'], identifiers: ['sshd'], priority: 'info' };

test('a collector takes only its units, identifiers and priorities; a stop finishes a file; upload is byte-identical', async () => {
  const id = 'logs-main';
  const sim = await newDevice(id);
  const v1 = await setDesired(id, { logCollectors: { ssh: { ...SSH, started: true } } });
  const a1 = await waitAck(id, v1);
  assert.equal(a1.ac, 200, JSON.stringify(a1));
  assert.equal(a1.value.ssh.state, 'collecting');
  assert.deepEqual(a1.value.ssh.units, ['ssh.service']);
  assert.equal(a1.value.ssh.sizeLimitMB, 4, 'the default limit');
  assert.equal(a1.value.ssh.mode, 'circular', 'the default mode');
  journal(sim, [
    ['ssh.service', 'sshd', 6, 'Accepted publickey for admin'],
    ['ssh.service', 'sshd', 7, 'debug chatter'],
    ['cron.service', 'CRON', 6, 'cron job ran'],
    ['ssh.service', 'sshd-session', 6, 'another identifier'],
    ['ssh.service', 'sshd', 2, 'critical failure'],
  ]);
  const v2 = await setDesired(id, { logCollectors: { ssh: { ...SSH, started: false } } });
  const a2 = await waitAck(id, v2);
  assert.equal(a2.ac, 200, JSON.stringify(a2));
  assert.equal(a2.value.ssh.state, 'stopped');
  assert.equal(a2.value.ssh.files, 1);

  const folders = await invoke(id, 'listLogFolders');
  assert.equal(folders.status, 200);
  assert.deepEqual(folders.payload, ['ssh']);
  const files = await invoke(id, 'listLogFiles', { folder: 'ssh' });
  assert.equal(files.status, 200, JSON.stringify(files));
  assert.equal(files.payload.length, 1);
  const f = files.payload[0];
  assert.match(f.name, /^ssh_\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.log$/);
  const onDisk = fs.readFileSync(path.join(logsDir(sim, 'ssh'), f.name));
  assert.equal(f.size, onDisk.length);
  assert.ok(!Number.isNaN(Date.parse(f.modified)), f.modified);
  const text = onDisk.toString();
  assert.match(text, /sim sshd\[77\]: Accepted publickey for admin\n/);
  assert.match(text, /critical failure/);
  for (const absent of ['debug chatter', 'cron job ran', 'another identifier']) assert.ok(!text.includes(absent), `${absent} filtered out:\n${text}`);

  const up = await invoke(id, 'uploadLogFile', { folder: 'ssh', file: f.name });
  assert.equal(up.status, 200, JSON.stringify(up));
  assert.equal(up.payload.blobName, `${id}/logs/ssh/${f.name}`);
  assert.equal(up.payload.size, onDisk.length);
  const list = await h.rest('GET', `/iotdm/files?deviceId=${id}`);
  const item = list.json.find((x) => x.blobName === up.payload.blobName);
  assert.equal(item.state, 'completed', JSON.stringify(item));
  assert.equal(item.blobSizeInBytes, onDisk.length);
  const dl = await download(`/iotdm/files/${id}/logs/ssh/${encodeURIComponent(f.name)}`);
  assert.equal(dl.status, 200);
  assert.ok(dl.body.equals(onDisk), 'the downloaded log is byte-identical to the file on the device');
});

test('path traversal in every command is refused and touches nothing; deleteLogFile deletes one file', async () => {
  const id = 'logs-paths';
  const sim = await newDevice(id);
  const v = await setDesired(id, { logCollectors: { ssh: { ...SSH, started: true } } });
  await waitAck(id, v);
  journal(sim, [['ssh.service', 'sshd', 6, 'one line']]);
  await waitAck(id, await setDesired(id, { logCollectors: { ssh: { ...SSH, started: false } } }));
  const name = fs.readdirSync(logsDir(sim, 'ssh')).find((x) => x.endsWith('.log'));
  const secret = path.join(sim.root, 'var', 'lib', 'iotdm', 'secret.txt');
  fs.writeFileSync(secret, 'not a log');
  fs.symlinkSync('../../secret.txt', path.join(logsDir(sim, 'ssh'), 'link.log'));
  fs.symlinkSync('..', path.join(logsDir(sim), 'up'));
  const before = fs.readdirSync(logsDir(sim, 'ssh')).sort();

  const bad = [
    { folder: '..', file: 'secret.txt' },
    { folder: 'ssh', file: '../../secret.txt' },
    { folder: 'ssh/..', file: 'secret.txt' },
    { folder: 'ssh', file: '/etc/passwd' },
    { folder: 'ssh', file: '.collector.json' },
    { folder: '', file: name },
  ];
  for (const cmd of ['uploadLogFile', 'deleteLogFile']) {
    for (const args of bad) {
      const r = await invoke(id, cmd, args);
      assert.equal(r.status, 400, `${cmd} ${JSON.stringify(args)}: ${JSON.stringify(r)}`);
    }
    // Links are not followed: to a file outside, or a folder that leads out.
    assert.equal((await invoke(id, cmd, { folder: 'ssh', file: 'link.log' })).status, 404);
    assert.equal((await invoke(id, cmd, { folder: 'up', file: 'secret.txt' })).status, 404);
  }
  for (const folder of ['..', '../..', 'ssh/../..', '/']) {
    assert.equal((await invoke(id, 'listLogFiles', { folder })).status, 400, folder);
  }
  assert.equal((await invoke(id, 'listLogFiles', { folder: 'up' })).status, 404);
  assert.equal((await invoke(id, 'listLogFiles', {})).status, 400);
  assert.deepEqual(fs.readdirSync(logsDir(sim, 'ssh')).sort(), before, 'nothing in the folder changed');
  assert.equal(fs.readFileSync(secret, 'utf8'), 'not a log');
  assert.deepEqual((await invoke(id, 'listLogFolders')).payload, ['ssh'], 'the link is not a folder');
  const uploads = (await h.rest('GET', `/iotdm/files?deviceId=${id}`)).json;
  assert.equal(uploads.length, 0, `nothing was uploaded: ${JSON.stringify(uploads)}`);

  const del = await invoke(id, 'deleteLogFile', { folder: 'ssh', file: name });
  assert.equal(del.status, 200, JSON.stringify(del));
  assert.ok(!fs.existsSync(path.join(logsDir(sim, 'ssh'), name)));
  assert.ok(fs.existsSync(path.join(logsDir(sim, 'ssh'), 'link.log')), 'only the named file went');
  assert.deepEqual((await invoke(id, 'listLogFiles', { folder: 'ssh' })).payload, []);
  assert.equal((await invoke(id, 'deleteLogFile', { folder: 'ssh', file: name })).status, 404);
  assert.equal(fs.readFileSync(secret, 'utf8'), 'not a log');
});

// About 3 MiB of numbered entries for one unit.
function fill(sim, unit, n) {
  const pad = 'x'.repeat(100);
  const entries = [];
  for (let i = 0; i < n; i++) entries.push([unit, 'app', 6, `entry ${String(i).padStart(8, '0')} ${pad}`]);
  journal(sim, entries);
}

test('size limits: circular drops the oldest files, sequential stops and reports full', async () => {
  const id = 'logs-limits';
  const sim = await newDevice(id);
  const v = await setDesired(id, {
    logCollectors: {
      circ: { units: ['circ.service'], sizeLimitMB: 1, mode: 'circular', started: true },
      seq: { units: ['seq.service'], sizeLimitMB: 1, mode: 'sequential', started: true },
    },
  });
  const a = await waitAck(id, v);
  assert.equal(a.ac, 200, JSON.stringify(a));
  fill(sim, 'circ.service', 24000);
  fill(sim, 'seq.service', 24000);
  // The agent collects every minute of its clock: move the clock past it.
  sim.setClock(T0 + 61 * 1000);
  const value = await h.waitUntil(async () => {
    const p = dm(await twin(id)).logCollectors;
    return p && p.value.seq.state === 'full' && p.value.circ.files >= 2 ? p.value : null;
  }, { timeoutMs: 30000, what: 'the periodic collection to be reported' });
  assert.equal(value.circ.state, 'collecting');
  assert.ok(value.circ.bytes <= 1024 * 1024 && value.circ.bytes > 512 * 1024, JSON.stringify(value.circ));
  assert.ok(value.seq.bytes <= 1024 * 1024, JSON.stringify(value.seq));
  assert.ok(folderBytes(sim, 'circ') <= 1024 * 1024);
  assert.ok(folderBytes(sim, 'seq') <= 1024 * 1024);
  const circ = folderText(sim, 'circ');
  assert.ok(!circ.includes('entry 00000000 '), 'circular dropped the oldest entries');
  assert.ok(circ.includes('entry 00023999 '), 'circular kept the newest entries');
  const seq = folderText(sim, 'seq');
  assert.ok(seq.includes('entry 00000000 '), 'sequential kept the first entries');
  assert.ok(!seq.includes('entry 00023999 '), 'sequential stopped when full');
});

test('collectors rebuilt whole: a bad one is refused next to it, a removed one is stopped and its files stay', async () => {
  const id = 'logs-items';
  const sim = await newDevice(id);
  const v1 = await setDesired(id, {
    logCollectors: {
      keep: { identifiers: ['kernel'], started: true },
      gone: { units: ['gone.service'], started: true },
      bad: { sizeLimitMB: 5000, started: true },
      worse: { units: ['ssh*'] },
    },
  });
  const a1 = await waitAck(id, v1);
  assert.equal(a1.ac, 400, JSON.stringify(a1));
  assert.equal(a1.value.bad.errorCode, 400);
  assert.match(a1.value.bad.errorMessage, /sizeLimitMB/);
  assert.match(a1.value.worse.errorMessage, /units\[0\]/);
  assert.equal(a1.value.keep.state, 'collecting');
  assert.equal(a1.value.gone.state, 'collecting');
  assert.ok(!fs.existsSync(logsDir(sim, 'bad')), 'nothing made for a refused collector');
  journal(sim, [['gone.service', 'gone', 6, 'last words']]);
  const v2 = await setDesired(id, { logCollectors: { gone: null, bad: null, worse: null } });
  const a2 = await waitAck(id, v2);
  assert.equal(a2.ac, 200, JSON.stringify(a2));
  assert.deepEqual(Object.keys(a2.value).sort(), ['keep'], JSON.stringify(a2.value));
  assert.match(folderText(sim, 'gone'), /gone\[77\]: last words/, 'stopping kept what it collected');
  assert.deepEqual((await invoke(id, 'listLogFolders')).payload, ['gone', 'keep']);
});
