'use strict';
// Jobs v2 through the official azure-iothub JobClient and Registry.createQuery (docs/jobs.md):
// twin and method jobs over connected and offline devices, devices.jobs queries, cancel, paging.
const h = require('./lib/harness');
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { JobClient } = require('azure-iothub');

let reg;
let jobs;

before(async () => {
  await h.startHub();
  reg = h.registry();
  jobs = JobClient.fromConnectionString(h.readOwner());
});
after(() => h.stopAll());

// Polls the job until it ends; returns the JobResponse.
async function untilEnded(jobId, timeoutMs = 30000) {
  let last;
  await h.waitUntil(async () => {
    last = (await jobs.getJob(jobId)).jobStatus;
    return ['completed', 'failed', 'cancelled'].includes(last.status);
  }, { timeoutMs, intervalMs: 250, what: `job ${jobId} to end` });
  return last;
}

async function deviceJobs(jobId) {
  const q = reg.createQuery(`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${jobId}'`, 2);
  const all = [];
  do {
    // next() without an argument starts over (the SDK's promise form): pass the token.
    const page = await q.next(q.continuationToken);
    all.push(...page.result);
  } while (q.hasMoreResults);
  return all.sort((a, b) => a.deviceId.localeCompare(b.deviceId));
}

async function tagged(id, site) {
  const d = await h.createDevice(reg, id);
  const twin = await reg.getTwin(id);
  await twin.responseBody.update({ tags: { site } });
  return d;
}

test('a twin job writes every matching twin, connected or not; devices.jobs lists the records', async () => {
  const online = await tagged('jt-on', 'north');
  await tagged('jt-off', 'north');
  await tagged('jt-other', 'south');
  const client = await h.openDevice(h.deviceConnStr(online));
  const twin = await client.getTwin();
  const patches = [];
  twin.on('properties.desired', (p) => { if (p.rollout) patches.push(p); });

  const ev = await h.events();
  // The promise form without a start time: Node sends "startTime": null and no maximum.
  const created = await jobs.scheduleTwinUpdate('twin-job-1', "tags.site = 'north'",
    { etag: '*', properties: { desired: { rollout: { wave: 1 } } } });
  assert.equal(created.jobStatus.jobId, 'twin-job-1');
  assert.equal(created.jobStatus.type, 'scheduleUpdateTwin');

  const done = await untilEnded('twin-job-1');
  assert.equal(done.status, 'completed');
  assert.equal(done.queryCondition, "tags.site = 'north'");
  assert.equal(done.maxExecutionTimeInSeconds, 3600);
  assert.deepEqual(done.updateTwin.properties.desired, { rollout: { wave: 1 } });
  assert.deepEqual(done.deviceJobStatistics,
    { deviceCount: 2, failedCount: 0, succeededCount: 2, runningCount: 0, pendingCount: 0 });
  assert.ok(done.endTime >= done.startTime);

  await h.waitUntil(() => patches.length === 1, { what: 'the desired patch on the connected device' });
  assert.deepEqual(patches[0].rollout, { wave: 1 });
  // The offline device has it in its twin, and the device outside the condition does not.
  assert.deepEqual((await reg.getTwin('jt-off')).responseBody.properties.desired.rollout, { wave: 1 });
  assert.equal((await reg.getTwin('jt-other')).responseBody.properties.desired.rollout, undefined);

  // Progress on the live stream: the job's status changes and each device's outcome.
  for (const status of ['queued', 'running', 'completed']) {
    await ev.waitFor((e) => e.event === 'job' && e.data.jobId === 'twin-job-1' && e.data.status === status,
      5000, `the job event ${status}`);
  }
  const done_ = await ev.waitFor((e) => e.event === 'job' && e.data.status === 'completed', 5000, 'completed');
  assert.equal(done_.data.deviceJobStatistics.succeededCount, 2);
  for (const id of ['jt-on', 'jt-off']) {
    await ev.waitFor((e) => e.event === 'deviceJob' && e.data.jobId === 'twin-job-1' && e.data.deviceId === id &&
      e.data.status === 'completed', 5000, `the device job event of ${id}`);
  }

  const records = await deviceJobs('twin-job-1');
  assert.deepEqual(records.map((r) => [r.deviceId, r.status, r.jobType]),
    [['jt-off', 'completed', 'scheduleUpdateTwin'], ['jt-on', 'completed', 'scheduleUpdateTwin']]);
  for (const r of records) {
    assert.equal(r.jobId, 'twin-job-1');
    assert.ok(r.startTimeUtc && r.endTimeUtc && r.createdDateTimeUtc && r.lastUpdatedDateTimeUtc);
    assert.equal(r.$iotdm, undefined, 'the hub keeps its own members to itself');
  }
});

