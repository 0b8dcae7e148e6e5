'use strict';
// What tests/e2e/abuse.test.js runs besides the attacks themselves: the legitimate device that
// must keep being served during each attack, the bookkeeping of one attack (its connections, an
// RSS watch that stops it early), and file-upload calls made as a device makes them.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const https = require('node:https');

const h = require('./harness');
const A = require('./attack');

// Each of the legitimate device's operations must complete within this during an attack.
const LEGIT_MAX_MS = 5000;
// An attack stops once the hub has grown by this much: the test has failed, spare the machine.
const ABORT_GROWTH_MB = 400;

// ---------------------------------------------------------------- the legitimate device

class Legit {
  static async open(tag) {
    const self = new Legit();
    self.reg = h.registry();
    self.svc = h.serviceClient();
    self.id = h.uid(`legit-${tag}`);
    self.dev = await h.createDevice(self.reg, self.id);
    self.client = await h.openDevice(h.deviceConnStr(self.dev));
    self.client.onDeviceMethod('ping', (req, res) => res.send(200, { echo: req.payload }, () => {}));
    self.twin = await h.withTimeout(self.client.getTwin(), 10000, 'the legitimate device\'s twin');
    self.desiredSeen = new Map();
    self.waiters = [];
    self.twin.on('properties.desired', (d) => {
      if (d && d.abuse && typeof d.abuse.n === 'number') {
        self.desiredSeen.set(d.abuse.n, Date.now());
        for (const w of self.waiters.slice()) w();
      }
    });
    await h.barrier(self.client);
    self.n = 0;
    await self.check('start-up'); // also opens the service SDK's keep-alive connections
    return self;
  }

  waitDesired(n, ms) {
    return h.withTimeout(new Promise((resolve) => {
      const w = () => {
        if (this.desiredSeen.has(n)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          resolve();
        }
      };
      this.waiters.push(w);
      w();
    }), ms, `desired update ${n} to reach the legitimate device`);
  }

  async method(what) {
    const n = ++this.n;
    const t0 = Date.now();
    const r = await h.withTimeout(this.svc.invokeDeviceMethod(this.id,
      { methodName: 'ping', payload: { n }, responseTimeoutInSeconds: 15 }), 20000, `the legitimate method call (${what})`);
    assert.equal(r.result.status, 200, `method status (${what})`);
    assert.deepEqual(r.result.payload, { echo: { n } }, `method payload (${what})`);
    return Date.now() - t0;
  }

  // Method round trip, a desired update reaching the device, a reported patch acknowledged:
  // each within maxMs. Returns the three durations.
  async check(what, { maxMs = LEGIT_MAX_MS } = {}) {
    assert.ok(h.hub.running, `the hub is still running (${what})`);
    const methodMs = await this.method(what);
    const n = ++this.n;
    const t1 = Date.now();
    const seen = this.waitDesired(n, 20000);
    await h.withTimeout(this.reg.updateTwin(this.id, { properties: { desired: { abuse: { n } } } }, '*'),
      20000, `the legitimate desired update (${what})`);
    await seen;
    const desiredMs = Date.now() - t1;
    const t2 = Date.now();
    await h.reportedUpdate(this.twin, { abuse: { n } }, 20000);
    const reportedMs = Date.now() - t2;
    const fig = { methodMs, desiredMs, reportedMs };
    for (const [k, v] of Object.entries(fig)) {
      assert.ok(v <= maxMs, `the legitimate device during ${what}: ${k} = ${v} ms (at most ${maxMs})`);
    }
    return fig;
  }
}

// ---------------------------------------------------------------- attack bookkeeping

// One attack: a deadline, the hostile connections (destroyed at the end), an RSS watch that
// stops the attack early when the hub grows past ABORT_GROWTH_MB.
class Attack {
  constructor(ms) {
    this.deadline = Date.now() + ms;
    this.halted = false;
    this.peers = [];
    this.failures = [];
    this.rss = new A.RssWatch(h.hub.pid, { abortGrowthMb: ABORT_GROWTH_MB, onAbort: () => this.halt() }).start();
  }

