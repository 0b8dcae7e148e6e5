'use strict';
// Shared by the tests that drive the agent's DM capabilities through the service API: simulated
// devices (lib/agent.js), the twin's dm component, desired patches and their PnP acknowledgements.

const fs = require('node:fs');
const path = require('node:path');
const { SimDevice } = require('./agent');
const { FileServer } = require('./fileserver');

// Where every simulated device's scheduler clock starts: a fixed, known time of day (12:30 UTC).
const T0 = Date.parse('2030-01-15T12:30:00Z');

function dm(twin) {
  return twin.properties.reported.dm || {};
}

class DmTestbed {
  constructor(h) {
    this.h = h;
    this.devices = [];
  }

  // With files, also a local HTTPS file server (this.files) for the agents' downloads; every
  // device of this testbed is then told to trust it.
  async start({ files = false } = {}) {
    await this.h.startHub();
    this.clients();
    if (files) {
      this.files = new FileServer({ dir: fs.mkdtempSync(path.join(this.h.root, 'files-')), addr: this.h.addr });
      await this.files.start();
    }
  }

  // New service clients (after the hub restarted).
  clients() {
    this.reg = this.h.registry();
    this.svc = this.h.serviceClient();
  }

  // A registered device run by iotdm-agent + a sandboxed iotdm-configd; resolves once it has
  // connected and reported (its subscriptions are then in place). prepare(sim) runs before start.
  async newDevice(id, { clock = T0, prepare, extraAgentArgs = [], ...opts } = {}) {
    const d = await this.h.createDevice(this.reg, id);
    const trust = this.files ? ['--download-ca-file', this.files.certPath] : [];
    const sim = new SimDevice({
      dir: fs.mkdtempSync(path.join(this.h.root, `dev-${id}-`)), connStr: this.h.deviceConnStr(d),
      caPath: this.h.caPath, extraAgentArgs: [...trust, ...extraAgentArgs], ...opts,
    });
    this.devices.push(sim);
    if (clock !== null) sim.setClock(clock);
    if (prepare) prepare(sim);
    await sim.start();
    await this.connected(id);
    return sim;
  }

  async connected(id) {
    await this.h.waitUntil(async () => dm(await this.twin(id)).deviceInfo,
      { timeoutMs: 20000, what: `${id} to connect and report` });
  }

  async twin(id) {
    return (await this.reg.getTwin(id)).responseBody;
  }

  // A desired PATCH of the dm component with If-Match "*" (the device reports all the time, so
  // the etag moves); returns the new desired $version.
  async setDesired(id, dmPatch) {
    const r = await this.reg.updateTwin(id, { properties: { desired: { dm: { __t: 'c', ...dmPatch } } } }, '*');
    return r.responseBody.properties.desired.$version;
  }

  // The device's final acknowledgement (not 202) of a desired $version of one property.
  async waitAck(id, prop, version, { timeoutMs = 30000, what } = {}) {
    return this.h.waitUntil(async () => {
      const p = dm(await this.twin(id))[prop];
      return p && p.av === version && p.ac !== 202 ? p : null;
    }, { timeoutMs, what: what || `${prop} acknowledged for $version ${version}` });
  }

  async invoke(id, command, payload = null, timeoutS = 15) {
    const r = await this.svc.invokeDeviceMethod(id, { methodName: `dm*${command}`, payload, responseTimeoutInSeconds: timeoutS });
    return r.result;
  }

  async stop() {
    if (this.files) await this.files.stop();
    for (const d of this.devices) await d.stop();
    await this.h.stopAll();
  }
}

module.exports = { DmTestbed, dm, T0 };
