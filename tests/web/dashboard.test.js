'use strict';
// The dashboard in headless chromium against a real iotdm-hub: an iotdm-agent device on a sandboxed
// iotdm-configd, and a device maker's sensor driven by Microsoft's azure-iot-device SDK.
// Screenshots of every step are kept in tests/web/artifacts/.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { startEnv, agentBuilt, SimDevice, sleep } = require('./lib/env');
const { Rest } = require('./lib/rest');
const { SensorDevice } = require('./lib/sensor');
const { launch } = require('./lib/browser');
const { Recorder, waitUntil } = require('./lib/steps');

let rec; // lib/steps.js: screenshots and failure capture

const ARTIFACTS = path.join(__dirname, 'artifacts');
const AGENT_ID = 'lab-agent-01';
const SENSOR_ID = 'lab-sensor-01';
const DECOYS = ['gateway-berlin-01', 'gateway-berlin-02', 'kiosk-lobby'];

let env;
let rest;
let browser;
let page;
let sim = null;
let sensor = null;
const pageErrors = [];

async function openDevice(id, tab = '') {
  await page.goto(`${env.url}#/devices/${encodeURIComponent(id)}${tab ? `/${tab}` : ''}`);
  await page.locator('#device-title').waitFor();
  await page.locator('#live-state', { hasText: 'Live' }).waitFor();
}

before(async () => {
  rec = new Recorder(ARTIFACTS, () => page);
  env = await startEnv('dashboard');
  rest = new Rest({ connStr: env.connStr, addr: env.addr, ca: env.ca });
  for (const id of DECOYS) await rest.createDevice(id);
  await rest.patchTwin('gateway-berlin-01', { tags: { site: 'berlin' } });

  const s = await rest.createDevice(SENSOR_ID);
  sensor = new SensorDevice({ connStr: rest.deviceConnStr(s), ca: env.ca, intervalMs: 500 });
  await sensor.start();

  if (agentBuilt()) {
    const a = await rest.createDevice(AGENT_ID);
    const dir = fs.mkdtempSync(path.join(env.root, 'agent-'));
    sim = new SimDevice({ dir, connStr: rest.deviceConnStr(a), caPath: env.caPath });
    await sim.start();
    // Ready once the agent has reported its DM state.
    await waitUntil(async () => {
      const t = await rest.twin(AGENT_ID);
      return t.connectionState === 'Connected' && t.properties.reported.dm && t.properties.reported.dm.rebootInfo;
    }, 'the agent to connect and report');
  }

  browser = await launch({ serverCertPath: env.serverCertPath });
  page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  if (browser) await browser.close();
  if (sensor) await sensor.stop();
  if (sim) await sim.stop();
  if (rec) await rec.cleanup(env);
});

test('sign in: a wrong key is refused with a clear error, the right one opens the device list', async (t) => {
  await rec.step('sign-in', async () => {
    await page.goto(env.url);
    await page.locator('#connstr').waitFor();
    await rec.shot('sign-in');
    const wrong = env.connStr.replace(/SharedAccessKey=[^;]+/, 'SharedAccessKey=d3JvbmcgKGJ1dCB2YWxpZCBiYXNlNjQpIGtleQ==');
    await page.fill('#connstr', wrong);
    await page.click('#main button[type=submit]');
    const error = page.locator('#signin-error');
    await error.filter({ hasText: /refused/ }).waitFor();
    assert.match(await error.textContent(), /signature|refused/i);
    await rec.shot('sign-in-wrong-key');

    await page.fill('#connstr', env.connStr);
    await page.click('#main button[type=submit]');
    await page.locator('table[aria-label="Devices"] tbody tr[data-device-id]').first().waitFor();
    const host = await page.locator('#session-host').textContent();
    assert.equal(host, `iothubowner@${env.addr}`);
    // The connection string is kept for this tab only.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('iotdm.connectionString')), env.connStr);
    await rec.shot('device-list');
  });
});

