'use strict';
// The cluster's own behaviour (docs/cluster.md): three hub nodes on one PostgreSQL behind HAProxy
// (lib/cluster.js). Work entering one node reaches a device held by another; one connection per
// device across the cluster; event streams see every node's events; a node killed under load
// loses nothing it acknowledged; PostgreSQL restarted under load: nodes resume, nothing
// acknowledged is lost. Needs IOTDM_E2E_PG_DIR (make e2e-cluster starts the server).
process.env.IOTDM_E2E_CLUSTER = '1';
const h = require('../lib/harness');

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const API = h.API;
let reg;
const keys = {};

function node(k) { return h.hub.nodes[k - 1]; }

async function device(id) {
  const d = await h.createDevice(reg, id);
  keys[id] = d.authentication.symmetricKey.primaryKey;
  return d;
}

// A raw MQTT device connected to node k directly (not through the balancer).
function connectTo(k, id, opts = {}) {
  return h.rawConnect({ deviceId: id, key: keys[id], addr: node(k).addr, ...opts });
}

function methodCall(k, id, name, payload, timeoutS = 10) {
  return h.rest('POST', `/twins/${id}/methods?${API}`, {
    target: node(k).addr,
    body: { methodName: name, payload, responseTimeoutInSeconds: timeoutS },
  });
}

// Answers every method request with 200 and {echo: payload}.
async function answerMethods(c) {
  await c.subscribe('$iothub/methods/POST/#');
  c.client.on('message', (topic, payload) => {
    const m = /^\$iothub\/methods\/POST\/([^/]+)\/\?\$rid=(.+)$/.exec(topic);
    if (!m) return;
    const body = JSON.stringify({ echo: payload.length ? JSON.parse(payload.toString()) : null, method: m[1] });
    c.client.publish(`$iothub/methods/res/200/?$rid=${m[2]}`, body);
  });
}

async function connectedNode(id) {
  const r = await h.rest('GET', `/devices/${id}?${API}`);
  return r.json && r.json.connectionState;
}

before(async () => {
  await h.startHub();
  reg = h.registry();
});

after(() => h.stopAll());

test('every node is healthy and, after a heartbeat, counts the others', async () => {
  for (let k = 1; k <= 3; k++) {
    await h.waitUntil(async () => {
      const r = await h.rest('GET', '/iotdm/health', { target: node(k).addr, auth: null });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.status, 'ok');
      return r.json.nodes === 3;
    }, { timeoutMs: 6000, what: `node ${k} to count 3 nodes` });
  }
});

test('a method and a desired patch sent to node 1 reach a device held by node 3', async () => {
  await device('cl-m');
  const c = await connectTo(3, 'cl-m');
  await answerMethods(c);
  await c.subscribe('$iothub/twin/PATCH/properties/desired/#');
  const r = await methodCall(1, 'cl-m', 'ping', { n: 1 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 200, payload: { echo: { n: 1 }, method: 'ping' } });
  const twin = await h.rest('PATCH', `/twins/cl-m?${API}`, {
    target: node(1).addr, body: { properties: { desired: { color: 'blue' } } },
  });
  assert.equal(twin.status, 200, twin.text);
  const m = await c.waitMessage((x) => x.topic.startsWith('$iothub/twin/PATCH/properties/desired/'), 5000, 'desired patch');
  assert.equal(JSON.parse(m.payload.toString()).color, 'blue');
  // A C2D message queued through node 2 is delivered by node 3.
  await c.subscribe('devices/cl-m/messages/devicebound/#', 1);
  const sent = await h.rest('POST', `/iotdm/devices/cl-m/messages?${API}`, { target: node(2).addr, body: { body: 'hello' } });
  assert.ok(sent.status < 300, sent.text);
  const c2d = await c.waitMessage((x) => x.topic.startsWith('devices/cl-m/messages/devicebound/'), 5000, 'C2D message');
  assert.equal(c2d.payload.toString(), 'hello');
});

