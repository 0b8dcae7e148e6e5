'use strict';
// Raw device-side MQTT for negative tests: mqtt.js clients with hand-picked
// credentials and topics, and a bare TLS socket with a tiny hand-written MQTT
// 3.1.1 encoder for malformed packets.

const tls = require('node:tls');
const crypto = require('node:crypto');
const mqtt = require('mqtt');
const { SharedAccessSignature: DeviceSas } = require('azure-iot-device');

const API = 'api-version=2021-04-12';

function deviceUsername(host, deviceId) {
  return `${host}/${deviceId}/?${API}`;
}

// Device SAS token exactly as azure-iot-device makes it.
function deviceSas(host, deviceId, key, expiry) {
  const se = expiry || Math.floor(Date.now() / 1000) + 3600;
  return DeviceSas.create(host, deviceId, key, se).toString();
}

function randomKey() {
  return crypto.randomBytes(32).toString('base64');
}

// Wraps an mqtt.js client: records close, messages, errors.
class RawClient {
  constructor(client, what) {
    this.client = client;
    this.what = what;
    this.closed = false;
    this.closedAt = null;
    this.errors = [];
    this.messages = []; // {topic, payload(Buffer), packet}
    this.publishes = []; // every PUBLISH packet received, acknowledged or not
    this._closeWaiters = [];
    this._msgWaiters = [];
    this.connack = null;
    client.on('error', (e) => this.errors.push(e));
    client.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      this.closedAt = Date.now();
      for (const w of this._closeWaiters.splice(0)) w();
    });
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish') this.publishes.push(packet);
    });
    client.on('message', (topic, payload, packet) => {
      const m = { topic, payload, packet };
      this.messages.push(m);
      for (const w of this._msgWaiters.slice()) {
        if (w.pred(m)) {
          this._msgWaiters.splice(this._msgWaiters.indexOf(w), 1);
          clearTimeout(w.timer);
          w.resolve(m);
        }
      }
    });
  }

  waitClosed(ms, what) {
    if (this.closed) return Promise.resolve(this.closedAt);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(
        `timed out after ${ms} ms waiting for the hub to close the connection of ${this.what}: ${what}`)), ms);
      this._closeWaiters.push(() => { clearTimeout(timer); resolve(this.closedAt); });
    });
  }

  waitMessage(pred, ms, what) {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this._msgWaiters.splice(this._msgWaiters.indexOf(w), 1);
        reject(new Error(`timed out after ${ms} ms waiting for ${what} on ${this.what}` +
          `${this.closed ? ' (connection was closed)' : ''}; got topics: ` +
          `${this.messages.map((m) => m.topic).slice(-10).join(', ') || 'none'}`));
      }, ms);
      this._msgWaiters.push(w);
    });
  }

  subscribe(filter, qos = 0, ms = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no SUBACK within ${ms} ms for ${filter}`)), ms);
      this.client.subscribe(filter, { qos }, (err, granted) => {
        clearTimeout(timer);
        if (err) reject(err); else resolve(granted);
      });
    });
  }

  // QoS 1 publish resolves on PUBACK.
  publish(topic, payload, opts = {}, ms = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(
        `no ${opts.qos ? 'PUBACK' : 'write completion'} within ${ms} ms for ${topic}`)), ms);
      this.client.publish(topic, payload, opts, (err) => {
        clearTimeout(timer);
        if (err) reject(err); else resolve();
      });
    });
  }

  // Twin request/response over $iothub/twin; requires a $iothub/twin/res/# subscription.
  async twinRequest(topicPrefix, body, ms = 5000) {
    const rid = crypto.randomBytes(6).toString('hex');
    const sep = topicPrefix.includes('?') ? '&' : '?';
    const topic = `${topicPrefix}${sep}$rid=${rid}`;
    const wait = this.waitMessage((m) => {
      const p = parseTwinResTopic(m.topic);
      return p && p.rid === rid;
    }, ms, `twin response to ${topic}`);
    await this.publish(topic, body === undefined ? '' : body, { qos: 0 });
    const m = await wait;
    const p = parseTwinResTopic(m.topic);
    const text = m.payload.toString('utf8');
    let json;
    if (text.length) {
      try { json = JSON.parse(text); } catch (_) { json = undefined; }
    }
    return { status: p.status, version: p.version, rid: p.rid, text, json, topic: m.topic };
  }

  twinGet(ms) {
    return this.twinRequest('$iothub/twin/GET/', ' ', ms);
  }

  patchReported(patch, { version, ms } = {}) {
    const prefix = '$iothub/twin/PATCH/properties/reported/' + (version !== undefined ? `?$version=${version}` : '');
    return this.twinRequest(prefix, typeof patch === 'string' ? patch : JSON.stringify(patch), ms);
  }

  end(force = true) {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      const t = setTimeout(resolve, 2000);
      this.client.end(force, {}, () => { clearTimeout(t); resolve(); });
    });
  }
}

function parseTwinResTopic(topic) {
  const m = /^\$iothub\/twin\/res\/(\d+)\/\?(.*)$/.exec(topic);
  if (!m) return null;
  const out = { status: parseInt(m[1], 10), rid: null, version: undefined };
  for (const kv of m[2].split('&')) {
    const i = kv.indexOf('=');
    const k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
    const v = i < 0 ? null : decodeURIComponent(kv.slice(i + 1));
    if (k === '$rid') out.rid = v;
    if (k === '$version') out.version = parseInt(v, 10);
  }
  return out;
}

// Connects with mqtt.js. Resolves with a RawClient once CONNACK 0 arrives;
// rejects with an Error whose .returnCode is the CONNACK code when refused, or
// .closedWithoutConnack when the hub closed the connection instead.
// opts: {addr, ca, host, deviceId, key | password | expiry, clientId, username, clean, keepalive,
//        cert, tlsKey, timeoutMs, withholdPuback}
function connect(opts) {
  const host = opts.host || opts.addr;
  const password = opts.password !== undefined ? opts.password
    : (opts.key ? deviceSas(host, opts.deviceId, opts.key, opts.expiry) : undefined);
  const options = {
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId: opts.clientId || opts.deviceId,
    username: opts.username || deviceUsername(host, opts.deviceId),
    clean: opts.clean === undefined ? false : opts.clean,
    keepalive: opts.keepalive === undefined ? 60 : opts.keepalive,
    reconnectPeriod: 0,
    connectTimeout: opts.timeoutMs || 10000,
    ca: opts.ca,
    rejectUnauthorized: true,
  };
  if (password !== undefined) options.password = password;
  if (opts.cert) { options.cert = opts.cert; options.key = opts.tlsKey; }
  const what = `raw mqtt ${options.clientId}`;
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtts://${opts.addr}:8883`, options);
    // mqtt.js 4 PUBACKs a QoS 1 PUBLISH when handleMessage calls back; holding
    // the callback forever withholds the PUBACK (and stalls this client's input).
    if (opts.withholdPuback) client.handleMessage = () => {};
    const rc = new RawClient(client, what);
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      client.end(true);
      reject(new Error(`${what}: no CONNACK within ${options.connectTimeout + 2000} ms`));
    }, options.connectTimeout + 2000);
    client.once('connect', (connack) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      rc.connack = connack;
      resolve(rc);
    });
    client.on('error', (e) => {
      if (done) return;
      if (typeof e.code === 'number') {
        done = true;
        clearTimeout(timer);
        client.end(true);
        const err = new Error(`${what}: CONNACK refused with code ${e.code} (${e.message})`);
        err.returnCode = e.code;
        reject(err);
      }
    });
    client.once('close', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.end(true);
      const err = new Error(`${what}: connection closed before CONNACK` +
        `${rc.errors.length ? ' (' + rc.errors.map((x) => x.message).join('; ') + ')' : ''}`);
      err.closedWithoutConnack = true;
      reject(err);
    });
  });
}

