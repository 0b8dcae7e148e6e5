// The device list: search and filters compose an IoT Hub query (POST /devices/query), pages of 50
// follow x-ms-continuation; create a device from here.
import * as api from '../api.js';
import { h, clear, timeEl, toast, withBusy, dialog, errorBox, errorText } from '../dom.js';

const FILTERS_KEY = 'iotdm.listFilters';
const PAGE = 50;
const REFRESH_MS = 10000;

function loadFilters() {
  try {
    return { search: '', connection: '', status: '', where: '', ...JSON.parse(sessionStorage.getItem(FILTERS_KEY) || '{}') };
  } catch (_) {
    return { search: '', connection: '', status: '', where: '' };
  }
}

// The WHERE clause for the filters, or '' for none.
export function whereClause(f) {
  const conds = [];
  if (f.search.trim()) conds.push(`CONTAINS(deviceId, ${api.qstr(f.search.trim())}, true)`);
  if (f.connection) conds.push(`connectionState = ${api.qstr(f.connection)}`);
  if (f.status) conds.push(`status = ${api.qstr(f.status)}`);
  if (f.where.trim()) conds.push(conds.length ? `(${f.where.trim()})` : f.where.trim());
  return conds.length ? ` WHERE ${conds.join(' AND ')}` : '';
}

function connectionPill(state) {
  const on = state === 'Connected';
  return h('span', { class: `pill ${on ? 'ok' : ''}` }, on ? 'Connected' : 'Disconnected');
}

function statusPill(status) {
  return h('span', { class: `pill plain ${status === 'disabled' ? 'bad' : ''}` }, status || 'unknown');
}

function tagsText(tags) {
  const entries = Object.entries(tags || {});
  if (!entries.length) return h('span', { class: 'muted' }, '—');
  const text = entries.map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
  return h('span', { class: 'small', title: text }, text.length > 60 ? `${text.slice(0, 57)}…` : text);
}