test('desired patches written at once through different nodes: none lost, the device gets them in $version order', async () => {
  await device('cl-order');
  const c = await connectTo(3, 'cl-order');
  await c.subscribe('$iothub/twin/PATCH/properties/desired/#');
  await c.subscribe('$iothub/twin/res/#');
  await c.twinGet();
  // Twenty patches of different keys, all at once, through node 1 and node 2 in turn: two
  // writers merge into the same twin, and the notifications travel on two buses.
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => h.rest('PATCH', `/twins/cl-order?${API}`, {
    target: node(1 + (i % 2)).addr, body: { properties: { desired: { [`k${i}`]: i } } },
  })));
  for (const r of rs) assert.equal(r.status, 200, r.text);
  const twin = (await h.rest('GET', `/twins/cl-order?${API}`, { target: node(3).addr })).json;
  for (let i = 0; i < 20; i++) assert.equal(twin.properties.desired[`k${i}`], i, `k${i} kept in the twin`);
  const last = twin.properties.desired.$version;
  await c.waitMessage((m) => m.topic.startsWith('$iothub/twin/PATCH/properties/desired/') &&
    JSON.parse(m.payload.toString()).$version === last, 5000, `the patch of $version ${last}`);
  const got = c.messages.filter((m) => m.topic.startsWith('$iothub/twin/PATCH/properties/desired/'))
    .map((m) => JSON.parse(m.payload.toString()));
  const versions = got.map((p) => p.$version);
  assert.deepEqual(versions, [...versions].sort((a, b) => a - b), `in order: ${versions}`);
  for (let i = 0; i < 20; i++) assert.ok(got.some((p) => p[`k${i}`] === i), `patch ${i} delivered`);
});

test('a method to a device that connects to another node within connectTimeoutInSeconds is delivered', async () => {
  await device('cl-late');
  const call = h.rest('POST', `/twins/cl-late/methods?${API}`, {
    target: node(1).addr,
    body: { methodName: 'late', payload: 7, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 },
  });
  await h.sleep(800);
  const c = await connectTo(2, 'cl-late');
  await answerMethods(c);
  const r = await call;
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.payload.echo, 7);
  // Offline and no connect timeout: 404 DeviceNotOnline, as on one node.
  await c.end();
  await h.waitUntil(async () => (await connectedNode('cl-late')) === 'Disconnected', { what: 'disconnected' });
  const off = await methodCall(1, 'cl-late', 'late', 1);
  assert.equal(off.status, 404, off.text);
  assert.equal(h.errorCode(off.text), 'DeviceNotOnline');
});

test('one connection per device across the cluster: a connection to another node takes over', async () => {
  await device('cl-take');
  const c1 = await connectTo(1, 'cl-take');
  await c1.subscribe('$iothub/twin/res/#');
  const c2 = await connectTo(2, 'cl-take');
  await c1.waitClosed(5000, 'taken over by a connection on node 2');
  await c2.subscribe('$iothub/twin/res/#');
  assert.equal((await c2.twinGet()).status, 200);
  await answerMethods(c2);
  const r = await methodCall(3, 'cl-take', 'where', null);
  assert.equal(r.status, 200, r.text);
  assert.equal(await connectedNode('cl-take'), 'Connected');
  await h.sleep(300);
  assert.ok(!c2.closed, 'the new connection stays open');
  // Back and forth between nodes 1 and 2: each node closed its connection for the other's, and
  // takes the identity again (its directory must no longer name the closed connection; which of
  // a node's loops a connection lands on is the kernel's choice, hence several rounds).
  let held = c2;
  for (let round = 0; round < 6; round++) {
    const node = round % 2 === 0 ? 1 : 2;
    const next = await connectTo(node, 'cl-take');
    await held.waitClosed(5000, `taken over by a connection on node ${node} (round ${round})`);
    await next.subscribe('$iothub/twin/res/#');
    assert.equal((await next.twinGet()).status, 200);
    held = next;
  }
  await h.sleep(300);
  assert.ok(!held.closed, 'the newest connection stays open');
  await held.end();
});

test('the event stream of one node carries the events of every node', async () => {
  const ids = ['cl-e1', 'cl-e2', 'cl-e3'];
  for (const id of ids) await device(id);
  const s = await h.events({ host: node(1).addr });
  const conns = [];
  for (let k = 1; k <= 3; k++) conns.push(await connectTo(k, ids[k - 1]));
  for (let k = 1; k <= 3; k++) {
    await conns[k - 1].publish(`devices/${ids[k - 1]}/messages/events/`, JSON.stringify({ from: k }), { qos: 1 });
  }
  for (const id of ids) {
    await s.waitFor((e) => e.event === 'telemetry' && e.data.deviceId === id, 10000, `telemetry of ${id}`);
  }
});

