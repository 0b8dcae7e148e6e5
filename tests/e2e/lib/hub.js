'use strict';
// Starting, stopping and killing one iotdm-hub process. The hub's stdout and
// stderr go straight to a log file (appended across restarts); readiness is
// detected by polling that file for the "ready" line the hub prints once both
// listeners are up.

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawn, execFileSync } = require('node:child_process');

const REPO = path.resolve(__dirname, '..', '..', '..');

// The hub binary: IOTDM_HUB_BIN, else src/hub/iotdm-hub in the build tree named by the first set
// variable of envVars (IOTDM_BUILD_DIR by default), else in the first of build/<order> that has it.
function findHubBinary({ envVars = ['IOTDM_BUILD_DIR'], order = ['ci', 'dev', 'release'] } = {}) {
  if (process.env.IOTDM_HUB_BIN) {
    if (!fs.existsSync(process.env.IOTDM_HUB_BIN)) {
      throw new Error(`IOTDM_HUB_BIN=${process.env.IOTDM_HUB_BIN} does not exist`);
    }
    return process.env.IOTDM_HUB_BIN;
  }
  const rel = path.join('src', 'hub', 'iotdm-hub');
  for (const v of envVars) {
    if (!process.env[v]) continue;
    const p = path.resolve(process.env[v], rel);
    if (!fs.existsSync(p)) throw new Error(`hub binary not found at ${p} (from ${v})`);
    return p;
  }
  const tried = [];
  for (const b of order) {
    const p = path.join(REPO, 'build', b, rel);
    tried.push(p);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`hub binary not found; build it first or set ${envVars.join(' or ')}. Tried: ${tried.join(', ')}`);
}

