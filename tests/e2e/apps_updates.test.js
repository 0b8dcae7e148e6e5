'use strict';
// apps and OS updates end to end: the official service SDK sets dm.apps, dm.updatePolicy and
// dm.updates and calls dm*appLifecycle, dm*updateScan and dm*updateInstall; the agent downloads
// real .deb files (built here with dpkg-deb) from a local HTTPS server, configd on a sandbox root
// keeps a simulated package database. Effects are checked in the root and in the reported twin.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { DmTestbed, dm, T0 } = require('./lib/dm');

const bench = new DmTestbed(h);
let files;

before(async () => {
  await bench.start({ files: true });
  files = bench.files;
});
after(() => bench.stop());

const STATE = path.join('var', 'lib', 'iotdm-sandbox');

// A device whose sandbox holds a repository (file names only) and installed packages before start.
function newDevice(id, { repo = [], installed = {}, configdConf = [] } = {}) {
  return bench.newDevice(id, {
    configdConf,
    prepare: (sim) => {
      fs.mkdirSync(path.join(sim.root, STATE, 'repo'), { recursive: true });
      for (const f of repo) fs.writeFileSync(path.join(sim.root, STATE, 'repo', f), '');
      const db = {};
      for (const [name, version] of Object.entries(installed)) db[name] = { version, installDate: '2030-01-01T00:00:00Z' };
      fs.writeFileSync(path.join(sim.root, STATE, 'packages.json'), JSON.stringify(db));
    },
  });
}
const twin = (id) => bench.twin(id);
const setDesired = (id, patch) => bench.setDesired(id, patch);
const waitAck = (id, prop, version, timeoutMs = 30000) => bench.waitAck(id, prop, version, { timeoutMs });
const invoke = (id, command, payload = null) => bench.invoke(id, command, payload);

function sandboxJson(sim, rel) {
  const p = path.join(sim.root, rel);
  return fs.existsSync(p) ? JSON.parse(fs.readFileSync(p, 'utf8')) : {};
}

const packages = (sim) => sandboxJson(sim, path.join(STATE, 'packages.json'));
const services = (sim) => sandboxJson(sim, path.join(STATE, 'services.json'));
const kioskUnit = (sim) => path.join(sim.root, 'etc', 'systemd', 'system', 'iotdm-kiosk.service');