// Devices sending QoS 1 telemetry through the balancer, each message numbered; a connection that
// closes is opened again (through the balancer: another node if its node is gone). acked holds
// what the hub acknowledged with a PUBACK.
function load(ids) {
  const state = { stop: false, acked: new Map(), sent: 0 };
  const loops = ids.map(async (id) => {
    const acked = [];
    state.acked.set(id, acked);
    let n = 0;
    while (!state.stop) {
      let c;
      try {
        c = await h.rawConnect({ deviceId: id, key: keys[id], timeoutMs: 3000 });
      } catch (_) {
        await h.sleep(100);
        continue;
      }
      while (!state.stop && !c.closed) {
        const seq = ++n;
        state.sent++;
        try {
          await c.publish(`devices/${id}/messages/events/`, JSON.stringify({ seq }), { qos: 1 }, 3000);
          acked.push(seq);
        } catch (_) {
          break; /* no PUBACK: not acknowledged, whatever became of it */
        }
      }
      await c.end();
    }
  });
  state.done = () => { state.stop = true; return Promise.all(loops); };
  return state;
}

// Every acknowledged message is in the retained stream (read back from the start, on node 1).
function telemetrySeq(e, id) {
  if (e.event !== 'telemetry' || e.data.deviceId !== id || typeof e.data.body !== 'string') return null;
  try { return JSON.parse(e.data.body).seq; } catch (_) { return null; }
}

async function assertNothingLost(state, label) {
  const s = await h.events({ host: node(1).addr, from: 0 });
  for (const [id, acked] of state.acked) {
    assert.ok(acked.length > 0, `${label}: ${id} had messages acknowledged`);
    const last = acked[acked.length - 1];
    await s.waitFor((e) => telemetrySeq(e, id) === last, 15000, `${label}: ${id} message ${last}`);
  }
  const stored = new Set();
  for (const e of s.events) {
    if (e.event === 'telemetry') stored.add(`${e.data.deviceId}:${telemetrySeq(e, e.data.deviceId)}`);
  }
  for (const [id, acked] of state.acked) {
    const lost = acked.filter((seq) => !stored.has(`${id}:${seq}`));
    assert.deepEqual(lost, [], `${label}: ${id} lost ${lost.length} of ${acked.length} acknowledged messages`);
  }
  s.close();
}

test('a node killed under load: its devices move to the others, nothing acknowledged is lost, its presence expires, a call in flight to it fails with 504', async () => {
  const ids = ['cl-k1', 'cl-k2', 'cl-k3', 'cl-k4', 'cl-k5', 'cl-k6'];
  for (const id of ids) await device(id);
  await device('cl-k-slow');
  const slow = await connectTo(2, 'cl-k-slow');
  await slow.subscribe('$iothub/methods/POST/#'); // subscribed, never answers
  const state = load(ids);
  await h.sleep(1500);
  const t0 = Date.now();
  const inflight = methodCall(1, 'cl-k-slow', 'hang', null, 5);
  await slow.waitMessage((m) => m.topic.startsWith('$iothub/methods/POST/hang/'), 5000, 'the call on node 2');
  await node(2).kill9();
  await h.sleep(4000);
  await state.done();
  const r = await inflight;
  assert.equal(r.status, 504, r.text);
  assert.equal(h.errorCode(r.text), 'GatewayTimeout');
  assert.ok(Date.now() - t0 < 15000, 'the call failed within its timeout and the margin');
  await assertNothingLost(state, 'node killed');
  // The survivors see it gone, and the devices it held that did not come back are disconnected.
  await h.waitUntil(async () => {
    const hr = await h.rest('GET', '/iotdm/health', { target: node(1).addr, auth: null });
    return hr.json && hr.json.nodes === 2;
  }, { timeoutMs: 20000, what: 'node 2 to expire' });
  await h.waitUntil(async () => (await connectedNode('cl-k-slow')) === 'Disconnected',
    { timeoutMs: 10000, what: "node 2's device marked disconnected" });
  await node(2).start(); // back for the following tests and a clean stop
});

