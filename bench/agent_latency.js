// Times "desired patch -> the agent applies it -> acknowledged reported patch" through iotdm-hub:
// PATCH the twin, then wait on the hub's event stream for the device's PnP acknowledgement of that
// $version. Prints one latency in milliseconds per line. Node core modules only.
// Usage: node agent_latency.js HOST PORT CA OWNER_CONNSTR DEVICE PROPERTY N
'use strict';
const https = require('node:https');
const crypto = require('node:crypto');
const fs = require('node:fs');

const [host, port, caPath, connstr, device, property, count] = process.argv.slice(2);
const ca = fs.readFileSync(caPath);
const key = /SharedAccessKey=([^;]+)/.exec(connstr)[1];
const policy = /SharedAccessKeyName=([^;]+)/.exec(connstr)[1];

function auth() {
    const se = Math.floor(Date.now() / 1000) + 3600;
    const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${host}\n${se}`).digest('base64');
    return `SharedAccessSignature sr=${host}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${policy}`;
}

const agent = new https.Agent({ keepAlive: true, ca });
function patch(body) {
    return new Promise((resolve, reject) => {
        const data = JSON.stringify(body);
        const req = https.request({ host, port, agent, method: 'PATCH', path: `/twins/${device}?api-version=2021-04-12`,
            headers: { Authorization: auth(), 'If-Match': '"*"', 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } },
        (res) => { let t = ''; res.on('data', (c) => { t += c; }); res.on('end', () => res.statusCode === 200 ? resolve(JSON.parse(t)) : reject(new Error(t))); });
        req.on('error', reject);
        req.end(data);
    });
}

// Acknowledged versions of the property, as they arrive on the event stream.
const acked = new Map();
let waiter = null;
function watch() {
    const req = https.request({ host, port, ca, path: `/iotdm/events?deviceId=${device}&from=end`, headers: { Authorization: auth() } }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
            buf += chunk;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
                const block = buf.slice(0, i);
                buf = buf.slice(i + 2);
                const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('');
                if (!data) continue;
                const ev = JSON.parse(data);
                const p = ev.patch && ev.patch.dm && ev.patch.dm[property];
                if (ev.section === 'reported' && p && typeof p.av === 'number' && p.ac !== 202) {
                    acked.set(p.av, performance.now());
                    if (waiter && waiter.version === p.av) waiter.resolve();
                }
            }
        });
    });
    req.end();
}

const values = {
    timeInfo: (i) => ({ timeZone: i % 2 ? 'Europe/Berlin' : 'Asia/Tokyo' }),
    rebootPolicy: (i) => ({ activeHoursStart: i % 24, activeHoursEnd: (i + 1) % 24 }),
};

(async () => {
    watch();
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < Number(count); i++) {
        const t0 = performance.now();
        const twin = await patch({ properties: { desired: { dm: { __t: 'c', [property]: values[property](i) } } } });
        const version = twin.properties.desired.$version;
        if (!acked.has(version)) {
            await new Promise((resolve, reject) => {
                waiter = { version, resolve };
                setTimeout(() => reject(new Error(`no acknowledgement of $version ${version} in 10 s`)), 10000).unref();
            });
        }
        console.log((acked.get(version) - t0).toFixed(3));
    }
    process.exit(0);
})().catch((e) => { console.error(e.message); process.exit(1); });