// ---- bare TLS socket + hand-made packets ----------------------------------

function remainingLength(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function str(s) {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function packet(firstByte, body) {
  return Buffer.concat([Buffer.from([firstByte]), remainingLength(body.length), body]);
}

// CONNECT (MQTT 3.1.1 unless level given).
function connectPacket({ clientId, username, password, clean = false, keepalive = 60, level = 4 }) {
  let flags = 0;
  if (username !== undefined) flags |= 0x80;
  if (password !== undefined) flags |= 0x40;
  if (clean) flags |= 0x02;
  const ka = Buffer.alloc(2);
  ka.writeUInt16BE(keepalive);
  const parts = [str('MQTT'), Buffer.from([level, flags]), ka, str(clientId)];
  if (username !== undefined) parts.push(str(username));
  if (password !== undefined) parts.push(str(password));
  return packet(0x10, Buffer.concat(parts));
}

// PUBLISH header declaring `declared` bytes of remaining length; returns only
// the fixed header + topic (+ packet id), the caller sends as much payload as it likes.
function publishHeader(topic, declared, qos = 1) {
  const t = str(topic);
  const pid = qos > 0 ? Buffer.from([0x00, 0x01]) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from([0x30 | (qos << 1)]), remainingLength(declared), t, pid]);
}

// SUBSCRIBE with one filter.
function subscribePacket(packetId, filter, qos = 0) {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(packetId);
  return packet(0x82, Buffer.concat([id, str(filter), Buffer.from([qos])]));
}