test('a method job calls connected devices, retries one that connects later, fails one that never does', async () => {
  const a = await h.createDevice(reg, 'jm-a');
  const late = await h.createDevice(reg, 'jm-late');
  await h.createDevice(reg, 'jm-never');
  const ca = await h.openDevice(h.deviceConnStr(a));
  let calls = 0;
  ca.onDeviceMethod('blink', (req, res) => { calls += 1; res.send(200, { blinked: req.payload.times }, () => {}); });
  await h.barrier(ca);

  await jobs.scheduleDeviceMethod('method-job-1', "deviceId IN ['jm-a', 'jm-late', 'jm-never']",
    { methodName: 'blink', payload: { times: 3 }, responseTimeoutInSeconds: 10 }, new Date(), 25);
  // The late device connects after the first attempt failed: the job tries it again.
  await h.sleep(2000);
  const cl = await h.openDevice(h.deviceConnStr(late));
  cl.onDeviceMethod('blink', (req, res) => res.send(202, { late: true }, () => {}));
  await h.barrier(cl);

  const done = await untilEnded('method-job-1', 60000);
  assert.equal(done.status, 'completed');
  assert.equal(done.cloudToDeviceMethod.methodName, 'blink');
  assert.deepEqual(done.deviceJobStatistics,
    { deviceCount: 3, failedCount: 1, succeededCount: 2, runningCount: 0, pendingCount: 0 });
  assert.equal(calls, 1, 'each device is called once');
  const byId = Object.fromEntries((await deviceJobs('method-job-1')).map((r) => [r.deviceId, r]));
  assert.deepEqual(byId['jm-a'].outcome.deviceMethodResponse, { status: 200, payload: { blinked: 3 } });
  assert.deepEqual(byId['jm-late'].outcome.deviceMethodResponse, { status: 202, payload: { late: true } });
  assert.equal(byId['jm-never'].status, 'failed');
  assert.equal(byId['jm-never'].error.code, 'DeviceNotOnline');
});

test('a scheduled job waits for its start time and can be cancelled before it runs', async () => {
  await h.createDevice(reg, 'jc-1');
  const start = new Date(Date.now() + 120000);
  await jobs.scheduleTwinUpdate('later-job', "deviceId = 'jc-1'", { tags: { later: true } }, start, 600);
  await h.waitUntil(async () => (await jobs.getJob('later-job')).jobStatus.status === 'scheduled',
    { timeoutMs: 10000, what: 'the job to be scheduled' });
  const cancelled = (await jobs.cancelJob('later-job')).jobStatus;
  assert.equal(cancelled.status, 'cancelled');
  assert.ok(cancelled.endTime);
  assert.equal((await jobs.getJob('later-job')).jobStatus.status, 'cancelled');
  assert.equal((await reg.getTwin('jc-1')).responseBody.tags.later, undefined);
});

