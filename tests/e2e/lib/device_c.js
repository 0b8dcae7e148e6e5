'use strict';
// Runs the C test device (tests/e2e/bin/device.c, built as examples/iotdm-e2e-device) on
// libiotdm. Commands go to its stdin one per line; every JSON line it prints is kept as an event,
// and waitFor() looks through past and future events. Its stderr (the library's log) is appended
// to a log file.

const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { REPO } = require('./hub');

function findDeviceBinary() {
  const rel = path.join('examples', 'iotdm-e2e-device');
  const dirs = process.env.IOTDM_BUILD_DIR ? [path.resolve(process.env.IOTDM_BUILD_DIR)]
    : ['ci', 'dev', 'release'].map((b) => path.join(REPO, 'build', b));
  for (const d of dirs) {
    const p = path.join(d, rel);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`iotdm-e2e-device not found under ${dirs.join(', ')}; build the examples first`);
}

class CDevice {
  // opts: {host, deviceId, key | cert+keyFile, ca, stateDir, logPath, args: [...]}
  constructor(opts) {
    this.opts = opts;
    this.bin = findDeviceBinary();
    this.events = [];
    this.waiters = [];
    this.proc = null;
    this.exited = null;
    this.exitInfo = null;
  }

  args() {
    const o = this.opts;
    const a = ['--host', o.host, '--device', o.deviceId, '--state', o.stateDir, '--ca', o.ca];
    if (o.key) a.push('--key', o.key);
    if (o.cert) a.push('--cert', o.cert, '--keyfile', o.keyFile);
    return a.concat(o.args || []);
  }

  start() {
    if (this.running) throw new Error('device already running');
    fs.appendFileSync(this.opts.logPath, `\n===== e2e: start ${new Date().toISOString()}: ${this.args().join(' ')}\n`);
    const log = fs.openSync(this.opts.logPath, 'a');
    try {
      this.proc = spawn(this.bin, this.args(), { stdio: ['pipe', 'pipe', log] });
    } finally {
      fs.closeSync(log);
    }
    this.exitInfo = null;
    const proc = this.proc;
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        proc.stdin.destroy(); // an open pipe would keep the test process alive
        resolve(this.exitInfo);
      });
    });
    this.proc.stdin.on('error', () => {}); // writes after a kill -9
    let buf = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) this._push(line);
      }
    });
    return this.waitFor((e) => e.event === 'started', 5000, 'the device to start');
  }

  get running() {
    return this.proc !== null && this.exitInfo === null;
  }

  _push(line) {
    let ev;
    try { ev = JSON.parse(line); } catch (_) { ev = { event: 'unparsable', line }; }
    ev.index = this.events.length;
    this.events.push(ev);
    for (const w of this.waiters.slice()) {
      if (w.pred(ev)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(ev);
      }
    }
  }

  // The index the next event will have: pass it as `since` to ignore what came before.
  mark() {
    return this.events.length;
  }

  waitFor(pred, timeoutMs, what, since = 0) {
    const found = this.events.find((e) => e.index >= since && pred(e));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred: (e) => e.index >= since && pred(e), resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const last = this.events.slice(-8).map((e) => JSON.stringify(e)).join('\n  ');
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last events:\n  ${last}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  connected(since = 0, timeoutMs = 20000) {
    return this.waitFor((e) => e.event === 'connection' && e.state === 'connected', timeoutMs,
      `${this.opts.deviceId} to connect`, since);
  }

  disconnected(since = 0, timeoutMs = 20000) {
    return this.waitFor((e) => e.event === 'connection' && e.state !== 'connected' && e.state !== 'connecting',
      timeoutMs, `${this.opts.deviceId} to notice the disconnect`, since);
  }

  send(line) {
    this.proc.stdin.write(`${line}\n`);
  }

  // Sends a command and waits for its {"event":"result"} line (or another event kind).
  async command(line, kind = 'result', timeoutMs = 10000) {
    const since = this.mark();
    this.send(line);
    return this.waitFor((e) => e.event === kind, timeoutMs, `the answer to "${line.slice(0, 60)}"`, since);
  }

  async stats() {
    return this.command('stats', 'stats');
  }

  // Asks the device to quit and waits for exit 0; kills it after timeoutMs.
  async stop(timeoutMs = 10000) {
    if (!this.running) return this.exitInfo;
    this.send('quit');
    let timer;
    const r = await Promise.race([this.exited,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); })]);
    clearTimeout(timer);
    if (r) return r;
    this.proc.kill('SIGKILL');
    await this.exited;
    throw new Error(`${this.opts.deviceId} did not exit within ${timeoutMs} ms of "quit"`);
  }

  async kill9() {
    if (!this.running) return this.exitInfo;
    this.proc.kill('SIGKILL');
    return this.exited;
  }
}

module.exports = { CDevice, findDeviceBinary };
