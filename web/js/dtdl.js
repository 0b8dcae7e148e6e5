// DTDL v2 interfaces from GET /iotdm/models: resolving a device's model to its components and
// their interfaces, and schema references to schema objects.

export function hasType(item, type) {
  const t = item && item['@type'];
  return t === type || (Array.isArray(t) && t.includes(type));
}

// displayName may be a string or a language map ({"en": "…"}).
export function label(item) {
  const d = item && item.displayName;
  if (typeof d === 'string') return d;
  if (d && typeof d === 'object') return d.en || Object.values(d)[0] || item.name;
  return item ? item.name : '';
}

export function description(item) {
  const d = item && item.description;
  if (typeof d === 'string') return d;
  if (d && typeof d === 'object') return d.en || Object.values(d)[0] || '';
  return '';
}

// A field the model documents as "Reported only": part of a writable property's reported value,
// never of its desired value.
export function isReportedOnly(field) {
  return /^reported only\b/i.test(description(field));
}

export const PRIMITIVES = new Set(['boolean', 'date', 'dateTime', 'double', 'duration', 'float', 'integer', 'long', 'string', 'time']);

export class ModelSet {
  constructor(list) {
    this.byId = new Map();
    this.schemas = new Map();
    for (const m of list || []) {
      if (!m || typeof m['@id'] !== 'string') continue;
      this.byId.set(m['@id'], m);
      for (const s of m.schemas || []) if (s && s['@id']) this.schemas.set(s['@id'], s);
    }
  }

  iface(id) {
    return this.byId.get(id) || null;
  }

  // A schema as an object, or a primitive name; references (dtmi:…) are followed.
  schema(s) {
    if (typeof s === 'string') {
      if (PRIMITIVES.has(s)) return s;
      return this.schemas.get(s) || this.byId.get(s) || s;
    }
    return s;
  }

  // The panels of a device: [{name (null for the root interface), title, iface, ifaceId, missing}].
  components(modelId) {
    const root = this.iface(modelId);
    if (!root) return [];
    const out = [];
    const own = (root.contents || []).filter((c) => !hasType(c, 'Component'));
    if (own.length) out.push({ name: null, title: label(root) || modelId, iface: root, ifaceId: modelId });
    for (const c of root.contents || []) {
      if (!hasType(c, 'Component')) continue;
      const id = typeof c.schema === 'string' ? c.schema : c.schema && c.schema['@id'];
      const iface = typeof c.schema === 'object' ? c.schema : this.iface(id);
      out.push({
        name: c.name, title: label(c) !== c.name ? label(c) : label(iface) || c.name, iface, ifaceId: id,
        missing: !iface, description: description(c),
      });
    }
    return out;
  }
}
