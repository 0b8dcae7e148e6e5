// The provisioning page: the service's endpoint and ID scope, individual enrollments and enrollment
// groups (POST …/query, paged with x-ms-continuation), a registration record look-up, and "new".
import * as auth from '../auth.js';
import * as dps from '../dps.js';
import { h, clear, timeEl, withBusy, copyText, errorText } from '../dom.js';
import { dpsSignIn, pagedTable, provisioningPill, attestationPill, enrollmentHref, registrationHref } from './dps-common.js';
import { newEnrollment } from './enrollment-new.js';

const PAGE = 50;

// What a device needs besides its credentials: the global endpoint and the ID scope
// (GET /iotdm/dps), and the hub devices are assigned to.
function serviceCard(onSignOut) {
  const s = auth.dps.current();
  const codeRow = (id, text, label) => h('div', { class: 'field-row' }, h('code', { id }, text),
    h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(text, label) }, 'Copy'));
  const endpointCell = h('dd', null, codeRow('global-endpoint', s.host, 'Global endpoint'));
  const scopeCell = h('dd', null, h('span', { class: 'muted', id: 'id-scope-loading' }, 'Loading…'));
  dps.serviceInfo().then((info) => {
    clear(endpointCell, codeRow('global-endpoint', info.globalEndpoint, 'Global endpoint'));
    clear(scopeCell, codeRow('id-scope', info.idScope, 'ID scope'));
  }, (e) => clear(scopeCell, h('span', { class: 'form-error', id: 'id-scope-error' }, `Could not read the ID scope: ${errorText(e)}`)));
  return h('div', { class: 'card', id: 'dps-service' },
    h('div', { class: 'card-head' }, h('h2', null, 'Service'), h('span', { class: 'spacer' }),
      h('span', { class: 'small muted' }, `Signed in as ${s.policy}`),
      h('button', { type: 'button', class: 'btn btn-small', onclick: onSignOut }, 'Use another connection string')),
    h('p', { class: 'card-sub' }, 'A device needs the global endpoint, the ID scope, its registration ID and its credentials (docs/dps.md).'),
    h('dl', { class: 'kv' },
      h('dt', null, 'Global endpoint'), endpointCell,
      h('dt', null, 'ID scope'), scopeCell,
      h('dt', null, 'Assigned IoT hub'), h('dd', null, h('code', null, s.host), h('span', { class: 'muted' }, ' (every device is assigned to this hub)'))));
}

function lookupForm() {
  const input = h('input', { type: 'text', id: 'lookup-regid', spellcheck: 'false', autocomplete: 'off', placeholder: 'registration ID', 'aria-describedby': 'lookup-err' });
  const err = h('div', { class: 'form-error', id: 'lookup-err', role: 'alert' });
  return h('form', {
    class: 'toolbar', role: 'search', novalidate: true,
    onsubmit: (ev) => {
      ev.preventDefault();
      const id = input.value.trim();
      const problem = dps.idProblem(id);
      err.textContent = problem || '';
      input.toggleAttribute('aria-invalid', !!problem);
      if (!problem) location.hash = registrationHref(id);
    },
  },
  h('div', { class: 'field grow' }, h('label', { for: 'lookup-regid' }, 'Registration record'), input, err),
  h('button', { type: 'submit', class: 'btn' }, 'Show record'));
}

function enrollmentRow(e) {
  return h('tr', { dataset: { registrationId: e.registrationId } },
    h('td', { class: 'id' }, h('a', { href: enrollmentHref('enrollment', e.registrationId) }, e.registrationId)),
    h('td', null, e.deviceId ? h('code', null, e.deviceId) : h('span', { class: 'muted' }, 'same as registration ID')),
    h('td', null, attestationPill(e.attestation)),
    h('td', null, provisioningPill(e.provisioningStatus)),
    h('td', null, timeEl(e.lastUpdatedDateTimeUtc)));
}

function groupRow(g) {
  return h('tr', { dataset: { groupId: g.enrollmentGroupId } },
    h('td', { class: 'id' }, h('a', { href: enrollmentHref('group', g.enrollmentGroupId) }, g.enrollmentGroupId)),
    h('td', null, attestationPill(g.attestation)),
    h('td', null, provisioningPill(g.provisioningStatus)),
    h('td', null, timeEl(g.lastUpdatedDateTimeUtc)));
}

