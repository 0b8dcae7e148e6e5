'use strict';
// Drives a terminal program inside tmux, as a person would: a detached session of a fixed size on
// a tmux server of its own (-S, a socket in the test's directory, so a developer's tmux is never
// touched and nothing is left behind), keys sent with
// send-keys, the screen read with capture-pane. The pane stays after the program exits, so its
// last screen can still be read.

const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { sleep } = require('./hub');

function shellQuote(s) {
  return `'${String(s).replace(/'/g, "'\\''")}'`;
}

class TmuxSession {
  // dir: where the server's socket lives (the test's temp directory).
  constructor(dir, name) {
    this.socket = path.join(dir, `tmux-${name}.sock`);
    this.target = name;
    this.started = false;
  }

  tmux(args, opts = {}) {
    return execFileSync('tmux', ['-S', this.socket, '-f', '/dev/null', ...args],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  }

  // argv: the program and its arguments; env: extra environment variables.
  start(argv, { width = 100, height = 30, env = {} } = {}) {
    const assigns = Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`);
    const cmd = ['exec', 'env', ...assigns, ...argv.map(shellQuote)].join(' ');
    this.tmux(['new-session', '-d', '-s', this.target, '-x', String(width), '-y', String(height), cmd]);
    this.started = true;
    this.tmux(['set-option', '-w', '-t', this.target, 'remain-on-exit', 'on']);
  }

  // The visible screen, one string with a line per row.
  capture() {
    return this.tmux(['capture-pane', '-p', '-t', this.target]);
  }

  // Keys as tmux names them: 't', 'y', 'Enter', 'Escape'.
  sendKeys(...keys) {
    this.tmux(['send-keys', '-t', this.target, ...keys]);
  }

  // Whether the program has exited (the pane is kept, see remain-on-exit).
  dead() {
    return this.tmux(['display-message', '-p', '-t', this.target, '#{pane_dead}']).trim() === '1';
  }

  // Waits until the screen matches re; returns the screen. On timeout the error shows it.
  async waitFor(re, { timeoutMs = 10000, what = String(re) } = {}) {
    const deadline = Date.now() + timeoutMs;
    let screen = '';
    for (;;) {
      try {
        screen = this.capture();
      } catch (e) {
        screen = `(capture failed: ${e.message})`;
      }
      if (re.test(screen)) return screen;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} on screen:\n${screen}`);
      }
      await sleep(100);
    }
  }

  kill() {
    if (!this.started) return;
    this.started = false;
    try {
      this.tmux(['kill-server']);
    } catch (_) { /* already gone */ }
  }
}

module.exports = { TmuxSession };
