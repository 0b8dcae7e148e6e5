'use strict';
// The Toaster sample (examples/toaster) driven like a person at its terminal: it runs in tmux
// (send-keys, capture-pane) against a real hub, with a sandboxed iotdm-configd making the
// changes. The operator's side goes through the official azure-iothub SDK.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { SimDevice, findBinary } = require('./lib/agent');
const { TmuxSession } = require('./lib/tmux');
const { tailFile } = require('./lib/hub');

const ID = 'toaster-1';
const PROMPT_TIMEOUT_S = 10;
let reg;
let svc;
let sim; // only its sandboxed configd: the toaster runs device management itself
let term;
let logFile;

before(async () => {
  await h.startHub();
  reg = h.registry();
  svc = h.serviceClient();
});
after(async () => {
  if (term) term.kill();
  if (sim) await sim.stop();
  await h.stopAll();
});

async function twin() {
  return (await reg.getTwin(ID)).responseBody;
}

function reported(t, component) {
  return t.properties.reported[component] || {};
}

async function setDesired(component, patch) {
  const r = await reg.updateTwin(ID, { properties: { desired: { [component]: { __t: 'c', ...patch } } } }, '*');
  return r.responseBody.properties.desired.$version;
}

async function waitAck(component, prop, version) {
  return h.waitUntil(async () => {
    const p = reported(await twin(), component)[prop];
    return p && p.av === version && p.ac !== 202 ? p : null;
  }, { timeoutMs: 15000, what: `${component}.${prop} acknowledged for $version ${version}` });
}

async function waitState(state) {
  await h.waitUntil(async () => reported(await twin(), 'toaster').state === state,
    { timeoutMs: 20000, what: `toaster.state ${state} in the twin` });
}

const reboots = () => sim.journal().filter((j) => /reboot/.test(JSON.stringify(j))).length;

// Invokes dm*reboot (answered 202 at once); returns a function that waits for its outcome.
async function requestReboot() {
  const before = JSON.stringify(reported(await twin(), 'dm').rebootCmd || {});
  const r = (await svc.invokeDeviceMethod(ID, { methodName: 'dm*reboot', payload: null, responseTimeoutInSeconds: 10 })).result;
  assert.equal(r.status, 202, JSON.stringify(r));
  return () => h.waitUntil(async () => {
    const c = reported(await twin(), 'dm').rebootCmd;
    return c && c.response && JSON.stringify(c) !== before && c.lastChange.state !== 'pending' ? c : null;
  }, { timeoutMs: 20000, what: 'the rebootCmd outcome' });
}

// Adds the screen and the toaster's log to a failure, where the cause usually is.
async function step(what, fn) {
  try {
    return await fn();
  } catch (e) {
    let screen = '';
    try { screen = term.capture(); } catch (_) { /* gone */ }
    e.message += `\n--- during: ${what}\n--- screen:\n${screen}\n--- toaster log:\n${tailFile(logFile, 40)}`;
    throw e;
  }
}

