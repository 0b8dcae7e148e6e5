// Sign-in with a shared access policy connection string, kept in sessionStorage (gone when the
// tab closes), and SAS tokens computed in the browser with WebCrypto, renewed before expiry.

const STORAGE_KEY = 'iotdm.connectionString';
const TOKEN_TTL_S = 3600;
const RENEW_BEFORE_S = 300;

export class ConnStringError extends Error {}

// HostName=…;SharedAccessKeyName=…;SharedAccessKey=… → {host, policy, key, keyBytes}.
export function parseConnectionString(text) {
  const parts = {};
  for (const piece of String(text || '').trim().split(';')) {
    if (!piece.trim()) continue;
    const i = piece.indexOf('=');
    if (i <= 0) throw new ConnStringError(`"${piece.slice(0, 40)}" is not a Name=value pair`);
    parts[piece.slice(0, i).trim()] = piece.slice(i + 1).trim();
  }
  if (parts.DeviceId) {
    throw new ConnStringError('This is a device connection string. Sign in with a shared access policy ' +
      '(HostName=…;SharedAccessKeyName=…;SharedAccessKey=…), for example iothubowner.');
  }
  const missing = ['HostName', 'SharedAccessKeyName', 'SharedAccessKey'].filter((k) => !parts[k]);
  if (missing.length) throw new ConnStringError(`The connection string has no ${missing.join(', ')}.`);
  let keyBytes;
  try {
    keyBytes = Uint8Array.from(atob(parts.SharedAccessKey), (c) => c.charCodeAt(0));
  } catch (_) {
    throw new ConnStringError('SharedAccessKey is not valid base64.');
  }
  if (!keyBytes.length) throw new ConnStringError('SharedAccessKey is empty.');
  return { host: parts.HostName, policy: parts.SharedAccessKeyName, key: parts.SharedAccessKey, keyBytes };
}

let session = null; // {text, host, policy, keyBytes, cryptoKey, token, tokenExpiry}

async function makeSession(text) {
  const cs = parseConnectionString(text);
  if (!globalThis.crypto || !crypto.subtle) {
    throw new ConnStringError('This page needs WebCrypto, which browsers offer only over HTTPS.');
  }
  const cryptoKey = await crypto.subtle.importKey('raw', cs.keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return { text: text.trim(), host: cs.host, policy: cs.policy, cryptoKey, token: null, tokenExpiry: 0 };
}

// Restores the session of this tab, if any. Returns true when signed in.
export async function restore() {
  const text = sessionStorage.getItem(STORAGE_KEY);
  if (!text) return false;
  try {
    session = await makeSession(text);
    return true;
  } catch (_) {
    sessionStorage.removeItem(STORAGE_KEY);
    return false;
  }
}

// Starts a session; `verify` (async) is called with it active and may throw to undo it.
export async function signIn(text, verify) {
  const s = await makeSession(text);
  const previous = session;
  session = s;
  try {
    if (verify) await verify();
  } catch (e) {
    session = previous;
    throw e;
  }
  sessionStorage.setItem(STORAGE_KEY, s.text);
}

export function signOut() {
  session = null;
  sessionStorage.removeItem(STORAGE_KEY);
}

export function current() {
  return session ? { host: session.host, policy: session.policy } : null;
}

function b64(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

// SharedAccessSignature sr={host}&sig={urlencoded b64 HMAC-SHA256 of "{host}\n{expiry}"}&se=…&skn=…
export async function sasToken(s = session, expiry = Math.floor(Date.now() / 1000) + TOKEN_TTL_S) {
  const sr = encodeURIComponent(s.host);
  const mac = await crypto.subtle.sign('HMAC', s.cryptoKey, new TextEncoder().encode(`${sr}\n${expiry}`));
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(b64(mac))}&se=${expiry}&skn=${encodeURIComponent(s.policy)}`;
}

// The Authorization header for the next request: the cached token, or a new one when the cached
// one expires within RENEW_BEFORE_S seconds.
export async function authHeader() {
  if (!session) throw new ConnStringError('Not signed in.');
  const now = Math.floor(Date.now() / 1000);
  if (!session.token || session.tokenExpiry - now < RENEW_BEFORE_S) {
    const s = session;
    const expiry = now + TOKEN_TTL_S;
    const token = await sasToken(s, expiry);
    s.token = token;
    s.tokenExpiry = expiry;
  }
  return session.token;
}
