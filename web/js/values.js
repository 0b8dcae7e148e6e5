// Read-only rendering of reported values, guided by their DTDL schema when there is one.
import { h, fmtTime, relTime, isPlainObject } from './dom.js';
import { hasType, label } from './dtdl.js';

const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

function kib(n) {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(v < 10 && i ? 1 : 0)} ${units[i]}`;
}

function duration(s) {
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hh} h`;
  if (hh) return `${hh} h ${m} min`;
  if (m) return `${m} min ${Math.floor(s % 60)} s`;
  return `${s} s`;
}

function fieldSchema(schema, name, models) {
  const s = models ? models.schema(schema) : schema;
  if (!isPlainObject(s) || !Array.isArray(s.fields)) return undefined;
  const f = s.fields.find((x) => x.name === name);
  return f ? f : undefined;
}

// name: the property or field name (units are guessed from it: …KB, …Seconds).
export function valueView(value, schema, models, name = '') {
  const s = models && schema !== undefined ? models.schema(schema) : schema;
  if (value === undefined) return h('span', { class: 'muted' }, 'not reported');
  if (value === null) return h('span', { class: 'muted' }, 'null');
  if (typeof value === 'boolean') return h('span', null, value ? 'true' : 'false');
  if (typeof value === 'number') {
    if (/KB$/.test(name) || /^total(Storage|Memory)$/.test(name)) return h('span', { title: `${value} KB` }, kib(value));
    if (/Seconds$/.test(name)) return h('span', { title: `${value} s` }, duration(value));
    return h('span', { class: 'num' }, String(value));
  }
  if (typeof value === 'string') {
    if ((s === 'dateTime' || ISO_RE.test(value)) && !Number.isNaN(Date.parse(value))) {
      // A UTC time is shown in the operator's time zone; one with an offset is the device's local
      // time, shown as the device wrote it.
      const utc = /Z$/i.test(value);
      return h('time', { datetime: value, title: utc ? value : fmtTime(value) },
        `${utc ? fmtTime(value) : value.replace('T', ' ')} (${relTime(value)})`);
    }
    if (isPlainObject(s) && hasType(s, 'Enum')) {
      const e = (s.enumValues || []).find((x) => x.enumValue === value);
      if (e && label(e) !== e.name) return h('span', { title: value }, label(e));
    }
    return value === '' ? h('span', { class: 'muted' }, '(empty)') : h('span', null, value);
  }
  if (Array.isArray(value)) {
    if (!value.length) return h('span', { class: 'muted' }, '(none)');
    const el = isPlainObject(s) ? s.elementSchema : undefined;
    if (value.every((v) => typeof v !== 'object' || v === null)) return h('span', null, value.map(String).join(', '));
    return h('ol', { class: 'vlist' }, value.map((v) => h('li', null, valueView(v, el, models))));
  }
  if (isPlainObject(value)) {
    const keys = Object.keys(value).filter((k) => !k.startsWith('$') && k !== '__t');
    const order = isPlainObject(s) && Array.isArray(s.fields) ? s.fields.map((f) => f.name) : [];
    keys.sort((a, b) => {
      const ia = order.indexOf(a);
      const ib = order.indexOf(b);
      return (ia < 0 ? 1e9 : ia) - (ib < 0 ? 1e9 : ib);
    });
    if (!keys.length) return h('span', { class: 'muted' }, '{}');
    return h('dl', { class: 'kv' }, keys.map((k) => {
      const f = fieldSchema(s, k, models);
      return [h('dt', { title: f && f.description ? String(f.description) : null }, k),
        h('dd', { dataset: { path: k } }, valueView(value[k], f ? f.schema : undefined, models, k))];
    }));
  }
  return h('span', null, String(value));
}
