// Pieces shared by the provisioning pages: the DPS sign-in card, status pills, paged tables, and
// saving an enrollment.
import * as auth from '../auth.js';
import * as dps from '../dps.js';
import { h, clear, withBusy, errorBox, errorText, toast, uid } from '../dom.js';
import { parseJsonText, validateDoc, MAX_DESIRED, MAX_TAGS } from './twin.js';

export function provisioningPill(status) {
  const off = status === 'disabled';
  return h('span', { class: `pill plain ${off ? 'bad' : 'info'}` }, off ? 'Disabled' : 'Enabled');
}

export function attestationPill(att) {
  const type = att && att.type;
  return h('span', { class: 'pill plain' }, dps.ATTESTATIONS[type] || type || 'none');
}

// Registration records: assigned, failed, disabled, assigning, unassigned.
export function registrationPill(status) {
  const cls = status === 'assigned' ? 'ok' : status === 'failed' || status === 'disabled' ? 'bad' : 'warn';
  return h('span', { class: `pill plain ${cls}` }, status || 'unknown');
}

export function enrollmentHref(kind, id) {
  return `#/provisioning/${dps.KINDS[kind].route}/${encodeURIComponent(id)}`;
}

export function registrationHref(id) {
  return `#/provisioning/registrations/${encodeURIComponent(id)}`;
}

// The provisioning service's own sign-in: its policy is not the hub's. onDone() runs once signed in.
export function dpsSignIn(onDone) {
  const hub = auth.hub.current();
  const errId = uid('dps-err');
  const input = h('textarea', {
    id: 'dps-connstr', name: 'dps-connstr', rows: 3, spellcheck: 'false', autocomplete: 'off', required: true,
    placeholder: `HostName=${hub ? hub.host : 'hub.example.net'};SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=…`,
    'aria-describedby': `dps-connstr-hint ${errId}`,
  });
  const error = h('div', { class: 'form-error', id: errId, role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in to provisioning');
  const form = h('form', {
    class: 'card', novalidate: true, id: 'dps-signin',
    onsubmit: async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      input.removeAttribute('aria-invalid');
      await withBusy(submit, async () => {
        try {
          await auth.dps.signIn(input.value, () => dps.check());
        } catch (e) {
          input.setAttribute('aria-invalid', 'true');
          error.textContent = e.status === 401
            ? `The provisioning service refused this connection string: ${e.message}. ` +
              'It needs the provisioningserviceowner policy (dps.connstr); iothubowner has no enrollment rights.'
            : errorText(e);
          input.focus();
          return;
        }
        onDone();
      });
    },
  },
  h('h1', null, 'Sign in to provisioning'),
  h('p', { class: 'lead' }, 'Enrollments belong to the Device Provisioning Service, a separate service with its own policy, as in Azure. ' +
    'Paste its connection string once; it stays in this browser tab only, like the hub\'s.'),
  h('div', { class: 'field' },
    h('label', { for: 'dps-connstr' }, 'Provisioning service connection string'),
    input,
    h('span', { class: 'hint', id: 'dps-connstr-hint' }, 'The hub writes it to dps.connstr in its data directory.')),
  error,
  h('div', { class: 'form-actions' }, submit));
  setTimeout(() => input.focus(), 0);
  return h('section', { class: 'signin' }, form);
}

// An initial twin from its two JSON editors, checked as the hub checks a twin: {tags, desired}
// (undefined when a text is empty) or {error, input} naming the editor to fix.
export function readInitialTwin(tagsInput, desiredInput) {
  const out = {};
  for (const [input, what, key, max] of [[tagsInput, 'Tags', 'tags', MAX_TAGS], [desiredInput, 'Desired properties', 'desired', MAX_DESIRED]]) {
    if (!input.value.trim()) continue;
    const parsed = parseJsonText(input.value, what);
    const problem = parsed.error || validateDoc(parsed.value, what, max);
    if (problem) return { error: problem, input };
    out[key] = parsed.value;
  }
  return out;
}

// A table filled page by page ("Load more" follows x-ms-continuation). columns: header labels;
// row(item) → <tr>; fetchPage(continuation) → {items, continuation}.
export function pagedTable({ label, columns, row, fetchPage, empty }) {
  let items = [];
  let continuation = null;
  let generation = 0;
  const tbody = h('tbody');
  const foot = h('div', { class: 'list-foot' });
  const errorSlot = h('div');

  function render() {
    if (!items.length) clear(tbody, h('tr', null, h('td', { colspan: columns.length, class: 'empty' }, empty)));
    else clear(tbody, items.map(row));
    clear(foot,
      h('span', null, continuation ? `${items.length} shown, more on the service` : `${items.length} in all`),
      continuation ? h('button', { type: 'button', class: 'btn btn-small', onclick: (ev) => withBusy(ev.currentTarget, more) }, 'Load more') : h('span'));
  }

  async function load() {
    const gen = ++generation;
    try {
      const page = await fetchPage(null);
      if (gen !== generation) return;
      items = page.items;
      continuation = page.continuation;
      clear(errorSlot);
      render();
    } catch (e) {
      if (gen !== generation) return;
      clear(errorSlot, errorBox(e, `Could not load the ${label.toLowerCase()}`));
      clear(tbody);
    }
  }

  async function more() {
    const gen = generation;
    try {
      const page = await fetchPage(continuation);
      if (gen !== generation) return;
      items = items.concat(page.items);
      continuation = page.continuation;
      render();
    } catch (e) {
      toast(`Could not load more: ${errorText(e)}`, 'bad');
    }
  }

  clear(tbody, h('tr', null, h('td', { colspan: columns.length, class: 'empty' }, 'Loading…')));
  const el = h('div', null, errorSlot,
    h('div', { class: 'card list-card' },
      h('div', { class: 'table-wrap' },
        h('table', { 'aria-label': label },
          h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c)))),
          tbody)),
      foot));
  return { el, load };
}

// PUTs `view` with `change` applied (a function of the body), conditional on the view's etag.
// Resolves the stored enrollment.
export async function saveEnrollment(kind, view, change) {
  const body = dps.editableBody(view);
  change(body);
  return dps.put(kind, body, view.etag);
}

// An error of a save, in words an operator can act on.
export function saveErrorText(e, noun) {
  if (e.status === 412) return `The ${noun} changed on the service since this page loaded it, so nothing was saved. Refresh and try again.`;
  return errorText(e);
}
