'use strict';
// The dashboard's provisioning pages in headless chromium against a real iotdm-hub: sign-in with
// the provisioning service's own policy, the ID scope, individual enrollments (symmetric key,
// X.509, TPM) and groups, the initial twin, enable/disable, a group-derived key checked against
// Node's crypto and used by a device to register, registration records, deletes, bad input.
// Every outcome is checked through the DPS service API. Screenshots: tests/web/artifacts/provisioning/.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const https = require('node:https');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');

const { startEnv, sleep } = require('./lib/env');
const { Rest, parseConnStr } = require('./lib/rest');
const { launch } = require('./lib/browser');
const { Recorder, waitUntil } = require('./lib/steps');

let rec; // lib/steps.js: screenshots and failure capture

const ARTIFACTS = path.join(__dirname, 'artifacts', 'provisioning');

let env;
let svc; // the DPS service API, signed with provisioningserviceowner
let dpsConnStr;
let idScope;
let browser;
let page;
const pageErrors = [];

// Loads a page afresh (a hash change alone would keep an open dialog of a failed test).
async function open(hash) {
  await page.goto('about:blank');
  await page.goto(`${env.url}${hash}`);
  await page.locator('main h1').first().waitFor();
}

async function getEnrollment(kind, id) {
  return (await svc.call('GET', `/${kind}/${encodeURIComponent(id)}`)).json;
}

async function allEnrollments() {
  return (await svc.call('POST', '/enrollments/query', { query: '*' })).json;
}

// A self-signed device certificate whose CN is the registration id, and its key.
function makeCert(dir, cn) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', 'dev.key', '-out', 'dev.pem', '-days', '2', '-subj', `/CN=${cn}`], { cwd: dir, stdio: 'pipe' });
  return { cert: fs.readFileSync(path.join(dir, 'dev.pem'), 'utf8'), key: fs.readFileSync(path.join(dir, 'dev.key'), 'utf8') };
}

