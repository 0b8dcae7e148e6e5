// The provisioning service (DPS) of this hub: its enrollment API (api-version 2021-10-01, signed
// with the provisioningserviceowner policy, docs/service-api.md) and what the dashboard computes in
// the browser: group-derived device keys, TPM registration ids, checks of what the operator typed.
import { request, HubError } from './api.js';
import { dps as cred } from './auth.js';

const API_VERSION = '2021-10-01';
const enc = encodeURIComponent;

// The two kinds of enrollment, as the API names them.
export const KINDS = {
  enrollment: {
    collection: 'enrollments', idKey: 'registrationId', idLabel: 'Registration ID', noun: 'enrollment',
    plural: 'Individual enrollments', certField: 'clientCertificates', route: 'enrollments',
  },
  group: {
    collection: 'enrollmentGroups', idKey: 'enrollmentGroupId', idLabel: 'Group ID', noun: 'enrollment group',
    plural: 'Enrollment groups', certField: 'signingCertificates', route: 'groups',
  },
};

export const ATTESTATIONS = { symmetricKey: 'Symmetric key', x509: 'X.509', tpm: 'TPM' };

function call(method, path, opts = {}) {
  return request(method, path, { ...opts, cred, apiVersion: API_VERSION });
}

function ifMatch(etag) {
  return etag ? { 'If-Match': `"${etag}"` } : {};
}

// A cheap call that needs the enrollment-read right: a wrong key or policy gets 401 here.
export async function check() {
  await call('POST', '/enrollments/query', { body: { query: '*' }, headers: { 'x-ms-max-item-count': '1' }, silent: true });
}

// One page of enrollments, groups (kind) or, with groupId, of a group's registration records:
// {items, continuation (null on the last page)}.
export async function queryPage(kind, { continuation, pageSize = 50, groupId, signal } = {}) {
  const headers = { 'x-ms-max-item-count': String(pageSize) };
  if (continuation) headers['x-ms-continuation'] = continuation;
  const path = groupId ? `/registrations/${enc(groupId)}/query` : `/${KINDS[kind].collection}/query`;
  const r = await call('POST', path, { body: { query: '*' }, headers, signal });
  return { items: Array.isArray(r.json) ? r.json : [], continuation: r.headers.get('x-ms-continuation') || null };
}

export async function get(kind, id) {
  return (await call('GET', `/${KINDS[kind].collection}/${enc(id)}`)).json;
}

// Creates or replaces; with etag, only if the stored one still has it (412 otherwise).
export async function put(kind, body, etag) {
  const id = body[KINDS[kind].idKey];
  return (await call('PUT', `/${KINDS[kind].collection}/${enc(id)}`, { body, headers: ifMatch(etag) })).json;
}

export async function remove(kind, id, etag) {
  await call('DELETE', `/${KINDS[kind].collection}/${enc(id)}`, { headers: ifMatch(etag) });
}

export async function getRegistration(id) {
  return (await call('GET', `/registrations/${enc(id)}`)).json;
}

export async function removeRegistration(id, etag) {
  await call('DELETE', `/registrations/${enc(id)}`, { headers: ifMatch(etag) });
}

// The enrollment or null when there is none (other errors are thrown).
export async function find(kind, id) {
  try {
    return await get(kind, id);
  } catch (e) {
    if (e instanceof HubError && e.status === 404) return null;
    throw e;
  }
}

// The ID scope and the global endpoint ({idScope, globalEndpoint}): an iotdm extension, since
// Azure names the scope only in its management API.
export async function serviceInfo() {
  return (await call('GET', '/iotdm/dps')).json;
}

// ---- checks of operator input ----

// Registration and group ids (docs/protocol.md §7.1): at most 128 characters, letters, digits
// and - . _ :, the last one a letter, a digit or '-'.
export function idProblem(id, label = 'The registration ID') {
  if (!id) return `${label} is empty.`;
  if (id.length > 128) return `${label} is ${id.length} characters long; at most 128 are allowed.`;
  const bad = [...new Set(id.replace(/[A-Za-z0-9._:-]/g, ''))];
  if (bad.length) {
    return `${label} may contain only letters, digits and - . _ :, not ${bad.map((c) => (c === ' ' ? 'spaces' : `"${c}"`)).join(', ')}.`;
  }
  if (!/[A-Za-z0-9-]$/.test(id)) return `${label} must end with a letter, a digit or '-'.`;
  return null;
}

export function b64decode(text) {
  const clean = String(text).replace(/\s+/g, '');
  if (!clean || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 === 1) throw new Error('not valid base64');
  return Uint8Array.from(atob(clean), (c) => c.charCodeAt(0));
}

