// An individual enrollment's or an enrollment group's page: its settings and attestation, the
// initial twin (editable), enable/disable and delete, the registration record(s), and for a
// symmetric-key group the derived key of a device, computed here with WebCrypto.
import * as dps from '../dps.js';
import { h, clear, timeEl, toast, withBusy, confirmDialog, copyText, errorBox, secretRow, prettyJson } from '../dom.js';
import {
  provisioningPill, attestationPill, registrationPill, pagedTable, saveEnrollment, saveErrorText, registrationHref, readInitialTwin,
} from './dps-common.js';
import { registrationCard, deleteRecord } from './registration.js';

function kv(rows) {
  return h('dl', { class: 'kv' }, rows.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

function settingsCard(kind, e) {
  const group = kind === 'group';
  const rp = e.reprovisionPolicy || {};
  return h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', null, group ? 'Enrollment group' : 'Enrollment')),
    kv([
      [dps.KINDS[kind].idLabel, h('code', null, e[dps.KINDS[kind].idKey])],
      group ? null : ['Device ID', e.deviceId ? h('code', null, e.deviceId) : h('span', { class: 'muted' }, 'the registration ID')],
      ['Attestation', dps.ATTESTATIONS[e.attestation && e.attestation.type] || '—'],
      ['Provisioning', provisioningPill(e.provisioningStatus)],
      ['IoT hub', h('code', null, e.iotHubHostName || '—')],
      ['Allocation', e.allocationPolicy || '—'],
      ['When it registers again', rp.migrateDeviceData === false ? 'the twin is reset to the initial twin' : 'the device keeps its twin'],
      e.capabilities && e.capabilities.iotEdge ? ['IoT Edge', 'yes'] : null,
      ['Created', timeEl(e.createdDateTimeUtc)],
      ['Updated', timeEl(e.lastUpdatedDateTimeUtc)],
      ['Etag', h('code', null, e.etag || '—')],
    ]));
}

function certificateInfo(slot, c) {
  const i = (c && c.info) || {};
  const expired = i.notAfterUtc && Date.parse(i.notAfterUtc) < Date.now();
  return [h('h3', { style: 'margin:10px 0 6px' }, slot === 'primary' ? 'Primary certificate' : 'Secondary certificate'), kv([
    ['Subject', h('code', { class: 'cert-subject' }, i.subjectName || '—')],
    ['Issuer', h('code', null, i.issuerName || '—')],
    ['SHA-256', h('code', { class: 'cert-sha256' }, i.sha256Thumbprint || '—')],
    ['SHA-1', h('code', null, i.sha1Thumbprint || '—')],
    ['Valid from', timeEl(i.notBeforeUtc)],
    ['Valid until', [timeEl(i.notAfterUtc), expired ? h('span', { class: 'pill plain bad', style: 'margin-left:8px' }, 'Expired') : null]],
    ['Serial number', h('code', null, i.serialNumber || '—')],
  ])];
}

function attestationCard(kind, e) {
  const a = e.attestation || {};
  const body = [];
  if (a.type === 'symmetricKey' && a.symmetricKey) {
    body.push(h('p', { class: 'card-sub' }, kind === 'group'
      ? 'The group keys: never give them to a device. Each device gets the key derived from its registration ID.'
      : 'Hidden until you show them. Anyone with a key can register as this device.'),
    kv([
      ['Primary key', secretRow('enr-key-primary', a.symmetricKey.primaryKey, 'Primary key')],
      ['Secondary key', secretRow('enr-key-secondary', a.symmetricKey.secondaryKey, 'Secondary key')],
    ]));
  } else if (a.type === 'x509' && a.x509) {
    const certs = a.x509[dps.KINDS[kind].certField] || {};
    body.push(h('p', { class: 'card-sub' }, kind === 'group'
      ? 'Devices whose certificate chains up to this one (and whose CN is their registration ID) may register.'
      : 'The device presents exactly this certificate when it registers.'));
    for (const slot of ['primary', 'secondary']) if (certs[slot]) body.push(certificateInfo(slot, certs[slot]));
  } else if (a.type === 'tpm' && a.tpm) {
    const ek = a.tpm.endorsementKey || '';
    const note = h('p', { class: 'small', role: 'status' });
    dps.tpmRegistrationId(ek).then((derived) => {
      if (derived !== String(e.registrationId).toLowerCase()) {
        note.className = 'ack-reason warn';
        note.textContent = `This TPM registers as ${derived} (from its endorsement key), not as ${e.registrationId}: it will not match this enrollment.`;
      } else {
        note.className = 'small muted';
        note.textContent = 'The registration ID matches the one limpet derives from this endorsement key.';
      }
    }).catch(() => {});
    body.push(h('p', { class: 'card-sub' }, 'The device proves it holds this TPM\'s endorsement key.'),
      kv([['Endorsement key', h('div', { class: 'secret' },
        h('code', { class: 'mono', title: ek, style: 'flex:1;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap' }, ek),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(ek, 'Endorsement key') }, 'Copy'))]]),
      note);
  } else {
    body.push(h('p', { class: 'muted' }, `Attestation ${a.type || 'none'}.`));
  }
  return h('div', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', null, 'Attestation'), attestationPill(a)), body);
}

