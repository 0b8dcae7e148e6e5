'use strict';
// Tools for tests/e2e/abuse.test.js: hostile sockets (plain TCP or TLS) opened from source
// addresses of their own, hand-built HTTP/1.1 and MQTT traffic, and the hub's resource figures
// read from /proc (RSS, CPU time, descriptors) and from its log file.
//
// Source addresses: every 127.x.y.z address is local on Linux, so an attacker binds its sockets
// to 127.77.0.K (`source(K)`) while the SDK clients connect from the kernel's default, 127.0.0.1
// (the `src` of the loopback route; checked by `defaultSource()`). The hub's per-source limits
// then see the attack and the legitimate clients as different peers, as on a real network.

const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const { execFileSync } = require('node:child_process');

const { sleep } = require('./hub');

// ---------------------------------------------------------------- the hub's figures

let clkTck = null;
function ticksPerSecond() {
  if (clkTck === null) {
    try {
      clkTck = parseInt(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim(), 10) || 100;
    } catch (_) {
      clkTck = 100;
    }
  }
  return clkTck;
}

// VmRSS of pid in KiB (0 once the process is gone).
function rssKb(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? parseInt(m[1], 10) : 0;
  } catch (_) {
    return 0;
  }
}

// User + system CPU time of pid, in seconds.
function cpuSeconds(pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces and parentheses): state is field 3,
  // utime field 14, stime field 15.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (parseInt(f[11], 10) + parseInt(f[12], 10)) / ticksPerSecond();
}

function fdCount(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch (_) {
    return 0;
  }
}

// Whether the process runs with AddressSanitizer (libasan mapped): memory bounds differ.
function isAsan(pid) {
  try {
    return /libasan|libclang_rt\.asan/.test(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
  } catch (_) {
    return false;
  }
}

// Samples a process's RSS every intervalMs from start() to stop(): baseline, peak, and a hook
// called once when the growth passes a limit (attacks use it to stop early instead of taking the
// machine's memory when the hub under test does not bound it).
class RssWatch {
  constructor(pid, { intervalMs = 100, abortGrowthMb = Infinity, onAbort = null } = {}) {
    this.pid = pid;
    this.intervalMs = intervalMs;
    this.abortGrowthMb = abortGrowthMb;
    this.onAbort = onAbort;
    this.aborted = false;
    this.baselineKb = 0;
    this.peakKb = 0;
    this.timer = null;
  }

  start() {
    this.baselineKb = rssKb(this.pid);
    this.peakKb = this.baselineKb;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  sample() {
    const kb = rssKb(this.pid);
    if (kb > this.peakKb) this.peakKb = kb;
    if (!this.aborted && this.growthMb() > this.abortGrowthMb) {
      this.aborted = true;
      if (this.onAbort) this.onAbort();
    }
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    return this;
  }

  growthMb() {
    return (this.peakKb - this.baselineKb) / 1024;
  }

  toString() {
    return `RSS ${(this.baselineKb / 1024).toFixed(1)} MB -> peak ${(this.peakKb / 1024).toFixed(1)} MB ` +
      `(+${this.growthMb().toFixed(1)} MB)${this.aborted ? ', attack stopped early at the abort bound' : ''}`;
  }
}

// Growth of a (log) file from now on: bytes and lines appended, and the text itself.
class FileGrowth {
  constructor(path) {
    this.path = path;
    this.offset = fileSize(path);
  }

  bytes() {
    return Math.max(0, fileSize(this.path) - this.offset);
  }

  text(maxBytes = 4 * 1024 * 1024) {
    const end = fileSize(this.path);
    const len = Math.min(end - this.offset, maxBytes);
    if (len <= 0) return '';
    const fd = fs.openSync(this.path, 'r');
    try {
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, this.offset);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  }

  // Lines appended (counted over the whole growth, in chunks, so a flood of gigabytes is fine).
  lines() {
    const end = fileSize(this.path);
    let n = 0;
    const fd = fs.openSync(this.path, 'r');
    try {
      const buf = Buffer.alloc(1 << 20);
      for (let pos = this.offset; pos < end;) {
        const got = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
        if (got <= 0) break;
        for (let i = 0; i < got; i++) if (buf[i] === 10) n++;
        pos += got;
      }
    } finally {
      fs.closeSync(fd);
    }
    return n;
  }

  toString() {
    return `log +${this.bytes()} bytes, +${this.lines()} lines`;
  }
}

function fileSize(p) {
  try {
    return fs.statSync(p).size;
  } catch (_) {
    return 0;
  }
}

// ---------------------------------------------------------------- addresses

// The K-th attacker source address (K in 1..250).
function source(k) {
  if (!(k >= 1 && k <= 250)) throw new Error(`attacker source ${k} out of range`);
  return `127.77.0.${k}`;
}

// The local address the kernel picks for a connection to addr (what the SDKs connect from).
function defaultSource(addr, port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: addr, port }, () => {
      const a = s.localAddress;
      s.destroy();
      resolve(a);
    });
    s.once('error', reject);
  });
}