// A device registering over the DPS HTTPS device API with a symmetric key (docs/protocol.md §7.3,
// §7.11): register, then poll the operation. Resolves the final registration state.
async function registerWithKey(regId, keyB64) {
  const sr = encodeURIComponent(`${idScope}/registrations/${regId}`);
  const se = Math.floor(Date.now() / 1000) + 3600;
  const sig = crypto.createHmac('sha256', Buffer.from(keyB64, 'base64')).update(`${sr}\n${se}`).digest('base64');
  const auth = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=registration`;
  const call = (method, p, body) => new Promise((resolve, reject) => {
    const payload = body ? JSON.stringify(body) : undefined;
    const req = https.request({
      host: env.addr, port: 443, method, path: `/${idScope}/registrations/${encodeURIComponent(regId)}/${p}?api-version=2021-06-01`,
      ca: env.ca, agent: false,
      headers: { Authorization: auth, 'Content-Type': 'application/json; charset=utf-8', ...(payload ? { 'Content-Length': Buffer.byteLength(payload) } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
  const reg = await call('PUT', 'register', { registrationId: regId });
  assert.equal(reg.status, 202, `register answered ${reg.status} ${JSON.stringify(reg.json)}`);
  return waitUntil(async () => {
    const op = await call('GET', `operations/${reg.json.operationId}`);
    return op.status === 200 && op.json.status !== 'assigning' ? op.json : null;
  }, 'the registration to finish');
}

before(async () => {
  rec = new Recorder(ARTIFACTS, () => page);
  env = await startEnv('provisioning');
  dpsConnStr = fs.readFileSync(path.join(env.dataDir, 'dps.connstr'), 'utf8').trim();
  idScope = fs.readFileSync(path.join(env.dataDir, 'idscope'), 'utf8').trim();
  svc = new Rest({ connStr: dpsConnStr, addr: env.addr, ca: env.ca });
  assert.equal(parseConnStr(dpsConnStr).SharedAccessKeyName, 'provisioningserviceowner');
  browser = await launch({ serverCertPath: env.serverCertPath });
  page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  if (browser) await browser.close();
  if (rec) await rec.cleanup(env);
});

test('sign in: the Provisioning page asks for the DPS connection string and refuses the hub\'s', async (t) => {
  await rec.step('sign-in', async () => {
    await page.goto(env.url);
    await page.fill('#connstr', env.connStr);
    await page.click('#main button[type=submit]');
    await page.locator('h1', { hasText: 'Devices' }).waitFor();
    await page.click('#nav-provisioning');
    await page.locator('#dps-connstr').waitFor();

    // iothubowner has no enrollment rights, as in Azure: refused with a reason.
    await page.fill('#dps-connstr', env.connStr);
    await page.click('#dps-signin button[type=submit]');
    const error = page.locator('#dps-signin .form-error');
    await error.filter({ hasText: 'refused' }).waitFor();
    assert.match(await error.textContent(), /provisioningserviceowner/);
    await rec.shot('sign-in-refused');

    await page.fill('#dps-connstr', dpsConnStr);
    await page.click('#dps-signin button[type=submit]');
    await page.locator('h1', { hasText: 'Provisioning' }).waitFor();
    assert.equal(await page.locator('#global-endpoint').textContent(), env.addr);
    assert.equal(await page.locator('#session-host').textContent(), `iothubowner@${env.addr}`);
    assert.equal(await page.locator('#session-dps').textContent(), `provisioningserviceowner@${env.addr}`);
    // Kept for this tab only, beside the hub's.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('iotdm.dpsConnectionString')), dpsConnStr);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('iotdm.connectionString')), env.connStr);

    // The DPS string alone, on the main sign-in page, opens the Provisioning page.
    await page.click('#sign-out');
    await page.locator('#connstr').waitFor();
    await page.fill('#connstr', dpsConnStr);
    await page.click('#main button[type=submit]');
    await page.locator('h1', { hasText: 'Provisioning' }).waitFor();
    assert.equal(await page.locator('#session-host').textContent(), '');
    await page.click('#nav-devices');
    await page.locator('h1', { hasText: 'Sign in to the hub' }).waitFor();
    await page.fill('#connstr', env.connStr);
    await page.click('#main button[type=submit]');
    await page.locator('h1', { hasText: 'Devices' }).waitFor();
    await page.click('#nav-provisioning');
    await page.locator('h1', { hasText: 'Provisioning' }).waitFor();
  });
});

test('the ID scope and the global endpoint come from the service (GET /iotdm/dps)', async (t) => {
  await rec.step('id-scope', async () => {
    await open('#/provisioning');
    await page.locator('code#id-scope').waitFor();
    assert.equal(await page.locator('code#id-scope').textContent(), idScope);
    assert.equal(await page.locator('#global-endpoint').textContent(), env.addr);
    await rec.shot('service');
  });
});

test('bad input gets a clear error and creates nothing', async (t) => {
  await rec.step('bad-input', async () => {
    await open('#/provisioning');
    await page.click('#new-enrollment');
    const err = page.locator('#new-enr-error');
    await page.fill('#new-enr-id', 'bad id!');
    await page.click('dialog button:has-text("Create enrollment")');
    await err.filter({ hasText: 'only letters, digits' }).waitFor();
    assert.equal(await page.getAttribute('#new-enr-id', 'aria-invalid'), 'true');
    await page.fill('#new-enr-id', 'web-bad-01');
    await page.fill('#new-enr-desired', '{"dm": {"timeInfo": }');
    await page.click('dialog button:has-text("Create enrollment")');
    await err.filter({ hasText: 'Desired properties is not valid JSON' }).waitFor();
    await rec.shot('bad-json');
    await page.fill('#new-enr-desired', '["not", "an object"]');
    await page.click('dialog button:has-text("Create enrollment")');
    await err.filter({ hasText: 'must be a JSON object' }).waitFor();
    await page.fill('#new-enr-desired', '');
    await page.check('#new-enr-att-x509');
    await page.fill('#new-enr-cert', '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----');
    await page.click('dialog button:has-text("Create enrollment")');
    await err.filter({ hasText: 'This is a private key' }).waitFor();
    await page.check('#new-enr-att-symmetricKey');
    await page.fill('#new-enr-pk', 'c2hvcnQ=');
    await page.click('dialog button:has-text("Create enrollment")');
    await err.filter({ hasText: '16 to 64 bytes' }).waitFor();
    await page.click('dialog button:has-text("Cancel")');
    assert.deepEqual(await allEnrollments(), []);
  });
});

test('create a symmetric-key enrollment with an initial twin: keys shown once, listed, stored', async (t) => {
  await rec.step('create-symmetric', async () => {
    await open('#/provisioning');
    await page.click('#new-enrollment');
    await page.fill('#new-enr-id', 'web-sym-01');
    await page.fill('#new-enr-device', 'web-device-01');
    await page.fill('#new-enr-tags', '{"site": "lab", "floor": 2}');
    await page.fill('#new-enr-desired', '{"dm": {"__t": "c", "timeInfo": {"timeZone": "Europe/Berlin"}}}');
    await page.click('dialog button:has-text("Create enrollment")');
    await page.locator('#created-primary').waitFor();
    const e = await getEnrollment('enrollments', 'web-sym-01');
    assert.equal(await page.locator('#created-primary').textContent(), e.attestation.symmetricKey.primaryKey);
    assert.equal(await page.locator('#created-secondary').textContent(), e.attestation.symmetricKey.secondaryKey);
    await rec.shot('created-keys');
    await page.click('dialog button:has-text("Done")');
    await page.locator('#enrollment-title', { hasText: 'web-sym-01' }).waitFor();
    assert.deepEqual(e.initialTwin, { tags: { site: 'lab', floor: 2 }, properties: { desired: { dm: { __t: 'c', timeInfo: { timeZone: 'Europe/Berlin' } } } } });
    assert.equal(e.deviceId, 'web-device-01');
    assert.equal(e.provisioningStatus, 'enabled');
    // The page hides the keys until asked.
    assert.doesNotMatch(await page.locator('#enr-key-primary').textContent(), /=/);
    await page.locator('#registration-none').waitFor();
    await rec.shot('enrollment');

    await page.click('a:has-text("Individual enrollments")');
    const row = page.locator('table[aria-label="Individual enrollments"] tr[data-registration-id="web-sym-01"]');
    await row.waitFor();
    assert.match(await row.textContent(), /web-device-01.*Symmetric key.*Enabled/);
    await rec.shot('enrollment-list');
  });
});

test('disable the enrollment and edit its initial twin; a bad twin saves nothing', async (t) => {
  await rec.step('disable', async () => {
    await open('#/provisioning');
    await page.click('table[aria-label="Individual enrollments"] a:has-text("web-sym-01")');
    await page.click('#toggle-provisioning');
    await page.click('dialog button:has-text("Disable")');
    await page.locator('#toggle-provisioning', { hasText: 'Enable' }).waitFor();
    let e = await getEnrollment('enrollments', 'web-sym-01');
    assert.equal(e.provisioningStatus, 'disabled');
    assert.equal(e.initialTwin.tags.site, 'lab', 'the rest of the enrollment is kept');

    const etag = e.etag;
    await page.fill('#initial-desired', '{"dm": ');
    await page.click('#save-initial-twin');
    await page.locator('#initial-error', { hasText: 'not valid JSON' }).waitFor();
    assert.equal((await getEnrollment('enrollments', 'web-sym-01')).etag, etag);

    await page.fill('#initial-desired', '{"dm": {"__t": "c", "timeInfo": {"timeZone": "UTC"}}}');
    await page.click('#save-initial-twin');
    await waitUntil(async () => (await getEnrollment('enrollments', 'web-sym-01')).etag !== etag, 'the initial twin to be saved');
    e = await getEnrollment('enrollments', 'web-sym-01');
    assert.equal(e.initialTwin.properties.desired.dm.timeInfo.timeZone, 'UTC');
    assert.equal(e.initialTwin.tags.floor, 2);
    assert.equal(e.provisioningStatus, 'disabled');
    await page.locator('#enrollment-title ~ .pill', { hasText: 'Disabled' }).waitFor();
    await rec.shot('disabled');
  });
});

test('a symmetric-key group: the derived key matches Node\'s crypto and a device registers with it', async (t) => {
  await rec.step('group', async () => {
    await open('#/provisioning/groups');
    await page.click('#new-group');
    await page.fill('#new-enr-id', 'web-group-01');
    await page.fill('#new-enr-tags', '{"fleet": "web"}');
    await page.click('dialog button:has-text("Create group")');
    await page.locator('#created-primary').waitFor();
    await page.click('dialog button:has-text("Done")');
    await page.locator('#enrollment-title', { hasText: 'web-group-01' }).waitFor();
    const g = await getEnrollment('enrollmentGroups', 'web-group-01');

    const regId = 'web-group-dev-01';
    await page.fill('#derive-regid', 'not valid!');
    await page.click('#derive-card button[type=submit]');
    await page.locator('#derive-error', { hasText: 'only letters' }).waitFor();
    await page.fill('#derive-regid', regId);
    await page.click('#derive-card button[type=submit]');
    await page.locator('#derived-primary').waitFor();
    const derive = (key) => crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(regId, 'utf8').digest('base64');
    const primary = await page.locator('#derived-primary').textContent();
    assert.equal(primary, derive(g.attestation.symmetricKey.primaryKey));
    assert.equal(await page.locator('#derived-secondary').textContent(), derive(g.attestation.symmetricKey.secondaryKey));
    await rec.shot('derived-key');

    // The key works: a device registers with it and gets the group's initial twin.
    const state = await registerWithKey(regId, primary);
    assert.equal(state.status, 'assigned');
    assert.equal(state.registrationState.deviceId, regId);
    const hub = new Rest({ connStr: env.connStr, addr: env.addr, ca: env.ca });
    assert.equal((await hub.twin(regId)).tags.fleet, 'web');

    await page.click('button:has-text("Refresh")');
    const row = page.locator(`table[aria-label="Registrations"] tr[data-registration-id="${regId}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /assigned/);
    await rec.shot('group-registrations');
  });
});

