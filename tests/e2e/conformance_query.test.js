'use strict';
// registry.createQuery -> POST /devices/query with paging (docs/protocol.md §8.9).
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

let reg;
const N = 12;
const ids = [];
const fw = {}; // deviceId -> reported fw
const disabled = new Set();

before(async () => {
  await h.startHub();
  reg = h.registry();
  // 12 devices q-00..q-11: tags {suite, floor: i % 3, name}; q-00..q-05 report fw
  // (2.0 for even i, 1.0 for odd); q-09..q-11 are disabled. Plus one device
  // outside the suite.
  for (let i = 0; i < N; i++) {
    const id = `q-${String(i).padStart(2, '0')}`;
    ids.push(id);
    const d = await h.createDevice(reg, id, i >= 9 ? { status: 'disabled' } : {});
    if (i >= 9) disabled.add(id);
    await reg.updateTwin(id, { tags: { suite: 'query', floor: i % 3, name: `dev ${i}` } }, '*');
    if (i < 6) {
      const client = await h.openDevice(h.deviceConnStr(d));
      const twin = await h.barrier(client);
      fw[id] = i % 2 === 0 ? '2.0' : '1.0';
      await h.reportedUpdate(twin, { fw: fw[id], battery: 50 + i });
      await client.close();
    }
  }
  await h.createDevice(reg, 'other-device');
  await reg.updateTwin('other-device', { tags: { suite: 'other', floor: 1 } }, '*');
});
after(() => h.stopAll());

// Runs a query to the end with nextAsTwin; returns {pages, items}.
async function allTwins(sql, pageSize) {
  const q = reg.createQuery(sql, pageSize);
  const pages = [];
  let guard = 0;
  while (q.hasMoreResults) {
    if (++guard > 50) throw new Error(`query did not end after 50 pages: ${sql}`);
    const { result, message } = await h.withTimeout(q.nextAsTwin(), 10000, `query page ${guard}: ${sql}`);
    assert.equal(message.statusCode, 200);
    assert.match(message.headers['content-type'] || '', /application\/json/);
    pages.push({ items: result, itemType: message.headers['x-ms-item-type'], cont: message.headers['x-ms-continuation'] });
  }
  return { pages, items: pages.flatMap((p) => p.items) };
}

async function allRaw(sql, pageSize) {
  const q = reg.createQuery(sql, pageSize);
  const out = [];
  let guard = 0;
  let itemType;
  while (q.hasMoreResults) {
    if (++guard > 50) throw new Error(`query did not end after 50 pages: ${sql}`);
    // Query.next() without an argument restarts from the first page (it only
    // falls back to the stored token when given a callback): pass it explicitly.
    const { result, message } = await h.withTimeout(q.next(q.continuationToken), 10000, `query page ${guard}: ${sql}`);
    itemType = message.headers['x-ms-item-type'];
    out.push(...result);
  }
  return { items: out, itemType };
}

function sorted(a) {
  return [...a].sort();
}

test('SELECT * with WHERE on tags, paged 5 at a time across 3 pages', async () => {
  const { pages, items } = await allTwins("SELECT * FROM devices WHERE tags.suite = 'query'", 5);
  const sizes = pages.map((p) => p.items.length);
  assert.ok(pages.length >= 3 && sizes.every((n) => n <= 5), `page sizes with x-ms-max-item-count 5: ${sizes}`);
  assert.ok(pages.slice(0, -1).every((p) => typeof p.cont === 'string' && p.cont.length > 0),
    'x-ms-continuation on every page but the last');
  assert.equal(pages[pages.length - 1].cont, undefined, 'no x-ms-continuation on the last page');
  assert.ok(pages.every((p) => (p.itemType || '').toLowerCase() === 'twin'), `x-ms-item-type: ${pages.map((p) => p.itemType)}`);
  const got = items.map((t) => t.deviceId);
  assert.equal(new Set(got).size, got.length, `duplicates across pages: ${got}`);
  assert.deepEqual(sorted(got), ids);
  const t = items.find((x) => x.deviceId === 'q-04');
  assert.equal(t.tags.floor, 1);
  assert.equal(t.properties.reported.fw, '2.0');
  assert.equal(typeof t.properties.desired.$version, 'number');
  assert.ok(t.etag, 'twin etag');
  assert.equal(typeof t.update, 'function', 'nextAsTwin must give Twin objects');
});

