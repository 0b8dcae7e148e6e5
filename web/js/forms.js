// Form editors built from DTDL schemas: strings, numbers, booleans, enums as selects, arrays as
// lists, objects as field groups, maps as key/value rows, anything else as JSON.
// Every editor is {el, get(), set(value), validate()}: get() returns undefined for "not set".
import { h, uid, isPlainObject, prettyJson } from './dom.js';
import { label, description, isReportedOnly, hasType } from './dtdl.js';

const PLACEHOLDERS = {
  dateTime: '2030-01-15T13:30:00Z', date: '2030-01-15', time: '13:30:00', duration: 'PT1H30M',
};

function primitiveEditor(kind, id, describedBy) {
  let original;
  if (kind === 'boolean') {
    const sel = h('select', { id, 'aria-describedby': describedBy },
      h('option', { value: '' }, '— not set —'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
    return {
      el: sel,
      set(v) { original = v; sel.value = v === true ? 'true' : v === false ? 'false' : ''; },
      get() { return sel.value === '' ? undefined : sel.value === 'true'; },
      validate() { return null; },
    };
  }
  const numeric = ['integer', 'long', 'double', 'float'].includes(kind);
  const integer = kind === 'integer' || kind === 'long';
  const input = h('input', {
    id, type: numeric ? 'number' : 'text', step: numeric ? (integer ? '1' : 'any') : null,
    placeholder: PLACEHOLDERS[kind] || (numeric ? (integer ? 'integer' : 'number') : ''),
    spellcheck: 'false', autocomplete: 'off', 'aria-describedby': describedBy,
  });
  return {
    el: input,
    set(v) { original = v; input.value = v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v); },
    get() {
      const t = input.value;
      if (!numeric) return t === '' ? (typeof original === 'string' ? '' : undefined) : t;
      if (t.trim() === '') return undefined;
      return Number(t);
    },
    validate() {
      input.removeAttribute('aria-invalid');
      let msg = null;
      if (numeric && input.value.trim() !== '') {
        const n = Number(input.value);
        if (!Number.isFinite(n) || input.validity.badInput) msg = 'enter a number';
        else if (integer && !Number.isSafeInteger(n)) msg = 'enter a whole number';
      } else if (numeric && input.validity.badInput) msg = 'enter a number';
      if (msg) input.setAttribute('aria-invalid', 'true');
      return msg;
    },
  };
}

function enumEditor(schema, id, describedBy) {
  const numeric = schema.valueSchema === 'integer';
  const sel = h('select', { id, 'aria-describedby': describedBy }, h('option', { value: '' }, '— not set —'),
    (schema.enumValues || []).map((e) => h('option', { value: String(e.enumValue) }, label(e) === e.name ? String(e.enumValue) : `${label(e)} (${e.enumValue})`)));
  return {
    el: sel,
    set(v) {
      if (v !== undefined && v !== null && ![...sel.options].some((o) => o.value === String(v))) {
        sel.append(h('option', { value: String(v) }, `${v} (not in the model)`));
      }
      sel.value = v === undefined || v === null ? '' : String(v);
    },
    get() { return sel.value === '' ? undefined : numeric ? Number(sel.value) : sel.value; },
    validate() { return null; },
  };
}

function jsonEditor(id, describedBy) {
  const ta = h('textarea', { id, rows: 4, spellcheck: 'false', 'aria-describedby': describedBy, placeholder: 'JSON value' });
  return {
    el: ta,
    set(v) { ta.value = v === undefined ? '' : prettyJson(v); },
    get() { return ta.value.trim() === '' ? undefined : JSON.parse(ta.value); },
    validate() {
      ta.removeAttribute('aria-invalid');
      if (ta.value.trim() === '') return null;
      try { JSON.parse(ta.value); return null; } catch (e) {
        ta.setAttribute('aria-invalid', 'true');
        return `not valid JSON: ${e.message}`;
      }
    },
  };
}

// A labelled editor for a named element (a field, a property, a command request).
export function fieldEditor(item, models, { idPrefix = 'f', wide = false } = {}) {
  const schema = models.schema(item.schema);
  const id = uid(idPrefix);
  const hintId = `${id}-hint`;
  const desc = description(item);
  const ed = editorFor(schema, models, { id, describedBy: desc ? hintId : null, legend: label(item) });
  const complex = isPlainObject(schema) && (hasType(schema, 'Object') || hasType(schema, 'Array') || hasType(schema, 'Map'));
  let el;
  if (complex) {
    el = h('div', { class: 'field field-wide', dataset: { field: item.name } }, ed.el, desc ? h('span', { class: 'hint', id: hintId }, desc) : null);
  } else {
    el = h('div', { class: `field${wide ? ' field-wide' : ''}`, dataset: { field: item.name } },
      h('label', { for: id, title: item.name }, label(item)), ed.el,
      desc ? h('span', { class: 'hint', id: hintId }, desc) : null);
  }
  return { ...ed, el };
}

export function editorFor(schema, models, { id = uid('f'), describedBy = null, legend = '' } = {}) {
  if (typeof schema === 'string') {
    if (['string', 'dateTime', 'date', 'time', 'duration', 'integer', 'long', 'double', 'float', 'boolean'].includes(schema)) {
      return primitiveEditor(schema, id, describedBy);
    }
    return jsonEditor(id, describedBy);
  }
  if (hasType(schema, 'Enum')) return enumEditor(schema, id, describedBy);
  if (hasType(schema, 'Object')) return objectEditor(schema, models, legend);
  if (hasType(schema, 'Array')) return arrayEditor(schema, models, legend);
  if (hasType(schema, 'Map')) return mapEditor(schema, models, legend);
  return jsonEditor(id, describedBy);
}

function objectEditor(schema, models, legend) {
  const fields = (schema.fields || []).filter((f) => !isReportedOnly(f));
  const editors = fields.map((f) => ({ name: f.name, ed: fieldEditor(f, models) }));
  const known = new Set((schema.fields || []).map((f) => f.name));
  let original;
  const el = h('fieldset', null, legend ? h('legend', null, legend) : null,
    h('div', { class: 'fields' }, editors.map((e) => e.ed.el)));
  return {
    el,
    set(v) {
      original = isPlainObject(v) ? v : undefined;
      for (const e of editors) e.ed.set(original ? original[e.name] : undefined);
    },
    get() {
      const out = {};
      // Keys the model does not describe are kept as they are.
      if (original) for (const [k, v] of Object.entries(original)) if (!known.has(k)) out[k] = v;
      for (const e of editors) {
        const v = e.ed.get();
        if (v !== undefined) out[e.name] = v;
      }
      if (!Object.keys(out).length && original === undefined) return undefined;
      return out;
    },
    validate() {
      for (const e of editors) {
        const m = e.ed.validate();
        if (m) return `${e.name}: ${m}`;
      }
      return null;
    },
  };
}

function listShell(legend, addLabel, onAdd) {
  const rows = h('div', { class: 'list-editor' });
  const add = h('button', { type: 'button', class: 'btn btn-small', onclick: onAdd }, addLabel);
  const el = h('fieldset', null, legend ? h('legend', null, legend) : null, rows, h('div', { style: 'margin-top:6px' }, add));
  return { el, rows, add };
}

function arrayEditor(schema, models, legend) {
  const elementSchema = models.schema(schema.elementSchema);
  let items = [];
  let original;
  const shell = listShell(legend, '+ Add item', () => { addRow(undefined).ed.el.focus?.(); });
  function addRow(value) {
    const ed = editorFor(elementSchema, models, { legend: '' });
    ed.set(value);
    const item = { ed };
    const remove = h('button', {
      type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Remove item',
      onclick: () => { items = items.filter((x) => x !== item); row.remove(); shell.el.dispatchEvent(new Event('input', { bubbles: true })); },
    }, '✕');
    const row = h('div', { class: 'row' }, ed.el, remove);
    item.row = row;
    items.push(item);
    shell.rows.append(row);
    return item;
  }
  return {
    el: shell.el,
    set(v) {
      original = Array.isArray(v) ? v : undefined;
      items = [];
      shell.rows.replaceChildren();
      for (const x of original || []) addRow(x);
    },
    get() {
      const out = items.map((i) => i.ed.get()).filter((v) => v !== undefined);
      if (!out.length && original === undefined) return undefined;
      return out;
    },
    validate() {
      for (const [n, i] of items.entries()) {
        const m = i.ed.validate();
        if (m) return `item ${n + 1}: ${m}`;
      }
      return null;
    },
  };
}

function mapEditor(schema, models, legend) {
  const valueSchema = models.schema(schema.mapValue && schema.mapValue.schema);
  let rows = [];
  let original;
  const shell = listShell(legend, '+ Add entry', () => { addRow('', undefined).key.focus(); });
  function addRow(key, value) {
    const keyInput = h('input', { type: 'text', value: key, placeholder: 'key', 'aria-label': 'Key', spellcheck: 'false' });
    const ed = editorFor(valueSchema, models, { legend: '' });
    ed.set(value);
    const r = { key: keyInput, ed };
    const el = h('div', { class: 'row' }, h('div', { class: 'field-row' }, h('div', { style: 'flex:0 0 35%' }, keyInput), h('div', { style: 'flex:1;min-width:0' }, ed.el)),
      h('button', {
        type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Remove entry',
        onclick: () => { rows = rows.filter((x) => x !== r); el.remove(); },
      }, '✕'));
    rows.push(r);
    shell.rows.append(el);
    return r;
  }
  return {
    el: shell.el,
    set(v) {
      original = isPlainObject(v) ? v : undefined;
      rows = [];
      shell.rows.replaceChildren();
      for (const [k, x] of Object.entries(original || {})) addRow(k, x);
    },
    get() {
      const out = {};
      for (const r of rows) {
        const v = r.ed.get();
        if (r.key.value && v !== undefined) out[r.key.value] = v;
      }
      if (!Object.keys(out).length && original === undefined) return undefined;
      return out;
    },
    validate() {
      for (const r of rows) {
        const m = r.ed.validate();
        if (m) return `${r.key.value || 'entry'}: ${m}`;
      }
      return null;
    },
  };
}