test('errors: an unknown job, a job id used twice, requests that cannot run', async () => {
  const missing = await h.rejects(jobs.getJob('no-such-job'), 10000, 'get of an unknown job');
  assert.equal(missing.response.statusCode, 404);
  assert.equal(h.errorCode(missing.responseBody), 'JobNotFound');

  await h.createDevice(reg, 'je-1');
  await jobs.scheduleTwinUpdate('twice', "deviceId = 'je-1'", { tags: { n: 1 } });
  const again = await h.rejects(jobs.scheduleTwinUpdate('twice', "deviceId = 'je-1'", { tags: { n: 2 } }),
    10000, 'a second job with the same id');
  assert.equal(again.response.statusCode, 409);

  const bad = [
    { type: 'scheduleUpdateTwin', queryCondition: "deviceId = 'x'" }, // no updateTwin
    { type: 'scheduleUpdateTwin', queryCondition: 'deviceId = ', updateTwin: { tags: { a: 1 } } },
    { type: 'scheduleDeviceMethod', queryCondition: '*', cloudToDeviceMethod: { methodName: 'a b' } },
    { type: 'scheduleUpdateTwin', queryCondition: '*', updateTwin: { etag: 'AAAA', tags: { a: 1 } } },
    { type: 'export', queryCondition: '*' },
    { type: 'scheduleUpdateTwin', queryCondition: '*', updateTwin: { tags: { a: 1 } }, startTime: 'tomorrow' },
  ];
  for (const body of bad) {
    const r = await h.rest('PUT', `/jobs/v2/bad-job?${h.API}`, { body: { jobId: 'bad-job', ...body } });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
  }
  const gone = await h.rest('GET', `/jobs/v2/bad-job?${h.API}`);
  assert.equal(gone.status, 404, 'a refused job is not kept');
  const badId = await h.rest('PUT', `/jobs/v2/bad_id!?${h.API}`, { body: { type: 'scheduleUpdateTwin' } });
  assert.equal(badId.status, 400);
});

test('jobs are listed newest first, a page at a time, and the v1 list is empty', async () => {
  await h.createDevice(reg, 'jl-1');
  for (const id of ['list-a', 'list-b', 'list-c'])
    await jobs.scheduleTwinUpdate(id, "deviceId = 'jl-1'", { tags: { listed: id } });
  const q = jobs.createQuery('scheduleUpdateTwin', null, 2);
  const seen = [];
  do {
    const page = await q.next(q.continuationToken);
    seen.push(...page.result.map((j) => j.jobId));
  } while (q.hasMoreResults);
  const mine = seen.filter((id) => id.startsWith('list-'));
  assert.deepEqual(mine, ['list-c', 'list-b', 'list-a']);
  const raw = await h.rest('GET', `/jobs/v2/query?jobType=scheduleDeviceMethod&${h.API}`, { headers: { 'x-ms-max-item-count': '1' } });
  assert.equal(raw.status, 200);
  assert.equal(raw.headers['x-ms-item-type'], 'jobResponse');
  assert.ok(raw.json.every((j) => j.type === 'scheduleDeviceMethod'));
  const v1 = await h.rest('GET', `/jobs?${h.API}`);
  assert.equal(v1.status, 200);
  assert.deepEqual(v1.json, []);
});

test('at most 100 jobs queued or running at once: the next is refused with JobQuotaExceeded, and taken once one ends', async () => {
  await h.createDevice(reg, 'jq-1');
  const later = new Date(Date.now() + 3600e3);
  const ids = [];
  for (let i = 0; ; i++) {
    const id = `quota-${i}`;
    const r = await h.rest('PUT', `/jobs/v2/${id}?${h.API}`, {
      body: { jobId: id, type: 'scheduleUpdateTwin', queryCondition: "deviceId = 'jq-1'", updateTwin: { tags: { q: i } },
        startTime: later.toISOString() },
    });
    if (r.status === 403) {
      assert.equal(h.errorCode(r.text), 'JobQuotaExceeded', r.text);
      break;
    }
    assert.equal(r.status, 200, r.text);
    ids.push(id);
    assert.ok(i < 200, 'the hub must refuse jobs past its limit');
  }
  // Earlier tests may have left jobs running; the limit counts them all.
  assert.ok(ids.length <= 100 && ids.length >= 90, `${ids.length} jobs taken before the refusal`);
  await jobs.cancelJob(ids[0]);
  const again = await h.rest('PUT', `/jobs/v2/quota-again?${h.API}`, {
    body: { jobId: 'quota-again', type: 'scheduleUpdateTwin', queryCondition: "deviceId = 'jq-1'", updateTwin: { tags: { q: -1 } },
      startTime: later.toISOString() },
  });
  assert.equal(again.status, 200, again.text);
  for (const id of [...ids.slice(1), 'quota-again']) await jobs.cancelJob(id);
});
