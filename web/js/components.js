// One panel per IoT Plug and Play component, rendered from its DTDL interface: read-only
// properties displayed, writable ones as forms with their acknowledgement, commands as buttons.
import { h, clear, jsonView, toast, withBusy, confirmDialog, errorText, clockTime, mergeDiff, isPlainObject } from './dom.js';
import { hasType, label, description } from './dtdl.js';
import { editorFor } from './forms.js';
import { valueView } from './values.js';

const DANGEROUS = /reset|wipe|erase|delete/i;

// The acknowledgement of a writable property, following the PnP convention:
// reported {value, ac, av, ad}. A desired change is pending until the device acknowledges a
// version at least as new as the one that last changed this property.
export function ackState(desired, reported, requiredVersion) {
  const hasAck = isPlainObject(reported) && typeof reported.ac === 'number';
  if (!hasAck) {
    if (desired === undefined) return { state: 'none', text: 'Not set', cls: '' };
    return { state: 'pending', text: 'Pending', cls: 'warn', reason: 'Waiting for the device to acknowledge.' };
  }
  const { ac, av, ad } = reported;
  const reason = typeof ad === 'string' && ad ? ad : '';
  // No desired value: the device reports its own state (203 by convention); nothing to acknowledge.
  if (desired === undefined && ac >= 200 && ac < 300) return { state: 'none', text: 'Device value', cls: '', reason };
  if (desired !== undefined && typeof av === 'number' && av < requiredVersion) {
    return { state: 'pending', text: 'Pending', cls: 'warn', reason: `Waiting for the device: it last acknowledged version ${av}, the desired value is version ${requiredVersion}.` };
  }
  if (ac === 202) return { state: 'pending', text: 'Pending', cls: 'warn', reason: reason || 'The device is applying it.' };
  if (ac >= 200 && ac < 300) return { state: 'ok', text: 'OK', cls: 'ok', reason };
  return { state: 'failed', text: `Failed (${ac})`, cls: 'bad', reason: reason || `The device answered ${ac}.` };
}

function section(twin, which, comp) {
  const root = (twin && twin.properties && twin.properties[which]) || {};
  if (comp === null) return root;
  return isPlainObject(root[comp]) ? root[comp] : {};
}

function requiredVersion(twin, comp, prop) {
  const desired = (twin && twin.properties && twin.properties.desired) || {};
  let meta = desired.$metadata || {};
  if (comp !== null) meta = meta[comp] || {};
  const m = meta[prop];
  return m && typeof m.$lastUpdatedVersion === 'number' ? m.$lastUpdatedVersion : desired.$version || 0;
}

// ctx: {deviceId, models, applyDesired(component, name, patchValue), invoke(methodName, payload)}
export function componentPanel(comp, ctx) {
  const { models } = ctx;
  const key = comp.name === null ? '' : comp.name;
  const el = h('div', { class: 'component', dataset: { component: key } });
  if (comp.missing || !comp.iface) {
    el.append(h('div', { class: 'card' }, h('p', null, `The hub does not know the interface ${comp.ifaceId} of this component. `,
      'Add its DTDL file to the hub\'s models folder to get forms and commands for it.')));
    return { el, update() {} };
  }
  const contents = comp.iface.contents || [];
  const readOnly = contents.filter((c) => hasType(c, 'Property') && !c.writable);
  const writable = contents.filter((c) => hasType(c, 'Property') && c.writable);
  const commands = contents.filter((c) => hasType(c, 'Command'));
  const telemetry = contents.filter((c) => hasType(c, 'Telemetry'));
  const updaters = [];

  el.append(h('div', { class: 'section-title' }, h('h2', null, comp.title),
    h('span', { class: 'model-id' }, comp.name === null ? comp.ifaceId : `${comp.name} · ${comp.ifaceId}`)));
  const desc = comp.description || description(comp.iface);
  if (desc) el.append(h('p', { class: 'muted small' }, desc));

  if (readOnly.length) el.append(readOnlySection(readOnly, comp, models, updaters));
  if (writable.length) {
    el.append(h('div', { class: 'section-title' }, h('h3', null, 'Settings'),
      h('span', { class: 'muted small' }, 'Desired values you set, beside what the device reports and its acknowledgement')));
    el.append(h('div', { class: 'props' }, writable.map((p) => writableCard(p, comp, ctx, updaters))));
  }
  if (commands.length) {
    el.append(h('div', { class: 'section-title' }, h('h3', null, 'Commands'),
      h('span', { class: 'muted small' }, 'Direct methods, answered by the device')));
    el.append(h('div', { class: 'commands' }, commands.map((c) => commandCard(c, comp, ctx))));
  }
  if (telemetry.length) {
    el.append(h('div', { class: 'section-title' }, h('h3', null, 'Telemetry'),
      h('span', { class: 'muted small' }, 'Plotted live on the Telemetry & events tab')));
    el.append(h('div', { class: 'card' }, h('dl', { class: 'kv' }, telemetry.map((t) => [
      h('dt', null, label(t)), h('dd', null, h('code', null, t.name), ` · ${typeof t.schema === 'string' ? t.schema : 'object'}`,
        t.unit ? ` · ${t.unit}` : '', description(t) ? h('span', { class: 'muted' }, ` — ${description(t)}`) : null)]))));
  }
  return { el, update: (twin) => updaters.forEach((u) => u(twin)) };
}

