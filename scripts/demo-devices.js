// Simulated devices for the demo: registers three devices and runs each with Microsoft's device
// SDK: telemetry every few seconds, reported state, desired properties echoed back, a method.
'use strict';
const { Registry } = require('azure-iothub');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const host = process.env.IOTDM_HUB_HOST;
const registry = Registry.fromConnectionString(process.env.IOTDM_OWNER_CONNSTR);
const ids = ['demo-device-1', 'demo-device-2', 'demo-device-3'];

async function ensureDevice(id) {
    try {
        return (await registry.get(id)).responseBody;
    } catch (e) {
        return (await registry.create({ deviceId: id })).responseBody;
    }
}

async function run(id, index) {
    const device = await ensureDevice(id);
    const key = device.authentication.symmetricKey.primaryKey;
    const client = Client.fromConnectionString(`HostName=${host};DeviceId=${id};SharedAccessKey=${key}`, Mqtt);
    await client.open();
    const twin = await client.getTwin();
    twin.on('properties.desired', (desired) => {
        const echo = {};
        for (const [k, v] of Object.entries(desired)) if (!k.startsWith('$')) echo[k] = v;
        twin.properties.reported.update(echo, () => {});
    });
    twin.properties.reported.update({ model: 'iotdm demo device', bootTime: new Date().toISOString() }, () => {});
    client.onDeviceMethod('ping', (req, res) => res.send(200, { pong: req.payload, at: new Date().toISOString() }));
    let t = 20 + index;
    setInterval(() => {
        t += (Math.random() - 0.5);
        const msg = new Message(JSON.stringify({ temperature: Number(t.toFixed(2)) }));
        msg.contentType = 'application/json';
        msg.contentEncoding = 'utf-8';
        client.sendEvent(msg, () => {});
    }, 5000);
    console.log(`demo: ${id} connected`);
}

Promise.all(ids.map(run)).catch((e) => {
    console.error('demo: simulated devices failed:', e.message);
    process.exit(1);
});