export function b64encode(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

// A symmetric key the operator typed: empty (the hub generates one) or base64 of 16 to 64 bytes.
export function keyProblem(text, label) {
  if (!text) return null;
  let n;
  try { n = b64decode(text).length; } catch (_) { return `${label} is not valid base64.`; }
  return n >= 16 && n <= 64 ? null : `${label} must be base64 of 16 to 64 bytes (it has ${n}).`;
}

// The certificates of a PEM text as DER bytes; throws a readable Error when there are none.
export function pemCertificates(text) {
  const re = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;
  const out = [];
  let m;
  while ((m = re.exec(String(text)))) {
    try { out.push(b64decode(m[1])); } catch (_) { throw new Error('The certificate between BEGIN and END is not valid base64.'); }
  }
  if (!out.length) {
    throw new Error(/PRIVATE KEY-----/.test(text)
      ? 'This is a private key. Paste the certificate (-----BEGIN CERTIFICATE-----); the private key stays on the device.'
      : 'Paste a PEM certificate: -----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----.');
  }
  return out;
}

// ---- keys and ids computed here ----

// A device's key in a symmetric-key group (docs/protocol.md §7.8, `iotdm dps derive-key`):
// base64(HMAC-SHA256(key = base64decode(group key), message = UTF-8 registration id)).
export async function deriveDeviceKey(groupKeyB64, registrationId) {
  const key = await crypto.subtle.importKey('raw', b64decode(groupKeyB64), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return b64encode(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(registrationId)));
}

// The registration id a TPM registers with (docs/protocol.md §7.10, `limpet registration-id`): lower-case base32,
// without padding, of SHA-256 of the EK's TPM2B_PUBLIC.
export async function tpmRegistrationId(endorsementKeyB64) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b64decode(endorsementKeyB64)));
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const byte of d) {
    acc = ((acc << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits) out += alphabet[(acc << (5 - bits)) & 31];
  return out;
}

// What `limpet enrollment-info` prints, in any of its formats (text, csv, json), or a bare
// endorsement key: {registrationId?, endorsementKey, storageRootKey?}. Throws a readable Error.
export function parseEnrollmentInfo(text) {
  const t = String(text || '').trim();
  if (!t) throw new Error('Paste the endorsement key or the output of `limpet enrollment-info`.');
  let found = null;
  if (t.startsWith('[') || t.startsWith('{')) {
    let j;
    try { j = JSON.parse(t); } catch (e) { throw new Error(`The pasted JSON is not valid: ${e.message}`); }
    const e = Array.isArray(j) ? j[0] : j;
    const tpm = (e && e.attestation && e.attestation.tpm) || e || {};
    found = { registrationId: e && e.registrationId, endorsementKey: tpm.endorsementKey, storageRootKey: tpm.storageRootKey };
  } else if (/^registrationId\s*,/m.test(t)) {
    const [head, row] = t.split(/\r?\n/).filter((l) => l.trim());
    const names = head.split(',').map((s) => s.trim());
    const vals = (row || '').split(',').map((s) => s.trim());
    found = Object.fromEntries(names.map((n, i) => [n, vals[i]]));
  } else if (/endorsementKey\s*:/.test(t)) {
    found = {};
    for (const line of t.split(/\r?\n/)) {
      const m = /^\s*(\w+)\s*:\s*(\S+)\s*$/.exec(line);
      if (m) found[m[1]] = m[2];
    }
  } else {
    found = { endorsementKey: t.replace(/\s+/g, '') };
  }
  if (!found.endorsementKey) throw new Error('No endorsement key found in what was pasted.');
  let n;
  try { n = b64decode(found.endorsementKey).length; } catch (_) { throw new Error('The endorsement key is not valid base64.'); }
  if (n < 64) throw new Error(`The endorsement key is only ${n} bytes; a TPM2B_PUBLIC of an RSA or ECC key is longer.`);
  return {
    registrationId: found.registrationId || undefined,
    endorsementKey: found.endorsementKey.replace(/\s+/g, ''),
    storageRootKey: found.storageRootKey || undefined,
  };
}

// ---- updates ----

// The enrollment as it is sent back in a PUT: without what the service computes. Certificates
// stay as their `info`: the service keeps the stored certificate of such a slot.
export function editableBody(view) {
  const body = structuredClone(view);
  for (const k of ['etag', 'createdDateTimeUtc', 'lastUpdatedDateTimeUtc', 'registrationState']) delete body[k];
  return body;
}