function readOnlySection(props, comp, models, updaters) {
  const simple = props.filter((p) => typeof models.schema(p.schema) === 'string');
  const complex = props.filter((p) => typeof models.schema(p.schema) !== 'string');
  const grid = h('div', { class: 'reported-grid' });
  if (simple.length) {
    const dl = h('dl', { class: 'kv' });
    const dds = simple.map((p) => {
      const dd = h('dd', { dataset: { prop: p.name } });
      dl.append(h('dt', { title: description(p) || p.name }, label(p)), dd);
      return { p, dd };
    });
    grid.append(h('div', { class: 'card' }, dl));
    let last = null;
    updaters.push((twin) => {
      const rep = section(twin, 'reported', comp.name);
      const sig = JSON.stringify(simple.map((p) => rep[p.name]));
      if (sig === last) return;
      last = sig;
      for (const { p, dd } of dds) clear(dd, valueView(rep[p.name], p.schema, models, p.name));
    });
  }
  for (const p of complex) {
    const body = h('div', { dataset: { prop: p.name } });
    grid.append(h('div', { class: 'card', dataset: { prop: `${comp.name || ''}.${p.name}` } },
      h('div', { class: 'card-head' }, h('h3', null, label(p)), h('span', { class: 'model-id' }, p.name)),
      description(p) ? h('p', { class: 'card-sub' }, description(p)) : null, body));
    let last = null;
    updaters.push((twin) => {
      const v = section(twin, 'reported', comp.name)[p.name];
      const sig = JSON.stringify(v) ?? 'undefined';
      if (sig === last) return;
      last = sig;
      clear(body, valueView(v, p.schema, models, p.name));
    });
  }
  return h('div', null, h('div', { class: 'section-title' }, h('h3', null, 'Reported by the device')), grid);
}

function writableCard(p, comp, ctx, updaters) {
  const { models } = ctx;
  const schema = models.schema(p.schema);
  const editor = editorFor(schema, models, { legend: '' });
  const primitive = typeof schema === 'string' || hasType(schema, 'Enum');
  const formBody = primitive
    ? h('div', { class: 'field' }, h('label', { for: editor.el.id }, 'Value'), editor.el)
    : editor.el;
  if (!primitive) editor.el.classList.add('bare');
  const pill = h('span', { class: 'pill', dataset: { ack: 'none' }, role: 'status' }, 'Not set');
  const reportedBox = h('div', { class: 'value' });
  const reason = h('div', { class: 'ack-reason', hidden: true });
  const versions = h('div', { class: 'muted small', style: 'margin-top:6px' });
  const err = h('div', { class: 'form-error', role: 'alert' });
  const apply = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply');
  let dirty = false;
  let desiredValue;
  const revert = h('button', {
    type: 'button', class: 'btn', onclick: () => { editor.set(desiredValue); dirty = false; err.textContent = ''; },
  }, 'Revert');
  const form = h('form', {
    novalidate: true,
    oninput: () => { dirty = true; },
    onchange: () => { dirty = true; },
    onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      const problem = editor.validate();
      if (problem) { err.textContent = `Check the form: ${problem}`; return; }
      const value = editor.get();
      let patchValue = mergeDiff(desiredValue, value);
      if (patchValue === undefined) patchValue = value; // unchanged: apply the same value again
      if (patchValue === undefined) { err.textContent = 'Nothing to apply: fill in a value first.'; return; }
      if (value === undefined) patchValue = null;
      await withBusy(apply, async () => {
        try {
          await ctx.applyDesired(comp.name, p.name, patchValue);
          dirty = false;
          toast(`${label(p)}: desired value sent to the device`, 'ok');
        } catch (e) {
          err.textContent = errorText(e);
        }
      });
    },
  }, formBody, err, h('div', { class: 'form-actions' }, apply, revert));

  updaters.push((twin) => {
    const desired = section(twin, 'desired', comp.name)[p.name];
    const reported = section(twin, 'reported', comp.name)[p.name];
    const need = requiredVersion(twin, comp.name, p.name);
    desiredValue = desired;
    if (!dirty) editor.set(desired);
    const ack = ackState(desired, reported, need);
    pill.className = `pill ${ack.cls}`;
    pill.dataset.ack = ack.state;
    pill.textContent = ack.text;
    const isAck = isPlainObject(reported) && 'value' in reported;
    clear(reportedBox, valueView(isAck ? reported.value : reported, p.schema, models, p.name));
    reason.hidden = !ack.reason;
    reason.className = `ack-reason ${ack.cls}`;
    reason.textContent = ack.reason || '';
    versions.textContent = isAck && typeof reported.av === 'number'
      ? `Acknowledged version ${reported.av} with ${reported.ac}${desired !== undefined ? ` · desired version ${need}` : ''}`
      : desired !== undefined ? `Desired version ${need}` : '';
  });

  return h('section', { class: 'prop', dataset: { prop: `${comp.name || ''}.${p.name}` }, 'aria-label': label(p) },
    h('div', { class: 'prop-head' }, h('h3', null, label(p)), h('span', { class: 'name' }, p.name), h('span', { class: 'spacer' }), pill),
    description(p) ? h('p', { class: 'prop-desc' }, description(p)) : null,
    h('div', { class: 'prop-body' },
      h('div', { class: 'desired' }, h('h4', null, 'Desired'), form),
      h('div', { class: 'reported' }, h('h4', null, 'Reported'), reportedBox, reason, versions)));
}

