// Registration records (GET/DELETE /registrations/{id}): what happened when a device registered.
// A card used on an individual enrollment's page, and a page of its own for any registration ID.
import * as auth from '../auth.js';
import * as dps from '../dps.js';
import { h, clear, timeEl, toast, confirmDialog, errorBox, errorText, jsonView } from '../dom.js';
import { registrationPill, enrollmentHref } from './dps-common.js';

function groupOf(r) {
  return (r.symmetricKey && r.symmetricKey.enrollmentGroupId) || (r.x509 && r.x509.enrollmentGroupId) ||
    (r.tpm && r.tpm.enrollmentGroupId) || null;
}

function deviceLink(id) {
  // The device pages need the hub's own sign-in; without it the ID is plain text.
  return auth.hub.current() ? h('a', { href: `#/devices/${encodeURIComponent(id)}` }, id) : h('code', null, id);
}

// Confirms, then deletes the record. Resolves true when it was deleted.
export async function deleteRecord(r) {
  if (!(await confirmDialog({
    title: `Delete the registration record of ${r.registrationId}?`,
    message: 'The record of this registration is removed. The device stays in the hub\'s registry, keeps its credentials, and may register again.',
    confirmLabel: 'Delete record', danger: true,
  }))) return false;
  try {
    await dps.removeRegistration(r.registrationId, r.etag);
    toast(`Registration record of ${r.registrationId} deleted`, 'ok');
    return true;
  } catch (e) {
    toast(`Could not delete the record: ${errorText(e)}`, 'bad');
    return false;
  }
}

// {el, load()}: the record of `regId`, or a note that there is none.
export function registrationCard(regId) {
  const body = h('div', { id: 'registration-body' }, h('p', { class: 'muted' }, 'Loading…'));
  const actions = h('span');
  const el = h('div', { class: 'card', id: 'registration-card' },
    h('div', { class: 'card-head' }, h('h2', null, 'Registration'), h('span', { class: 'spacer' }), actions),
    h('p', { class: 'card-sub' }, 'The record the service keeps of the last registration with this ID.'),
    body);

  async function load() {
    clear(actions);
    let r;
    try {
      r = await dps.getRegistration(regId);
    } catch (e) {
      if (e.status === 404) clear(body, h('p', { class: 'muted', id: 'registration-none' }, `No device has registered as ${regId} yet.`));
      else clear(body, errorBox(e, 'Could not load the registration record'));
      return;
    }
    const group = groupOf(r);
    const rows = [
      ['Status', registrationPill(r.status)],
      ['Device ID', r.deviceId ? deviceLink(r.deviceId) : '—'],
      ['Assigned hub', r.assignedHub ? h('code', null, r.assignedHub) : '—'],
      ['Substatus', r.substatus || '—'],
      r.errorMessage || r.errorCode ? ['Error', h('span', { class: 'ack-reason bad' }, `${r.errorMessage || ''}${r.errorCode ? ` (${r.errorCode})` : ''}`)] : null,
      group ? ['Enrollment group', h('a', { href: enrollmentHref('group', group) }, group)] : null,
      ['First registered', timeEl(r.createdDateTimeUtc)],
      ['Last registered', timeEl(r.lastUpdatedDateTimeUtc)],
      ['Etag', h('code', null, r.etag || '—')],
    ].filter(Boolean);
    clear(body, h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      r.payload !== undefined ? [h('h3', { style: 'margin:12px 0 6px' }, 'Payload'), jsonView(r.payload)] : null);
    clear(actions, h('button', {
      type: 'button', class: 'btn btn-small btn-danger', id: 'delete-registration',
      onclick: async () => { if (await deleteRecord(r)) load(); },
    }, 'Delete record'));
  }

  return { el, load };
}

// #/provisioning/registrations/{id}: the record, and the enrollment that covers this ID.
export function renderRegistration(root, regId) {
  const card = registrationCard(regId);
  const enrollmentNote = h('div', { class: 'card' }, h('p', { class: 'muted' }, 'Looking for the enrollment…'));
  clear(root,
    h('div', { class: 'page-head' }, h('div', { class: 'titles' },
      h('div', { class: 'crumbs' }, h('a', { href: '#/provisioning' }, 'Provisioning'), ' / Registration records / ', regId),
      h('h1', { id: 'registration-title' }, regId))),
    h('div', { class: 'grid-2' }, card.el, enrollmentNote));
  card.load();
  (async () => {
    try {
      const e = await dps.find('enrollment', regId);
      clear(enrollmentNote, h('h2', { style: 'margin-bottom:8px' }, 'Enrollment'), e
        ? h('p', null, 'The individual enrollment ', h('a', { href: enrollmentHref('enrollment', regId) }, regId), ' covers this registration ID.')
        : h('p', { class: 'muted' }, 'No individual enrollment has this registration ID; an enrollment group may accept the device (the record names it once the device has registered).'));
    } catch (err) {
      clear(enrollmentNote, errorBox(err, 'Could not look for the enrollment'));
    }
  })();
  return { destroy() {} };
}
