'use strict';
// What the browser tests share around their pages: numbered screenshots in an artifacts folder
// (emptied at the start), test bodies that keep a screenshot when they fail, and polling.
const fs = require('node:fs');
const path = require('node:path');
const { sleep, tailFile } = require('./env');

class Recorder {
  // page: a function returning the current Playwright page (it is made after the recorder).
  constructor(dir, page) {
    this.dir = dir;
    this.page = page;
    this.failed = false;
    this.shotNo = 0;
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(dir)) if (f.endsWith('.png')) fs.rmSync(path.join(dir, f));
  }

  // A full-page screenshot named NN-name.png; returns its path.
  async shot(name) {
    this.shotNo += 1;
    const file = path.join(this.dir, `${String(this.shotNo).padStart(2, '0')}-${name}.png`);
    const page = this.page();
    await page.evaluate(() => window.scrollTo(0, 0)); // the sticky header stays on top of a full-page shot
    await page.screenshot({ path: file, fullPage: true });
    return file;
  }

  // Runs a test body; on failure keeps a screenshot FAILED-name.png and remembers the failure.
  async step(name, fn) {
    try {
      await fn();
    } catch (e) {
      this.failed = true;
      const page = this.page();
      if (page) await page.screenshot({ path: path.join(this.dir, `FAILED-${name}.png`), fullPage: true }).catch(() => {});
      throw e;
    }
  }

  // After the tests: the hub's data directory is kept, and its log's tail shown, if one failed.
  async cleanup(env) {
    if (!env) return;
    if (this.failed) {
      process.stderr.write(`web: hub log and data kept in ${env.root}\n----- tail of hub.log -----\n` +
        `${tailFile(path.join(env.root, 'hub.log'), 80)}\n`);
    }
    await env.cleanup({ keep: this.failed });
  }
}

async function waitUntil(fn, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

module.exports = { Recorder, waitUntil };