test('a registration record: shown, then deleted after confirmation', async (t) => {
  await rec.step('registration', async () => {
    const regId = 'web-group-dev-01';
    await open('#/provisioning/groups/web-group-01');
    await page.click(`table[aria-label="Registrations"] a:has-text("${regId}")`);
    await page.locator('#registration-title', { hasText: regId }).waitFor();
    const card = page.locator('#registration-card');
    await card.locator('.pill', { hasText: 'assigned' }).waitFor();
    assert.match(await card.textContent(), /initialAssignment/);
    assert.match(await card.textContent(), /web-group-01/);
    await rec.shot('registration');
    await page.click('#delete-registration');
    await page.click('dialog button:has-text("Delete record")');
    await page.locator('#registration-none').waitFor();
    await assert.rejects(svc.call('GET', `/registrations/${regId}`), /404/);
  });
});

test('an X.509 enrollment from a pasted PEM; disabling it keeps the certificate', async (t) => {
  await rec.step('x509', async () => {
    const dir = fs.mkdtempSync(path.join(env.root, 'x509-'));
    const { cert } = makeCert(dir, 'web-x509-01');
    const sha256 = new crypto.X509Certificate(cert).fingerprint256.replace(/:/g, '').toLowerCase();
    await open('#/provisioning');
    await page.click('#new-enrollment');
    await page.fill('#new-enr-id', 'web-x509-01');
    await page.check('#new-enr-att-x509');
    await page.fill('#new-enr-cert', cert);
    await page.click('dialog button:has-text("Create enrollment")');
    await page.locator('#enrollment-title', { hasText: 'web-x509-01' }).waitFor();
    assert.equal(await page.locator('.cert-subject').first().textContent(), 'CN=web-x509-01');
    assert.equal(await page.locator('.cert-sha256').first().textContent(), sha256);
    const e = await getEnrollment('enrollments', 'web-x509-01');
    assert.equal(e.attestation.type, 'x509');
    assert.equal(e.attestation.x509.clientCertificates.primary.info.sha256Thumbprint.toLowerCase(), sha256);
    await rec.shot('x509');

    // The service answers with the certificate's details only and keeps the stored certificate
    // when the enrollment comes back that way: disabling needs nothing more from the operator.
    await page.click('#toggle-provisioning');
    await page.click('dialog button:has-text("Disable")');
    await page.locator('#toggle-provisioning', { hasText: 'Enable' }).waitFor();
    assert.equal(await page.locator('dialog[open]').count(), 0);
    const d = await getEnrollment('enrollments', 'web-x509-01');
    assert.equal(d.provisioningStatus, 'disabled');
    assert.equal(d.attestation.x509.clientCertificates.primary.info.sha256Thumbprint.toLowerCase(), sha256);
  });
});