// The initial twin as two JSON editors; saving PUTs the whole enrollment with it.
function initialTwinCard(kind, ctx) {
  const e = ctx.enrollment;
  const init = e.initialTwin || {};
  const tags = h('textarea', { id: 'initial-tags', rows: 4, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'initial-error' });
  const desired = h('textarea', { id: 'initial-desired', rows: 8, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'initial-error' });
  tags.value = prettyJson(init.tags || {});
  desired.value = prettyJson((init.properties && init.properties.desired) || {});
  const error = h('div', { class: 'form-error', id: 'initial-error', role: 'alert' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary', id: 'save-initial-twin' }, 'Save initial twin');

  async function submit(ev) {
    ev.preventDefault();
    error.textContent = '';
    for (const ta of [tags, desired]) ta.removeAttribute('aria-invalid');
    const read = readInitialTwin(tags, desired);
    if (read.error) {
      read.input.setAttribute('aria-invalid', 'true');
      error.textContent = read.error;
      read.input.focus();
      return;
    }
    await withBusy(save, async () => {
      try {
        const saved = await saveEnrollment(kind, ctx.enrollment, (body) => {
          body.initialTwin = { tags: read.tags || {}, properties: { desired: read.desired || {} } };
        });
        toast('Initial twin saved. Devices provisioned from now on start with it.', 'ok');
        ctx.show(saved);
      } catch (err) {
        error.textContent = saveErrorText(err, dps.KINDS[kind].noun);
      }
    });
  }

  return h('form', { class: 'card', novalidate: true, onsubmit: submit, 'aria-labelledby': 'initial-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'initial-title' }, 'Initial twin')),
    h('p', { class: 'card-sub' }, 'A device provisioned for the first time starts with these tags and desired properties. ' +
      'Devices already in the hub keep their twin (unless re-provisioning resets it).'),
    h('div', { class: 'field' }, h('label', { for: 'initial-tags' }, 'Tags'), tags),
    h('div', { class: 'field', style: 'margin-top:10px' }, h('label', { for: 'initial-desired' }, 'Desired properties'), desired),
    error,
    h('div', { class: 'form-actions' }, save));
}

// A symmetric-key group: the key of one device, derived here from the group key (which is not
// sent anywhere), as `iotdm dps derive-key` does.
function deriveCard(e) {
  const sym = e.attestation.symmetricKey;
  const input = h('input', { type: 'text', id: 'derive-regid', spellcheck: 'false', autocomplete: 'off', placeholder: 'e.g. sensor-0042', 'aria-describedby': 'derive-hint derive-error' });
  const error = h('div', { class: 'form-error', id: 'derive-error', role: 'alert' });
  const result = h('div', { 'aria-live': 'polite' });
  const go = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Derive key');
  async function submit(ev) {
    ev.preventDefault();
    error.textContent = '';
    clear(result);
    input.removeAttribute('aria-invalid');
    const id = input.value.trim();
    const problem = dps.idProblem(id);
    if (problem) {
      input.setAttribute('aria-invalid', 'true');
      error.textContent = problem;
      return;
    }
    const [primary, secondary] = await Promise.all([
      dps.deriveDeviceKey(sym.primaryKey, id), dps.deriveDeviceKey(sym.secondaryKey, id),
    ]);
    clear(result, kv([
      ['Registration ID', h('code', null, id)],
      ['Device primary key', h('div', { class: 'secret' }, h('code', { class: 'mono', id: 'derived-primary', style: 'flex:1;overflow-wrap:anywhere' }, primary),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(primary, 'Derived primary key') }, 'Copy'))],
      ['Device secondary key', h('div', { class: 'secret' }, h('code', { class: 'mono', id: 'derived-secondary', style: 'flex:1;overflow-wrap:anywhere' }, secondary),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(secondary, 'Derived secondary key') }, 'Copy'))],
    ]));
  }
  return h('form', { class: 'card', novalidate: true, onsubmit: (ev) => withBusy(go, () => submit(ev)), id: 'derive-card', 'aria-labelledby': 'derive-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'derive-title' }, 'Device key')),
    h('p', { class: 'card-sub', id: 'derive-hint' }, 'The key a device of this group registers with: base64(HMAC-SHA256(group key, registration ID)), ' +
      'computed in this browser like `iotdm dps derive-key`. The group key is not sent anywhere.'),
    h('div', { class: 'field-row' }, h('div', { class: 'field', style: 'flex:1' }, h('label', { for: 'derive-regid' }, 'Registration ID'), input),
      h('div', { style: 'align-self:end' }, go)),
    error, result);
}

