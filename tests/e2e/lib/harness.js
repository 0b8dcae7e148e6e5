'use strict';
// The e2e harness. Require it FIRST in every test file: in the process that
// `node --test` starts it re-runs the file in a child process that trusts the
// hub's CA (see bootstrap.js) and never returns; in that child it exports the
// helpers below.

require('./bootstrap').ensureChild();

const fs = require('node:fs');
const path = require('node:path');
const https = require('node:https');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');

const { Registry, Client: ServiceClient, SharedAccessSignature: ServiceSas } = require('azure-iothub');
const { Client: DeviceClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { NoRetry } = require('azure-iot-common');

const { sleep } = require('./hub');
const { makeHub } = require('./cluster');
const { openEventStream } = require('./sse');
const raw = require('./mqtt_raw');

const addr = process.env.IOTDM_E2E_ADDR;
const root = process.env.IOTDM_E2E_ROOT;
const dataDir = path.join(root, 'data');
const host = addr; // the hub's HostName is its IP address
const caPath = path.join(dataDir, 'ca.pem');
const ca = fs.readFileSync(caPath, 'utf8');

const hub = makeHub({
  bin: process.env.IOTDM_E2E_HUB_BIN, dataDir, addr, logPath: path.join(root, 'hub.log'),
});

// Kill the hub whatever happens; leave if the launching process dies.
process.on('exit', () => hub.killSync());
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { hub.killSync(); process.exit(1); });
}
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) { hub.killSync(); process.exit(1); }
}, 1000).unref();

const tracked = new Set(); // things with close()/end() to release before stopping the hub

// ---------------------------------------------------------------- utilities

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([Promise.resolve(promise), t]).finally(() => clearTimeout(timer));
}

// Polls fn until it returns a truthy value (returned). Errors thrown by fn are
// remembered and reported on timeout.
async function waitUntil(fn, { timeoutMs = 5000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (lastErr ? `; last error: ${lastErr.message}` : `; last value: ${JSON.stringify(last)}`));
    }
    await sleep(intervalMs);
  }
}

// Awaits a promise that must reject; returns the error.
async function rejects(promise, ms, what) {
  let res;
  try {
    res = await withTimeout(promise, ms, what);
  } catch (e) {
    if (/^timed out after/.test(e.message)) throw e;
    return e;
  }
  throw new Error(`${what}: expected a failure, but it succeeded with ${safeJson(res)}`);
}

function safeJson(v) {
  try {
    return JSON.stringify(v, (k, x) => (k === 'httpResponse' || k === 'message' || k === '_registry' ? undefined : x)).slice(0, 500);
  } catch (_) {
    return String(v);
  }
}

