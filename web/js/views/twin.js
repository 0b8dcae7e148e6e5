// The twin tab: desired (editable JSON) beside reported, tags, and "load desired profile".
// Saving sends a merge patch of what changed, conditional on the twin's etag (If-Match).
import * as api from '../api.js';
import { h, clear, jsonView, prettyJson, toast, withBusy, dialog, errorText, stripMeta, mergeDiff, patchChanges, isPlainObject, copyText } from '../dom.js';

export const MAX_DESIRED = 32 * 1024;
export const MAX_TAGS = 8 * 1024;

// JSON.parse with a readable error (line and column).
export function parseJsonText(text, what) {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    let where = '';
    const m = /position (\d+)/.exec(e.message);
    if (m) {
      const pos = Number(m[1]);
      const before = text.slice(0, pos).split('\n');
      where = ` at line ${before.length}, column ${before[before.length - 1].length + 1}`;
    }
    return { error: `${what} is not valid JSON${where}: ${e.message.replace(/^JSON\.parse: /, '')}` };
  }
}

function depth(v) {
  if (!isPlainObject(v)) return 0;
  let d = 0;
  for (const x of Object.values(v)) d = Math.max(d, depth(x));
  return d + 1;
}

// Checks a document the hub would refuse, so the operator sees why before sending it.
export function validateDoc(v, what, maxBytes) {
  if (!isPlainObject(v)) return `${what} must be a JSON object ({ … }).`;
  const bytes = new TextEncoder().encode(JSON.stringify(v)).length;
  if (bytes > maxBytes) return `${what} is ${bytes} bytes; the hub takes at most ${maxBytes}.`;
  if (depth(v) > 10) return `${what} is nested more than 10 levels deep.`;
  const bad = [];
  (function walk(o, path) {
    for (const [k, x] of Object.entries(o)) {
      if (k.startsWith('$') || /[.\s]/.test(k)) bad.push(path ? `${path}.${k}` : k);
      if (isPlainObject(x)) walk(x, path ? `${path}.${k}` : k);
    }
  })(v, '');
  if (bad.length) return `${what} has keys the hub refuses ('$' at the start, '.' or spaces): ${bad.slice(0, 5).join(', ')}`;
  return null;
}

// A profile file holds desired properties: {"properties":{"desired":{…}}}, {"desired":{…}} or {…}.
export function profileDesired(doc) {
  if (isPlainObject(doc) && isPlainObject(doc.properties) && isPlainObject(doc.properties.desired)) return doc.properties.desired;
  if (isPlainObject(doc) && isPlainObject(doc.desired) && Object.keys(doc).length === 1) return doc.desired;
  return doc;
}

function fmtValue(v) {
  if (v === undefined) return '(absent)';
  if (v === null) return '(removed)';
  return JSON.stringify(v);
}

function changeList(changes) {
  if (!changes.length) return h('p', { class: 'muted' }, 'No changes: the current desired properties already have these values. Applying sends them again.');
  return h('ul', { class: 'diff' }, changes.map((c) => h('li', null,
    h('span', { class: 'path' }, c.path), ': ',
    c.from !== undefined ? h('span', { class: 'old' }, fmtValue(c.from)) : null, c.from !== undefined ? ' → ' : null,
    h('span', { class: 'new' }, fmtValue(c.to)))));
}

// PATCHes the twin with If-Match, provided its desired properties and tags are still those of
// `base`. The etag also changes whenever the device reports, which is no conflict: then the patch
// is retried with the fresh etag. Throws a 412 HubError when desired or tags really changed.
async function patchIfUnchanged(ctx, base, patch) {
  const same = (t) => JSON.stringify(stripMeta(t.properties.desired)) === JSON.stringify(stripMeta(base.properties.desired)) &&
    JSON.stringify(t.tags || {}) === JSON.stringify(base.tags || {});
  let etag = base.etag;
  for (let attempt = 0; ; attempt++) {
    try {
      return await ctx.patchTwin(patch, etag);
    } catch (e) {
      if (e.status !== 412 || attempt >= 3) throw e;
      const fresh = await api.getTwin(ctx.deviceId);
      if (!same(fresh)) throw e;
      etag = fresh.etag;
    }
  }
}

