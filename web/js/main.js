// The dashboard's entry point: session, sign-in page and a small hash router.
//   #/                      device list
//   #/devices/{id}[/{tab}]  device page
import * as auth from './auth.js';
import { request, onUnauthorized } from './api.js';
import { h, clear, withBusy } from './dom.js';
import { renderDeviceList } from './views/devices.js';
import { renderDevice } from './views/device.js';

const main = document.getElementById('main');
let currentView = null; // {destroy()} of the page on screen

function showSession() {
  const s = auth.current();
  document.getElementById('session').hidden = !s;
  document.getElementById('nav-devices').hidden = !s;
  document.getElementById('session-host').textContent = s ? `${s.policy}@${s.host}` : '';
}

function hideBanner() {
  document.getElementById('banner').hidden = true;
}

onUnauthorized((err) => {
  const banner = document.getElementById('banner');
  clear(banner,
    h('span', null, `The hub refused the credentials: ${err.message}. `),
    h('button', { type: 'button', class: 'btn btn-small', onclick: () => { signOut(); } }, 'Sign in again'));
  banner.hidden = false;
});

function signOut() {
  auth.signOut();
  hideBanner();
  showSession();
  route();
}

document.getElementById('sign-out').addEventListener('click', signOut);

function renderSignIn(root) {
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
        try {
          // A cheap call that needs a valid signature: a wrong key gets 401 here.
          await auth.signIn(input.value, () => request('POST', '/devices/query', {
            body: { query: 'SELECT COUNT() AS n FROM devices' }, silent: true,
          }));
        } catch (e) {
          input.setAttribute('aria-invalid', 'true');
          error.textContent = e.status === 401
            ? `The hub refused this connection string: ${e.message}. Check the key and the policy name.`
            : e.status ? `${e.message}${e.code ? ` (${e.code})` : ''}` : e.message;
          input.focus();
          return;
        }
        hideBanner();
        showSession();
        route();
      });
    },
  },
  h('h1', null, 'Sign in to iotdm'),
  h('p', { class: 'lead' }, 'Paste a shared access policy connection string of this hub. It stays in this browser tab only and is forgotten when you close it.'),
  h('div', { class: 'field' },
    h('label', { for: 'connstr' }, 'Connection string'),
    input,
    h('span', { class: 'hint', id: 'connstr-hint' }, 'The hub keeps the iothubowner one in owner.connstr in its data directory.')),
  error,
  h('div', { class: 'form-actions' }, submit));
  clear(root, h('section', { class: 'signin' }, form));
  input.focus();
}

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, '');
  const parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'devices' && parts[1]) return { page: 'device', id: parts[1], tab: parts[2] || 'overview' };
  return { page: 'list' };
}

let lastRoute = null;

function route() {
  const r = parseHash();
  const signedIn = !!auth.current();
  // Switching tabs of the same device keeps the page (and its event stream).
  if (signedIn && currentView && lastRoute && r.page === 'device' && lastRoute.page === 'device' &&
      r.id === lastRoute.id && currentView.selectTab) {
    lastRoute = r;
    currentView.selectTab(r.tab);
    return;
  }
  if (currentView) currentView.destroy();
  currentView = null;
  lastRoute = r;
  document.getElementById('nav-devices').toggleAttribute('aria-current', false);
  if (!signedIn) {
    document.title = 'Sign in · iotdm';
    renderSignIn(main);
    return;
  }
  if (r.page === 'device') {
    document.title = `${r.id} · iotdm`;
    currentView = renderDevice(main, r.id, r.tab);
  } else {
    document.title = 'Devices · iotdm';
    document.getElementById('nav-devices').setAttribute('aria-current', 'page');
    currentView = renderDeviceList(main);
  }
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

window.addEventListener('hashchange', route);

(async () => {
  await auth.restore();
  showSession();
  route();
})();