function uid(prefix = 'd') {
  return `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
}

function nowSec() {
  return Math.floor(Date.now() / 1000);
}

// ---------------------------------------------------------------- hub & service

let ownerConnStr = null;
let owner = null; // {HostName, SharedAccessKeyName, SharedAccessKey}

function parseConnStr(s) {
  const out = {};
  for (const part of s.trim().split(';')) {
    if (!part) continue;
    const i = part.indexOf('=');
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

function readOwner() {
  const text = fs.readFileSync(path.join(dataDir, 'owner.connstr'), 'utf8').trim();
  if (text.includes('\n')) throw new Error('owner.connstr has more than one line');
  ownerConnStr = text;
  owner = parseConnStr(text);
  if (owner.HostName !== host) {
    throw new Error(`owner.connstr HostName is ${owner.HostName}, expected ${host}`);
  }
  if (owner.SharedAccessKeyName !== 'iothubowner' || !owner.SharedAccessKey) {
    throw new Error(`owner.connstr is not an iothubowner connection string: ${text}`);
  }
  return ownerConnStr;
}

// Starts the hub. opts (each reset to the default when not given, so a plain startHub() after a
// special one starts the usual hub): extraArgs (hub options), wrapper (a command the hub runs
// under, see Hub), env (added to its environment), dataDir (another data directory, e.g. one a
// wrapper prepares; owner.connstr is still read from the file's own data directory).
async function startHub(opts = {}) {
  hub.extraArgs = opts.extraArgs || [];
  hub.wrapper = opts.wrapper || [];
  hub.env = opts.env || {};
  hub.dataDir = opts.dataDir || dataDir;
  await hub.start(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {});
  readOwner();
  return hub;
}

// Close every tracked client, then stop the hub with SIGTERM and require exit 0.
// Use as the file's after() hook. The SDKs may leave retry timers behind (the
// device SDK retries a refused reconnect for minutes), so once this has run the
// process is made to exit within a few seconds even if handles remain.
async function stopAll() {
  try {
    await stopAllInner();
  } finally {
    setTimeout(() => {
      process.stderr.write(`e2e: handles still open 5 s after the tests; forcing exit (code ${process.exitCode})\n`);
      process.exit();
    }, 5000).unref();
  }
}

async function stopAllInner() {
  await closeTracked();
  if (hub.unexpectedExit) {
    throw new Error(`the hub died during the tests: ${JSON.stringify(hub.unexpectedExit)}`);
  }
  if (!hub.running) return;
  const r = await hub.stop();
  if (r.code !== 0) {
    throw new Error(`hub exited with ${JSON.stringify(r)} on SIGTERM, expected exit code 0`);
  }
}

async function closeTracked() {
  const items = [...tracked];
  tracked.clear();
  await Promise.all(items.map((c) => withTimeout(Promise.resolve().then(() => c()), 5000, 'closing a client')
    .catch(() => {})));
}

function track(closeFn) {
  tracked.add(closeFn);
  return () => tracked.delete(closeFn);
}

function registry() {
  return Registry.fromConnectionString(ownerConnStr);
}

// Whether the registry has the device (through the official service SDK).
async function deviceExists(id) {
  try {
    await registry().get(id);
    return true;
  } catch (e) {
    if (e.constructor.name === 'DeviceNotFoundError' || /not ?found/i.test(e.message)) return false;
    throw e;
  }
}

function serviceClient() {
  return ServiceClient.fromConnectionString(ownerConnStr);
}

function serviceAuth(policy = owner.SharedAccessKeyName, key = owner.SharedAccessKey) {
  return ServiceSas.create(host, policy, key, nowSec() + 3600).toString();
}

// Raw HTTPS call to the hub's service API. Resolves {status, headers, text, json}.
// target: another address to send it to (a node of a cluster, lib/cluster.js), with the hub's
// own name in the token all the same.
function rest(method, p, { body, headers = {}, auth, timeoutMs = 15000, target = addr } = {}) {
  return new Promise((resolve, reject) => {
    const hdrs = { Authorization: auth === undefined ? serviceAuth() : auth, ...headers };
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      hdrs['Content-Type'] = hdrs['Content-Type'] || 'application/json; charset=utf-8';
      hdrs['Content-Length'] = Buffer.byteLength(payload);
    }
    if (hdrs.Authorization === null) delete hdrs.Authorization;
    const req = https.request({ host: target, port: 443, method, path: p, headers: hdrs, ca, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json;
        if (text.length) {
          try { json = JSON.parse(text); } catch (_) { json = undefined; }
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${p}: no response within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

const API = 'api-version=2021-04-12';

// Enqueue a cloud-to-device message through the iotdm extension.
function sendC2D(deviceId, msg) {
  return rest('POST', `/iotdm/devices/${encodeURIComponent(deviceId)}/messages?${API}`, { body: msg });
}

function events(opts = {}) {
  return openEventStream({ host: addr, ca, auth: serviceAuth(), ...opts }).then((s) => {
    track(() => s.close());
    return s;
  });
}

// Code of a legacy Azure error body {"Message":"ErrorCode:X;text",...}.
function errorCode(text) {
  try {
    const j = JSON.parse(text);
    if (typeof j.Message === 'string') {
      const m = /^ErrorCode:([^;]*);/.exec(j.Message);
      if (m) return m[1];
    }
  } catch (_) { /* not JSON */ }
  return undefined;
}

// ---------------------------------------------------------------- devices

async function createDevice(reg, deviceId, extra = {}) {
  const { responseBody } = await withTimeout(reg.create({ deviceId, ...extra }), 10000, `create device ${deviceId}`);
  return responseBody;
}

function deviceConnStr(device, which = 'primaryKey') {
  return `HostName=${host};DeviceId=${device.deviceId};SharedAccessKey=${device.authentication.symmetricKey[which]}`;
}

// A device client (MQTT) that trusts the hub CA and is closed at the end.
function makeDeviceClient(connStrOrClient, { x509, noRetry = false } = {}) {
  const client = typeof connStrOrClient === 'string'
    ? DeviceClient.fromConnectionString(connStrOrClient, Mqtt) : connStrOrClient;
  client.e2eErrors = [];
  client.e2eDisconnects = [];
  client.on('error', (e) => client.e2eErrors.push(e));
  client.on('disconnect', (e) => client.e2eDisconnects.push(e));
  if (noRetry) client.setRetryPolicy(new NoRetry());
  client.e2eOptions = { ca, ...(x509 || {}) };
  track(() => client.close());
  return client;
}

async function openDevice(connStrOrClient, opts = {}) {
  const client = makeDeviceClient(connStrOrClient, opts);
  await withTimeout(client.setOptions(client.e2eOptions), 5000, 'device setOptions');
  await withTimeout(client.open(), opts.timeoutMs || 20000, 'device client open');
  return client;
}

// Round trip on the device's MQTT connection (a twin GET): once it returns,
// every SUBSCRIBE the SDK wrote before it has been processed by the hub.
async function barrier(client) {
  return withTimeout(client.getTwin(), 10000, 'twin GET round trip (barrier)');
}

function reportedUpdate(twin, patch, ms = 10000) {
  return withTimeout(new Promise((resolve, reject) => {
    twin.properties.reported.update(patch, (err) => (err ? reject(err) : resolve()));
  }), ms, `reported update ${JSON.stringify(patch).slice(0, 100)}`);
}

function updateSas(client, sas, ms = 20000) {
  return withTimeout(new Promise((resolve, reject) => {
    client.updateSharedAccessSignature(sas, (err, res) => (err ? reject(err) : resolve(res)));
  }), ms, 'updateSharedAccessSignature');
}

// Self-signed certificate via the openssl CLI. Returns {cert, key, thumbprint (SHA-1 hex upper)}.
function selfSignedCert(cn) {
  const dir = fs.mkdtempSync(path.join(root, 'cert-'));
  const keyPath = path.join(dir, 'key.pem');
  const certPath = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${cn}`], { stdio: 'pipe' });
  const cert = fs.readFileSync(certPath, 'utf8');
  const key = fs.readFileSync(keyPath, 'utf8');
  const thumbprint = new crypto.X509Certificate(cert).fingerprint.replace(/:/g, '').toUpperCase();
  return { cert, key, thumbprint };
}

// Raw mqtt.js client, tracked.
async function rawConnect(opts) {
  const c = await raw.connect({ addr, host, ca, ...opts });
  track(() => c.end());
  return c;
}

async function rawTls() {
  const s = await raw.RawTls.connect(addr, ca);
  track(() => s.destroy());
  return s;
}

module.exports = {
  deviceExists,
  addr, host, root, dataDir, ca, caPath, hub, API,
  startHub, stopAll, closeTracked, track, readOwner,
  get ownerConnStr() { return ownerConnStr; },
  get owner() { return owner; },
  registry, serviceClient, serviceAuth, rest, sendC2D, events, errorCode,
  createDevice, deviceConnStr, makeDeviceClient, openDevice, barrier, reportedUpdate, updateSas,
  selfSignedCert, rawConnect, rawTls, raw,
  withTimeout, waitUntil, rejects, sleep, uid, nowSec, safeJson,
  Message, DeviceClient, Mqtt,
};