export function renderProvisioning(root, initialTab) {
  let selected = null;
  const tabs = [];

  function signOut() {
    auth.dps.signOut();
    document.dispatchEvent(new Event('iotdm-session'));
    render();
  }

  function addTab(id, title, table) {
    const button = h('button', {
      type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `panel-${id}`, 'aria-selected': 'false', tabindex: '-1',
      onclick: () => { location.hash = `#/provisioning/${id}`; },
    }, title);
    const wrap = h('div', { role: 'tabpanel', id: `panel-${id}`, 'aria-labelledby': `tab-${id}`, hidden: true }, table.el);
    tabs.push({ id, button, wrap, table, loaded: false });
  }

  function selectTab(id) {
    const t = tabs.find((x) => x.id === id) || tabs[0];
    if (!t || selected === t) return;
    if (selected) {
      selected.button.setAttribute('aria-selected', 'false');
      selected.button.tabIndex = -1;
      selected.wrap.hidden = true;
    }
    selected = t;
    t.button.setAttribute('aria-selected', 'true');
    t.button.tabIndex = 0;
    t.wrap.hidden = false;
    if (!t.loaded) {
      t.loaded = true;
      t.table.load();
    }
  }

  async function create(kind) {
    const created = await newEnrollment(kind);
    if (created) location.hash = enrollmentHref(kind, created[dps.KINDS[kind].idKey]);
  }

  function render() {
    selected = null;
    tabs.length = 0;
    if (!auth.dps.current()) {
      clear(root, dpsSignIn(() => { document.dispatchEvent(new Event('iotdm-session')); render(); }));
      return;
    }
    addTab('enrollments', 'Individual enrollments', pagedTable({
      label: 'Individual enrollments',
      columns: ['Registration ID', 'Device ID', 'Attestation', 'Status', 'Updated'],
      row: enrollmentRow,
      fetchPage: (continuation) => dps.queryPage('enrollment', { continuation, pageSize: PAGE }),
      empty: 'No individual enrollments yet. Create one with “New enrollment”.',
    }));
    addTab('groups', 'Enrollment groups', pagedTable({
      label: 'Enrollment groups',
      columns: ['Group ID', 'Attestation', 'Status', 'Updated'],
      row: groupRow,
      fetchPage: (continuation) => dps.queryPage('group', { continuation, pageSize: PAGE }),
      empty: 'No enrollment groups yet. Create one with “New group”.',
    }));
    const tabList = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Enrollments' }, tabs.map((t) => t.button));
    tabList.addEventListener('keydown', (ev) => {
      const i = tabs.indexOf(selected);
      const j = { ArrowRight: (i + 1) % tabs.length, ArrowLeft: (i - 1 + tabs.length) % tabs.length, Home: 0, End: tabs.length - 1 }[ev.key];
      if (j === undefined) return;
      ev.preventDefault();
      tabs[j].button.focus();
      tabs[j].button.click();
    });
    clear(root,
      h('div', { class: 'page-head' },
        h('div', { class: 'titles' }, h('h1', null, 'Provisioning'),
          h('div', { class: 'subline' }, 'The Device Provisioning Service of this hub: enrollments say which devices may register, how they prove who they are, and the twin they start with.')),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: (ev) => withBusy(ev.currentTarget, () => selected.table.load()) }, 'Refresh'),
          h('button', { type: 'button', class: 'btn btn-primary', id: 'new-enrollment', onclick: () => create('enrollment') }, '+ New enrollment'),
          h('button', { type: 'button', class: 'btn btn-primary', id: 'new-group', onclick: () => create('group') }, '+ New group'))),
      h('div', { class: 'grid-2', style: 'margin-bottom:16px' }, serviceCard(signOut), h('div', { class: 'card' }, lookupForm(),
        h('p', { class: 'card-sub', style: 'margin:0' }, 'What happened when a device registered: its status, the device it became, and errors.'))),
      tabList,
      tabs.map((t) => t.wrap));
    selectTab(initialTab);
  }

  render();
  return { selectTab, destroy() {} };
}