// A real TPM's public keys and the registration id its EK gives, as `limpet enrollment-info`
// printed them once for a swtpm (fixtures/tpm-ek.json): the hub checks that an enrolled EK is one.
const TPM = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'tpm-ek.json'), 'utf8'));

// base32(SHA-256(bytes)), lower case, unpadded: the registration id a TPM with this EK uses.
function tpmRegistrationId(ek) {
  const digest = crypto.createHash('sha256').update(ek).digest();
  let bits = '';
  for (const b of digest) bits += b.toString(2).padStart(8, '0');
  let regId = '';
  for (let i = 0; i < bits.length; i += 5) regId += 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)];
  return regId;
}

test('a TPM enrollment from `limpet enrollment-info` output; a mismatched id is refused', async (t) => {
  await rec.step('tpm', async () => {
    const regId = TPM.registrationId;
    assert.equal(tpmRegistrationId(Buffer.from(TPM.endorsementKey, 'base64')), regId);
    const info = `registrationId: ${regId}\nendorsementKey: ${TPM.endorsementKey}\nstorageRootKey: ${TPM.storageRootKey}\n`;

    await open('#/provisioning');
    await page.click('#new-enrollment');
    await page.fill('#new-enr-id', 'web-tpm-wrong');
    await page.check('#new-enr-att-tpm');
    await page.fill('#new-enr-ek', info);
    await page.click('dialog button:has-text("Create enrollment")');
    await page.locator('#new-enr-error', { hasText: `registers as ${regId}` }).waitFor();
    await page.fill('#new-enr-id', '');
    await page.fill('#new-enr-ek', info);
    await page.locator('#new-enr-ek').dispatchEvent('change');
    await waitUntil(async () => (await page.inputValue('#new-enr-id')) === regId, 'the registration id to be filled in from the EK');
    await page.click('dialog button:has-text("Create enrollment")');
    await page.locator('#enrollment-title', { hasText: regId }).waitFor();
    const e = await getEnrollment('enrollments', regId);
    assert.equal(e.attestation.type, 'tpm');
    assert.equal(e.attestation.tpm.endorsementKey, TPM.endorsementKey);
    assert.equal(e.attestation.tpm.storageRootKey, TPM.storageRootKey);
    await page.locator('.small.muted', { hasText: 'matches the one limpet derives' }).waitFor();
    await assert.rejects(getEnrollment('enrollments', 'web-tpm-wrong'), /404/);
  });
});