// ---------------------------------------------------------------- sockets

// One hostile connection: what it sent (flushed to the kernel) and received, and when the hub
// closed it. Reading can be switched off (pause()) to leave the hub's output unread.
class Peer {
  constructor(sock, what) {
    this.sock = sock;
    this.what = what;
    this.openedAt = Date.now();
    this.closedAt = null;
    this.endedAt = null; // FIN seen (only while reading)
    this.killedAt = null; // destroy() called while still open
    this.error = null;
    this.chunks = [];
    this.receivedBytes = 0;
    this.queued = 0;
    this.flushed = 0;
    this.lastFlushAt = this.openedAt;
    this.firstByteAt = null; // of what the hub sent
    this._waiters = new Set();
    sock.on('data', (d) => {
      if (this.firstByteAt === null) this.firstByteAt = Date.now();
      this.receivedBytes += d.length;
      if (this.chunks.length < 4096) this.chunks.push(d);
      this._notify();
    });
    sock.on('end', () => {
      this.endedAt = Date.now();
      this._notify();
    });
    sock.on('error', (e) => {
      if (!this.error) this.error = e;
    });
    sock.on('close', () => {
      if (this.closedAt === null) this.closedAt = Date.now();
      this._notify();
    });
  }

  // TCP connect (no TLS); resolves once connected.
  static tcp({ host, port, localAddress, timeoutMs = 5000 }) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port, localAddress });
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`TCP connect to ${host}:${port} from ${localAddress} timed out`)); }, timeoutMs);
      sock.once('connect', () => { clearTimeout(timer); resolve(new Peer(sock, `tcp ${localAddress}->${host}:${port}`)); });
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  // TLS connect; resolves once the handshake is done, rejects if the hub closes it first.
  static tls({ host, port, localAddress, ca, timeoutMs = 8000, cert, key }) {
    return new Promise((resolve, reject) => {
      const sock = tls.connect({ host, port, localAddress, ca, cert, key });
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`TLS connect to ${host}:${port} from ${localAddress} timed out`)); }, timeoutMs);
      sock.once('secureConnect', () => { clearTimeout(timer); resolve(new Peer(sock, `tls ${localAddress}->${host}:${port}`)); });
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
      sock.once('close', () => { clearTimeout(timer); reject(new Error(`TLS connection to ${host}:${port} closed during the handshake`)); });
    });
  }

  get closed() {
    return this.closedAt !== null;
  }

  // When the hub ended the connection (FIN or reset), or null if it did not before destroy().
  get hubClosedAt() {
    const seen = [this.closedAt, this.endedAt].filter((x) => x !== null);
    if (!seen.length) return null;
    const t = Math.min(...seen);
    return this.killedAt !== null && t >= this.killedAt ? null : t;
  }

  data() {
    return Buffer.concat(this.chunks);
  }

  pause() {
    this.sock.pause();
    return this;
  }

  resume() {
    this.sock.resume();
    return this;
  }

  // Writes buf; the byte count moves to `flushed` once the socket has handed it to the kernel.
  write(buf) {
    if (this.closed || this.sock.destroyed) return false;
    this.queued += buf.length;
    return this.sock.write(buf, (err) => {
      if (!err) {
        this.flushed += buf.length;
        this.lastFlushAt = Date.now();
      }
    });
  }

  // Writes chunks from next() as fast as the connection takes them (honouring backpressure, so
  // the test process holds at most one socket buffer) until stop() is true, the connection
  // closes, or maxBytes are queued.
  async flood(next, { stop = () => false, maxBytes = Infinity } = {}) {
    while (!this.closed && !this.sock.destroyed && !stop() && this.queued < maxBytes) {
      if (this.sock.writableNeedDrain) {
        await this._event(['drain', 'close'], 100);
        continue;
      }
      this.write(next());
      if (!this.sock.writableNeedDrain) await new Promise(setImmediate);
    }
  }

  // Sends buf one byte every intervalMs (bytes that must not extend a deadline).
  async trickle(buf, intervalMs, { stop = () => false } = {}) {
    for (let i = 0; i < buf.length && !this.closed && !stop(); i++) {
      this.write(buf.subarray(i, i + 1));
      await sleep(intervalMs);
    }
  }

  _event(names, ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        for (const n of names) this.sock.removeListener(n, done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      for (const n of names) this.sock.once(n, done);
    });
  }

  _notify() {
    for (const w of [...this._waiters]) w();
  }

  // Resolves with fn()'s first truthy value (checked on every event), or null after ms.
  until(fn, ms) {
    const v = fn();
    if (v) return Promise.resolve(v);
    return new Promise((resolve) => {
      const w = () => {
        const r = fn();
        if (r) { clearTimeout(timer); this._waiters.delete(w); resolve(r); }
      };
      const timer = setTimeout(() => { this._waiters.delete(w); resolve(null); }, ms);
      this._waiters.add(w);
    });
  }

  // Resolves with the time the hub closed the connection (FIN or reset), or null after ms.
  waitClosed(ms) {
    return this.until(() => this.hubClosedAt, ms);
  }

  // HTTP responses received so far (see parseHttpResponses).
  responses() {
    return parseHttpResponses(this.data());
  }

  waitResponse(ms) {
    return this.until(() => this.responses()[0], ms);
  }

  mqttPackets() {
    return parseMqttPackets(this.data());
  }

  destroy() {
    if (this.closedAt === null && this.killedAt === null) this.killedAt = Date.now();
    this.sock.destroy();
  }
}

