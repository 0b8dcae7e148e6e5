// The live events tab: the telemetry chart and the stream of telemetry, connection and twin events
// of this device.
import { h, clear, clockTime } from '../dom.js';
import { TelemetryChart } from '../chart.js';

const MAX_ROWS = 300;

function summary(ev) {
  const d = ev.data || {};
  if (ev.event === 'telemetry') {
    let body = d.body;
    if (d.bodyEncoding === 'base64') body = `(binary, base64) ${body}`;
    else {
      try { body = JSON.stringify(JSON.parse(body)); } catch (_) { /* plain text */ }
    }
    const props = d.properties && Object.keys(d.properties).length ? `  ${JSON.stringify(d.properties)}` : '';
    return `${body}${props}`;
  }
  if (ev.event === 'connection') return d.connectionState || JSON.stringify(d);
  if (ev.event === 'twin') return `${d.section || ''} $version ${d.version ?? '?'}: ${JSON.stringify(d.patch ?? {})}`;
  return typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data);
}

function eventTime(ev) {
  const d = ev.data || {};
  const t = Date.parse(d.enqueuedTimeUtc || d.time || '');
  return Number.isNaN(t) ? Date.now() : t;
}

export function eventsTab(ctx, { names }) {
  const chart = new TelemetryChart({ names });
  const list = h('div', { class: 'events', role: 'log', 'aria-label': 'Device events', 'aria-live': 'off' });
  const counts = { telemetry: 0, connection: 0, twin: 0 };
  const countEl = h('span', { class: 'muted small', id: 'event-count' });
  const show = { telemetry: true, connection: true, twin: true };
  let paused = false;
  let buffered = [];

  function row(ev, fresh) {
    return h('div', { class: `event${fresh ? ' fresh' : ''}`, dataset: { kind: ev.event } },
      h('span', { class: 'time' }, clockTime(eventTime(ev))),
      h('span', { class: `kind ${ev.event}` }, ev.event),
      h('span', { class: 'body' }, summary(ev)));
  }

  function updateCount() {
    countEl.textContent = `${counts.telemetry} telemetry · ${counts.connection} connection · ${counts.twin} twin`;
  }

  function empty() {
    if (!list.querySelector('.event')) {
      clear(list, h('div', { class: 'empty', id: 'events-empty' }, 'No events yet. New ones appear here as they happen.'));
    }
  }

  function applyFilter() {
    for (const r of list.querySelectorAll('.event')) r.hidden = !show[r.dataset.kind];
  }

  function push(ev, fresh = true) {
    const e = list.querySelector('#events-empty');
    if (e) e.remove();
    const r = row(ev, fresh);
    r.hidden = !show[ev.event];
    list.prepend(r);
    while (list.children.length > MAX_ROWS) list.lastChild.remove();
  }

  ctx.onEvent((ev) => {
    if (ev.event in counts) counts[ev.event] += 1;
    updateCount();
    if (ev.event === 'telemetry' && ev.data && ev.data.bodyEncoding !== 'base64') chart.add(eventTime(ev), ev.data.body);
    if (paused) buffered.push(ev);
    else push(ev);
  });

  const pauseBtn = h('button', {
    type: 'button', class: 'btn', 'aria-pressed': 'false',
    onclick: () => {
      paused = !paused;
      pauseBtn.setAttribute('aria-pressed', String(paused));
      pauseBtn.textContent = paused ? `Resume` : 'Pause';
      if (!paused) { for (const ev of buffered) push(ev, false); buffered = []; }
    },
  }, 'Pause');

  const windowSel = h('select', { id: 'chart-window', onchange: () => chart.setWindow(Number(windowSel.value)) },
    [[0, 'Automatic'], [60e3, '1 minute'], [5 * 60e3, '5 minutes'], [15 * 60e3, '15 minutes'], [3600e3, '1 hour'], [24 * 3600e3, '24 hours']]
      .map(([v, t]) => h('option', { value: String(v) }, t)));

  const fromSel = h('select', {
    id: 'events-from',
    onchange: () => {
      counts.telemetry = 0; counts.connection = 0; counts.twin = 0;
      updateCount();
      list.replaceChildren();
      empty();
      chart.reset();
      ctx.restartStream(fromSel.value);
    },
  }, h('option', { value: 'end' }, 'From now on'), h('option', { value: 'start' }, 'All retained history'));

  const filters = h('div', { class: 'field-row', role: 'group', 'aria-label': 'Show event kinds' },
    Object.keys(show).map((k) => h('label', { class: 'small', style: 'display:flex;gap:4px;align-items:center;font-weight:400' },
      h('input', { type: 'checkbox', checked: true, onchange: (ev) => { show[k] = ev.currentTarget.checked; applyFilter(); } }), k)));

  const el = h('div', null,
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', null, 'Telemetry'), h('span', { class: 'spacer' }),
        h('label', { for: 'chart-window', class: 'small' }, 'Window'), h('div', { style: 'width:140px' }, windowSel)),
      h('p', { class: 'card-sub' }, 'Every number in a JSON telemetry body is plotted against the time the hub received it.'),
      chart.el),
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', null, 'Events'), countEl, h('span', { class: 'spacer' }), filters,
        h('div', { style: 'width:190px' }, h('label', { for: 'events-from', class: 'sr-only' }, 'Replay'), fromSel), pauseBtn,
        h('button', { type: 'button', class: 'btn', onclick: () => { list.replaceChildren(); empty(); } }, 'Clear')),
      list));
  updateCount();
  empty();

  return {
    el,
    onShow() { chart.start(); },
    onHide() { chart.stop(); },
  };
}