test('an endorsement key that is no TPM key is refused by the service with its reason', async (t) => {
  await rec.step('tpm-bad-ek', async () => {
    // Bytes of the right length, and the id they would give: the page's own check passes, the
    // service's does not.
    const ek = crypto.randomBytes(Buffer.from(TPM.endorsementKey, 'base64').length);
    const regId = tpmRegistrationId(ek);
    await open('#/provisioning');
    await page.click('#new-enrollment');
    await page.fill('#new-enr-id', regId);
    await page.check('#new-enr-att-tpm');
    await page.fill('#new-enr-ek', `registrationId: ${regId}\nendorsementKey: ${ek.toString('base64')}\n`);
    await page.click('dialog button:has-text("Create enrollment")');
    const refused = page.locator('#new-enr-error', { hasText: 'is not usable as the endorsement key' });
    await refused.waitFor();
    await refused.scrollIntoViewIfNeeded();
    await rec.shot('tpm-bad-ek');
    await page.click('dialog button:has-text("Cancel")');
    await assert.rejects(getEnrollment('enrollments', regId), /404/);
  });
});

test('delete an enrollment and a group, each after a confirmation', async (t) => {
  await rec.step('delete', async () => {
    await open('#/provisioning/enrollments/web-sym-01');
    await page.click('#delete-enrollment');
    await page.click('dialog button:has-text("Cancel")');
    await getEnrollment('enrollments', 'web-sym-01'); // still there
    await page.click('#delete-enrollment');
    await page.locator('dialog', { hasText: 'cannot be undone' }).waitFor();
    await rec.shot('delete-confirm');
    await page.click('dialog button:has-text("Delete enrollment")');
    await page.locator('table[aria-label="Individual enrollments"] tr[data-registration-id="web-x509-01"]').waitFor();
    assert.equal(await page.locator('tr[data-registration-id="web-sym-01"]').count(), 0);
    await assert.rejects(getEnrollment('enrollments', 'web-sym-01'), /404/);

    await open('#/provisioning/groups/web-group-01');
    await page.click('#delete-enrollment');
    await page.click('dialog button:has-text("Delete group")');
    await page.locator('table[aria-label="Enrollment groups"] td.empty', { hasText: 'No enrollment groups' }).waitFor();
    await assert.rejects(getEnrollment('enrollmentGroups', 'web-group-01'), /404/);
  });
});

test('narrow screens: the provisioning pages stay usable', async (t) => {
  await rec.step('mobile', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const hash of ['#/provisioning', '#/provisioning/enrollments/web-x509-01']) {
      await open(hash);
      await sleep(300);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${hash}: no horizontal scrolling of the page (${overflow}px too wide)`);
    }
    await rec.shot('mobile-enrollment');
    await page.setViewportSize({ width: 1360, height: 900 });
  });
});

test('no script errors on any page', () => {
  assert.deepEqual(pageErrors, []);
});