  get stopped() {
    return this.halted || Date.now() > this.deadline || !h.hub.running;
  }

  halt() {
    this.halted = true;
  }

  track(p) {
    this.peers.push(p);
    return p;
  }

  // Stops the attack and closes every connection; returns the RSS watch (stopped).
  end() {
    this.halted = true;
    for (const p of this.peers) p.destroy();
    return this.rss.stop();
  }
}

// Runs fn (the attack) and, after delayMs, the legitimate device's check; ends the attack when
// either fails or both are done. Returns the check's figures.
async function withLegitCheck(legit, atk, what, attackPromise, delayMs = 1500) {
  try {
    await h.sleep(delayMs);
    const fig = await legit.check(what);
    await attackPromise;
    return fig;
  } finally {
    atk.halt();
    await attackPromise.catch(() => {});
  }
}

function fmt(fig) {
  return Object.entries(fig).map(([k, v]) => `${k}=${v}`).join(' ');
}

// ---------------------------------------------------------------- uploads (as a device makes them)

// A device SAS as the device SDKs build it: sr = urlenc(host/devices/id), no skn.
function deviceAuth(dev, expiry = h.nowSec() + 3600) {
  const sr = encodeURIComponent(`${h.host}/devices/${dev.deviceId}`);
  const sig = crypto.createHmac('sha256', Buffer.from(dev.authentication.symmetricKey.primaryKey, 'base64'))
    .update(`${sr}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiry}`;
}

// Raw HTTPS on a fresh connection: {status, headers, body (Buffer)}.
function bytes(method, p, { body, headers = {}, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: h.addr, port: 443, method, path: p, headers, ca: h.ca, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${p.slice(0, 80)}: no response within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

async function sasUri(dev, blobName) {
  return h.rest('POST', `/devices/${encodeURIComponent(dev.deviceId)}/files?${h.API}`,
    { body: { blobName }, auth: deviceAuth(dev) });
}

function blobPath(info) {
  return `/${info.containerName}/${info.blobName.split('/').map(encodeURIComponent).join('/')}${info.sasToken}`;
}

function putBlob(info, data, { query = '', headers = { 'x-ms-blob-type': 'BlockBlob' } } = {}) {
  return bytes('PUT', blobPath(info) + query, { body: data, headers: { 'Content-Length': data.length, ...headers } });
}

function notify(dev, info, isSuccess = true) {
  return h.rest('POST', `/devices/${encodeURIComponent(dev.deviceId)}/files/notifications?${h.API}`,
    { body: { correlationId: info.correlationId, isSuccess, statusCode: isSuccess ? 200 : 500, statusDescription: 'abuse test' }, auth: deviceAuth(dev) });
}

// A whole upload: SAS URI, Put Blob, notification. Returns the first status that is not a success.
async function upload(dev, name, size) {
  const s = await sasUri(dev, name);
  if (s.status !== 200) return { step: 'sas', status: s.status, res: s };
  const p = await putBlob(s.json, crypto.randomBytes(size));
  if (p.status !== 201) return { step: 'put', status: p.status, res: p, info: s.json };
  const n = await notify(dev, s.json);
  if (n.status !== 204) return { step: 'notify', status: n.status, res: n };
  return { step: 'done', status: 201, info: s.json };
}

function errorCodeOf(res) {
  if (res.status < 300) return '';
  const hd = res.headers || {};
  const text = Buffer.isBuffer(res.body) ? res.body.toString('utf8') : (res.text || '');
  return hd['iothub-errorcode'] || hd['x-ms-error-code'] || h.errorCode(text) ||
    (/<Code>([^<]+)<\/Code>/.exec(text) || [])[1] || text.slice(0, 200);
}

async function filesOf(deviceId) {
  const r = await h.rest('GET', `/iotdm/files?deviceId=${encodeURIComponent(deviceId)}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

module.exports = {
  LEGIT_MAX_MS, ABORT_GROWTH_MB, Legit, Attack, withLegitCheck, fmt,
  deviceAuth, bytes, sasUri, blobPath, putBlob, notify, upload, errorCodeOf, filesOf,
};
