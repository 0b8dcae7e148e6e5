'use strict';
// A small server-sent-events client for GET /iotdm/events. Every event
// received is kept; waitFor() looks through all of them (past and future) for
// the first one a predicate accepts.

const https = require('node:https');

class EventStream {
  constructor() {
    this.events = []; // {id, event, data (parsed JSON or raw string), raw}
    this.waiters = [];
    this.closed = false;
    this.error = null;
    this.status = null;
    this.headers = null;
    this._buf = '';
    this._cur = { id: null, event: null, data: [] };
    this.req = null;
    this.res = null;
  }

  _feed(chunk) {
    this._buf += chunk;
    let idx;
    while ((idx = this._buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = this._buf.slice(0, idx);
      const sepLen = this._buf.startsWith('\r\n', idx) ? 2 : 1;
      this._buf = this._buf.slice(idx + sepLen);
      this._line(line);
    }
  }

  _line(line) {
    if (line === '') {
      const c = this._cur;
      this._cur = { id: null, event: null, data: [] };
      if (c.data.length === 0) return;
      const raw = c.data.join('\n');
      let data = raw;
      try { data = JSON.parse(raw); } catch (_) { /* keep raw */ }
      this._push({ id: c.id, event: c.event || 'message', data, raw });
      return;
    }
    if (line.startsWith(':')) return; // comment / keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') this._cur.id = value;
    else if (field === 'event') this._cur.event = value;
    else if (field === 'data') this._cur.data.push(value);
  }

  _push(ev) {
    this.events.push(ev);
    for (const w of this.waiters.slice()) {
      if (w.pred(ev)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(ev);
      }
    }
  }

  _end(err) {
    if (this.closed) return;
    this.closed = true;
    this.error = err || null;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(`event stream ended (${err ? err.message : 'closed by server'}) while waiting for ${w.what}`));
    }
  }

  // Resolves with the first event (already received or future) for which pred is true.
  waitFor(pred, timeoutMs, what) {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    if (this.closed) return Promise.reject(new Error(`event stream already closed; wanted ${what}`));
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject, what };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const seen = this.events.slice(-10).map((e) => `${e.event} ${e.raw.slice(0, 300)}`).join('\n  ');
        reject(new Error(`timed out after ${timeoutMs} ms waiting for event: ${what}; ` +
          `${this.events.length} events received, last ones:\n  ${seen}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  // Asserts that no event matching pred arrives within ms; resolves with the
  // offending event or null.
  async absent(pred, ms) {
    try {
      return await this.waitFor(pred, ms, 'absence check');
    } catch (e) {
      if (/timed out/.test(e.message)) return null;
      throw e;
    }
  }

  close() {
    if (this.req) this.req.destroy();
    this._end(null);
  }
}

// opts: {host, port, ca, auth (Authorization header value), from, deviceId, lastEventId, timeoutMs}
function openEventStream(opts) {
  const q = new URLSearchParams();
  if (opts.from !== undefined && opts.from !== null) q.set('from', String(opts.from));
  if (opts.deviceId) q.set('deviceId', opts.deviceId);
  const qs = q.toString();
  const path = '/iotdm/events' + (qs ? '?' + qs : '');
  const headers = { Authorization: opts.auth, Accept: 'text/event-stream' };
  if (opts.lastEventId !== undefined) headers['Last-Event-ID'] = String(opts.lastEventId);
  const s = new EventStream();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`GET ${path}: no response headers within ${opts.timeoutMs || 10000} ms`));
    }, opts.timeoutMs || 10000);
    const req = https.request({
      host: opts.host, port: opts.port || 443, ca: opts.ca, method: 'GET', path, headers, agent: false,
    }, (res) => {
      clearTimeout(timer);
      s.status = res.statusCode;
      s.headers = res.headers;
      s.res = res;
      if (res.statusCode !== 200 || !/^text\/event-stream/.test(res.headers['content-type'] || '')) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { body += c; });
        res.on('end', () => reject(new Error(`GET ${path}: expected 200 text/event-stream, got ` +
          `${res.statusCode} ${res.headers['content-type']}: ${body.slice(0, 500)}`)));
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (c) => s._feed(c));
      res.on('end', () => s._end(null));
      res.on('error', (e) => s._end(e));
      resolve(s);
    });
    s.req = req;
    req.on('error', (e) => {
      clearTimeout(timer);
      s._end(e);
      reject(new Error(`GET ${path}: ${e.message}`));
    });
    req.end();
  });
}

module.exports = { openEventStream, EventStream };
