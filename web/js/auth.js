// Sign-in with shared access policy connection strings, kept in sessionStorage (gone when the tab
// closes), and SAS tokens computed in the browser with WebCrypto, renewed before expiry.

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

// One service's credentials: its connection string (kept in sessionStorage under storageKey) and
// the SAS token signed with it. The hub and the provisioning service each have one: as in Azure,
// they are separate services with separate policies (iothubowner, provisioningserviceowner).
export class Credential {
  constructor(storageKey) {
    this.storageKey = storageKey;
    this.session = null; // {text, host, policy, cryptoKey, token, tokenExpiry}
  }

  // Restores the session of this tab, if any. Returns true when signed in.
  async restore() {
    const text = sessionStorage.getItem(this.storageKey);
    if (!text) return false;
    try {
      this.session = await makeSession(text);
      return true;
    } catch (_) {
      sessionStorage.removeItem(this.storageKey);
      return false;
    }
  }

  // Starts a session; `verify` (async) is called with it active and may throw to undo it.
  async signIn(text, verify) {
    const s = await makeSession(text);
    const previous = this.session;
    this.session = s;
    try {
      if (verify) await verify();
    } catch (e) {
      this.session = previous;
      throw e;
    }
    sessionStorage.setItem(this.storageKey, s.text);
  }

  signOut() {
    this.session = null;
    sessionStorage.removeItem(this.storageKey);
  }

  current() {
    return this.session ? { host: this.session.host, policy: this.session.policy } : null;
  }

  // The Authorization header for the next request: the cached token, or a new one when the cached
  // one expires within RENEW_BEFORE_S seconds.
  async authHeader() {
    const s = this.session;
    if (!s) throw new ConnStringError('Not signed in.');
    const now = Math.floor(Date.now() / 1000);
    if (!s.token || s.tokenExpiry - now < RENEW_BEFORE_S) {
      const expiry = now + TOKEN_TTL_S;
      s.token = await sasToken(s, expiry);
      s.tokenExpiry = expiry;
    }
    return s.token;
  }
}

async function makeSession(text) {
  const cs = parseConnectionString(text);
  if (!globalThis.crypto || !crypto.subtle) {
    throw new ConnStringError('This page needs WebCrypto, which browsers offer only over HTTPS.');
  }
  const cryptoKey = await crypto.subtle.importKey('raw', cs.keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return { text: text.trim(), host: cs.host, policy: cs.policy, cryptoKey, token: null, tokenExpiry: 0 };
}

// The hub's service API (owner.connstr) and the provisioning service's (dps.connstr).
export const hub = new Credential('iotdm.connectionString');
export const dps = new Credential('iotdm.dpsConnectionString');

// Either service's connection string looks the same: the policy name tells which it is meant for.
export function looksLikeDps(text) {
  try {
    return /provisioning/i.test(parseConnectionString(text).policy);
  } catch (_) {
    return false;
  }
}

function b64(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

// SharedAccessSignature sr={host}&sig={urlencoded b64 HMAC-SHA256 of "{host}\n{expiry}"}&se=…&skn=…
export async function sasToken(s, expiry = Math.floor(Date.now() / 1000) + TOKEN_TTL_S) {
  const sr = encodeURIComponent(s.host);
  const mac = await crypto.subtle.sign('HMAC', s.cryptoKey, new TextEncoder().encode(`${sr}\n${expiry}`));
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(b64(mac))}&se=${expiry}&skn=${encodeURIComponent(s.policy)}`;
}