test('find a device by search: the filter runs as a query and narrows the list', async (t) => {
  await rec.step('search', async () => {
    const rows = page.locator('table[aria-label="Devices"] tbody tr[data-device-id]');
    await waitUntil(async () => (await rows.count()) === DECOYS.length + 1 + (sim ? 1 : 0), 'every device in the list');
    await page.fill('#f-search', 'SENSOR');
    await waitUntil(async () => (await rows.count()) === 1, 'one row after the search');
    assert.equal(await rows.first().getAttribute('data-device-id'), SENSOR_ID);
    assert.match(await page.locator('#query-text').textContent(), /CONTAINS\(deviceId, 'SENSOR', true\)/);
    await page.fill('#f-search', '');
    await page.fill('#f-where', "tags.site = 'berlin'");
    await page.press('#f-where', 'Enter');
    await waitUntil(async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-device-id')) === 'gateway-berlin-01', 'the tag condition');
    await page.fill('#f-where', 'tags.site = ');
    await page.press('#f-where', 'Enter');
    await page.locator('.error-box', { hasText: 'could not run this query' }).waitFor();
    await rec.shot('device-list-bad-query');
    await page.fill('#f-where', '');
    await page.press('#f-where', 'Enter');
    await page.fill('#f-search', sim ? 'agent' : 'sensor');
    // The list may still show the previous filter's single row: wait for the right one.
    const wanted = sim ? AGENT_ID : SENSOR_ID;
    await waitUntil(async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-device-id')) === wanted,
      'the device to open');
    await rec.shot('device-list-search');
    await rows.first().locator('a').click();
    await page.locator('#device-title').waitFor();
    assert.equal(await page.locator('#device-title').textContent(), sim ? AGENT_ID : SENSOR_ID);
  });
});

test('set the time zone and watch the acknowledgement turn ok', async (t) => {
  if (!sim) { t.skip('iotdm-agent not built'); return; }
  await rec.step('time-zone', async () => {
    await openDevice(AGENT_ID, 'dm');
    const card = page.locator('section[data-prop="dm.timeInfo"]');
    await card.locator('[data-field="timeZone"] input').fill('Europe/Berlin');
    await card.getByRole('button', { name: 'Apply' }).click();
    const pill = card.locator('.prop-head .pill');
    await card.locator('.prop-head .pill[data-ack="ok"]').waitFor();
    assert.equal(await pill.textContent(), 'OK');
    assert.equal(await card.locator('.reported [data-path="timeZone"]').textContent(), 'Europe/Berlin');
    const tw = await rest.twin(AGENT_ID);
    assert.equal(tw.properties.reported.dm.timeInfo.value.timeZone, 'Europe/Berlin');
    assert.equal(tw.properties.reported.dm.timeInfo.av, tw.properties.desired.$version);
    assert.equal(fs.readFileSync(path.join(sim.root, 'etc', 'timezone'), 'utf8').trim(), 'Europe/Berlin');
    await card.scrollIntoViewIfNeeded();
    await rec.shot('time-zone-ok');

    // A zone the device refuses: the ack turns failed with the device's reason.
    await card.locator('[data-field="timeZone"] input').fill('Mars/Olympus_Mons');
    await card.getByRole('button', { name: 'Apply' }).click();
    await card.locator('.prop-head .pill[data-ack="failed"]').waitFor();
    assert.match(await pill.textContent(), /Failed \(4\d\d\)/);
    assert.match(await card.locator('.ack-reason').textContent(), /Mars|zone/i);
    await rec.shot('time-zone-failed');
    await card.locator('[data-field="timeZone"] input').fill('Europe/Berlin');
    await card.getByRole('button', { name: 'Apply' }).click();
    await card.locator('.prop-head .pill[data-ack="ok"]').waitFor();
  });
});

test('reboot the device and see lastBootTime move', async (t) => {
  if (!sim) { t.skip('iotdm-agent not built'); return; }
  await rec.step('reboot', async () => {
    await openDevice(AGENT_ID, 'dm');
    const boot = page.locator('section[data-prop="dm.rebootInfo"] .reported [data-path="lastBootTime"] time');
    await boot.waitFor();
    const before = await boot.getAttribute('datetime');
    await sleep(1100); // boot times have a resolution of one second
    const cmd = page.locator('[data-command="dm*reboot"]');
    await cmd.getByRole('button', { name: 'Reboot now' }).click();
    const status = cmd.locator('.response [data-status]');
    await status.waitFor();
    assert.equal(await status.getAttribute('data-status'), '202');
    assert.match(await cmd.locator('.response pre').textContent(), /"state": "pending"/);
    await page.waitForFunction((b) => {
      const el = document.querySelector('section[data-prop="dm.rebootInfo"] .reported [data-path="lastBootTime"] time');
      return el && el.getAttribute('datetime') !== b;
    }, before, { timeout: 30000 });
    const afterBoot = await boot.getAttribute('datetime');
    assert.ok(Date.parse(afterBoot) > Date.parse(before), `lastBootTime ${before} → ${afterBoot}`);
    await waitUntil(() => sim.agentStarts >= 2, 'the agent to restart after the simulated reboot');
    await page.locator('[data-prop="dm.rebootCmd"] [data-path="response"]', { hasText: 'scheduled' }).waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await rec.shot('rebooted');
  });
});

test('a device maker\'s component: typed forms, acks ok and failed, a command with a payload and its response', async (t) => {
  await rec.step('sensor-component', async () => {
    await openDevice(SENSOR_ID, 'sensor');
    // An enum is a select; the device acknowledges with 200.
    const mode = page.locator('section[data-prop="sensor.mode"]');
    await mode.locator('select').selectOption('fast');
    await mode.getByRole('button', { name: 'Apply' }).click();
    await mode.locator('.pill[data-ack="ok"]').waitFor();
    // An object with a boolean, numbers and a list.
    const alarm = page.locator('section[data-prop="sensor.alarm"]');
    await alarm.locator('[data-field="enabled"] select').selectOption('true');
    await alarm.locator('[data-field="high"] input').fill('28.5');
    await alarm.getByRole('button', { name: 'Add item' }).click();
    await alarm.locator('.list-editor input').first().fill('ops@example.net');
    await alarm.getByRole('button', { name: 'Apply' }).click();
    await alarm.locator('.pill[data-ack="ok"]').waitFor();
    const tw = await rest.twin(SENSOR_ID);
    assert.deepEqual(tw.properties.desired.sensor.alarm, { enabled: true, high: 28.5, notify: ['ops@example.net'] });
    assert.equal(tw.properties.desired.sensor.__t, 'c');
    // A value the device refuses: failed, with its reason.
    const interval = page.locator('section[data-prop="sensor.sampleIntervalSeconds"]');
    await interval.locator('input').fill('0');
    await interval.getByRole('button', { name: 'Apply' }).click();
    await interval.locator('.pill[data-ack="failed"]').waitFor();
    assert.match(await interval.locator('.ack-reason').textContent(), /must be 1-3600/);

    const cmd = page.locator('[data-command="sensor*calibrate"]');
    await cmd.locator('[data-field="offset"] input').fill('0.75');
    await cmd.locator('[data-field="reference"] input').fill('Fluke 1524');
    await cmd.locator('[data-field="persist"] select').selectOption('true');
    await cmd.getByRole('button', { name: 'Calibrate' }).click();
    await cmd.locator('.response [data-status="200"]').waitFor();
    const shown = JSON.parse(await cmd.locator('.response pre').textContent());
    assert.deepEqual(shown, { applied: true, offset: 0.75, previousOffset: 0 });
    assert.deepEqual(sensor.calls.find((c) => c.name === 'calibrate').payload, { offset: 0.75, reference: 'Fluke 1524', persist: true });
    // The read-only property the device reports after calibrating.
    await page.locator('[data-prop="sensor.lastCalibration"] [data-path="reference"]', { hasText: 'Fluke 1524' }).waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await rec.shot('sensor-component');
  });
});

test('watch telemetry arrive in the chart and the event list', async (t) => {
  await rec.step('telemetry', async () => {
    await openDevice(SENSOR_ID, 'events');
    const temp = page.locator('.chart-series[data-series="temperature"]');
    await temp.waitFor();
    await page.locator('.chart-series[data-series="humidity"]').waitFor();
    assert.match(await temp.locator('.svalue').textContent(), /^-?\d+(\.\d+)? °C$/);
    assert.match(await temp.locator('.sname').textContent(), /Temperature/);
    const rows = page.locator('.events .event[data-kind="telemetry"]');
    const n = await rows.count();
    await waitUntil(async () => (await rows.count()) >= n + 3, 'more telemetry rows');
    const points = await temp.locator('polyline').getAttribute('points');
    assert.ok(points.split(' ').length >= 3, `at least 3 points plotted: ${points}`);
    assert.match(await rows.first().locator('.body').textContent(), /"temperature":/);
    await rec.shot('telemetry');
  });
});

test('twin editor: validation, a merge patch with If-Match, and a conflict', async (t) => {
  await rec.step('twin', async () => {
    await openDevice(SENSOR_ID, 'twin');
    const tags = page.locator('#tags-json');
    await tags.fill('{"site": "lab", ');
    await page.click('button:has-text("Save changes")');
    await page.locator('#twin-error', { hasText: 'Tags is not valid JSON' }).waitFor();
    await rec.shot('twin-invalid');
    await tags.fill('{"site": "lab", "floor": 3}');
    await page.click('button:has-text("Save changes")');
    await waitUntil(async () => (await rest.twin(SENSOR_ID)).tags.floor === 3, 'the tags to be saved');
    // Someone else changes the desired properties while we edit: saving is refused (412).
    const desired = page.locator('#desired-json');
    const doc = JSON.parse(await desired.inputValue());
    doc.sensor.mode = 'eco';
    await desired.fill(JSON.stringify(doc, null, 2));
    await rest.patchTwin(SENSOR_ID, { properties: { desired: { sensor: { mode: 'normal' } } } });
    await page.locator('.ack-reason', { hasText: 'changed the desired properties' }).waitFor();
    await page.click('button:has-text("Save changes")');
    await page.locator('#twin-error', { hasText: 'changed on the hub' }).waitFor();
    await rec.shot('twin-conflict');
    assert.equal((await rest.twin(SENSOR_ID)).properties.desired.sensor.mode, 'normal');
    await page.click('form.editor button:has-text("Revert")');
    const fresh = JSON.parse(await desired.inputValue());
    assert.equal(fresh.sensor.mode, 'normal');
    fresh.sensor.mode = 'eco';
    await desired.fill(JSON.stringify(fresh, null, 2));
    await page.click('button:has-text("Save changes")');
    await waitUntil(async () => (await rest.twin(SENSOR_ID)).properties.desired.sensor.mode === 'eco', 'the desired edit to be saved');
  });
});

test('load a desired profile from a JSON file: preview, then apply', async (t) => {
  await rec.step('profile', async () => {
    await openDevice(SENSOR_ID, 'twin');
    const profile = { properties: { desired: { sensor: { __t: 'c', mode: 'normal', sampleIntervalSeconds: 5 } } } };
    await page.setInputFiles('#profile-file', { name: 'night-profile.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(profile)) });
    const dlg = page.locator('dialog');
    await dlg.waitFor();
    assert.match(await dlg.locator('.diff').textContent(), /sensor\.sampleIntervalSeconds/);
    await rec.shot('profile-preview');
    await dlg.getByRole('button', { name: 'Apply profile' }).click();
    await dlg.waitFor({ state: 'detached' });
    await waitUntil(async () => {
      const d = (await rest.twin(SENSOR_ID)).properties.desired.sensor;
      return d.mode === 'normal' && d.sampleIntervalSeconds === 5;
    }, 'the profile in the twin');
    await page.goto(`${env.url}#/devices/${SENSOR_ID}/sensor`);
    await page.locator('section[data-prop="sensor.sampleIntervalSeconds"] .pill[data-ack="ok"]').waitFor();
  });
});

test('send a cloud-to-device message and the device receives it', async (t) => {
  await rec.step('c2d', async () => {
    await openDevice(SENSOR_ID, 'messages');
    await page.fill('#c2d-body', '{"command":"blink","times":3}');
    await page.fill('#c2d-ctype', 'application/json');
    await page.click('button:has-text("+ Add property")');
    await page.fill('input[aria-label="Property name"]', 'priority');
    await page.fill('input[aria-label="Property value"]', 'high');
    await page.click('button:has-text("Send message")');
    await page.locator('table[aria-label="Messages sent"] code').first().waitFor();
    const m = await waitUntil(() => sensor.messages.find((x) => x.body === '{"command":"blink","times":3}'), 'the device to receive the message');
    assert.equal(m.properties.priority, 'high');
    await rec.shot('c2d-sent');
  });
});

test('create a device, reveal its connection string, disable it and delete it', async (t) => {
  await rec.step('create-delete', async () => {
    await page.goto(env.url);
    await page.click('button:has-text("New device")');
    await page.fill('#new-id', 'kiosk-lobby');
    await page.click('dialog button:has-text("Create device")');
    await page.locator('dialog .form-error', { hasText: 'DeviceAlreadyExists' }).waitFor();
    await page.fill('#new-id', 'web-new-01');
    await page.click('dialog button:has-text("Create device")');
    await page.locator('#device-title', { hasText: 'web-new-01' }).waitFor();
    const cs = page.locator('#cs-primary');
    assert.doesNotMatch(await cs.textContent(), /SharedAccessKey/, 'hidden by default');
    await page.click('button[aria-controls="cs-primary"]');
    const dev = (await rest.call('GET', '/devices/web-new-01')).json;
    assert.equal(await cs.textContent(), `HostName=${env.addr};DeviceId=web-new-01;SharedAccessKey=${dev.authentication.symmetricKey.primaryKey}`);
    await rec.shot('new-device-keys');
    await page.click('#toggle-status');
    await page.click('dialog button:has-text("Disable")');
    await page.locator('#toggle-status', { hasText: 'Enable' }).waitFor();
    assert.equal((await rest.call('GET', '/devices/web-new-01')).json.status, 'disabled');
    await page.click('button:has-text("Delete")');
    await page.click('dialog button:has-text("Delete device")');
    await page.locator('h1', { hasText: 'Devices' }).waitFor();
    await assert.rejects(rest.call('GET', '/devices/web-new-01'), /404/);
  });
});

test('narrow screens: the device page stays usable', async (t) => {
  await rec.step('mobile', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await openDevice(SENSOR_ID, 'sensor');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no horizontal scrolling of the page (${overflow}px too wide)`);
    await rec.shot('mobile-sensor');
    await page.setViewportSize({ width: 1360, height: 900 });
  });
});

test('no script errors on any page', () => {
  assert.deepEqual(pageErrors, []);
});
