'use strict';
// An HTTPS file server for the tests' downloads (certificates, packages, Wi-Fi profiles): serves
// the files put into it, with a self-signed certificate the agent is told to trust through
// --download-ca-file. Everything stays on loopback. A file put with stall() is served half-way
// and then held until release(): a download that hangs, for as long as a test wants.

const fs = require('node:fs');
const path = require('node:path');
const https = require('node:https');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');

class FileServer {
  // dir: a fresh directory; addr: a loopback address the test owns (the hub's address is fine).
  constructor({ dir, addr }) {
    this.dir = dir;
    this.addr = addr;
    this.files = path.join(dir, 'files');
    this.requests = [];
    this.stalled = new Map(); // name -> {release(), requested: Promise}
    fs.mkdirSync(this.files, { recursive: true });
    this.keyPath = path.join(dir, 'server.key');
    this.certPath = path.join(dir, 'server.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-keyout', this.keyPath, '-out', this.certPath, '-days', '2', '-subj', `/CN=${addr}`,
      '-addext', `subjectAltName=IP:${addr}`], { stdio: 'pipe' });
  }

  async start() {
    this.server = https.createServer({ key: fs.readFileSync(this.keyPath), cert: fs.readFileSync(this.certPath) }, (req, res) => {
      this.requests.push(req.url);
      const name = decodeURIComponent(new URL(req.url, 'https://x').pathname.slice(1));
      const file = path.join(this.files, name);
      if (!file.startsWith(this.files + path.sep) || !fs.existsSync(file)) {
        res.writeHead(404);
        res.end('not found');
        return;
      }
      const stall = this.stalled.get(name);
      if (stall) {
        this.serveStalled(stall, fs.readFileSync(file), res);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      fs.createReadStream(file).pipe(res);
    });
    await new Promise((resolve) => this.server.listen(0, this.addr, resolve));
    this.port = this.server.address().port;
  }

  // Puts a file and returns {url, sha256}.
  put(name, data) {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    fs.mkdirSync(path.dirname(path.join(this.files, name)), { recursive: true });
    fs.writeFileSync(path.join(this.files, name), buf);
    return { url: this.url(name), sha256: crypto.createHash('sha256').update(buf).digest('hex') };
  }

  // The first half now, the rest once the test releases the file (headers give the full length,
  // so the client keeps waiting for the rest).
  serveStalled(stall, data, res) {
    const half = Math.floor(data.length / 2);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length });
    res.write(data.subarray(0, half));
    stall.gotRequest();
    stall.released.then(() => res.end(data.subarray(half)));
  }

  // Puts a file whose downloads stall half-way until release(name); returns {url, sha256}.
  // requested(name) resolves once a download of it has started.
  stall(name, data) {
    let gotRequest, release;
    const requested = new Promise((resolve) => { gotRequest = resolve; });
    const released = new Promise((resolve) => { release = resolve; });
    this.stalled.set(name, { gotRequest, requested, released, release });
    return this.put(name, data);
  }

  requested(name) {
    return this.stalled.get(name).requested;
  }

  release(name) {
    this.stalled.get(name).release();
  }

  url(name) {
    return `https://${this.addr}:${this.port}/${name.split('/').map(encodeURIComponent).join('/')}`;
  }

  stop() {
    for (const s of this.stalled.values()) s.release();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

module.exports = { FileServer };