// ---------------------------------------------------------------- HTTP/1.1 by hand

function httpRequest(method, path, { host, headers = {}, body } = {}) {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined && !Object.keys(headers).some((k) => /^(content-length|transfer-encoding)$/i.test(k))) {
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  }
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
  return body === undefined ? head : Buffer.concat([head, Buffer.from(body)]);
}

// Complete responses at the start of buf: [{status, headers (lower-case names), body}].
// Handles Content-Length and chunked bodies; stops at the first incomplete one.
function parseHttpResponses(buf) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    const end = buf.indexOf('\r\n\r\n', pos, 'latin1');
    if (end < 0) break;
    const head = buf.subarray(pos, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
    if (!m) break;
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    let bodyStart = end + 4;
    let body;
    if (/chunked/i.test(headers['transfer-encoding'] || '')) {
      const parts = [];
      let p = bodyStart;
      let complete = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p, 'latin1');
        if (le < 0) break;
        const size = parseInt(buf.subarray(p, le).toString('latin1'), 16);
        if (!Number.isFinite(size)) break;
        if (le + 2 + size + 2 > buf.length) break;
        if (size === 0) { p = le + 4; complete = true; break; }
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
      pos = p;
    } else {
      const len = parseInt(headers['content-length'] || '0', 10);
      if (bodyStart + len > buf.length) break;
      body = buf.subarray(bodyStart, bodyStart + len);
      pos = bodyStart + len;
    }
    out.push({ status: parseInt(m[1], 10), headers, body });
    bodyStart = pos;
  }
  return out;
}

// ---------------------------------------------------------------- MQTT by hand

// mqtt_raw.js loads mqtt.js and the device SDK: only when an MQTT attack needs it.
function rawMqtt() {
  return require('./mqtt_raw');
}

// Complete MQTT packets at the start of buf: [{type, flags, body}].
function parseMqttPackets(d) {
  const out = [];
  let i = 0;
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

// A TLS connection to the MQTT port that sent CONNECT (and SUBSCRIBEs) and got CONNACK 0.
async function mqttSession({ host, localAddress, ca, clientId, username, password, subscribe = [] }) {
  const raw = rawMqtt();
  const p = await Peer.tls({ host, port: 8883, localAddress, ca });
  p.write(raw.connectPacket({ clientId, username, password, clean: true, keepalive: 0 }));
  const connack = await p.until(() => p.mqttPackets().find((x) => x.type === 2) || (p.closed && 'closed'), 5000);
  if (!connack || connack === 'closed' || connack.body[1] !== 0) {
    p.destroy();
    throw new Error(`${clientId}: CONNECT refused (${connack === 'closed' ? 'closed' : connack ? `CONNACK ${connack.body[1]}` : 'no CONNACK'})`);
  }
  for (let i = 0; i < subscribe.length; i++) {
    p.write(raw.subscribePacket(i + 1, subscribe[i], 0));
  }
  if (subscribe.length) {
    const ok = await p.until(() => p.mqttPackets().filter((x) => x.type === 9).length >= subscribe.length, 5000);
    if (!ok) throw new Error(`${clientId}: no SUBACK`);
  }
  return p;
}

// ---------------------------------------------------------------- misc

// Opens n connections with open(i), at most `parallel` at a time; failures are kept as Errors.
async function openMany(n, open, parallel = 16) {
  const out = new Array(n);
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      try {
        out[i] = await open(i);
      } catch (e) {
        out[i] = e;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  return out;
}

function mb(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

module.exports = {
  rssKb, cpuSeconds, fdCount, isAsan, RssWatch, FileGrowth, fileSize,
  source, defaultSource,
  Peer, httpRequest, parseHttpResponses, parseMqttPackets, mqttSession, openMany, mb,
};
