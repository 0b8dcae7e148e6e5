// The demo's sensor: a device run with Microsoft's device SDK that sends temperature telemetry,
// echoes desired properties into reported ones, and answers a "ping" method.
'use strict';
const { Registry } = require('azure-iothub');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const host = process.env.IOTDM_HUB_HOST;
const registry = Registry.fromConnectionString(process.env.IOTDM_OWNER_CONNSTR);
const id = 'demo-sensor';

async function device() {
    try {
        return (await registry.get(id)).responseBody;
    } catch (e) {
        return (await registry.create({ deviceId: id })).responseBody;
    }
}

(async () => {
    const key = (await device()).authentication.symmetricKey.primaryKey;
    const client = Client.fromConnectionString(`HostName=${host};DeviceId=${id};SharedAccessKey=${key}`, Mqtt);
    await client.open();
    const twin = await client.getTwin();
    twin.on('properties.desired', (desired) => {
        const echo = {};
        for (const [k, v] of Object.entries(desired)) if (!k.startsWith('$')) echo[k] = v;
        twin.properties.reported.update(echo, () => {});
    });
    client.onDeviceMethod('ping', (req, res) => res.send(200, { pong: req.payload, at: new Date().toISOString() }));
    let t = 21;
    setInterval(() => {
        t += Math.random() - 0.5;
        const msg = new Message(JSON.stringify({ temperature: Number(t.toFixed(2)) }));
        msg.contentType = 'application/json';
        msg.contentEncoding = 'utf-8';
        client.sendEvent(msg, () => {});
    }, 3000);
    console.log(`demo: ${id} connected`);
})().catch((e) => {
    console.error('demo: the sensor failed:', e.message);
    process.exit(1);
});
