'use strict';
// Running the real `iotdm` CLI binary from the e2e tests. Asynchronous on
// purpose: while the CLI waits for a direct method, the device client in the
// same Node process must be free to answer it.

const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const REPO = path.resolve(__dirname, '..', '..', '..');

function findCli() {
  const rel = path.join('src', 'cli', 'iotdm');
  const dirs = [];
  if (process.env.IOTDM_BUILD_DIR) dirs.push(path.resolve(process.env.IOTDM_BUILD_DIR));
  for (const b of ['ci', 'dev', 'release']) dirs.push(path.join(REPO, 'build', b));
  for (const d of dirs) {
    const p = path.join(d, rel);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`${rel} not found under ${dirs.join(', ')}; build first`);
}

// Runs `iotdm ...args`. Resolves {code, signal, stdout, stderr, json, lines}:
// json is stdout parsed as one JSON document (undefined when it is not JSON),
// lines the non-empty stdout lines. env entries set to undefined are removed.
function runCli(args, { env = {}, timeoutMs = 60000, input } = {}) {
  const bin = findCli();
  const fullEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete fullEnv[k];
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: fullEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`iotdm ${args.join(' ')}: no exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let json;
      try { json = JSON.parse(stdout); } catch (_) { json = undefined; }
      const lines = stdout.split('\n').filter((l) => l.length);
      resolve({ code, signal, stdout, stderr, json, lines, child });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

// Starts `iotdm ...args` and returns {child, lines (growing), done (promise
// of the runCli-like result)}: for commands that stream (monitor).
function startCli(args, { env = {} } = {}) {
  const bin = findCli();
  const fullEnv = { ...process.env, ...env };
  const child = spawn(bin, args, { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const state = { child, lines: [], stdout: '', stderr: '' };
  let partial = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (c) => {
    state.stdout += c;
    partial += c;
    const parts = partial.split('\n');
    partial = parts.pop();
    for (const l of parts) if (l.length) state.lines.push(l);
  });
  child.stderr.on('data', (c) => { state.stderr += c; });
  state.done = new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout: state.stdout, stderr: state.stderr }));
  });
  return state;
}

module.exports = { findCli, runCli, startCli, REPO };