function commandCard(c, comp, ctx) {
  const { models } = ctx;
  const methodName = comp.name === null ? c.name : `${comp.name}*${c.name}`;
  const req = c.request ? models.schema(c.request.schema) : null;
  let editor = null;
  let formBody = null;
  if (c.request) {
    editor = editorFor(req, models, { legend: label(c.request) !== c.request.name ? label(c.request) : 'Payload' });
    const primitive = typeof req === 'string' || hasType(req, 'Enum');
    formBody = primitive
      ? h('div', { class: 'field' }, h('label', { for: editor.el.id }, label(c.request)), editor.el)
      : editor.el;
    editor.set(undefined);
  }
  const response = h('div', { class: 'response', 'aria-live': 'polite', hidden: true });
  const button = h('button', { type: 'submit', class: `btn ${DANGEROUS.test(c.name) ? 'btn-danger' : 'btn-primary'}` },
    label(c) !== c.name ? label(c) : `Invoke ${c.name}`);
  const form = h('form', {
    novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      let payload = null;
      if (editor) {
        const problem = editor.validate();
        if (problem) { showError(`Check the payload: ${problem}`); return; }
        payload = editor.get();
        if (payload === undefined) payload = null;
      }
      if (DANGEROUS.test(c.name) && !(await confirmDialog({
        title: `${label(c)}?`, message: `This sends ${methodName} to ${ctx.deviceId}. ${description(c)}`,
        confirmLabel: label(c), danger: true,
      }))) return;
      await withBusy(button, async () => {
        const started = Date.now();
        try {
          const r = await ctx.invoke(methodName, payload);
          const ok = r.status >= 200 && r.status < 300;
          response.hidden = false;
          clear(response,
            h('div', { class: 'field-row' },
              h('span', { class: `pill ${ok ? (r.status === 202 ? 'info' : 'ok') : 'bad'}`, dataset: { status: String(r.status) } }, `Status ${r.status}`),
              h('span', { class: 'muted' }, `${clockTime(Date.now())} · ${Date.now() - started} ms`)),
            r.payload === undefined || r.payload === null ? h('p', { class: 'muted' }, 'No payload.') : jsonView(r.payload));
        } catch (e) {
          showError(errorText(e));
        }
      });
    },
  }, formBody, h('div', { class: 'form-actions' }, button, h('code', { class: 'muted small' }, methodName)));

  function showError(text) {
    response.hidden = false;
    clear(response, h('div', { class: 'form-error', role: 'alert' }, text));
  }

  return h('div', { class: 'command', dataset: { command: methodName } },
    h('h3', null, label(c)),
    description(c) ? h('p', { class: 'desc' }, description(c)) : null,
    form, response);
}
