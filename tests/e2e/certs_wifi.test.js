'use strict';
// certificates, wifi and telemetryLevel end to end: the official service SDK sets desired
// properties, the agent downloads over HTTPS (a local file server it is told to trust), configd on
// a sandbox root installs; effects are checked in the root and in the reported twin.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { DmTestbed, dm } = require('./lib/dm');

const bench = new DmTestbed(h);
let files;

before(async () => {
  await bench.start({ files: true });
  files = bench.files;
});
after(() => bench.stop());

function newDevice(id, opts = {}) {
  return bench.newDevice(id, { clock: null, ...opts });
}
const twin = (id) => bench.twin(id);
const setDesired = (id, patch) => bench.setDesired(id, patch);
const waitAck = (id, prop, version) => bench.waitAck(id, prop, version);
const invoke = (id, command, payload) => bench.invoke(id, command, payload);

// Files under a folder of the sandbox root (recursively), as paths relative to it.
function filesUnder(sim, rel) {
  const top = path.join(sim.root, rel);
  if (!fs.existsSync(top)) return [];
  return fs.readdirSync(top, { recursive: true }).filter((f) => fs.statSync(path.join(top, f)).isFile()).sort();
}

function runs(sim, program) {
  return sim.journal().filter((j) => j.event === 'run' && j.argv[0] === program);
}