// The registration records of a group (POST /registrations/{groupId}/query).
function groupRegistrations(groupId) {
  const table = pagedTable({
    label: 'Registrations',
    columns: ['Registration ID', 'Device ID', 'Status', 'Last registered', h('span', { class: 'sr-only' }, 'Actions')],
    row: (r) => h('tr', { dataset: { registrationId: r.registrationId } },
      h('td', { class: 'id' }, h('a', { href: registrationHref(r.registrationId) }, r.registrationId)),
      h('td', null, r.deviceId ? h('code', null, r.deviceId) : '—'),
      h('td', null, registrationPill(r.status)),
      h('td', null, timeEl(r.lastUpdatedDateTimeUtc)),
      h('td', null, h('button', {
        type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Delete the record of ${r.registrationId}`,
        onclick: async () => { if (await deleteRecord(r)) table.load(); },
      }, 'Delete'))),
    fetchPage: (continuation) => dps.queryPage(null, { groupId, continuation, pageSize: 50 }),
    empty: 'No device has registered through this group yet.',
  });
  const el = h('section', { style: 'margin-top:16px' }, h('div', { class: 'section-title' }, h('h2', null, 'Registrations')), table.el);
  table.load();
  return el;
}

// #/provisioning/enrollments/{id} and #/provisioning/groups/{id}.
export function renderEnrollment(root, kind, id) {
  const k = dps.KINDS[kind];
  const listHref = kind === 'group' ? '#/provisioning/groups' : '#/provisioning/enrollments';
  const crumbs = () => h('div', { class: 'crumbs' }, h('a', { href: '#/provisioning' }, 'Provisioning'), ' / ',
    h('a', { href: listHref }, k.plural), ' / ', id);
  let destroyed = false;
  const ctx = { enrollment: null, show };

  async function setStatus(status) {
    const e = ctx.enrollment;
    if (status === 'disabled' && !(await confirmDialog({
      title: `Disable ${id}?`,
      message: kind === 'group'
        ? 'Devices of this group are refused when they register. Devices already provisioned stay in the hub and keep connecting; disable those on their device pages.'
        : 'The device is refused when it registers. If it is already provisioned it stays in the hub and keeps connecting; disable it on its device page.',
      confirmLabel: 'Disable', danger: true,
    }))) return;
    try {
      const saved = await saveEnrollment(kind, e, (body) => { body.provisioningStatus = status; });
      toast(`${k.noun[0].toUpperCase()}${k.noun.slice(1)} ${id} ${status}`, 'ok');
      show(saved);
    } catch (err) {
      toast(`Could not change the status: ${saveErrorText(err, k.noun)}`, 'bad');
    }
  }

  async function remove() {
    const e = ctx.enrollment;
    if (!(await confirmDialog({
      title: `Delete ${k.noun} ${id}?`,
      message: kind === 'group'
        ? 'No device can register through this group any more. Devices already provisioned stay in the hub. This cannot be undone.'
        : 'The device can no longer register. If it is already provisioned it stays in the hub. This cannot be undone.',
      confirmLabel: `Delete ${kind === 'group' ? 'group' : 'enrollment'}`, danger: true,
    }))) return;
    try {
      await dps.remove(kind, id, e.etag);
      toast(`${k.noun[0].toUpperCase()}${k.noun.slice(1)} ${id} deleted`, 'ok');
      location.hash = listHref;
    } catch (err) {
      toast(`Could not delete: ${saveErrorText(err, k.noun)}`, 'bad');
    }
  }

  function show(e) {
    if (destroyed) return;
    ctx.enrollment = e;
    const a = e.attestation || {};
    const disabled = e.provisioningStatus === 'disabled';
    const left = [settingsCard(kind, e), attestationCard(kind, e)];
    const right = [initialTwinCard(kind, ctx)];
    let registrations = null;
    if (kind === 'group') {
      if (a.type === 'symmetricKey' && a.symmetricKey) left.push(deriveCard(e));
      registrations = groupRegistrations(id);
    } else {
      const card = registrationCard(id);
      card.load();
      right.push(card.el);
    }
    clear(root,
      h('div', { class: 'page-head' },
        h('div', { class: 'titles' }, crumbs(),
          h('div', { class: 'title-line' }, h('h1', { id: 'enrollment-title' }, id), provisioningPill(e.provisioningStatus), attestationPill(a)),
          h('div', { class: 'subline' }, h('span', null, 'Updated ', timeEl(e.lastUpdatedDateTimeUtc)), h('span', null, 'Etag ', h('code', null, e.etag)))),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: (ev) => withBusy(ev.currentTarget, load) }, 'Refresh'),
          h('button', {
            type: 'button', class: 'btn', id: 'toggle-provisioning',
            onclick: (ev) => withBusy(ev.currentTarget, () => setStatus(disabled ? 'enabled' : 'disabled')),
          }, disabled ? 'Enable' : 'Disable'),
          h('button', { type: 'button', class: 'btn btn-danger', id: 'delete-enrollment', onclick: remove }, 'Delete'))),
      h('div', { class: 'grid-2' }, h('div', { class: 'stack' }, left), h('div', { class: 'stack' }, right)),
      registrations);
  }

  async function load() {
    try {
      show(await dps.get(kind, id));
    } catch (e) {
      if (destroyed) return;
      clear(root, crumbs(),
        errorBox(e, e.status === 404 ? `There is no ${k.noun} ${id}` : `Could not load the ${k.noun} ${id}`),
        h('a', { class: 'btn', href: listHref }, `Back to ${k.plural.toLowerCase()}`));
    }
  }

  clear(root, h('div', { class: 'loading' }, `Loading ${id}…`));
  load();
  return { destroy() { destroyed = true; } };
}