// A complete PUBLISH (QoS 0 unless given; packetId for QoS 1).
function publishPacket(topic, payload, { qos = 0, packetId = 1 } = {}) {
  const parts = [str(topic)];
  if (qos > 0) {
    const id = Buffer.alloc(2);
    id.writeUInt16BE(packetId);
    parts.push(id);
  }
  parts.push(Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8'));
  return packet(0x30 | (qos << 1), Buffer.concat(parts));
}

const PINGREQ = Buffer.from([0xc0, 0x00]);

class RawTls {
  constructor(sock) {
    this.sock = sock;
    this.data = Buffer.alloc(0);
    this.closed = false;
    this.closedAt = null;
    this.error = null;
    this._waiters = [];
    sock.on('data', (d) => {
      this.data = Buffer.concat([this.data, d]);
      this._notify();
    });
    sock.on('error', (e) => { this.error = e; });
    sock.on('close', () => {
      this.closed = true;
      this.closedAt = Date.now();
      this._notify();
    });
  }

  static connect(addr, ca, ms = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`TLS connect to ${addr}:8883 timed out`)); }, ms);
      const sock = tls.connect({ host: addr, port: 8883, ca }, () => {
        clearTimeout(timer);
        resolve(new RawTls(sock));
      });
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  _notify() {
    for (const w of this._waiters.slice()) {
      if (w.check()) {
        this._waiters.splice(this._waiters.indexOf(w), 1);
      }
    }
  }

  write(buf) {
    return new Promise((resolve) => {
      if (this.closed) return resolve(false);
      this.sock.write(buf, (err) => resolve(!err));
    });
  }

  // Parses complete packets received so far: [{type, flags, body}]
  packets() {
    const out = [];
    let i = 0;
    const d = this.data;
    while (i < d.length) {
      const first = d[i];
      let mult = 1; let len = 0; let j = i + 1; let ok = false;
      for (let k = 0; k < 4 && j < d.length; k++, j++) {
        len += (d[j] & 0x7f) * mult;
        mult *= 128;
        if ((d[j] & 0x80) === 0) { ok = true; j++; break; }
      }
      if (!ok || j + len > d.length) break;
      out.push({ type: first >> 4, flags: first & 0x0f, body: d.subarray(j, j + len) });
      i = j + len;
    }
    return out;
  }

  _wait(check, ms, what) {
    return new Promise((resolve, reject) => {
      const w = {};
      const timer = setTimeout(() => {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      w.check = () => {
        const r = check();
        if (r !== undefined) { clearTimeout(timer); resolve(r); return true; }
        return false;
      };
      if (!w.check()) this._waiters.push(w);
    });
  }

  // Resolves with the CONNACK return code, or null if the socket closed without one.
  waitConnack(ms = 5000) {
    return this._wait(() => {
      const p = this.packets().find((x) => x.type === 2);
      if (p) return p.body[1];
      if (this.closed) return null;
      return undefined;
    }, ms, 'CONNACK');
  }

  countPackets(type) {
    return this.packets().filter((x) => x.type === type).length;
  }

  waitClosed(ms, what) {
    return this._wait(() => (this.closed ? this.closedAt : undefined), ms,
      `the hub to close the connection (${what})`);
  }

  end() {
    this.sock.end();
  }

  destroy() {
    this.sock.destroy();
  }
}

module.exports = {
  connect, deviceSas, deviceUsername, randomKey, parseTwinResTopic, RawClient,
  RawTls, connectPacket, publishHeader, packet, remainingLength, PINGREQ,
  subscribePacket, publishPacket,
};