function install(file) {
  return { state: 'installed', ...file };
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');
const CA_DIR = 'usr/local/share/ca-certificates/iotdm';

test('certificates: installed into their stores, reported as held, described by command, uninstalled', async () => {
  const sim = await newDevice('certs-ok');
  const root = h.selfSignedCert('iotdm e2e root');
  const pub = h.selfSignedCert('iotdm e2e publisher');
  const own = h.selfSignedCert('iotdm e2e device');
  const der = new crypto.X509Certificate(pub.cert).raw; // a DER file is as good as PEM
  let v = await setDesired('certs-ok', {
    certificates: {
      root: { [root.thumbprint.toLowerCase()]: install(files.put('root.pem', root.cert)) },
      trustedPublisher: { [pub.thumbprint]: install(files.put('pub.der', der)) },
      mySystem: { [own.thumbprint]: install(files.put('own.pem', own.cert)) },
    },
  });
  let ack = await waitAck('certs-ok', 'certificates', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.match(ack.value.root[root.thumbprint].subject, /CN=iotdm e2e root/);
  assert.ok(ack.value.root[root.thumbprint].notAfter, JSON.stringify(ack.value));
  assert.match(ack.value.trustedPublisher[pub.thumbprint].subject, /CN=iotdm e2e publisher/);
  assert.match(ack.value.mySystem[own.thumbprint].subject, /CN=iotdm e2e device/);
  assert.deepEqual(ack.value.ca, {});
  const lower = (c) => c.thumbprint.toLowerCase();
  assert.deepEqual(filesUnder(sim, CA_DIR), [`root/${lower(root)}.crt`]);
  assert.equal(fs.readFileSync(path.join(sim.root, CA_DIR, 'root', `${lower(root)}.crt`), 'utf8'), root.cert);
  assert.match(fs.readFileSync(path.join(sim.root, 'etc/iotdm/certs/trusted-publisher', `${lower(pub)}.pem`), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
  assert.ok(fs.existsSync(path.join(sim.root, 'etc/iotdm/certs/my-system', `${lower(own)}.pem`)));
  assert.equal(runs(sim, '/usr/sbin/update-ca-certificates').length, 1, 'the system trust is rebuilt once');

  const details = await invoke('certs-ok', 'getCertificateDetails', { store: 'root', thumbprint: lower(root) });
  assert.equal(details.status, 200, JSON.stringify(details));
  const x = new crypto.X509Certificate(root.cert);
  assert.equal(details.payload.sha1, root.thumbprint);
  assert.equal(details.payload.sha256, x.fingerprint256.replace(/:/g, ''));
  assert.match(details.payload.subject, /CN=iotdm e2e root/);
  assert.match(details.payload.issuer, /CN=iotdm e2e root/);
  assert.equal(Date.parse(details.payload.notAfter), Date.parse(x.validTo));
  assert.equal(Date.parse(details.payload.notBefore), Date.parse(x.validFrom));
  assert.equal((await invoke('certs-ok', 'getCertificateDetails', { store: 'ca', thumbprint: root.thumbprint })).status, 404);
  assert.equal((await invoke('certs-ok', 'getCertificateDetails', { store: 'root', thumbprint: '../../../etc/passwd' })).status, 400);
  assert.equal((await invoke('certs-ok', 'getCertificateDetails', { store: 'My', thumbprint: root.thumbprint })).status, 400);

  // Uninstall one; a store dropped from desired is left alone (not named: not touched).
  v = await setDesired('certs-ok', { certificates: { trustedPublisher: null, root: { [lower(root)]: { state: 'uninstalled' } } } });
  ack = await waitAck('certs-ok', 'certificates', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.deepEqual(ack.value.root, {}, 'the removed certificate vanished from the reported twin');
  assert.ok(ack.value.trustedPublisher[pub.thumbprint], 'certificates not named are left alone');
  assert.deepEqual(filesUnder(sim, CA_DIR), []);
  assert.ok(fs.existsSync(path.join(sim.root, 'etc/iotdm/certs/trusted-publisher', `${lower(pub)}.pem`)));
  assert.equal(runs(sim, '/usr/sbin/update-ca-certificates').length, 2);
  assert.equal((await invoke('certs-ok', 'getCertificateDetails', { store: 'root', thumbprint: root.thumbprint })).status, 404);
});

test('certificates: each bad item is refused next to it and leaves nothing; good items still install', async () => {
  const sim = await newDevice('certs-bad');
  const good = h.selfSignedCert('iotdm e2e good');
  const other = h.selfSignedCert('iotdm e2e other');
  const keyOnly = h.selfSignedCert('iotdm e2e key');
  const text = files.put('notes.txt', 'not a certificate\n');
  const big = files.put('big.pem', '#'.repeat(70 * 1024));
  const T = (c) => c.thumbprint;
  const rnd = () => crypto.randomBytes(20).toString('hex').toUpperCase();
  const bad = {
    wrongHash: rnd(),
    unreachable: rnd(),
    oversize: rnd(),
    notCert: rnd(),
    privateKey: T(keyOnly),
    mismatch: rnd(),
  };
  const v = await setDesired('certs-bad', {
    certificates: {
      ca: {
        [T(good)]: install(files.put('good.pem', good.cert)),
        [bad.wrongHash]: { state: 'installed', url: files.put('other1.pem', other.cert).url, sha256: sha256('something else') },
        [bad.unreachable]: { state: 'installed', url: `https://${h.addr}:1/gone.pem`, sha256: sha256('x') },
        [bad.oversize]: install(big),
        '/etc/passwd': install(files.put('other2.pem', other.cert)),
      },
      trustedPeople: {
        [bad.notCert]: install(text),
        [bad.privateKey]: install(files.put('key.pem', keyOnly.key)),
        [bad.mismatch]: install(files.put('other3.pem', other.cert)),
      },
      bogusStore: { [T(other)]: install(files.put('other4.pem', other.cert)) },
    },
  });
  const ack = await waitAck('certs-bad', 'certificates', v);
  assert.equal(ack.ac, 400, JSON.stringify(ack));
  assert.match(ack.ad, /8 items failed/);
  const val = ack.value;
  const err = (store, key, re) => {
    const e = val[store] && val[store][key];
    assert.ok(e, `no entry for ${store}/${key}: ${JSON.stringify(val)}`);
    assert.equal(e.errorCode, 400, JSON.stringify(e));
    assert.match(e.errorMessage, re);
  };
  err('ca', bad.wrongHash, /SHA-256 mismatch/);
  err('ca', bad.unreachable, /cannot download/);
  err('ca', bad.oversize, /larger than/);
  err('ca', '/etc/passwd', /not a SHA-1 thumbprint/);
  err('trustedPeople', bad.notCert, /not a certificate/);
  err('trustedPeople', bad.privateKey, /private key/);
  err('trustedPeople', bad.mismatch, new RegExp(`thumbprint is ${T(other)}`));
  assert.equal(val.bogusStore.errorCode, 400);
  assert.match(val.bogusStore.errorMessage, /unknown store/);
  assert.match(val.ca[T(good)].subject, /CN=iotdm e2e good/, 'the good item was installed');
  assert.deepEqual(filesUnder(sim, CA_DIR), [`ca/${T(good).toLowerCase()}.crt`], 'nothing half-installed');
  assert.deepEqual(filesUnder(sim, 'etc/iotdm'), []);
  assert.ok(!fs.existsSync(path.join(sim.root, 'etc/passwd')));

  // Dropping the bad items: the errors vanish from the twin, the good one stays.
  const clear = { bogusStore: null, trustedPeople: null, ca: {} };
  for (const k of [bad.wrongHash, bad.unreachable, bad.oversize, '/etc/passwd']) clear.ca[k] = null;
  const v2 = await setDesired('certs-bad', { certificates: clear });
  const ack2 = await waitAck('certs-bad', 'certificates', v2);
  assert.equal(ack2.ac, 200, JSON.stringify(ack2));
  const reported = dm(await twin('certs-bad')).certificates.value;
  assert.deepEqual(Object.keys(reported.ca), [T(good)]);
  assert.equal(reported.bogusStore, undefined);
  assert.deepEqual(reported.trustedPeople, {});
});

// The agent downloads on its worker, not in the desired-property callback: while a download hangs,
// the hub connection is still served. With a 5 s keep-alive the hub drops a device silent for
// 7.5 s; the download is held for longer than that with nothing else to say (only keep-alives
// keep the connection), then a method must still be answered at once.
test('certificates: a stalled download neither stops keep-alives nor methods; 202, then the outcome', async () => {
  const id = 'certs-slow';
  const ev = await h.events({ deviceId: id });
  await newDevice(id, { extraAgentArgs: ['--keepalive', '5'] });
  const cert = h.selfSignedCert('iotdm e2e slow');
  const v = await setDesired(id, { certificates: { root: { [cert.thumbprint]: install(files.stall('slow.pem', cert.cert)) } } });
  await files.requested('slow.pem');
  await h.sleep(11000);
  const dropped = ev.events.filter((e) => e.event === 'connection' && e.data.connectionState === 'Disconnected');
  assert.deepEqual(dropped, [], 'the hub dropped the device during the download');
  const t = Date.now();
  const r = await invoke(id, 'getCertificateDetails', { store: 'root', thumbprint: cert.thumbprint }, 5);
  assert.equal(r.status, 404, JSON.stringify(r)); // answered: not installed yet
  assert.ok(Date.now() - t < 3000, `the method took ${Date.now() - t} ms`);
  const pending = dm(await twin(id)).certificates;
  assert.equal(pending.av, v, JSON.stringify(pending));
  assert.equal(pending.ac, 202, 'acknowledged 202 while the download hangs');
  assert.equal(pending.value, 'applying');
  files.release('slow.pem');
  const ack = await waitAck(id, 'certificates', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.match(ack.value.root[cert.thumbprint].subject, /CN=iotdm e2e slow/);
  ev.close();
});

const PSK = 'correct horse battery staple';
function keyfile(id, ssid, extra = '') {
  return `[connection]\nid=${id}\nuuid=${crypto.randomUUID()}\ntype=wifi\n${extra}\n[wifi]\nmode=infrastructure\nssid=${ssid}\n\n` +
    `[wifi-security]\nkey-mgmt=wpa-psk\npsk=${PSK}\n\n[ipv4]\nmethod=auto\n`;
}
const NM_DIR = 'etc/NetworkManager/system-connections';

test('wifi: profiles installed and removed by difference, reported and described without secrets', async () => {
  const sim = await newDevice('wifi-ok');
  const reloads = () => runs(sim, '/usr/bin/nmcli').filter((j) => j.argv.join(' ') === '/usr/bin/nmcli connection reload').length;
  const home = keyfile('home', 'Home Network', 'autoconnect=false');
  let v = await setDesired('wifi-ok', { wifi: { home: install(files.put('home.nmconnection', home)) } });
  let ack = await waitAck('wifi-ok', 'wifi', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.deepEqual(ack.value, { home: { ssid: 'Home Network', security: 'wpa-psk' } });
  const homePath = path.join(sim.root, NM_DIR, 'home.nmconnection');
  assert.equal(fs.readFileSync(homePath, 'utf8'), home);
  assert.equal(fs.statSync(homePath).mode & 0o777, 0o600);
  assert.equal(reloads(), 1);
  assert.ok(!JSON.stringify(await twin('wifi-ok')).includes('horse'), 'the passphrase is never in the twin');

  const d = await invoke('wifi-ok', 'getWifiDetails', { profile: 'home' });
  assert.equal(d.status, 200, JSON.stringify(d));
  assert.deepEqual(d.payload, { ssid: 'Home Network', security: 'wpa-psk', autoconnect: false });
  assert.equal((await invoke('wifi-ok', 'getWifiDetails', { profile: '../../etc/shadow' })).status, 400);
  assert.equal((await invoke('wifi-ok', 'getWifiDetails', { profile: 'nope' })).status, 404);

  // Adding a profile writes only that one: home is not rewritten.
  const mtime = fs.statSync(homePath).mtimeMs;
  v = await setDesired('wifi-ok', { wifi: { office: install(files.put('office.nmconnection', keyfile('office', 'Office'))) } });
  ack = await waitAck('wifi-ok', 'wifi', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.deepEqual(Object.keys(ack.value).sort(), ['home', 'office']);
  assert.equal(reloads(), 2);
  assert.equal(fs.statSync(homePath).mtimeMs, mtime);

  // Changed content (a new SHA-256) is written again; uninstalled removes.
  const home2 = keyfile('home', 'Home Network 5G');
  v = await setDesired('wifi-ok', { wifi: { home: install(files.put('home2.nmconnection', home2)), office: { state: 'uninstalled' } } });
  ack = await waitAck('wifi-ok', 'wifi', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.deepEqual(ack.value, { home: { ssid: 'Home Network 5G', security: 'wpa-psk' } });
  assert.equal(fs.readFileSync(homePath, 'utf8'), home2);
  assert.ok(!fs.existsSync(path.join(sim.root, NM_DIR, 'office.nmconnection')));
  assert.equal(reloads(), 4);
  const reported = dm(await twin('wifi-ok')).wifi.value;
  assert.deepEqual(Object.keys(reported), ['home'], 'the removed profile vanished from the twin');
});

test('wifi: bad profiles are refused next to the item and leave nothing', async () => {
  const sim = await newDevice('wifi-bad');
  const wired = '[connection]\nid=wired\ntype=ethernet\n\n[ethernet]\n';
  const v = await setDesired('wifi-bad', {
    wifi: {
      'a/b': install(files.put('ab.nmconnection', keyfile('a/b', 'x'))),
      '/etc/shadow': install(files.put('t.nmconnection', keyfile('t', 'x'))),
      wrongHash: { state: 'installed', url: files.put('w.nmconnection', keyfile('wrongHash', 'x')).url, sha256: sha256('y') },
      oversize: install(files.put('big.nmconnection', keyfile('oversize', 'x') + '#'.repeat(70 * 1024))),
      wired: install(files.put('wired.nmconnection', wired)),
      cafe: install(files.put('cafe.nmconnection', keyfile('home', 'Cafe'))),
      xml: install(files.put('xml.xml', '<WLANProfile><name>xml</name></WLANProfile>\n')),
      nourl: { state: 'installed' },
    },
  });
  const ack = await waitAck('wifi-bad', 'wifi', v);
  assert.equal(ack.ac, 400, JSON.stringify(ack));
  const err = (name, re) => {
    const e = ack.value[name];
    assert.ok(e, `no entry for ${name}: ${JSON.stringify(ack.value)}`);
    assert.equal(e.errorCode, 400, JSON.stringify(e));
    assert.match(e.errorMessage, re);
  };
  err('a/b', /not a profile name/);
  err('/etc/shadow', /not a profile name/);
  err('wrongHash', /SHA-256 mismatch/);
  err('oversize', /larger than/);
  err('wired', /not a Wi-Fi connection/);
  err('cafe', /id is "home", not "cafe"/);
  err('xml', /not a NetworkManager keyfile/);
  err('nourl', /url and sha256 are required/);
  assert.deepEqual(filesUnder(sim, NM_DIR), []);
  assert.deepEqual(filesUnder(sim, 'etc').filter((f) => /shadow|a\/b/.test(f)), []);
  assert.equal(runs(sim, '/usr/bin/nmcli').length, 0);
});

test('telemetryLevel: the policy file is written, interested services told, bad levels refused', async () => {
  const sim = await newDevice('telemetry', { configdConf: ['telemetry_notify_unit = diag-uploader.service'] });
  let v = await setDesired('telemetry', { telemetryLevel: { level: 'basic' } });
  let ack = await waitAck('telemetry', 'telemetryLevel', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.deepEqual(ack.value, { level: 'basic' });
  const file = path.join(sim.root, 'etc/iotdm/telemetry-level');
  assert.equal(fs.readFileSync(file, 'utf8'), 'basic\n1\n');
  const told = runs(sim, '/usr/bin/systemctl').map((j) => j.argv.slice(1).join(' '));
  assert.deepEqual(told, ['try-reload-or-restart diag-uploader.service']);

  v = await setDesired('telemetry', { telemetryLevel: { level: 'everything' } });
  ack = await waitAck('telemetry', 'telemetryLevel', v);
  assert.equal(ack.ac, 400, JSON.stringify(ack));
  assert.match(ack.ad, /security, basic, enhanced or full/);
  assert.deepEqual(ack.value, { level: 'basic' }, 'the level the device still has');
  assert.equal(fs.readFileSync(file, 'utf8'), 'basic\n1\n');

  v = await setDesired('telemetry', { telemetryLevel: { level: 'full' } });
  ack = await waitAck('telemetry', 'telemetryLevel', v);
  assert.equal(ack.ac, 200, JSON.stringify(ack));
  assert.equal(fs.readFileSync(file, 'utf8'), 'full\n3\n');
  assert.equal(runs(sim, '/usr/bin/systemctl').length, 2);
});