// A real Debian package built with dpkg-deb, served by the file server: {url, sha256}.
function serveDeb(name, version) {
  const dir = fs.mkdtempSync(path.join(h.root, `deb-${name}-`));
  fs.mkdirSync(path.join(dir, 'pkg', 'DEBIAN'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'pkg', 'DEBIAN', 'control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: e2e <e2e@example.net>\nDescription: e2e test package\n`);
  const out = path.join(dir, `${name}_${version}_all.deb`);
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', path.join(dir, 'pkg'), out], { stdio: 'pipe' });
  return files.put(`${name}_${version}_all.deb`, fs.readFileSync(out));
}

test('apps from the repository: pinned, background and foreground, upgrade, not installed, untracked', async () => {
  const id = 'apps-repo';
  const sim = await newDevice(id, {
    repo: ['hello_2.10-2_amd64.deb', 'hello_2.10-3_amd64.deb', 'kiosk-ui_1.0_all.deb', 'libfoo1.2_1.0-1_amd64.deb'],
  });
  let v = await setDesired(id, { apps: {
    hello: { version: '2.10-2', startUp: 'background' },
    'kiosk-ui': { version: 'latest', startUp: 'foreground' },
    libfoo1_2: { version: 'latest' }, // '.' is written '_' in a twin key
  } });
  let ack = await waitAck(id, 'apps', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.equal(ack.value.hello.version, '2.10-2');
  assert.equal(ack.value.hello.startUp, 'background');
  assert.ok(ack.value.hello.installDate, 'installDate reported');
  assert.equal(ack.value['kiosk-ui'].version, '1.0');
  assert.equal(ack.value['kiosk-ui'].startUp, 'foreground');
  assert.equal(ack.value.libfoo1_2.version, '1.0-1');
  let db = packages(sim);
  assert.equal(db.hello.version, '2.10-2');
  assert.equal(db.hello.held, true, 'a pinned version is held against automatic upgrades');
  assert.equal(db['libfoo1.2'].version, '1.0-1');
  assert.deepEqual(services(sim)['hello.service'], { enabled: true, active: true });
  assert.match(fs.readFileSync(kioskUnit(sim), 'utf8'), /^# iotdm-kiosk-package: kiosk-ui\n[\s\S]*ExecStart=\/usr\/bin\/kiosk-ui\n/);
  assert.deepEqual(services(sim)['iotdm-kiosk.service'], { enabled: true, active: true });

  // Upgrade to the newest; the app goes back to no start-up.
  v = await setDesired(id, { apps: { hello: { version: 'latest', startUp: 'none' } } });
  ack = await waitAck(id, 'apps', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.equal(ack.value.hello.version, '2.10-3');
  assert.equal(ack.value.hello.startUp, 'none');
  assert.equal(packages(sim).hello.version, '2.10-3');
  assert.equal(packages(sim).hello.held, false);
  assert.deepEqual(services(sim)['hello.service'], { enabled: false, active: false });

  // Not installed: purged. null: no longer tracked, so it vanishes from the reported map.
  v = await setDesired(id, { apps: { hello: { version: 'not installed' }, libfoo1_2: null } });
  ack = await waitAck(id, 'apps', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.equal(ack.value.hello.version, 'not installed');
  assert.equal(ack.value.libfoo1_2, undefined, JSON.stringify(ack.value));
  assert.deepEqual(Object.keys(ack.value).sort(), ['hello', 'kiosk-ui']);
  db = packages(sim);
  assert.equal(db.hello, undefined);
  assert.equal(db['libfoo1.2'].version, '1.0-1', 'an untracked app is left as it is');
  assert.ok(sim.journal().some((j) => j.event === 'run' && j.argv.includes('purge') && j.argv.includes('hello')));

  // dm*appLifecycle: synchronous, 200 with the status.
  let r = await invoke(id, 'appLifecycle', { package: 'kiosk-ui', action: 'stop' });
  assert.equal(r.status, 200, JSON.stringify(r));
  assert.equal(r.payload.state, 'completed');
  assert.equal(services(sim)['iotdm-kiosk.service'].active, false);
  r = await invoke(id, 'appLifecycle', { package: 'kiosk-ui', action: 'start' });
  assert.equal(r.status, 200);
  assert.equal(services(sim)['iotdm-kiosk.service'].active, true);
  r = await invoke(id, 'appLifecycle', { package: 'hello', action: 'start' });
  assert.equal(r.status, 400, 'not installed');
  assert.match(r.payload.message, /not installed/);
  r = await invoke(id, 'appLifecycle', { package: 'kiosk-ui', action: 'restart' });
  assert.equal(r.status, 400);
});

test('apps from a URL: a real .deb installs; bad hash, unreachable URL, bad name, two foreground apps are refused per app', async () => {
  const id = 'apps-url';
  const sim = await newDevice(id, { repo: ['fg-one_1.0_all.deb', 'fg-two_1.0_all.deb'] });
  const good = serveDeb('toaster-app', '1.2-1');
  const other = serveDeb('other-app', '2.0');
  const v = await setDesired(id, { apps: {
    'toaster-app': { version: '1.2-1', url: good.url, sha256: good.sha256 },
    'other-app': { version: 'latest', url: other.url, sha256: good.sha256 }, // the wrong hash
    'gone-app': { version: 'latest', url: `https://${h.addr}:1/gone-app.deb`, sha256: good.sha256 },
    Bad_Name: { version: '1.0' },
    'fg-one': { version: 'latest', startUp: 'foreground' },
    'fg-two': { version: 'latest', startUp: 'foreground' },
  } });
  const ack = await waitAck(id, 'apps', v);
  assert.equal(ack.ac, 400, JSON.stringify(ack));
  assert.match(ack.ad, /5 of 6 apps failed/);
  const a = ack.value;
  assert.equal(a['toaster-app'].version, '1.2-1');
  assert.equal(a['toaster-app'].errorCode, undefined);
  assert.equal(a['other-app'].errorCode, 400);
  assert.match(a['other-app'].errorMessage, /SHA-256/);
  assert.equal(a['other-app'].version, 'not installed');
  assert.equal(a['gone-app'].errorCode, 502);
  assert.match(a['gone-app'].errorMessage, /cannot download/);
  assert.equal(a.Bad_Name.errorCode, 400);
  assert.match(a.Bad_Name.errorMessage, /not a Debian package name/);
  for (const fg of ['fg-one', 'fg-two']) {
    assert.equal(a[fg].errorCode, 409, JSON.stringify(a[fg]));
    assert.match(a[fg].errorMessage, /only one app can be the foreground app/);
    assert.equal(a[fg].version, 'not installed', 'nothing was done for it');
  }
  // Only the good package is in the database; nothing half-installed, no staged file left.
  assert.deepEqual(Object.keys(packages(sim)), ['toaster-app']);
  assert.equal(fs.existsSync(kioskUnit(sim)), false);
  const staged = path.join(sim.root, 'var', 'lib', 'iotdm-configd', 'debs');
  assert.deepEqual(fs.existsSync(staged) ? fs.readdirSync(staged) : [], []);
  const installs = sim.journal().filter((j) => j.event === 'run' && j.argv.includes('install'));
  assert.equal(installs.length, 1, JSON.stringify(installs));
  assert.match(installs[0].argv.join(' '), /\/var\/lib\/iotdm-configd\/debs\/[0-9a-f]{64}\.deb/);
});

test('the agent refuses to uninstall or downgrade itself; its self-update survives the agent restart', async () => {
  const id = 'apps-self';
  const sim = await newDevice(id, { repo: ['iotdm-agent_0.0.9-1_amd64.deb'], installed: { 'iotdm-agent': '0.1.0-1' } });
  let v = await setDesired(id, { apps: { 'iotdm-agent': { version: 'not installed' } } });
  let ack = await waitAck(id, 'apps', v);
  assert.equal(ack.ac, 400, JSON.stringify(ack));
  assert.equal(ack.value['iotdm-agent'].errorCode, 409);
  assert.match(ack.value['iotdm-agent'].errorMessage, /cannot uninstall itself/);
  assert.equal(ack.value['iotdm-agent'].version, '0.1.0-1');
  v = await setDesired(id, { apps: { 'iotdm-agent': { version: '0.0.9-1' } } });
  ack = await waitAck(id, 'apps', v);
  assert.equal(ack.value['iotdm-agent'].errorCode, 409);
  assert.match(ack.value['iotdm-agent'].errorMessage, /cannot downgrade itself/);
  assert.equal(packages(sim)['iotdm-agent'].version, '0.1.0-1');

  // The update: 202 at once, the install detached, the agent restarted, the outcome reported by
  // the agent that comes up afterwards.
  const deb = serveDeb('iotdm-agent', '0.3.0-1');
  const starts = sim.agentStarts;
  v = await setDesired(id, { apps: { 'iotdm-agent': { version: 'latest', url: deb.url, sha256: deb.sha256 } } });
  await h.waitUntil(() => sim.agentStarts > starts, { timeoutMs: 20000, what: 'the agent to restart' });
  ack = await waitAck(id, 'apps', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.equal(ack.value['iotdm-agent'].version, '0.3.0-1');
  assert.equal(packages(sim)['iotdm-agent'].version, '0.3.0-1');
  const run = sim.journal().find((j) => j.event === 'run' && j.argv.includes('--unit=iotdm-selfupdate'));
  assert.ok(run, 'the install ran in the detached self-update unit');
  assert.equal(run.argv.includes('--wait'), false, 'nobody waits for it');
  // The old agent acknowledged 202 and went away; the one started after it read the outcome.
  const log = fs.readFileSync(sim.log, 'utf8');
  const started = log.indexOf('self-update of iotdm-agent to 0.3.0-1 started');
  const pending = log.indexOf(`apps $version ${v}: 202`);
  const restarted = log.indexOf(`start agent #${starts + 1}`);
  const completed = log.indexOf('self-update of iotdm-agent to 0.3.0-1 completed');
  assert.ok(pending >= 0 && started > pending && restarted > started && completed > restarted,
    `order in the device log: 202 ${pending}, started ${started}, restart ${restarted}, completed ${completed}`);
});

test('updates: policy files, approved list, scan and install with their status, in the install window', async () => {
  const id = 'updates';
  const sim = await newDevice(id, {
    installed: { openssl: '3.0.11-1', 'linux-image-amd64': '6.1.90-1' },
    configdConf: ['sandbox_upgradable = openssl=3.0.14-1', 'sandbox_upgradable = linux-image-amd64=6.1.99-1 reboot'],
  });
  const pause = '2030-01-16T00:00:00+01:00';
  let v = await setDesired(id, { updatePolicy: { automaticUpdates: true, activeHoursStart: 8, activeHoursEnd: 17, pauseUntil: pause, deferDays: 0 } });
  let ack = await waitAck(id, 'updatePolicy', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.deepEqual(ack.value, { automaticUpdates: true, activeHoursStart: 8, activeHoursEnd: 17, pauseUntil: '2030-01-15T23:00:00Z', deferDays: 0 });
  const aptConf = () => fs.readFileSync(path.join(sim.root, 'etc', 'apt', 'apt.conf.d', '52iotdm-unattended'), 'utf8');
  assert.match(aptConf(), /^APT::Periodic::Unattended-Upgrade "0";$/m, 'paused');
  const timer = fs.readFileSync(path.join(sim.root, 'etc', 'systemd', 'system', 'apt-daily-upgrade.timer.d', 'iotdm.conf'), 'utf8');
  assert.match(timer, /^OnCalendar=\*-\*-\* 0,1,2,3,4,5,6,17,18,19,20,21,22,23:00$/m);
  assert.equal(JSON.parse(fs.readFileSync(path.join(sim.root, 'etc', 'iotdm', 'update-policy.json'), 'utf8')).paused, true);

  v = await setDesired(id, { updates: { approved: ['openssl', 'linux-image-amd64=6.1.99-1'] } });
  ack = await waitAck(id, 'updates', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.deepEqual(ack.value.installable, [], 'nothing known before a scan');
  assert.equal(ack.value.lastScanTime, undefined);
  const bad = await waitAck(id, 'updates', await setDesired(id, { updates: { approved: ['Not A Package'] } }));
  assert.equal(bad.ac, 400);
  await waitAck(id, 'updates', await setDesired(id, { updates: { approved: ['openssl', 'linux-image-amd64=6.1.99-1'] } }));

  // The command's outcome, newer than the status seen before (times follow the scheduler's clock).
  let lastTime = '';
  const cmdDone = async (command) => {
    const c = await h.waitUntil(async () => {
      const x = dm(await twin(id)).updatesCmd;
      return x && x.command === command && x.lastChange.state !== 'pending' && x.lastChange.time !== lastTime ? x : null;
    }, { timeoutMs: 20000, what: `updatesCmd ${command} to finish` });
    lastTime = c.lastChange.time;
    return c;
  };
  let r = await invoke(id, 'updateScan');
  assert.equal(r.status, 202);
  assert.equal((await cmdDone('scan')).lastChange.state, 'completed');
  let upd = dm(await twin(id)).updates.value;
  assert.deepEqual(upd.installable, ['openssl=3.0.14-1', 'linux-image-amd64=6.1.99-1']);
  assert.equal(upd.lastScanTime, '2030-01-15T12:30:00Z');
  assert.ok(sim.journal().some((j) => j.event === 'run' && j.argv.includes('update')), 'apt-get update recorded');

  // 12:30 is inside the active hours (and paused): the install waits for its window.
  r = await invoke(id, 'updateInstall');
  assert.equal(r.status, 202);
  assert.match(r.payload.message, /waiting for the install window/);
  assert.equal((await invoke(id, 'updateInstall')).status, 409, 'one command at a time');
  await h.sleep(2500);
  assert.equal(packages(sim).openssl.version, '3.0.11-1', 'nothing installed in the active hours');
  assert.equal(dm(await twin(id)).updatesCmd.lastChange.state, 'pending');

  // The pause ends at 23:00Z: the agent's scheduler turns unattended upgrades back on and installs.
  sim.setClock(Date.parse('2030-01-15T23:00:05Z'));
  assert.equal((await cmdDone('install')).lastChange.state, 'completed');
  assert.match(aptConf(), /^APT::Periodic::Unattended-Upgrade "1";$/m, 'the pause was lifted');
  upd = dm(await twin(id)).updates.value;
  assert.deepEqual(upd.installed.sort(), ['linux-image-amd64=6.1.99-1', 'openssl=3.0.14-1']);
  assert.deepEqual(upd.failed, []);
  assert.deepEqual(upd.installable, []);
  assert.equal(upd.rebootRequired, true);
  assert.equal(packages(sim).openssl.version, '3.0.14-1');
  assert.ok(fs.existsSync(path.join(sim.root, 'run', 'reboot-required')));

  // Forced: at once, even in the active hours.
  sim.setClock(Date.parse('2030-01-16T12:00:00Z'));
  r = await invoke(id, 'updateInstall', { force: true });
  assert.equal(r.status, 202);
  assert.match((await cmdDone('install')).lastChange.message, /installed 0, failed 0/);
  assert.equal((await invoke(id, 'updateInstall', { force: 'yes' })).status, 400);
});
