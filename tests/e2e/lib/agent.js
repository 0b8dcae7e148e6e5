'use strict';
// A simulated device for the end-to-end tests: iotdm-configd on a sandbox root and iotdm-agent
// under a small supervisor that starts it again when it exits (as systemd would, and as a
// machine does after a reboot: a simulated reboot makes the agent exit). Nothing touches the
// host: every file configd writes lands under <dir>/root.

const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { sleep } = require('./hub');

const REPO = path.resolve(__dirname, '..', '..', '..');

function findBinary(rel) {
  const dirs = [];
  if (process.env.IOTDM_BUILD_DIR) dirs.push(path.resolve(process.env.IOTDM_BUILD_DIR));
  for (const b of ['ci', 'dev', 'release']) dirs.push(path.join(REPO, 'build', b));
  for (const d of dirs) {
    const p = path.join(d, rel);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`${rel} not found under ${dirs.join(', ')}; build first`);
}

function waitExit(child, ms) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(resolve, ms);
    child.once('exit', () => { clearTimeout(t); resolve(); });
  });
}

class SimDevice {
  // dir: a fresh directory; connStr: the device's connection string; caPath: the hub's CA.
  // (connStr may be null when extraAgentArgs give the identity, e.g. --tpm-slot.)
  // configdConf: extra "key = value" lines for configd's config file.
  // freshStateDir: leave the state directory for the agent to create (first boot of a device).
  constructor({ dir, connStr, caPath, resetPaths = [], extraAgentArgs = [], configdConf = [], freshStateDir = false }) {
    this.dir = dir;
    this.root = path.join(dir, 'root');
    this.stateDir = path.join(this.root, 'var', 'lib', 'iotdm');
    this.socket = path.join(dir, 'configd.sock');
    this.clockFile = path.join(dir, 'clock');
    this.inhibitFile = path.join(dir, 'reboot-inhibit');
    this.log = path.join(dir, 'device.log');
    this.connStr = connStr;
    this.caPath = caPath;
    this.extraAgentArgs = extraAgentArgs;
    this.freshStateDir = freshStateDir;
    this.agentStarts = 0;
    this.stopping = false;
    fs.mkdirSync(this.root, { recursive: true });
    const conf = [`socket = ${this.socket}`, 'allow_uid = 0'];
    for (const p of resetPaths) conf.push(`factory_reset_path = ${p}`);
    conf.push(...configdConf);
    fs.writeFileSync(path.join(dir, 'configd.conf'), conf.join('\n') + '\n');
  }

  logLine(text) {
    fs.appendFileSync(this.log, `===== e2e ${new Date().toISOString()}: ${text}\n`);
  }

  async startConfigd() {
    const out = fs.openSync(this.log, 'a');
    this.logLine('start configd');
    this.configd = spawn(findBinary('src/configd/iotdm-configd'),
      ['--config', path.join(this.dir, 'configd.conf'), '--sandbox', this.root, '--log-level', 'debug'],
      { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const deadline = Date.now() + 10000;
    while (!fs.existsSync(this.socket)) {
      if (Date.now() > deadline) throw new Error('iotdm-configd did not create its socket');
      if (this.configd.exitCode !== null) throw new Error(`iotdm-configd exited with ${this.configd.exitCode}`);
      await sleep(50);
    }
  }

  spawnAgent() {
    const out = fs.openSync(this.log, 'a');
    this.agentStarts += 1;
    this.logLine(`start agent #${this.agentStarts}`);
    const env = { ...process.env, IOTDM_TEST_CLOCK_FILE: this.clockFile };
    this.agent = spawn(findBinary('src/agent/iotdm-agent'), [
      '--config', '/dev/null',
      // No connection string when the identity comes from elsewhere (a TPM slot: extraAgentArgs).
      ...(this.connStr ? ['--connection-string', this.connStr] : []), '--ca-file', this.caPath,
      '--state-dir', this.stateDir, '--configd-socket', this.socket,
      '--reboot-inhibit-file', this.inhibitFile, '--log-level', 'debug', ...this.extraAgentArgs,
    ], { stdio: ['ignore', out, out], env });
    fs.closeSync(out);
    this.agent.on('exit', (code, signal) => {
      this.logLine(`agent exited code=${code} signal=${signal}`);
      if (!this.stopping && !this.holdAgent) setTimeout(() => this.spawnAgent(), 200);
    });
  }

  async start() {
    fs.mkdirSync(this.freshStateDir ? path.dirname(this.stateDir) : this.stateDir, { recursive: true });
    await this.startConfigd();
    this.spawnAgent();
  }

  setClock(ms) {
    fs.writeFileSync(this.clockFile, String(Math.round(ms)));
  }

  // kill -9 the agent; with restart=false it stays down until startAgent().
  async killAgent({ restart = true } = {}) {
    this.holdAgent = !restart;
    const a = this.agent;
    a.kill('SIGKILL');
    await waitExit(a, 5000);
  }

  startAgent() {
    this.holdAgent = false;
    this.spawnAgent();
  }

  journal() {
    const p = path.join(this.root, 'var', 'lib', 'iotdm-sandbox', 'journal.jsonl');
    if (!fs.existsSync(p)) return [];
    return fs.readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }

  async stop() {
    this.stopping = true;
    for (const c of [this.agent, this.configd]) {
      if (c && c.exitCode === null && c.signalCode === null) {
        c.kill('SIGTERM');
        await waitExit(c, 5000);
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }
    }
  }
}

module.exports = { SimDevice, findBinary };
