// The dashboard's entry point: sessions, sign-in page and a small hash router.
//   #/                                    device list
//   #/devices/{id}[/{tab}]                device page
//   #/provisioning[/enrollments|/groups]  provisioning (DPS): enrollments and groups
//   #/provisioning/enrollments/{id}       an individual enrollment
//   #/provisioning/groups/{id}            an enrollment group
//   #/provisioning/registrations/{id}     a registration record
// The hub and its provisioning service are signed in separately (iothubowner and
// provisioningserviceowner, as in Azure); the sign-in page takes either connection string.
import * as auth from './auth.js';
import { request, onUnauthorized } from './api.js';
import * as dps from './dps.js';
import { h, clear, withBusy, toast } from './dom.js';
import { renderDeviceList } from './views/devices.js';
import { renderDevice } from './views/device.js';
import { renderProvisioning } from './views/provisioning.js';
import { renderEnrollment } from './views/enrollment.js';
import { renderRegistration } from './views/registration.js';
import { dpsSignIn } from './views/dps-common.js';

const main = document.getElementById('main');
let currentView = null; // {destroy()} of the page on screen

function showSession() {
  const hub = auth.hub.current();
  const prov = auth.dps.current();
  document.getElementById('session').hidden = !hub && !prov;
  document.getElementById('main-nav').hidden = !hub && !prov;
  document.getElementById('session-host').textContent = hub ? `${hub.policy}@${hub.host}` : '';
  document.getElementById('session-dps').textContent = prov ? `${prov.policy}@${prov.host}` : '';
}

// Views that sign in or out of a service say so, to update the top bar.
document.addEventListener('iotdm-session', showSession);

function hideBanner() {
  document.getElementById('banner').hidden = true;
}

onUnauthorized((err, cred) => {
  const banner = document.getElementById('banner');
  const what = cred === auth.dps ? 'The provisioning service' : 'The hub';
  clear(banner,
    h('span', null, `${what} refused the credentials: ${err.message}. `),
    h('button', { type: 'button', class: 'btn btn-small', onclick: () => { signOut(cred); } }, 'Sign in again'));
  banner.hidden = false;
});

// Forgets one service's connection string, or both.
function signOut(cred) {
  for (const c of cred ? [cred] : [auth.hub, auth.dps]) c.signOut();
  hideBanner();
  showSession();
  // Rebuild the page even when the route stays the same: it now needs a sign-in.
  if (currentView) currentView.destroy();
  currentView = null;
  route();
}

document.getElementById('sign-out').addEventListener('click', () => signOut());

// Signs in with `text` to the hub or, when its policy is the provisioning service's, to that
// service: each is tried with a cheap call that needs a valid signature (a wrong key gets 401).
// Resolves 'hub' or 'dps'; throws the first refusal, with e.service set.
async function signInAny(text, hubOnly) {
  const order = hubOnly ? ['hub'] : auth.looksLikeDps(text) ? ['dps', 'hub'] : ['hub', 'dps'];
  let first = null;
  for (const which of order) {
    try {
      if (which === 'hub') {
        await auth.hub.signIn(text, () => request('POST', '/devices/query', {
          body: { query: 'SELECT COUNT() AS n FROM devices' }, silent: true,
        }));
      } else await auth.dps.signIn(text, () => dps.check());
      return which;
    } catch (e) {
      e.service = which;
      if (!first) first = e;
      if (e.status !== 401) break;
    }
  }
  throw first;
}

