'use strict';
// A device maker's own device, driven by Microsoft's azure-iot-device SDK: it announces
// dtmi:iotdm:example:SensorDevice;1 (fixtures/models), sends temperature and humidity telemetry,
// acknowledges its writable properties the IoT Plug and Play way and answers sensor*calibrate and
// sensor*blink.
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const MODEL_ID = 'dtmi:iotdm:example:SensorDevice;1';

function promisify(fn) {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));
}

class SensorDevice {
  constructor({ connStr, ca, intervalMs = 1000 }) {
    this.connStr = connStr;
    this.ca = ca;
    this.intervalMs = intervalMs;
    this.offset = 0;
    this.tick = 0;
    this.calls = [];
    this.messages = []; // cloud-to-device messages received: {body, properties}
    this.sent = 0;
  }

  async start() {
    this.client = Client.fromConnectionString(this.connStr, Mqtt);
    this.client.on('error', () => {});
    await this.client.setOptions({ ca: this.ca, modelId: MODEL_ID });
    await this.client.open();
    this.twin = await this.client.getTwin();
    await this.report({
      deviceInformation: { __t: 'c', manufacturer: 'Example Sensors Ltd', model: 'ES-200', swVersion: '2.4.1', osName: 'Linux', processorArchitecture: 'aarch64', processorManufacturer: 'ARM', totalStorage: 7634944, totalMemory: 1015808 },
      sensor: { __t: 'c', serialNumber: 'ES200-00042', firmware: '2.4.1' },
    });
    this.twin.on('properties.desired', (delta) => this.onDesired(delta));
    this.client.onDeviceMethod('sensor*calibrate', (req, res) => {
      const p = req.payload || {};
      this.calls.push({ name: 'calibrate', payload: p });
      if (typeof p.offset !== 'number') {
        res.send(400, { error: 'offset (a number) is required' }, () => {});
        return;
      }
      const previousOffset = this.offset;
      this.offset = p.offset;
      res.send(200, { applied: true, offset: p.offset, previousOffset }, () => {});
      this.report({ sensor: { __t: 'c', lastCalibration: { time: new Date().toISOString(), offset: p.offset, reference: p.reference || '' } } }).catch(() => {});
    });
    this.client.onDeviceMethod('sensor*blink', (req, res) => {
      this.calls.push({ name: 'blink', payload: req.payload });
      res.send(200, { blinked: req.payload }, () => {});
    });
    this.client.on('message', (msg) => {
      const properties = {};
      for (let i = 0; i < msg.properties.count(); i++) {
        const p = msg.properties.getItem(i);
        properties[p.key] = p.value;
      }
      this.messages.push({ body: msg.data.toString(), messageId: msg.messageId, properties });
      this.client.complete(msg, () => {});
    });
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  report(patch) {
    return promisify((cb) => this.twin.properties.reported.update(patch, cb));
  }

  // Acknowledges every writable property of the sensor component in a desired patch.
  onDesired(delta) {
    const s = delta.sensor;
    if (!s || typeof s !== 'object') return;
    const version = delta.$version;
    const ack = { __t: 'c' };
    for (const [name, value] of Object.entries(s)) {
      if (name === '__t') continue;
      if (name === 'sampleIntervalSeconds' && (!Number.isInteger(value) || value < 1 || value > 3600)) {
        ack[name] = { value: this.intervalMs / 1000, ac: 400, av: version, ad: `sampleIntervalSeconds must be 1-3600, got ${JSON.stringify(value)}` };
        continue;
      }
      ack[name] = { value, ac: 200, av: version, ad: 'applied' };
    }
    this.report({ sensor: ack }).catch(() => {});
  }

  sample() {
    this.tick += 1;
    const temperature = Math.round((21 + 2 * Math.sin(this.tick / 5) + this.offset) * 100) / 100;
    const humidity = Math.round((45 + 5 * Math.cos(this.tick / 7)) * 10) / 10;
    const m = new Message(JSON.stringify({ temperature, humidity }));
    m.contentType = 'application/json';
    m.contentEncoding = 'utf-8';
    m.properties.add('$.sub', 'sensor');
    this.client.sendEvent(m, (err) => { if (!err) this.sent += 1; });
  }

  async stop() {
    clearInterval(this.timer);
    if (this.client) {
      this.client.removeAllListeners('error');
      this.client.on('error', () => {});
      await this.client.close().catch(() => {});
    }
  }
}

module.exports = { SensorDevice, MODEL_ID };
