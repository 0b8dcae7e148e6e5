'use strict';
// iotdm-hub + iotdm-agent + iotdm-configd on a sandbox root, driven through the official
// azure-iothub SDK: each capability's effect is checked in the sandbox root and in the twin.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { DmTestbed, dm, T0 } = require('./lib/dm');

const bench = new DmTestbed(h);

before(() => bench.start());
after(() => bench.stop());

const newDevice = (id, opts = {}) => bench.newDevice(id, opts);
const connected = (id) => bench.connected(id);
const twin = (id) => bench.twin(id);
const setDesired = (id, patch) => bench.setDesired(id, patch);
const waitAck = (id, prop, version, what) => bench.waitAck(id, prop, version, { timeoutMs: 15000, what });
const invoke = (id, command, payload = null) => bench.invoke(id, command, payload, 10);

test('deviceInformation and dm.deviceInfo are reported on connect', async () => {
  await newDevice('agent-info');
  const t = await h.waitUntil(async () => {
    const x = await twin('agent-info');
    return x.properties.reported.deviceInformation && dm(x).deviceInfo ? x : null;
  }, { timeoutMs: 15000, what: 'device information in the twin' });
  const di = t.properties.reported.deviceInformation;
  assert.equal(di.__t, 'c');
  assert.match(di.swVersion, /iotdm-agent/);
  assert.ok(di.totalMemory > 0, JSON.stringify(di));
  const info = dm(t).deviceInfo;
  assert.ok(info.kernel && info.hostname && info.bootTime, JSON.stringify(info));
  assert.ok(info.totalStorageKB > 0 && info.freeMemoryKB > 0, JSON.stringify(info));
  assert.equal(t.modelId, 'dtmi:iotdm:DeviceManagement;1');
});