export function renderDeviceList(root) {
  const f = loadFilters();
  let items = [];
  let continuation = null;
  let total = null;
  let generation = 0; // drops answers to superseded queries
  let timer = null;
  let destroyed = false;

  const search = h('input', {
    type: 'search', id: 'f-search', placeholder: 'Device ID contains…', value: f.search, autocomplete: 'off',
  });
  const connection = h('select', { id: 'f-conn' },
    h('option', { value: '' }, 'Any'), h('option', { value: 'Connected' }, 'Connected'), h('option', { value: 'Disconnected' }, 'Disconnected'));
  connection.value = f.connection;
  const status = h('select', { id: 'f-status' },
    h('option', { value: '' }, 'Any'), h('option', { value: 'enabled' }, 'Enabled'), h('option', { value: 'disabled' }, 'Disabled'));
  status.value = f.status;
  const where = h('input', {
    type: 'text', id: 'f-where', value: f.where, spellcheck: 'false', autocomplete: 'off',
    placeholder: "e.g. tags.site = 'lab' OR properties.reported.dm.timeInfo.value.timeZone = 'UTC'",
    'aria-describedby': 'f-where-hint',
  });
  const queryCode = h('code', { id: 'query-text' });
  const tbody = h('tbody');
  const foot = h('div', { class: 'list-foot' });
  const errorSlot = h('div');
  const refreshBtn = h('button', { type: 'button', class: 'btn', onclick: (ev) => withBusy(ev.currentTarget, () => load()) }, 'Refresh');

  function currentFilters() {
    return { search: search.value, connection: connection.value, status: status.value, where: where.value };
  }

  function queryText() {
    return `SELECT * FROM devices${whereClause(currentFilters())}`;
  }

  function row(d) {
    const href = `#/devices/${encodeURIComponent(d.deviceId)}`;
    return h('tr', { dataset: { deviceId: d.deviceId } },
      h('td', { class: 'id' }, h('a', { href }, d.deviceId)),
      h('td', null, connectionPill(d.connectionState)),
      h('td', null, statusPill(d.status)),
      h('td', null, timeEl(d.lastActivityTime)),
      h('td', null, d.modelId ? h('span', { class: 'model-id' }, d.modelId) : h('span', { class: 'muted' }, '—')),
      h('td', null, tagsText(d.tags)),
      h('td', { class: 'num' }, String(d.cloudToDeviceMessageCount ?? 0)));
  }

  function renderRows() {
    if (!items.length) {
      clear(tbody, h('tr', null, h('td', { colspan: 7, class: 'empty' },
        whereClause(currentFilters()) ? 'No device matches these filters.' : 'No devices yet. Create one with “New device”.')));
    } else clear(tbody, items.map(row));
    clear(foot,
      h('span', { id: 'list-count' }, total === null ? `${items.length} shown` : `${items.length} of ${total} shown`),
      continuation
        ? h('button', { type: 'button', class: 'btn btn-small', onclick: (ev) => withBusy(ev.currentTarget, () => more()) }, 'Load more')
        : h('span'));
  }

  async function load() {
    const gen = ++generation;
    const text = queryText();
    queryCode.textContent = text;
    sessionStorage.setItem(FILTERS_KEY, JSON.stringify(currentFilters()));
    try {
      const [page, count] = await Promise.all([
        api.query(text, { pageSize: PAGE }),
        api.query(`SELECT COUNT() AS n FROM devices${whereClause(currentFilters())}`).catch(() => null),
      ]);
      if (gen !== generation || destroyed) return;
      items = page.items;
      continuation = page.continuation;
      total = count && count.items[0] ? count.items[0].n : null;
      clear(errorSlot);
      where.removeAttribute('aria-invalid');
      renderRows();
    } catch (e) {
      if (gen !== generation || destroyed) return;
      if (e.status === 400) where.setAttribute('aria-invalid', 'true');
      clear(errorSlot, errorBox(e, e.status === 400 ? 'The hub could not run this query' : 'Could not load the devices'));
    }
  }

  async function more() {
    const gen = generation;
    try {
      const page = await api.query(queryText(), { continuation, pageSize: PAGE });
      if (gen !== generation || destroyed) return;
      items = items.concat(page.items);
      continuation = page.continuation;
      renderRows();
    } catch (e) {
      toast(`Could not load more devices: ${errorText(e)}`, 'bad');
    }
  }

  let debounce = null;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(load, 250);
  });
  connection.addEventListener('change', load);
  status.addEventListener('change', load);
  where.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); load(); } });
  where.addEventListener('change', load);

  async function newDevice() {
    const input = h('input', { type: 'text', id: 'new-id', required: true, autocomplete: 'off', spellcheck: 'false', maxlength: 128 });
    const err = h('div', { class: 'form-error', role: 'alert' });
    const body = h('div', { class: 'field' },
      h('label', { for: 'new-id' }, 'Device ID'), input,
      h('span', { class: 'hint' }, 'Up to 128 characters: letters, digits and - . + % _ # * ? ! ( ) , : = @ $ \''), err);
    setTimeout(() => input.focus(), 0);
    let created = null;
    await dialog({
      title: 'New device',
      body,
      actions: [{ label: 'Cancel', value: null }, { label: 'Create device', value: 'create', class: 'btn-primary' }],
      onAction: async (v) => {
        if (v !== 'create') return true;
        const id = input.value.trim();
        if (!id) {
          err.textContent = 'Enter a device ID.';
          input.focus();
          return false;
        }
        try {
          created = await api.createDevice(id);
          return true;
        } catch (e) {
          err.textContent = errorText(e);
          input.setAttribute('aria-invalid', 'true');
          return false;
        }
      },
    });
    if (created) {
      toast(`Device ${created.deviceId} created with generated keys`, 'ok');
      location.hash = `#/devices/${encodeURIComponent(created.deviceId)}`;
    }
  }

  clear(root,
    h('div', { class: 'page-head' },
      h('div', { class: 'titles' }, h('h1', null, 'Devices'),
        h('div', { class: 'subline' }, 'Every device registered in this hub. Filters run as an IoT Hub query.')),
      h('div', { class: 'actions' }, refreshBtn,
        h('button', { type: 'button', class: 'btn btn-primary', onclick: newDevice }, '+ New device'))),
    h('form', { class: 'toolbar', role: 'search', onsubmit: (ev) => { ev.preventDefault(); load(); } },
      h('div', { class: 'field grow' }, h('label', { for: 'f-search' }, 'Search'), search),
      h('div', { class: 'field' }, h('label', { for: 'f-conn' }, 'Connection'), connection),
      h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), status),
      h('div', { class: 'field grow' }, h('label', { for: 'f-where' }, 'Condition (query language)'), where,
        h('span', { class: 'sr-only', id: 'f-where-hint' }, 'A WHERE condition of the IoT Hub query language, applied with Enter'))),
    h('p', { class: 'query-line' }, h('span', null, 'Query'), queryCode),
    errorSlot,
    h('div', { class: 'card list-card' },
      h('div', { class: 'table-wrap' },
        h('table', { 'aria-label': 'Devices' },
          h('thead', null, h('tr', null,
            h('th', { scope: 'col' }, 'Device'), h('th', { scope: 'col' }, 'Connection'), h('th', { scope: 'col' }, 'Status'),
            h('th', { scope: 'col' }, 'Last activity'), h('th', { scope: 'col' }, 'Model'), h('th', { scope: 'col' }, 'Tags'),
            h('th', { scope: 'col', title: 'Cloud-to-device messages waiting' }, 'C2D queue'))),
          tbody)),
      foot));
  clear(tbody, h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'Loading…')));
  load();

  // Keep connection states fresh while the first page is all that is shown.
  timer = setInterval(() => {
    if (document.visibilityState === 'visible' && items.length <= PAGE && document.activeElement !== where) load();
  }, REFRESH_MS);

  return {
    destroy() {
      destroyed = true;
      clearInterval(timer);
      clearTimeout(debounce);
    },
  };
}