test('the toaster shares the connection, shows DM state, vetoes reboots while toasting and asks when idle', async () => {
  const d = await h.createDevice(reg, ID);
  const dir = fs.mkdtempSync(path.join(h.root, 'toaster-'));
  sim = new SimDevice({ dir, connStr: h.deviceConnStr(d), caPath: h.caPath });
  fs.mkdirSync(sim.stateDir, { recursive: true });
  await sim.startConfigd();
  logFile = path.join(dir, 'toaster.log');
  const events = await h.events({ deviceId: ID });

  term = new TmuxSession(dir, 'toaster');
  term.start([findBinary('examples/toaster/iotdm-toaster'),
    '--connection-string', h.deviceConnStr(d), '--ca-file', h.caPath, '--state-dir', sim.stateDir,
    '--configd-socket', sim.socket, '--log-file', logFile, '--prompt-timeout', String(PROMPT_TIMEOUT_S)],
  { width: 100, height: 30, env: { TERM: 'screen' } });

  await step('connecting', async () => {
    await term.waitFor(/iotdm Toaster[\s\S]*connected/, { timeoutMs: 20000, what: 'the connected screen' });
    await waitState('idle');
    const t = await h.waitUntil(async () => {
      const x = await twin();
      return x.properties.reported.deviceInformation && reported(x, 'dm').deviceInfo ? x : null;
    }, { timeoutMs: 15000, what: 'deviceInformation reported' });
    assert.equal(t.modelId, 'dtmi:iotdm:example:ToasterDevice;1');
    assert.match(t.properties.reported.deviceInformation.swVersion, /iotdm-toaster/);
  });

  await step('telemetry', async () => {
    const e = await events.waitFor((x) => x.event === 'telemetry' && x.data.properties &&
      x.data.properties.toasterState === 'idle', 15000, 'toaster telemetry');
    assert.equal(e.data.systemProperties['dt-subject'], 'toaster', JSON.stringify(e.data.systemProperties));
    const body = JSON.parse(e.data.body);
    assert.equal(body.state, 'idle');
    assert.equal(typeof body.temperature, 'number');
  });

  await step('timeInfo and darkness', async () => {
    let v = await setDesired('dm', { timeInfo: { timeZone: 'Asia/Tokyo' } });
    assert.equal((await waitAck('dm', 'timeInfo', v)).ac, 200);
    await term.waitFor(/Time zone\s+Asia\/Tokyo/, { what: 'the new time zone' });
    v = await setDesired('toaster', { darkness: 9 });
    const bad = await waitAck('toaster', 'darkness', v);
    assert.equal(bad.ac, 400, JSON.stringify(bad));
    v = await setDesired('toaster', { darkness: 2 });
    const ok = await waitAck('toaster', 'darkness', v);
    assert.equal(ok.ac, 200, JSON.stringify(ok));
    assert.equal(ok.value, 2);
    await term.waitFor(/Darkness\s+2 of 5/, { what: 'darkness 2' });
  });

  await step('reboot while toasting', async () => {
    term.sendKeys('t');
    await term.waitFor(/State\s+toasting/, { what: 'toasting' });
    await waitState('toasting');
    await events.waitFor((x) => x.event === 'telemetry' && x.data.properties &&
      x.data.properties.toasterState === 'toasting', 10000, 'telemetry while toasting');
    const outcome = await requestReboot();
    const cmd = await outcome();
    assert.equal(cmd.response, 'rejectedByApp', JSON.stringify(cmd));
    const screen = await term.waitFor(/vetoed while toasting/, { what: 'the veto on screen' });
    assert.doesNotMatch(screen, /Allow reboot\?/, 'no prompt while toasting');
    assert.equal(reboots(), 0, 'no reboot recorded');
  });

  await step('idle: the person says no', async () => {
    await waitState('idle');
    await term.waitFor(/State\s+idle/, { what: 'idle again' });
    const outcome = await requestReboot();
    await term.waitFor(/Allow reboot\? \[y\/n\]/, { what: 'the prompt' });
    term.sendKeys('n');
    assert.equal((await outcome()).response, 'rejectedByApp');
    const screen = await term.waitFor(/rejectedByApp: refused/, { what: 'the refusal' });
    assert.doesNotMatch(screen, /Allow reboot\?/);
    assert.equal(reboots(), 0, 'no reboot recorded');
  });

  await step('idle: no answer in time', async () => {
    const outcome = await requestReboot();
    await term.waitFor(/Allow reboot\?/, { what: 'the prompt' });
    assert.equal((await outcome()).response, 'rejectedByApp');
    await term.waitFor(/no answer in time/, { what: 'the timeout on screen' });
    assert.equal(reboots(), 0, 'no reboot recorded');
  });

  await step('idle: the person says yes', async () => {
    const outcome = await requestReboot();
    await term.waitFor(/Allow reboot\? \[y\/n\]/, { what: 'the prompt' });
    term.sendKeys('y');
    const cmd = await outcome();
    assert.equal(cmd.response, 'scheduled', JSON.stringify(cmd));
    assert.equal(reboots(), 1, 'the reboot is recorded in the sandbox journal');
    // A simulated reboot takes the toaster down with the device, as a real one would.
    await h.waitUntil(() => term.dead(), { timeoutMs: 10000, what: 'the toaster to exit after the reboot' });
  });
  events.close();
});