// The store switch: with IOTDM_E2E_PG_DIR naming a server started by scripts/pg-tmp.sh, every
// hub keeps its state in PostgreSQL instead of DATA/hub.db, in a schema of its own named after its
// data directory (so that the hub a test restarts finds its data again).
function pgStoreFor(dataDir) {
  const dir = process.env.IOTDM_E2E_PG_DIR;
  if (!dir) return null;
  const port = fs.readFileSync(path.join(dir, 'port'), 'utf8').trim();
  const base = `postgresql://iotdm@127.0.0.1:${port}/iotdm`;
  const schema = `e2e_${crypto.createHash('sha1').update(path.resolve(dataDir)).digest('hex').slice(0, 16)}`;
  execFileSync('psql', [base, '-qXc', `CREATE SCHEMA IF NOT EXISTS ${schema}`], { stdio: 'pipe' });
  return `${base}?options=-csearch_path%3D${schema}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tailFile(file, maxLines = 200, maxBytes = 64 * 1024) {
  let text;
  try {
    const st = fs.statSync(file);
    const fd = fs.openSync(file, 'r');
    const len = Math.min(st.size, maxBytes);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, st.size - len);
    fs.closeSync(fd);
    text = buf.toString('utf8');
  } catch (e) {
    return `(no log: ${e.message})`;
  }
  const lines = text.split('\n');
  return lines.slice(-maxLines).join('\n');
}

class Hub {
  // extraArgs: more hub options, after the harness's own (a later flag overrides an earlier one);
  // wrapper: a command line the hub runs under (e.g. ['prlimit', '--nofile=64:64', '--']), so the
  // spawned process execs into the hub and keeps its pid; env: added to the environment.
  // All three are plain properties: set them before start().
  constructor({ bin, dataDir, addr, logPath, logLevel, extraArgs = [], wrapper = [], env = {} }) {
    this.bin = bin;
    this.dataDir = dataDir;
    this.addr = addr;
    this.logPath = logPath;
    this.logLevel = logLevel || process.env.IOTDM_E2E_LOG_LEVEL || 'debug';
    this.extraArgs = extraArgs;
    this.wrapper = wrapper;
    this.env = env;
    this.proc = null;
    this.exited = null; // promise of {code, signal}
    this.exitInfo = null;
    this.expectingExit = false;
    this.unexpectedExit = null;
    this.starts = 0;
  }

  get running() {
    return this.proc !== null && this.exitInfo === null;
  }

  // The hub's pid (the wrapper's, which execs into the hub).
  get pid() {
    return this.running ? this.proc.pid : null;
  }

  args() {
    if (this.store === undefined) this.store = pgStoreFor(this.dataDir);
    const store = this.store ? ['--store', this.store] : [];
    return ['--data-dir', this.dataDir, '--hostname', this.addr, '--listen', this.addr,
      '--mqtt-port', '8883', '--https-port', '443', '--log-level', this.logLevel, ...store,
      ...this.extraArgs];
  }

  commandLine() {
    return [...this.wrapper, this.bin, ...this.args()];
  }

  async start({ timeoutMs = 20000 } = {}) {
    if (this.running) throw new Error('hub already running');
    this.starts += 1;
    fs.appendFileSync(this.logPath,
      `\n===== e2e: start #${this.starts} ${new Date().toISOString()}: ${this.commandLine().join(' ')}\n`);
    const offset = fs.statSync(this.logPath).size;
    const fd = fs.openSync(this.logPath, 'a');
    let proc;
    try {
      const [cmd, ...argv] = this.commandLine();
      proc = spawn(cmd, argv, { stdio: ['ignore', fd, fd], env: { ...process.env, ...this.env } });
    } finally {
      fs.closeSync(fd);
    }
    this.proc = proc;
    this.exitInfo = null;
    this.expectingExit = false;
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        if (!this.expectingExit && !this.unexpectedExit) {
          this.unexpectedExit = { code, signal, at: new Date().toISOString() };
          process.stderr.write(`e2e: hub exited unexpectedly (code=${code} signal=${signal})\n`);
        }
        resolve(this.exitInfo);
      });
      proc.once('error', (err) => {
        this.exitInfo = { code: null, signal: null, error: err };
        resolve(this.exitInfo);
      });
    });
    proc.unref();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exitInfo) {
        throw new Error(`hub exited during start-up (${JSON.stringify(this.exitInfo)}); log tail:\n${tailFile(this.logPath, 60)}`);
      }
      const text = readFrom(this.logPath, offset);
      if (/\bready\b/.test(text)) break;
      if (Date.now() > deadline) {
        await this.kill9();
        throw new Error(`hub did not print "ready" within ${timeoutMs} ms; log tail:\n${tailFile(this.logPath, 60)}`);
      }
      await sleep(25);
    }
    return this;
  }

  async _waitExit(timeoutMs) {
    let timer;
    const t = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); });
    const r = await Promise.race([this.exited, t]);
    clearTimeout(timer);
    return r;
  }

  // Graceful stop; resolves with {code, signal}. Kills with SIGKILL after timeoutMs.
  async stop({ timeoutMs = 10000 } = {}) {
    if (!this.proc || this.exitInfo) return this.exitInfo;
    this.expectingExit = true;
    this.proc.kill('SIGTERM');
    const r = await this._waitExit(timeoutMs);
    if (r) return r;
    this.proc.kill('SIGKILL');
    await this._waitExit(5000);
    throw new Error(`hub did not exit within ${timeoutMs} ms of SIGTERM (killed with SIGKILL)`);
  }

  async kill9() {
    if (!this.proc || this.exitInfo) return this.exitInfo;
    this.expectingExit = true;
    this.proc.kill('SIGKILL');
    const r = await this._waitExit(5000);
    if (!r) throw new Error('hub did not die within 5 s of SIGKILL');
    return r;
  }

  killSync() {
    if (this.proc && !this.exitInfo) {
      this.expectingExit = true;
      try { this.proc.kill('SIGKILL'); } catch (_) { /* already gone */ }
    }
  }

  logTail(lines = 200) {
    return tailFile(this.logPath, lines);
  }
}

function readFrom(file, offset) {
  try {
    const st = fs.statSync(file);
    if (st.size <= offset) return '';
    const fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(st.size - offset);
    fs.readSync(fd, buf, 0, buf.length, offset);
    fs.closeSync(fd);
    return buf.toString('utf8');
  } catch (_) {
    return '';
  }
}

module.exports = { Hub, findHubBinary, tailFile, sleep, pgStoreFor, REPO };
