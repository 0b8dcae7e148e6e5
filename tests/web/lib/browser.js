'use strict';
// Debian's chromium, headless, driven by playwright-core. The hub's server certificate is trusted
// by pinning its public key (--ignore-certificate-errors-spki-list): every other certificate
// error still fails, unlike --ignore-certificate-errors.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.IOTDM_CHROMIUM || '/usr/bin/chromium';

// base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in a PEM file.
function spkiHash(pemPath) {
  const cert = new crypto.X509Certificate(fs.readFileSync(pemPath));
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

// A fresh profile directory per launch (playwright passes it as --user-data-dir); returns the
// persistent context, whose close() also removes the profile.
async function launch({ serverCertPath, viewport = { width: 1360, height: 900 } }) {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install chromium (scripts/install-deps.sh does)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'iotdm-web-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--ignore-certificate-errors-spki-list=${spkiHash(serverCertPath)}`,
    ],
  });
  const close = context.close.bind(context);
  context.close = async () => {
    await close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return context;
}

module.exports = { launch, spkiHash, CHROMIUM };
