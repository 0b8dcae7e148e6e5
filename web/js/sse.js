// GET /iotdm/events as server-sent events, read with fetch streaming (EventSource cannot send an
// Authorization header). Reconnects after a failure and resumes with Last-Event-ID.
import { hub } from './auth.js';
import { parseErrorBody } from './api.js';

// Feeds text chunks, calls onEvent({id, event, data}) per complete event (data parsed as JSON
// when it is JSON). Follows the SSE rules: CR, LF or CRLF line ends, ':' comments, multi-line data.
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.reset();
  }

  reset() {
    this.cur = { id: null, event: '', data: [] };
  }

  feed(chunk) {
    this.buf += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone CR at the end of a chunk may be the first half of a CRLF: wait for more.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      const c = this.cur;
      this.reset();
      if (!c.data.length) return;
      const raw = c.data.join('\n');
      let data = raw;
      try { data = JSON.parse(raw); } catch (_) { /* not JSON: keep the text */ }
      this.onEvent({ id: c.id, event: c.event || 'message', data });
      return;
    }
    if (line.startsWith(':')) return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') this.cur.id = value;
    else if (field === 'event') this.cur.event = value;
    else if (field === 'data') this.cur.data.push(value);
  }
}

// Opens the stream. onEvent({id, event, data}); onState(state, detail) with state one of
// 'connecting', 'live', 'retrying', 'failed'. Returns {close()}.
export function openEvents({ deviceId, from = 'end', onEvent, onState = () => {} }) {
  let closed = false;
  let lastId = null;
  let controller = null;
  let delay = 1000;

  async function once() {
    const q = new URLSearchParams();
    if (lastId === null) q.set('from', String(from));
    if (deviceId) q.set('deviceId', deviceId);
    const headers = { Authorization: await hub.authHeader(), Accept: 'text/event-stream' };
    if (lastId !== null) headers['Last-Event-ID'] = lastId;
    controller = new AbortController();
    onState('connecting');
    const res = await fetch(`/iotdm/events?${q}`, { headers, signal: controller.signal, cache: 'no-store' });
    if (!res.ok) {
      const { code, message } = parseErrorBody(await res.text(), res.status, res.headers.get('iothub-errorcode'));
      const err = new Error(message);
      err.code = code;
      err.status = res.status;
      throw err;
    }
    onState('live');
    delay = 1000;
    const parser = new SseParser((ev) => {
      if (ev.id !== null && ev.id !== '') lastId = ev.id;
      onEvent(ev);
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
  }

  (async () => {
    while (!closed) {
      try {
        await once();
        if (closed) break;
        onState('retrying', 'the hub closed the event stream');
      } catch (e) {
        if (closed) break;
        if (e.status === 401 || e.status === 403) {
          onState('failed', e.message);
          return;
        }
        onState('retrying', e.message);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  })();

  return {
    close() {
      closed = true;
      if (controller) controller.abort();
    },
  };
}
