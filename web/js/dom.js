// DOM helpers, formatting, toasts and dialogs shared by every view.

// h('div', {class: 'x', onclick: fn, 'aria-label': 'y'}, child, 'text', [more]) builds an element.
// Attributes that are false, null or undefined are left out; `true` sets an empty attribute.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uidCounter = 0;
export function uid(prefix = 'u') {
  uidCounter += 1;
  return `${prefix}-${uidCounter}`;
}

// ---- time ----

export function isNever(iso) {
  return !iso || iso.startsWith('0001-01-01');
}

export function fmtTime(iso) {
  if (isNever(iso)) return 'never';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function relTime(iso, now = Date.now()) {
  if (isNever(iso)) return 'never';
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  const s = Math.round((now - t) / 1000);
  const abs = Math.abs(s);
  const fmt = (n, unit) => (s >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`);
  if (abs < 5) return 'just now';
  if (abs < 60) return fmt(abs, 's');
  if (abs < 3600) return fmt(Math.round(abs / 60), 'min');
  if (abs < 86400) return fmt(Math.round(abs / 3600), 'h');
  return fmt(Math.round(abs / 86400), 'd');
}

// A <time> showing a relative time with the exact one as its title.
export function timeEl(iso) {
  if (isNever(iso)) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: iso, title: fmtTime(iso) }, relTime(iso));
}

export function clockTime(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// ---- JSON ----

export function prettyJson(v) {
  return JSON.stringify(v, null, 2);
}

// A <pre> with lightly highlighted JSON. Keys starting with '$' are dimmed.
export function jsonView(value, { className = '' } = {}) {
  const pre = h('pre', { class: `json ${className}`.trim() });
  const text = value === undefined ? '' : prettyJson(value);
  const re = /("(?:[^"\\]|\\.)*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) pre.append(text.slice(last, m.index));
    if (m[1] && m[2]) {
      const meta = m[1].startsWith('"$') || m[1] === '"__t"';
      pre.append(h('span', { class: meta ? 'j-key j-meta' : 'j-key' }, m[1]), m[2]);
    } else if (m[1]) pre.append(h('span', { class: 'j-str' }, m[1]));
    else if (m[3]) pre.append(h('span', { class: 'j-num' }, m[3]));
    else pre.append(h('span', { class: 'j-lit' }, m[4]));
    last = re.lastIndex;
  }
  pre.append(text.slice(last));
  return pre;
}

export function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
}

// The JSON merge patch (RFC 7386) that turns `from` into `to`: removed keys become null, objects
// are diffed recursively, anything else (arrays included) is replaced whole. undefined: no change.
export function mergeDiff(from, to) {
  if (!isPlainObject(from) || !isPlainObject(to)) return deepEqual(from, to) ? undefined : to;
  const patch = {};
  for (const k of Object.keys(from)) if (!(k in to)) patch[k] = null;
  for (const [k, v] of Object.entries(to)) {
    if (!(k in from)) patch[k] = v;
    else if (isPlainObject(from[k]) && isPlainObject(v)) {
      const sub = mergeDiff(from[k], v);
      if (sub !== undefined) patch[k] = sub;
    } else if (!deepEqual(from[k], v)) patch[k] = v;
  }
  return Object.keys(patch).length ? patch : undefined;
}

// Every leaf a merge patch changes, as [{path, from, to}] (to === null: removed).
export function patchChanges(base, patch, prefix = '') {
  const out = [];
  for (const [k, v] of Object.entries(patch || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    const old = isPlainObject(base) ? base[k] : undefined;
    if (isPlainObject(v) && (isPlainObject(old) || old === undefined)) out.push(...patchChanges(old, v, path));
    else if (!deepEqual(old, v)) out.push({ path, from: old, to: v });
  }
  return out;
}

// Drops $metadata, $version and other '$' keys, recursively.
export function stripMeta(v) {
  if (Array.isArray(v)) return v.map(stripMeta);
  if (!isPlainObject(v)) return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripMeta(x);
  return out;
}

// ---- feedback ----

export function toast(message, kind = '') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'bad' ? 9000 : 4500);
}

// Shows `busy` on a button while the promise runs; resolves with the promise's value.
export async function withBusy(button, fn) {
  button.disabled = true;
  button.classList.add('busy');
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.classList.remove('busy');
    button.removeAttribute('aria-busy');
  }
}

// A modal dialog. body: nodes; actions: [{label, value, class}]. Resolves with the chosen value
// (or null when dismissed). `onAction(value)` may return false to keep the dialog open.
export function dialog({ title, body, actions, onAction }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const dlg = h('dialog', { 'aria-labelledby': titleId });
    const foot = h('div', { class: 'dlg-foot' });
    for (const a of actions) {
      foot.append(h('button', {
        type: 'button', class: `btn ${a.class || ''}`,
        onclick: async (ev) => {
          if (onAction) {
            const keep = await withBusy(ev.currentTarget, () => onAction(a.value));
            if (keep === false) return;
          }
          dlg.close(a.value === null ? '' : String(a.value));
          done(a.value);
        },
      }, a.label));
    }
    dlg.append(h('div', { class: 'dlg-head' }, h('h2', { id: titleId }, title)), h('div', { class: 'dlg-body' }, body), foot);
    let settled = false;
    const done = (v) => {
      if (settled) return;
      settled = true;
      dlg.remove();
      resolve(v);
    };
    dlg.addEventListener('cancel', () => done(null));
    dlg.addEventListener('close', () => done(null));
    document.body.append(dlg);
    dlg.showModal();
  });
}

export async function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false }) {
  const v = await dialog({
    title,
    body: h('p', null, message),
    actions: [
      { label: 'Cancel', value: false },
      { label: confirmLabel, value: true, class: danger ? 'btn-danger btn-solid' : 'btn-primary' },
    ],
  });
  return v === true;
}

export async function copyText(text, what = 'Value') {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied to the clipboard`, 'ok');
  } catch (_) {
    toast(`Could not copy: the browser refused clipboard access`, 'bad');
  }
}

// A secret shown as dots until revealed; copy works either way.
export function secretRow(id, text, what) {
  const shown = h('code', { class: 'mono', id, style: 'overflow-wrap:anywhere;flex:1;min-width:0' }, '••••••••••••••••••••');
  let visible = false;
  const toggle = h('button', {
    type: 'button', class: 'btn btn-small', 'aria-controls': id, 'aria-pressed': 'false',
    onclick: () => {
      visible = !visible;
      shown.textContent = visible ? text : '••••••••••••••••••••';
      toggle.textContent = visible ? 'Hide' : 'Show';
      toggle.setAttribute('aria-pressed', String(visible));
    },
  }, 'Show');
  return h('div', { class: 'secret' }, shown, toggle,
    h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(text, what) }, 'Copy'));
}

// An error box for a failed load, with the hub's error code when there is one.
export function errorBox(err, what) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', null, what), errorText(err));
}

export function errorText(err) {
  if (!err) return '';
  return err.code ? `${err.message} (${err.code}${err.status ? `, HTTP ${err.status}` : ''})` : err.message || String(err);
}
