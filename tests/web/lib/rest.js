'use strict';
// A tiny service-API client for test set-up (node core only): SAS signing and JSON over HTTPS.
const https = require('node:https');
const crypto = require('node:crypto');

function parseConnStr(s) {
  const out = {};
  for (const part of s.trim().split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

function sasToken(host, policy, key, ttlSec = 3600) {
  const se = Math.floor(Date.now() / 1000) + ttlSec;
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${host}\n${se}`).digest('base64');
  return `SharedAccessSignature sr=${host}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${policy}`;
}

class Rest {
  // connStr: a policy connection string; addr/port: where the hub listens; ca: its CA (PEM).
  constructor({ connStr, addr, port = 443, ca }) {
    this.cs = parseConnStr(connStr);
    this.addr = addr;
    this.port = port;
    this.ca = ca;
  }

  call(method, path, body, headers = {}) {
    const auth = sasToken(this.cs.HostName, this.cs.SharedAccessKeyName, this.cs.SharedAccessKey);
    const hdrs = { Authorization: auth, ...headers };
    let payload;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      hdrs['Content-Type'] = 'application/json; charset=utf-8';
      hdrs['Content-Length'] = Buffer.byteLength(payload);
    }
    const sep = path.includes('?') ? '&' : '?';
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: this.addr, port: this.port, method, path: `${path}${sep}api-version=2021-04-12`,
        headers: hdrs, ca: this.ca, agent: false, servername: undefined,
      }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { text += c; });
        res.on('end', () => {
          let json;
          try { json = text ? JSON.parse(text) : undefined; } catch (_) { json = undefined; }
          if (res.statusCode >= 400) {
            const e = new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
            e.status = res.statusCode;
            return reject(e);
          }
          resolve({ status: res.statusCode, headers: res.headers, json });
        });
      });
      req.setTimeout(30000, () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async createDevice(deviceId) {
    return (await this.call('PUT', `/devices/${encodeURIComponent(deviceId)}`, { deviceId })).json;
  }

  deviceConnStr(device) {
    return `HostName=${this.cs.HostName};DeviceId=${device.deviceId};SharedAccessKey=${device.authentication.symmetricKey.primaryKey}`;
  }

  async twin(deviceId) {
    return (await this.call('GET', `/twins/${encodeURIComponent(deviceId)}`)).json;
  }

  async patchTwin(deviceId, patch) {
    return (await this.call('PATCH', `/twins/${encodeURIComponent(deviceId)}`, patch, { 'If-Match': '*' })).json;
  }
}

module.exports = { Rest, parseConnStr, sasToken };