export function twinTab(ctx) {
  let base = null; // the twin the editors started from
  let dirty = false;
  let showMeta = false;
  let latest = null;

  const info = h('div', { class: 'subline', style: 'margin:0' });
  const desiredTa = h('textarea', { id: 'desired-json', spellcheck: 'false', 'aria-describedby': 'twin-error', autocomplete: 'off' });
  const tagsTa = h('textarea', { id: 'tags-json', class: 'tags', spellcheck: 'false', 'aria-describedby': 'twin-error', autocomplete: 'off' });
  const error = h('div', { class: 'form-error', id: 'twin-error', role: 'alert' });
  const stale = h('div', { class: 'ack-reason warn', role: 'status', hidden: true });
  const reportedBox = h('div');
  const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save changes');
  const fileInput = h('input', { type: 'file', accept: '.json,application/json', hidden: true, id: 'profile-file', 'aria-label': 'Desired profile file' });

  function load(t) {
    base = t;
    dirty = false;
    desiredTa.value = prettyJson(stripMeta(t.properties.desired));
    tagsTa.value = prettyJson(t.tags || {});
    desiredTa.removeAttribute('aria-invalid');
    tagsTa.removeAttribute('aria-invalid');
    stale.hidden = true;
    error.textContent = '';
  }

  function renderReported() {
    if (!latest) return;
    const r = latest.properties.reported;
    clear(reportedBox, jsonView(showMeta ? r : stripMeta(r), { className: 'reported-json' }));
  }

  for (const ta of [desiredTa, tagsTa]) ta.addEventListener('input', () => { dirty = true; });

  async function submit(ev) {
    ev.preventDefault();
    error.textContent = '';
    desiredTa.removeAttribute('aria-invalid');
    tagsTa.removeAttribute('aria-invalid');
    const d = parseJsonText(desiredTa.value, 'Desired');
    if (d.error) { desiredTa.setAttribute('aria-invalid', 'true'); error.textContent = d.error; desiredTa.focus(); return; }
    const t = parseJsonText(tagsTa.value, 'Tags');
    if (t.error) { tagsTa.setAttribute('aria-invalid', 'true'); error.textContent = t.error; tagsTa.focus(); return; }
    const problem = validateDoc(d.value, 'Desired', MAX_DESIRED) || validateDoc(t.value, 'Tags', MAX_TAGS);
    if (problem) { error.textContent = problem; return; }
    const desiredPatch = mergeDiff(stripMeta(base.properties.desired), d.value);
    const tagsPatch = mergeDiff(base.tags || {}, t.value);
    if (desiredPatch === undefined && tagsPatch === undefined) { toast('Nothing changed'); return; }
    const patch = {};
    if (tagsPatch !== undefined) patch.tags = tagsPatch;
    if (desiredPatch !== undefined) patch.properties = { desired: desiredPatch };
    await withBusy(save, async () => {
      try {
        const nt = await patchIfUnchanged(ctx, base, patch);
        load(nt);
        toast('Twin updated', 'ok');
      } catch (e) {
        if (e.status === 412) {
          error.textContent = 'The twin changed on the hub since you loaded it, so nothing was saved. Reload to see the latest version, then make your change again.';
        } else error.textContent = errorText(e);
      }
    });
  }

  async function openProfile(file) {
    const text = await file.text();
    const parsed = parseJsonText(text, file.name);
    if (parsed.error) { toast(parsed.error, 'bad'); return; }
    const desired = profileDesired(parsed.value);
    const problem = validateDoc(desired, `The profile ${file.name}`, MAX_DESIRED);
    if (problem) { toast(problem, 'bad'); return; }
    const t = latest;
    const changes = patchChanges(stripMeta(t.properties.desired), desired);
    const err = h('div', { class: 'form-error', role: 'alert' });
    const applied = await dialog({
      title: `Load desired profile: ${file.name}`,
      body: h('div', null,
        h('p', null, `These desired properties are merged into the twin of ${ctx.deviceId} (version ${t.version}); the device applies them as they arrive.`),
        h('h3', { style: 'margin:12px 0 6px' }, `Changes (${changes.length})`), changeList(changes),
        h('h3', { style: 'margin:12px 0 6px' }, 'Profile'), jsonView(desired), err),
      actions: [{ label: 'Cancel', value: null }, { label: 'Apply profile', value: 'apply', class: 'btn-primary' }],
      onAction: async (v) => {
        if (v !== 'apply') return true;
        try {
          await patchIfUnchanged(ctx, t, { properties: { desired } });
          return true;
        } catch (e) {
          err.textContent = e.status === 412
            ? 'The desired properties or tags changed since the preview was made; nothing was applied. Close this and load the profile again.'
            : errorText(e);
          return false;
        }
      },
    });
    if (applied === 'apply') toast(`Profile ${file.name} applied`, 'ok');
  }

  fileInput.addEventListener('change', async () => {
    const f = fileInput.files && fileInput.files[0];
    fileInput.value = '';
    if (f) await openProfile(f);
  });

  const metaToggle = h('input', {
    type: 'checkbox', id: 'show-meta',
    onchange: (ev) => { showMeta = ev.currentTarget.checked; renderReported(); },
  });

  const el = h('div', null,
    h('div', { class: 'card' },
      h('div', { class: 'card-head', style: 'margin:0' }, info, h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'btn', onclick: () => fileInput.click() }, 'Load desired profile…'), fileInput,
        h('button', { type: 'button', class: 'btn', onclick: () => copyText(JSON.stringify(latest, null, 2), 'Twin JSON') }, 'Copy twin JSON'))),
    h('div', { class: 'grid-2', style: 'margin-top:16px' },
      h('form', { class: 'card editor', novalidate: true, onsubmit: submit, 'aria-labelledby': 'desired-title' },
        h('div', { class: 'card-head' }, h('h2', { id: 'desired-title' }, 'Desired properties')),
        h('p', { class: 'card-sub' }, 'Edit as JSON. Saving sends only what changed (removed keys become null) and fails if the twin changed meanwhile.'),
        stale,
        h('label', { for: 'desired-json', class: 'sr-only' }, 'Desired properties JSON'), desiredTa,
        h('div', { class: 'field', style: 'margin-top:12px' }, h('label', { for: 'tags-json' }, 'Tags'), tagsTa,
          h('span', { class: 'hint' }, 'Tags are for the back end only: the device never sees them.')),
        error,
        h('div', { class: 'form-actions' }, save,
          h('button', { type: 'button', class: 'btn', onclick: () => { if (latest) load(latest); } }, 'Revert'))),
      h('div', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', null, 'Reported properties'), h('span', { class: 'spacer' }),
          h('label', { class: 'small', style: 'font-weight:400;display:flex;gap:6px;align-items:center' }, metaToggle, 'Show $metadata')),
        h('p', { class: 'card-sub' }, 'What the device says it has. Read-only.'),
        reportedBox)));

  return {
    el,
    update(t) {
      latest = t;
      const p = t.properties;
      clear(info,
        h('span', null, `Twin version ${t.version}`),
        h('span', null, `Desired $version ${p.desired.$version}`),
        h('span', null, `Reported $version ${p.reported.$version}`),
        h('span', null, 'Etag ', h('code', null, t.etag)));
      renderReported();
      if (!base || !dirty) load(t);
      else if (t.etag !== base.etag) {
        const desiredChanged = JSON.stringify(stripMeta(t.properties.desired)) !== JSON.stringify(stripMeta(base.properties.desired)) ||
          JSON.stringify(t.tags) !== JSON.stringify(base.tags);
        if (desiredChanged) {
          stale.hidden = false;
          clear(stale, 'Someone else changed the desired properties or tags while you were editing. ',
            h('button', { type: 'button', class: 'btn-link', onclick: () => load(t) }, 'Reload and discard my edits'));
        } else {
          // Only reported properties moved: keep the edits and take the new etag.
          base = { ...base, etag: t.etag, version: t.version };
        }
      }
    },
  };
}
