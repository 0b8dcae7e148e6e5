'use strict';
// Run by bootstrap.js (synchronously, in its own process) before a test file's
// real run: start the hub once on a fresh data directory so that it creates
// DIR/ca.pem and DIR/owner.connstr, then stop it. The test process is then
// started with NODE_EXTRA_CA_CERTS=DIR/ca.pem and starts the hub again on the
// same directory (which must reuse the CA).

const fs = require('node:fs');
const path = require('node:path');
const { makeHub } = require('./cluster');

async function main() {
  const root = process.env.IOTDM_E2E_ROOT;
  const hub = makeHub({
    bin: process.env.IOTDM_E2E_HUB_BIN,
    dataDir: path.join(root, 'data'),
    addr: process.env.IOTDM_E2E_ADDR,
    logPath: path.join(root, 'hub.log'),
  });
  process.on('exit', () => hub.killSync());
  await hub.start({ timeoutMs: 30000 });
  const files = ['ca.pem', 'owner.connstr'];
  if (!process.env.IOTDM_E2E_PG_DIR) files.push('hub.db');
  for (const f of files) {
    const p = path.join(hub.dataDir, f);
    if (!fs.existsSync(p)) throw new Error(`the hub is ready but ${p} does not exist`);
  }
  const ca = fs.readFileSync(path.join(hub.dataDir, 'ca.pem'), 'utf8');
  if (!/-----BEGIN CERTIFICATE-----/.test(ca)) throw new Error('ca.pem holds no PEM certificate');
  const r = await hub.stop();
  if (r.code !== 0) {
    process.stderr.write(`e2e prepare: warning: hub exited with ${JSON.stringify(r)} after SIGTERM\n`);
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`e2e prepare failed: ${err.stack || err}\n`);
  process.exit(1);
});