test('a job goes on when the node running it is killed: its call in flight is not made again, the rest completes elsewhere', async () => {
  const { JobClient } = require('azure-iothub');
  const jobs = JobClient.fromConnectionString(h.readOwner());
  const early = 'cl-j-early';
  const late = ['cl-j-late1', 'cl-j-late2', 'cl-j-late3'];
  for (const id of [early, ...late]) await device(id);
  const calls = new Map();
  // Answers each call after delayMs, counting the calls per device.
  async function answerLater(c, id, delayMs) {
    await c.subscribe('$iothub/methods/POST/#');
    c.client.on('message', (topic) => {
      const m = /^\$iothub\/methods\/POST\/([^/]+)\/\?\$rid=(.+)$/.exec(topic);
      if (!m) return;
      calls.set(id, (calls.get(id) || 0) + 1);
      setTimeout(() => c.client.publish(`$iothub/methods/res/200/?$rid=${m[2]}`, JSON.stringify({ id })), delayMs);
    });
  }
  await jobs.scheduleDeviceMethod('cl-job-kill', `deviceId IN ['${early}', '${late.join("', '")}']`,
    { methodName: 'work', payload: null, responseTimeoutInSeconds: 30 }, new Date(), 120);
  // The node that took the job says so in its log.
  let runner = 0;
  await h.waitUntil(() => {
    runner = [1, 2, 3].find((k) => /running job=cl-job-kill/.test(node(k).logTail(400))) || 0;
    return runner > 0;
  }, { timeoutMs: 10000, what: 'a node to run the job' });
  const other = runner === 1 ? 2 : 1;
  // The early device, on another node, is called and answers late: the call is in flight when
  // the runner dies.
  const ce = await connectTo(other, early);
  await answerLater(ce, early, 3000);
  await h.waitUntil(() => calls.get(early) === 1, { timeoutMs: 15000, what: 'the call to the early device' });
  await node(runner).kill9();
  for (const id of late) await answerLater(await connectTo(other, id), id, 0);
  let done;
  await h.waitUntil(async () => {
    done = (await jobs.getJob('cl-job-kill')).jobStatus;
    return done.status === 'completed';
  }, { timeoutMs: 60000, intervalMs: 500, what: 'another node to finish the job' });
  assert.deepEqual(done.deviceJobStatistics,
    { deviceCount: 4, failedCount: 1, succeededCount: 3, runningCount: 0, pendingCount: 0 });
  const q = reg.createQuery("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'cl-job-kill'", 10);
  const records = (await q.next(q.continuationToken)).result;
  const byId = Object.fromEntries(records.map((r) => [r.deviceId, r]));
  assert.equal(byId[early].status, 'failed');
  assert.equal(byId[early].error.code, 'JobRunnerLost');
  for (const id of late) assert.deepEqual(byId[id].outcome.deviceMethodResponse, { status: 200, payload: { id } });
  for (const id of [early, ...late]) assert.equal(calls.get(id), 1, `${id} is called exactly once`);
  await node(runner).start(); // back for the following tests and a clean stop
});

test('PostgreSQL restarted under load: writes in the outage are not acknowledged, nothing acknowledged is lost, the nodes resume', async () => {
  const ids = ['cl-p1', 'cl-p2', 'cl-p3'];
  for (const id of ids) await device(id);
  const state = load(ids);
  await h.sleep(1500);
  const before = new Map([...state.acked].map(([id, a]) => [id, a.length]));
  execFileSync(path.join(__dirname, '..', '..', '..', 'scripts', 'pg-tmp.sh'),
    ['restart', process.env.IOTDM_E2E_PG_DIR], { stdio: 'pipe' });
  await h.sleep(4000);
  await state.done();
  for (const [id, a] of state.acked) {
    assert.ok(a.length > before.get(id), `${id}: acknowledgements resumed after the restart`);
  }
  await assertNothingLost(state, 'database restarted');
  // The bus is back too: a method through node 1 to a device on node 3.
  await device('cl-p-m');
  const c = await connectTo(3, 'cl-p-m');
  await answerMethods(c);
  await h.waitUntil(async () => {
    const r = await methodCall(1, 'cl-p-m', 'after', 1);
    return r.status === 200;
  }, { timeoutMs: 10000, what: 'a method across nodes after the restart' });
});