test('WHERE on tags AND reported properties', async () => {
  const { items } = await allTwins("SELECT * FROM devices WHERE tags.suite = 'query' AND properties.reported.fw = '2.0'", 100);
  assert.deepEqual(sorted(items.map((t) => t.deviceId)), ['q-00', 'q-02', 'q-04']);
  const r2 = await allTwins("SELECT * FROM devices WHERE tags.floor = 1 AND tags.suite = 'query'", 2);
  assert.deepEqual(sorted(r2.items.map((t) => t.deviceId)), ['q-01', 'q-04', 'q-07', 'q-10']);
  const r3 = await allTwins("SELECT * FROM devices WHERE properties.reported.battery >= 53 AND tags.suite = 'query'", 100);
  assert.deepEqual(sorted(r3.items.map((t) => t.deviceId)), ['q-03', 'q-04', 'q-05']);
});

test('WHERE on status and deviceId', async () => {
  const { items } = await allTwins("SELECT * FROM devices WHERE status = 'disabled'", 100);
  assert.deepEqual(sorted(items.map((t) => t.deviceId)), [...disabled].sort());
  const r2 = await allTwins("SELECT * FROM devices WHERE deviceId = 'q-07'", 100);
  assert.deepEqual(r2.items.map((t) => t.deviceId), ['q-07']);
  const r3 = await allTwins("SELECT * FROM devices WHERE status = 'enabled' AND tags.suite = 'query' AND tags.floor = 0", 100);
  assert.deepEqual(sorted(r3.items.map((t) => t.deviceId)), ['q-00', 'q-03', 'q-06']);
});

test('OR, NOT, IN, IS_DEFINED', async () => {
  const a = await allTwins("SELECT * FROM devices WHERE tags.suite = 'query' AND (tags.floor = 2 OR properties.reported.fw = '1.0')", 100);
  assert.deepEqual(sorted(a.items.map((t) => t.deviceId)), ['q-01', 'q-02', 'q-03', 'q-05', 'q-08', 'q-11']);
  const b = await allTwins("SELECT * FROM devices WHERE tags.suite = 'query' AND NOT (status = 'enabled')", 100);
  assert.deepEqual(sorted(b.items.map((t) => t.deviceId)), ['q-09', 'q-10', 'q-11']);
  const c = await allTwins("SELECT * FROM devices WHERE deviceId IN ['q-01', 'q-05', 'nope']", 100);
  assert.deepEqual(sorted(c.items.map((t) => t.deviceId)), ['q-01', 'q-05']);
  const d = await allTwins('SELECT * FROM devices WHERE IS_DEFINED(properties.reported.fw)', 100);
  assert.deepEqual(sorted(d.items.map((t) => t.deviceId)), Object.keys(fw).sort());
});

test('projection returns raw items', async () => {
  const { items, itemType } = await allRaw(
    "SELECT deviceId, tags.floor AS floor, properties.reported.fw AS fw FROM devices WHERE tags.suite = 'query' AND IS_DEFINED(properties.reported.fw)", 4);
  assert.equal((itemType || '').toLowerCase(), 'raw');
  assert.equal(items.length, 6);
  const byId = Object.fromEntries(items.map((x) => [x.deviceId, x]));
  assert.deepEqual(byId['q-05'], { deviceId: 'q-05', floor: 2, fw: '1.0' });
  assert.deepEqual(byId['q-00'], { deviceId: 'q-00', floor: 0, fw: '2.0' });
});

test('GROUP BY with COUNT()', async () => {
  const { items } = await allRaw(
    "SELECT properties.reported.fw AS fw, COUNT() AS n FROM devices WHERE IS_DEFINED(properties.reported.fw) GROUP BY properties.reported.fw", 100);
  const m = Object.fromEntries(items.map((x) => [x.fw, x.n]));
  assert.deepEqual(m, { '1.0': 3, '2.0': 3 });
  const r = await h.rest('POST', `/devices/query?${h.API}`, {
    body: { query: "SELECT tags.floor AS floor, COUNT() AS numberOfDevices FROM devices WHERE tags.suite = 'query' GROUP BY tags.floor" },
  });
  assert.equal(r.status, 200, r.text);
  const f = Object.fromEntries(r.json.map((x) => [x.floor, x.numberOfDevices]));
  assert.deepEqual(f, { 0: 4, 1: 4, 2: 4 });
  assert.equal(r.headers['x-ms-continuation'], undefined);
});

test('a malformed query is 400 ArgumentError', async () => {
  const q = reg.createQuery('SELECT * FROM devices WHERE (', 10);
  const err = await h.rejects(q.nextAsTwin(), 10000, 'malformed query');
  assert.equal(err.name, 'ArgumentError', `${err.name}: ${err.responseBody}`);
  assert.equal(err.response.statusCode, 400);
});
