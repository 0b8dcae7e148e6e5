// The device page: identity and keys, one tab per PnP component, the twin, live events with the
// telemetry chart, and cloud-to-device messages. One event stream per page keeps it all live.
import * as api from '../api.js';
import * as auth from '../auth.js';
import { h, clear, timeEl, toast, withBusy, confirmDialog, errorBox, errorText, isNever, secretRow } from '../dom.js';
import { ModelSet, hasType, label } from '../dtdl.js';
import { componentPanel } from '../components.js';
import { openEvents } from '../sse.js';
import { twinTab } from './twin.js';
import { eventsTab } from './events.js';
import { messagesTab } from './messages.js';

function connectionPill(state) {
  const on = state === 'Connected';
  return h('span', { class: `pill ${on ? 'ok' : ''}`, id: 'conn-pill' }, on ? 'Connected' : 'Disconnected');
}

function statusPill(status) {
  return h('span', { class: `pill plain ${status === 'disabled' ? 'bad' : 'info'}` }, status === 'disabled' ? 'Disabled' : 'Enabled');
}

function identityCard(d) {
  const rows = [
    ['Device ID', h('code', null, d.deviceId)],
    ['Status', [statusPill(d.status), d.statusReason ? h('span', { class: 'muted' }, ` ${d.statusReason}`) : null]],
    ['Status changed', timeEl(d.statusUpdatedTime)],
    ['Connection', connectionPill(d.connectionState)],
    ['Connection changed', timeEl(d.connectionStateUpdatedTime)],
    ['Last activity', timeEl(d.lastActivityTime)],
    ['Authentication', d.authentication ? d.authentication.type : '—'],
    ['C2D queue', `${d.cloudToDeviceMessageCount ?? 0} waiting`],
    ['Generation ID', h('code', null, d.generationId || '—')],
    ['Etag', h('code', null, d.etag || '—')],
  ];
  return h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', null, 'Identity')),
    h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
}

function keysCard(d, host) {
  const cred = d.authentication || {};
  const body = [];
  if (cred.type === 'sas' && cred.symmetricKey) {
    const cs = (k) => `HostName=${host};DeviceId=${d.deviceId};SharedAccessKey=${k}`;
    body.push(h('dl', { class: 'kv' },
      h('dt', null, 'Primary key'), h('dd', null, secretRow('key-primary', cred.symmetricKey.primaryKey, 'Primary key')),
      h('dt', null, 'Secondary key'), h('dd', null, secretRow('key-secondary', cred.symmetricKey.secondaryKey, 'Secondary key')),
      h('dt', null, 'Connection string'), h('dd', null, secretRow('cs-primary', cs(cred.symmetricKey.primaryKey), 'Connection string')),
      h('dt', null, 'Secondary connection string'), h('dd', null, secretRow('cs-secondary', cs(cred.symmetricKey.secondaryKey), 'Secondary connection string'))));
  } else if (cred.x509Thumbprint) {
    body.push(h('dl', { class: 'kv' },
      h('dt', null, 'Primary thumbprint'), h('dd', null, h('code', null, cred.x509Thumbprint.primaryThumbprint || '—')),
      h('dt', null, 'Secondary thumbprint'), h('dd', null, h('code', null, cred.x509Thumbprint.secondaryThumbprint || '—'))));
  } else body.push(h('p', { class: 'muted' }, 'This device authenticates through another authority.'));
  return h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', null, 'Keys and connection strings')),
    h('p', { class: 'card-sub' }, 'Hidden until you show them. Anyone with a key can act as this device.'), body);
}