test('timeInfo writes the zone and the timesyncd drop-in and acknowledges with the real state', async () => {
  const sim = await newDevice('agent-time');
  const v = await setDesired('agent-time', { timeInfo: { timeZone: 'Europe/Berlin', ntpServers: ['ntp1.example.net', '192.0.2.1'] } });
  const ack = await waitAck('agent-time', 'timeInfo', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.equal(ack.value.timeZone, 'Europe/Berlin');
  assert.deepEqual(ack.value.ntpServers, ['ntp1.example.net', '192.0.2.1']);
  assert.ok(ack.value.localTime, 'localTime reported');
  const link = fs.readlinkSync(path.join(sim.root, 'etc', 'localtime'));
  assert.match(link, /zoneinfo\/Europe\/Berlin$/);
  assert.equal(fs.readFileSync(path.join(sim.root, 'etc', 'timezone'), 'utf8').trim(), 'Europe/Berlin');
  const dropin = fs.readFileSync(path.join(sim.root, 'etc', 'systemd', 'timesyncd.conf.d', 'iotdm.conf'), 'utf8');
  assert.match(dropin, /^NTP=ntp1\.example\.net 192\.0\.2\.1$/m);

  // An unknown zone is refused with 400 and changes nothing.
  const v2 = await setDesired('agent-time', { timeInfo: { timeZone: 'Mars/Olympus_Mons' } });
  const bad = await waitAck('agent-time', 'timeInfo', v2);
  assert.equal(bad.ac, 400, JSON.stringify(bad));
  assert.match(bad.ad, /Mars\/Olympus_Mons|zone/i);
  assert.match(fs.readlinkSync(path.join(sim.root, 'etc', 'localtime')), /Europe\/Berlin$/);
  assert.equal(bad.value.timeZone, 'Europe/Berlin', 'the reported value is the unchanged real state');
});

test('timeService follows the remote settings, or the local ones when they have priority', async () => {
  const sim = await newDevice('agent-ts', { extraAgentArgs: ['--time-service-enabled', 'false', '--time-service-started', 'false', '--time-service-priority', 'remote'] });
  const v = await setDesired('agent-ts', { timeService: { enabled: true, started: true, sourcePriority: 'remote' } });
  const ack = await waitAck('agent-ts', 'timeService', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.deepEqual(ack.value, { enabled: true, started: true, sourcePriority: 'remote' });
  const v2 = await setDesired('agent-ts', { timeService: { enabled: true, started: true, sourcePriority: 'local' } });
  const ack2 = await waitAck('agent-ts', 'timeService', v2);
  assert.deepEqual(ack2.value, { enabled: false, started: false, sourcePriority: 'local' }, 'local settings win');
  const cmds = sim.journal().map((j) => JSON.stringify(j)).join('\n');
  assert.match(cmds, /systemd-timesyncd/);
});

test('dm*reboot: reboots, the simulated reboot moves lastBootTime, rebootCmd says scheduled', async () => {
  const sim = await newDevice('agent-reboot');
  const before = await h.waitUntil(async () => dm(await twin('agent-reboot')).deviceInfo, { timeoutMs: 15000, what: 'deviceInfo' });
  await h.sleep(1100); // boot times have one-second resolution
  const r = await invoke('agent-reboot', 'reboot');
  assert.equal(r.status, 202);
  assert.equal(r.payload.state, 'pending');
  const cmd = await h.waitUntil(async () => {
    const c = dm(await twin('agent-reboot')).rebootCmd;
    return c && c.response ? c : null;
  }, { timeoutMs: 15000, what: 'rebootCmd response' });
  assert.equal(cmd.response, 'scheduled', JSON.stringify(cmd));
  assert.ok(sim.journal().some((j) => /reboot/.test(JSON.stringify(j))), 'reboot recorded in the sandbox journal');
  await h.waitUntil(() => sim.agentStarts >= 2, { timeoutMs: 15000, what: 'the agent to restart after the simulated reboot' });
  const after = await h.waitUntil(async () => {
    const i = dm(await twin('agent-reboot')).deviceInfo;
    return i && Date.parse(i.bootTime) > Date.parse(before.bootTime) ? i : null;
  }, { timeoutMs: 20000, what: 'lastBootTime to move' });
  assert.ok(Date.parse(after.bootTime) > Date.parse(before.bootTime));
  const info = dm(await twin('agent-reboot')).rebootInfo;
  assert.ok(info && info.value.lastRebootCmdTime, JSON.stringify(info));
});

test('dm*reboot is refused when reboots are disabled, in active hours, and when the app vetoes', async () => {
  const sim = await newDevice('agent-policy');
  const reboots = () => sim.journal().filter((j) => /reboot/.test(JSON.stringify(j))).length;
  async function attempt() {
    const before = JSON.stringify(dm(await twin('agent-policy')).rebootCmd || {});
    const r = await invoke('agent-policy', 'reboot');
    assert.equal(r.status, 202);
    return h.waitUntil(async () => {
      const c = dm(await twin('agent-policy')).rebootCmd;
      return c && c.response && JSON.stringify(c) !== before && c.lastChange.state !== 'pending' ? c : null;
    }, { timeoutMs: 15000, what: 'rebootCmd outcome' });
  }
  let v = await setDesired('agent-policy', { rebootPolicy: { rebootsAllowed: false } });
  assert.equal((await waitAck('agent-policy', 'rebootPolicy', v)).ac, 200);
  assert.equal((await attempt()).response, 'disabled');

  // The scheduler's clock says 12:30 UTC and the device's zone is UTC: 12-13 is active.
  v = await setDesired('agent-policy', { rebootPolicy: { rebootsAllowed: true, activeHoursStart: 12, activeHoursEnd: 13 } });
  assert.equal((await waitAck('agent-policy', 'rebootPolicy', v)).ac, 200);
  assert.equal((await attempt()).response, 'inActiveHours');

  v = await setDesired('agent-policy', { rebootPolicy: { activeHoursStart: 0, activeHoursEnd: 0 } });
  await waitAck('agent-policy', 'rebootPolicy', v);
  fs.writeFileSync(sim.inhibitFile, 'toasting\n');
  assert.equal((await attempt()).response, 'rejectedByApp');
  assert.equal(reboots(), 0, 'no reboot was recorded');

  v = await setDesired('agent-policy', { rebootPolicy: { activeHoursStart: 25 } });
  const bad = await waitAck('agent-policy', 'rebootPolicy', v);
  assert.equal(bad.ac, 400, JSON.stringify(bad));
});

test('rebootInfo: schedules are normalised to UTC, bad times refused, a single reboot fires on time', async () => {
  const sim = await newDevice('agent-sched');
  const reboots = () => sim.journal().filter((j) => /reboot/.test(JSON.stringify(j))).length;
  let v = await setDesired('agent-sched', { rebootInfo: { singleRebootTime: 'next tuesday' } });
  let ack = await waitAck('agent-sched', 'rebootInfo', v);
  assert.equal(ack.ac, 400, JSON.stringify(ack));
  assert.match(ack.ad, /ISO 8601/);

  // 14:30:00.250+01:00 is 13:30:00Z: one hour after the scheduler's clock.
  v = await setDesired('agent-sched', { rebootInfo: { singleRebootTime: '2030-01-15T14:30:00.250+01:00', dailyRebootTime: '' } });
  ack = await waitAck('agent-sched', 'rebootInfo', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.equal(ack.value.singleRebootTime, '2030-01-15T13:30:00Z');
  sim.setClock(T0 + 3600 * 1000 - 5000); // 5 s early: nothing happens
  await h.sleep(2500);
  assert.equal(reboots(), 0, 'no reboot before the scheduled time');
  sim.setClock(T0 + 3600 * 1000 + 1000);
  await h.waitUntil(() => reboots() === 1, { timeoutMs: 10000, what: 'the scheduled reboot' });
  await h.waitUntil(() => sim.agentStarts >= 2, { timeoutMs: 15000, what: 'the agent to restart' });
  await h.sleep(2500);
  assert.equal(reboots(), 1, 'a single reboot fires once, not again after the restart');
});

test('dm*factoryReset removes the configured paths, keeps others, reports completed and reboots', async () => {
  const sim = await newDevice('agent-reset', {
    resetPaths: ['/var/lib/app-data', '/etc/app.conf'],
    prepare: (dev) => {
      fs.mkdirSync(path.join(dev.root, 'var', 'lib', 'app-data', 'sub'), { recursive: true });
      fs.writeFileSync(path.join(dev.root, 'var', 'lib', 'app-data', 'sub', 'db'), 'user data');
      fs.mkdirSync(path.join(dev.root, 'etc'), { recursive: true });
      fs.writeFileSync(path.join(dev.root, 'etc', 'app.conf'), 'x=1');
      fs.writeFileSync(path.join(dev.root, 'etc', 'keep.conf'), 'keep');
    },
  });
  const bad = await invoke('agent-reset', 'factoryReset', { keepProvisioning: 'yes' });
  assert.equal(bad.status, 400);
  const r = await invoke('agent-reset', 'factoryReset', { keepProvisioning: true });
  assert.equal(r.status, 202);
  const st = await h.waitUntil(async () => {
    const s = dm(await twin('agent-reset')).factoryResetCmd;
    return s && s.lastChange.state !== 'pending' ? s : null;
  }, { timeoutMs: 20000, what: 'factoryResetCmd outcome' });
  assert.equal(st.lastChange.state, 'completed', JSON.stringify(st));
  assert.equal(st.keepProvisioning, true);
  assert.equal(fs.existsSync(path.join(sim.root, 'var', 'lib', 'app-data')), false);
  assert.equal(fs.existsSync(path.join(sim.root, 'etc', 'app.conf')), false);
  assert.equal(fs.readFileSync(path.join(sim.root, 'etc', 'keep.conf'), 'utf8'), 'keep');
  assert.ok(sim.journal().some((j) => /reboot/.test(JSON.stringify(j))), 'the reset reboots');
});

test('the agent killed in the middle of a desired patch applies it after restart; nothing reported is lost', async () => {
  const sim = await newDevice('agent-kill');
  let v = await setDesired('agent-kill', { rebootPolicy: { rebootsAllowed: true, activeHoursStart: 1, activeHoursEnd: 2 } });
  await waitAck('agent-kill', 'rebootPolicy', v);
  // Freeze configd so the agent blocks inside the next patch, then kill it there.
  sim.configd.kill('SIGSTOP');
  v = await setDesired('agent-kill', { timeInfo: { timeZone: 'Asia/Tokyo' } });
  await h.sleep(800);
  await sim.killAgent({ restart: false });
  sim.configd.kill('SIGCONT');
  sim.startAgent();
  const ack = await waitAck('agent-kill', 'timeInfo', v, 'timeInfo applied after the restart');
  assert.equal(ack.ac, 200);
  assert.equal(ack.value.timeZone, 'Asia/Tokyo');
  assert.match(fs.readlinkSync(path.join(sim.root, 'etc', 'localtime')), /Asia\/Tokyo$/);
  const pol = dm(await twin('agent-kill')).rebootPolicy;
  assert.equal(pol.value.activeHoursStart, 1, 'the earlier acknowledgement is still there');
});

test('while the hub is down the agent keeps working; afterwards its outbox drains in order', async () => {
  const sim = await newDevice('agent-outage');
  let v = await setDesired('agent-outage', { rebootInfo: { singleRebootTime: '2030-01-15T12:31:00Z' } });
  assert.equal((await waitAck('agent-outage', 'rebootInfo', v)).ac, 200);
  const before = dm(await twin('agent-outage')).deviceInfo;
  await h.closeTracked();
  await h.hub.stop();
  // The scheduled reboot fires while the hub is away: the agent reboots and comes back.
  sim.setClock(Date.parse('2030-01-15T12:31:01Z'));
  await h.waitUntil(() => sim.journal().some((j) => /reboot/.test(JSON.stringify(j))), { timeoutMs: 10000, what: 'the reboot during the outage' });
  await h.waitUntil(() => sim.agentStarts >= 2, { timeoutMs: 15000, what: 'the agent restart' });
  await h.sleep(1500);
  await h.hub.start();
  bench.clients();
  const t = await h.waitUntil(async () => {
    const x = dm(await twin('agent-outage'));
    return x.deviceInfo && x.deviceInfo.bootTime !== before.bootTime && x.rebootInfo.value.lastRebootCmdTime ? x : null;
  }, { timeoutMs: 30000, what: 'the outbox to drain after the outage' });
  assert.ok(Date.parse(t.deviceInfo.bootTime) > Date.parse(before.bootTime));
  assert.equal(t.rebootInfo.value.singleRebootTime, '2030-01-15T12:31:00Z');
  // In order: the reboot's acknowledgement (queued before the restart) came before the new boot's report.
  const events = await h.events({ deviceId: 'agent-outage', from: 'start' });
  const acked = await events.waitFor((e) => e.event === 'twin' && e.data.patch.dm && e.data.patch.dm.rebootInfo &&
    e.data.patch.dm.rebootInfo.value && e.data.patch.dm.rebootInfo.value.lastRebootCmdTime, 10000, 'the reboot acknowledged');
  const booted = await events.waitFor((e) => e.event === 'twin' && e.data.patch.dm && e.data.patch.dm.deviceInfo &&
    e.data.patch.dm.deviceInfo.bootTime === t.deviceInfo.bootTime, 10000, 'the new boot reported');
  assert.ok(acked.data.seq < booted.data.seq, 'reported in the order they happened');
  events.close();
});