// hubOnly: signed in to provisioning only, and a device page needs the hub's own policy.
function renderSignIn(root, { hubOnly = false } = {}) {
  const errId = 'signin-error';
  const input = h('textarea', {
    id: 'connstr', name: 'connstr', rows: 3, spellcheck: 'false', autocomplete: 'off', required: true,
    placeholder: 'HostName=hub.example.net;SharedAccessKeyName=iothubowner;SharedAccessKey=…',
    'aria-describedby': `connstr-hint ${errId}`,
  });
  const error = h('div', { class: 'form-error', id: errId, role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h('form', {
    class: 'card', novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      input.removeAttribute('aria-invalid');
      await withBusy(submit, async () => {
        let which;
        try {
          which = await signInAny(input.value, hubOnly);
        } catch (e) {
          const who = e.service === 'dps' ? 'The provisioning service' : 'The hub';
          input.setAttribute('aria-invalid', 'true');
          error.textContent = e.status === 401
            ? `${who} refused this connection string: ${e.message}. Check the key and the policy name.`
            : e.status ? `${e.message}${e.code ? ` (${e.code})` : ''}` : e.message;
          input.focus();
          return;
        }
        hideBanner();
        showSession();
        if (which === 'dps' && !location.hash.startsWith('#/provisioning')) {
          toast('Signed in to the provisioning service. The device pages need the hub\'s connection string (owner.connstr).', 'ok');
          location.hash = '#/provisioning';
        } else route();
      });
    },
  },
  h('h1', null, hubOnly ? 'Sign in to the hub' : 'Sign in to iotdm'),
  h('p', { class: 'lead' }, hubOnly
    ? 'You are signed in to the provisioning service only. The device pages use the hub\'s service API, which needs one of the hub\'s own policies.'
    : 'Paste a shared access policy connection string of this hub or of its provisioning service. It stays in this browser tab only and is forgotten when you close it.'),
  h('div', { class: 'field' },
    h('label', { for: 'connstr' }, 'Connection string'),
    input,
    h('span', { class: 'hint', id: 'connstr-hint' }, hubOnly
      ? 'The hub keeps the iothubowner one in owner.connstr in its data directory.'
      : 'The hub keeps the iothubowner one in owner.connstr in its data directory, and the provisioning service\'s in dps.connstr.')),
  error,
  h('div', { class: 'form-actions' }, submit));
  clear(root, h('section', { class: 'signin' }, form));
  input.focus();
}

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, '');
  const parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'devices' && parts[1]) return { page: 'device', id: parts[1], tab: parts[2] || 'overview' };
  if (parts[0] === 'provisioning') {
    if ((parts[1] === 'enrollments' || parts[1] === 'groups') && parts[2]) {
      return { page: 'enrollment', kind: parts[1] === 'groups' ? 'group' : 'enrollment', id: parts[2] };
    }
    if (parts[1] === 'registrations' && parts[2]) return { page: 'registration', id: parts[2] };
    return { page: 'provisioning', tab: parts[1] === 'groups' ? 'groups' : 'enrollments' };
  }
  return { page: 'list' };
}

// Pages whose tabs switch without rebuilding the page (and its event stream).
function samePage(a, b) {
  return a && b && a.page === b.page && ((a.page === 'device' && a.id === b.id) || a.page === 'provisioning');
}

let lastRoute = null;

function setNav(which) {
  for (const id of ['nav-devices', 'nav-provisioning']) {
    const el = document.getElementById(id);
    if (id === which) el.setAttribute('aria-current', 'page');
    else el.removeAttribute('aria-current');
  }
}

function route() {
  const r = parseHash();
  const hubIn = !!auth.hub.current();
  const dpsIn = !!auth.dps.current();
  if (currentView && currentView.selectTab && samePage(r, lastRoute)) {
    lastRoute = r;
    currentView.selectTab(r.tab);
    return;
  }
  if (currentView) currentView.destroy();
  currentView = null;
  lastRoute = r;
  const provisioning = ['provisioning', 'enrollment', 'registration'].includes(r.page);
  setNav(provisioning ? 'nav-provisioning' : r.page === 'list' ? 'nav-devices' : null);
  if (!hubIn && !dpsIn) {
    document.title = 'Sign in · iotdm';
    setNav(null);
    renderSignIn(main);
  } else if (!provisioning && !hubIn) {
    document.title = 'Sign in · iotdm';
    renderSignIn(main, { hubOnly: true });
  } else if (provisioning && !dpsIn) {
    document.title = 'Provisioning · iotdm';
    clear(main, dpsSignIn(() => { showSession(); route(); }));
  } else if (r.page === 'device') {
    document.title = `${r.id} · iotdm`;
    currentView = renderDevice(main, r.id, r.tab);
  } else if (r.page === 'provisioning') {
    document.title = 'Provisioning · iotdm';
    currentView = renderProvisioning(main, r.tab);
  } else if (r.page === 'enrollment') {
    document.title = `${r.id} · Provisioning · iotdm`;
    currentView = renderEnrollment(main, r.kind, r.id);
  } else if (r.page === 'registration') {
    document.title = `${r.id} · Provisioning · iotdm`;
    currentView = renderRegistration(main, r.id);
  } else {
    document.title = 'Devices · iotdm';
    currentView = renderDeviceList(main);
  }
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

window.addEventListener('hashchange', route);

(async () => {
  await Promise.all([auth.hub.restore(), auth.dps.restore()]);
  showSession();
  route();
})();