export function renderDevice(root, deviceId, initialTab) {
  const state = { device: null, twin: null, models: new ModelSet([]), stream: null, destroyed: false };
  const tabs = []; // {id, title, panel, button, onShow?, onHide?}
  let selected = null;
  let twinTimer = null;
  let deviceTimer = null;
  const consumers = []; // fns(event) fed by the stream
  const liveEl = h('span', { class: 'live', role: 'status', id: 'live-state' }, 'Connecting…');
  let streamFrom = 'end';

  clear(root, h('div', { class: 'loading' }, `Loading ${deviceId}…`));

  const ctx = {
    deviceId,
    get models() { return state.models; },
    get twin() { return state.twin; },
    get device() { return state.device; },
    refreshTwin,
    refreshDevice,
    async applyDesired(component, name, value) {
      const desired = component === null ? { [name]: value } : { [component]: { __t: 'c', [name]: value } };
      const t = await api.patchTwin(deviceId, { properties: { desired } });
      setTwin(t);
    },
    async patchTwin(patch, etag) {
      const t = await api.patchTwin(deviceId, patch, etag);
      setTwin(t);
      return t;
    },
    invoke: (methodName, payload) => api.invokeMethod(deviceId, methodName, payload),
    onEvent(fn) { consumers.push(fn); },
    restartStream(from) { streamFrom = from; startStream(); },
  };

  const updaters = []; // fns(twin)
  const deviceUpdaters = []; // fns(device)
  function setTwin(t) {
    if (!t || state.destroyed) return;
    state.twin = t;
    for (const u of updaters) u(t);
  }

  async function refreshTwin() {
    try {
      setTwin(await api.getTwin(deviceId));
    } catch (e) {
      if (!state.destroyed) toast(`Could not refresh the twin: ${errorText(e)}`, 'bad');
    }
  }

  async function refreshDevice() {
    try {
      const d = await api.getDevice(deviceId);
      if (state.destroyed) return;
      state.device = d;
      renderHeader();
      renderOverview();
      for (const u of deviceUpdaters) u(d);
    } catch (e) {
      if (!state.destroyed) toast(`Could not refresh the device: ${errorText(e)}`, 'bad');
    }
  }

  function later(which, fn, ms) {
    if (which === 'twin') { clearTimeout(twinTimer); twinTimer = setTimeout(fn, ms); } else { clearTimeout(deviceTimer); deviceTimer = setTimeout(fn, ms); }
  }

  function startStream() {
    if (state.stream) state.stream.close();
    state.stream = openEvents({
      deviceId,
      from: streamFrom,
      onEvent(ev) {
        if (ev.event === 'twin') later('twin', refreshTwin, 200);
        if (ev.event === 'connection') later('device', refreshDevice, 200);
        for (const fn of consumers) fn(ev);
      },
      onState(s, detail) {
        liveEl.className = `live ${s === 'live' ? 'on' : s === 'retrying' ? 'retry' : ''}`;
        liveEl.textContent = { connecting: 'Connecting…', live: 'Live', retrying: 'Reconnecting…', failed: 'Events unavailable' }[s] || s;
        liveEl.title = detail || '';
        if (s === 'live') {
          // Catch up with whatever changed while the stream was down.
          later('twin', refreshTwin, 0);
          later('device', refreshDevice, 0);
        }
      },
    });
  }

  // ---- header ----
  const head = h('div', { class: 'page-head' });
  function renderHeader() {
    const d = state.device;
    const t = state.twin || {};
    const toggle = h('button', {
      type: 'button', class: 'btn', id: 'toggle-status',
      onclick: (ev) => withBusy(ev.currentTarget, () => setStatus(d.status === 'disabled' ? 'enabled' : 'disabled')),
    }, d.status === 'disabled' ? 'Enable' : 'Disable');
    clear(head,
      h('div', { class: 'titles' },
        h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Devices'), ' / ', deviceId),
        h('div', { class: 'title-line' }, h('h1', { id: 'device-title' }, deviceId), connectionPill(d.connectionState), statusPill(d.status)),
        h('div', { class: 'subline' },
          h('span', null, 'Model ', t.modelId ? h('code', null, t.modelId) : h('span', null, 'none announced')),
          h('span', null, 'Last activity ', timeEl(d.lastActivityTime)),
          liveEl)),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'btn', onclick: (ev) => withBusy(ev.currentTarget, () => Promise.all([refreshDevice(), refreshTwin()])) }, 'Refresh'),
        toggle,
        h('button', { type: 'button', class: 'btn btn-danger', onclick: remove }, 'Delete')));
  }

  async function setStatus(status) {
    if (status === 'disabled' && !(await confirmDialog({
      title: `Disable ${deviceId}?`, message: 'The device is disconnected now and refused until it is enabled again.',
      confirmLabel: 'Disable', danger: true,
    }))) return;
    try {
      state.device = await api.updateDevice({ ...state.device, status });
      toast(`${deviceId} ${status}`, 'ok');
      renderHeader();
      renderOverview();
    } catch (e) {
      toast(`Could not change the status: ${errorText(e)}`, 'bad');
    }
  }

  async function remove() {
    if (!(await confirmDialog({
      title: `Delete ${deviceId}?`, message: 'Its identity, keys, twin and queued messages are deleted, and a connected device is dropped. This cannot be undone.',
      confirmLabel: 'Delete device', danger: true,
    }))) return;
    try {
      await api.deleteDevice(deviceId);
      toast(`${deviceId} deleted`, 'ok');
      location.hash = '#/';
    } catch (e) {
      toast(`Could not delete: ${errorText(e)}`, 'bad');
    }
  }

  // ---- tabs ----
  const tabList = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Device sections' });
  const panels = h('div');
  const overviewPanel = h('div');

  function renderOverview() {
    const d = state.device;
    const modelId = state.twin && state.twin.modelId;
    const notes = [];
    if (modelId && !state.models.iface(modelId)) {
      notes.push(`This device announces the model ${modelId}, which the hub does not know, so its components are not shown. ` +
        'Add the DTDL files to the hub\'s models folder.');
    }
    if (isNever(d.lastActivityTime) && d.connectionState !== 'Connected') {
      notes.push('This device has not connected yet. Give it its connection string (below) to bring it online.');
    }
    clear(overviewPanel, notes.map((n) => h('div', { class: 'card', style: 'margin-bottom:16px' }, n)),
      h('div', { class: 'grid-2' }, identityCard(d), keysCard(d, ctx.host)));
  }

  function addTab(id, title, panel, hooks = {}) {
    const button = h('button', {
      type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `panel-${id}`, 'aria-selected': 'false', tabindex: '-1',
      onclick: () => { location.hash = `#/devices/${encodeURIComponent(deviceId)}/${id}`; },
    }, title);
    const wrap = h('div', { role: 'tabpanel', id: `panel-${id}`, 'aria-labelledby': `tab-${id}`, hidden: true }, panel);
    tabList.append(button);
    panels.append(wrap);
    tabs.push({ id, title, button, wrap, ...hooks });
  }

  tabList.addEventListener('keydown', (ev) => {
    const i = tabs.findIndex((t) => t === selected);
    let j = null;
    if (ev.key === 'ArrowRight') j = (i + 1) % tabs.length;
    else if (ev.key === 'ArrowLeft') j = (i - 1 + tabs.length) % tabs.length;
    else if (ev.key === 'Home') j = 0;
    else if (ev.key === 'End') j = tabs.length - 1;
    if (j === null) return;
    ev.preventDefault();
    tabs[j].button.focus();
    tabs[j].button.click();
  });

  function selectTab(id) {
    const t = tabs.find((x) => x.id === id) || tabs[0];
    if (selected === t) return;
    if (selected) {
      selected.button.setAttribute('aria-selected', 'false');
      selected.button.tabIndex = -1;
      selected.wrap.hidden = true;
      if (selected.onHide) selected.onHide();
    }
    selected = t;
    t.button.setAttribute('aria-selected', 'true');
    t.button.tabIndex = 0;
    t.wrap.hidden = false;
    if (t.onShow) t.onShow();
  }

  (async () => {
    let models;
    try {
      const [device, twin, list] = await Promise.all([
        api.getDevice(deviceId), api.getTwin(deviceId), api.getModels().catch(() => []),
      ]);
      state.device = device;
      state.twin = twin;
      models = new ModelSet(list);
      state.models = models;
    } catch (e) {
      if (state.destroyed) return;
      clear(root, h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Devices'), ' / ', deviceId),
        errorBox(e, e.status === 404 ? `There is no device ${deviceId}` : `Could not load ${deviceId}`),
        h('a', { class: 'btn', href: '#/' }, 'Back to the device list'));
      return;
    }
    if (state.destroyed) return;
    const session = auth.hub.current();
    ctx.host = session ? session.host : location.hostname;

    renderHeader();
    renderOverview();
    addTab('overview', 'Overview', overviewPanel);

    const comps = state.twin.modelId ? models.components(state.twin.modelId) : [];
    const telemetryNames = new Map();
    for (const c of comps) {
      const panel = componentPanel(c, ctx);
      updaters.push(panel.update);
      addTab(c.name === null ? 'root' : c.name, c.title, panel.el);
      for (const t of ((c.iface && c.iface.contents) || []).filter((x) => hasType(x, 'Telemetry'))) {
        telemetryNames.set(t.name, { label: label(t), unit: t.unit || '' });
      }
    }

    const twin = twinTab(ctx);
    updaters.push(twin.update);
    addTab('twin', 'Twin', twin.el);

    const events = eventsTab(ctx, { names: telemetryNames });
    addTab('events', 'Telemetry & events', events.el, { onShow: events.onShow, onHide: events.onHide });

    const messages = messagesTab(ctx);
    deviceUpdaters.push(messages.update);
    addTab('messages', 'Messages', messages.el);

    clear(root, head, tabList, panels);
    setTwin(state.twin);
    selectTab(initialTab);
    startStream();
  })();

  return {
    selectTab,
    destroy() {
      state.destroyed = true;
      if (state.stream) state.stream.close();
      clearTimeout(twinTimer);
      clearTimeout(deviceTimer);
      for (const t of tabs) if (t.onHide) t.onHide();
    },
  };
}
