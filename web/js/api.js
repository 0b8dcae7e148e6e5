// The hub's service REST API, same-origin (the hub serves this page), with Azure's error bodies
// turned into HubError {status, code, message}. The provisioning service's calls are in dps.js.
import * as auth from './auth.js';

const API_VERSION = '2021-04-12';
const enc = encodeURIComponent;

export class HubError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// {"Message":"ErrorCode:X;text","ExceptionMessage":"…"} (IoT Hub) or {"errorCode":401002,"message":
// "text",…} (DPS) → {code, text}; tolerant of other shapes.
export function parseErrorBody(text, status, headerCode) {
  let code = headerCode || '';
  let message = '';
  try {
    const j = JSON.parse(text);
    if (!code && (typeof j.errorCode === 'number' || typeof j.errorCode === 'string')) code = String(j.errorCode);
    const m = typeof j.Message === 'string' ? j.Message : typeof j.message === 'string' ? j.message : '';
    const mm = /^ErrorCode:([^;]*);([\s\S]*)$/.exec(m);
    if (mm) {
      code = mm[1] || code;
      message = mm[2];
    } else message = m;
  } catch (_) {
    message = text && text.length < 300 ? text : '';
  }
  if (!message) message = `The hub answered HTTP ${status}`;
  return { code, message };
}

const listeners = new Set();
// fn(err, cred) is called for every 401, so the app can offer to sign in again to that service.
export function onUnauthorized(fn) {
  listeners.add(fn);
}

// silent: a 401 is only thrown, not announced (the sign-in check). cred: whose policy signs the
// request (the hub's unless said otherwise).
export async function request(method, path, {
  body, headers = {}, signal, silent = false, cred = auth.hub, apiVersion = API_VERSION,
} = {}) {
  const url = `${path}${path.includes('?') ? '&' : '?'}api-version=${apiVersion}`;
  const h = { Authorization: await cred.authHeader(), Accept: 'application/json', ...headers };
  const init = { method, headers: h, signal, cache: 'no-store' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json; charset=utf-8';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new HubError(0, 'NetworkError', `Could not reach the hub: ${e.message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    const { code, message } = parseErrorBody(text, res.status, res.headers.get('iothub-errorcode'));
    const err = new HubError(res.status, code, message);
    if (res.status === 401 && !silent) for (const fn of listeners) fn(err, cred);
    throw err;
  }
  let json;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch (_) {
      throw new HubError(res.status, 'BadResponse', 'The hub sent a response that is not JSON');
    }
  }
  return { status: res.status, headers: res.headers, json };
}

// ---- registry and twins ----

// One page of a query: {items, continuation (null on the last page)}.
export async function query(text, { continuation, pageSize = 50, signal } = {}) {
  const headers = { 'x-ms-max-item-count': String(pageSize) };
  if (continuation) headers['x-ms-continuation'] = continuation;
  const r = await request('POST', '/devices/query', { body: { query: text }, headers, signal });
  return { items: r.json || [], continuation: r.headers.get('x-ms-continuation') || null };
}

export async function getDevice(id) {
  return (await request('GET', `/devices/${enc(id)}`)).json;
}

export async function createDevice(id) {
  return (await request('PUT', `/devices/${enc(id)}`, { body: { deviceId: id } })).json;
}

export async function updateDevice(device) {
  const etag = device.etag ? `"${device.etag}"` : '*';
  return (await request('PUT', `/devices/${enc(device.deviceId)}`, { body: device, headers: { 'If-Match': etag } })).json;
}

export async function deleteDevice(id) {
  await request('DELETE', `/devices/${enc(id)}`, { headers: { 'If-Match': '*' } });
}

export async function getTwin(id) {
  return (await request('GET', `/twins/${enc(id)}`)).json;
}

// patch: {tags?, properties?: {desired}}; etag: the twin's etag, or '*' for an unconditional merge.
export async function patchTwin(id, patch, etag = '*') {
  const ifMatch = etag === '*' ? '*' : `"${etag}"`;
  return (await request('PATCH', `/twins/${enc(id)}`, { body: patch, headers: { 'If-Match': ifMatch } })).json;
}

export async function invokeMethod(id, methodName, payload, { responseTimeoutInSeconds = 30 } = {}) {
  const body = { methodName, payload: payload === undefined ? null : payload, responseTimeoutInSeconds };
  return (await request('POST', `/twins/${enc(id)}/methods`, { body })).json;
}

// ---- iotdm extensions ----

export async function sendMessage(id, message) {
  return (await request('POST', `/iotdm/devices/${enc(id)}/messages`, { body: message })).json;
}

export async function purgeMessages(id) {
  return (await request('DELETE', `/devices/${enc(id)}/commands`)).json;
}

let modelsPromise = null;
// Every DTDL interface the hub knows, fetched once per page load.
export function getModels() {
  if (!modelsPromise) {
    modelsPromise = request('GET', '/iotdm/models').then((r) => r.json || []);
    modelsPromise.catch(() => { modelsPromise = null; });
  }
  return modelsPromise;
}

// Quotes a string for the IoT Hub query language.
export function qstr(s) {
  return `'${String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
