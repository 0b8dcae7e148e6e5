// Live telemetry chart: every number found in a JSON telemetry body becomes a series, drawn as
// its own small SVG plot over a sliding time window, with the latest value beside it.
import { h, clear, clockTime } from './dom.js';

const MAX_SERIES = 12;
const MAX_POINTS = 2000;
const SVG_NS = 'http://www.w3.org/2000/svg';

// [{path, value}] for every finite number in a JSON value (objects and arrays, 4 levels deep).
export function numericLeaves(v, prefix = '', depth = 0, out = []) {
  if (typeof v === 'number' && Number.isFinite(v)) out.push({ path: prefix || 'value', value: v });
  else if (v && typeof v === 'object' && depth < 4) {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
    for (const [k, x] of entries) numericLeaves(x, prefix ? `${prefix}.${k}` : k, depth + 1, out);
  }
  return out;
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function fmt(v) {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export class TelemetryChart {
  // names: Map of series path → {label, unit} (from the device's DTDL telemetry)
  // windowMs 0: automatic, from the first point (at least 30 s, at most 10 min).
  constructor({ windowMs = 0, names = new Map() } = {}) {
    this.windowMs = windowMs;
    this.effective = 30e3;
    this.names = names;
    this.series = new Map();
    this.list = h('div', { class: 'chart-list' });
    this.empty = h('div', { class: 'chart-empty' }, 'Waiting for telemetry with numbers in a JSON body…');
    this.el = h('div', { class: 'chart', role: 'group', 'aria-label': 'Telemetry chart' }, this.empty, this.list);
    this.timer = null;
    this.pending = false;
  }

  // Adds the numbers of one message body (a string or a parsed value) at time t (ms).
  add(t, body) {
    let v = body;
    if (typeof body === 'string') {
      try { v = JSON.parse(body); } catch (_) { return 0; }
    }
    const leaves = numericLeaves(v);
    for (const { path, value } of leaves) {
      let s = this.series.get(path);
      if (!s) {
        if (this.series.size >= MAX_SERIES) continue;
        s = this.makeSeries(path);
        this.series.set(path, s);
      }
      s.points.push({ t, v: value });
      if (s.points.length > MAX_POINTS) s.points.splice(0, s.points.length - MAX_POINTS);
    }
    if (leaves.length) this.schedule();
    return leaves.length;
  }

  makeSeries(path) {
    const idx = this.series.size;
    const color = `var(--series-${(idx % 8) + 1})`;
    const meta = this.names.get(path) || {};
    const name = meta.label && meta.label !== path ? `${meta.label} (${path})` : path;
    const value = h('span', { class: 'svalue', style: `color:${color}` }, '–');
    const line = svg('polyline', { fill: 'none', stroke: color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', 'stroke-linejoin': 'round' });
    const area = svg('polygon', { fill: color, opacity: 0.08 });
    const grid = svg('line', { x1: 0, x2: 1000, y1: 50, y2: 50, stroke: 'var(--border)', 'stroke-dasharray': '4 4', 'vector-effect': 'non-scaling-stroke' });
    const cursor = svg('line', { y1: 0, y2: 100, stroke: 'var(--muted)', 'vector-effect': 'non-scaling-stroke', visibility: 'hidden' });
    const plotSvg = svg('svg', { viewBox: '0 0 1000 100', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    plotSvg.append(grid, area, line, cursor);
    const ymax = h('span', { class: 'ylab max' });
    const ymin = h('span', { class: 'ylab min' });
    const xs = h('span', { class: 'xlab start' });
    const xe = h('span', { class: 'xlab end' });
    const tip = h('span', { class: 'tip', hidden: true });
    const plot = h('div', { class: 'series-plot' }, plotSvg, ymax, ymin, xs, xe, tip);
    const summary = h('span', { class: 'sr-only' });
    const row = h('div', { class: 'chart-series', dataset: { series: path } },
      h('div', { class: 'series-label' }, h('span', { class: 'sname', title: path }, name), value, summary), plot);
    const s = { path, points: [], row, line, area, cursor, value, ymax, ymin, xs, xe, tip, plotSvg, summary, meta };
    plot.addEventListener('mousemove', (ev) => this.hover(s, ev));
    plot.addEventListener('mouseleave', () => { s.tip.hidden = true; s.cursor.setAttribute('visibility', 'hidden'); });
    this.list.append(row);
    this.empty.hidden = true;
    return s;
  }

  hover(s, ev) {
    const r = s.plotSvg.getBoundingClientRect();
    const fx = (ev.clientX - r.left) / r.width;
    if (fx < 0 || fx > 1 || !s.points.length) return;
    const now = Date.now();
    const w = this.effective;
    const t = now - w + fx * w;
    let best = null;
    for (const p of s.points) if (!best || Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
    if (!best || best.t < now - w) return;
    const x = ((best.t - (now - w)) / w) * 1000;
    s.cursor.setAttribute('x1', x);
    s.cursor.setAttribute('x2', x);
    s.cursor.setAttribute('visibility', 'visible');
    s.tip.hidden = false;
    s.tip.textContent = `${fmt(best.v)}${s.meta.unit ? ` ${s.meta.unit}` : ''} · ${clockTime(best.t)}`;
    s.tip.style.left = `${(x / 1000) * r.width}px`;
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  setWindow(ms) {
    this.windowMs = ms;
    this.render();
  }

  autoWindow(now) {
    let first = now;
    for (const s of this.series.values()) if (s.points.length) first = Math.min(first, s.points[0].t);
    return Math.min(Math.max((now - first) * 1.1, 30e3), 10 * 60e3);
  }

  render() {
    const now = Date.now();
    const w = this.windowMs || this.autoWindow(now);
    this.effective = w;
    const t0 = now - w;
    for (const s of this.series.values()) {
      const pts = s.points.filter((p) => p.t >= t0 - w * 0.02);
      const last = s.points[s.points.length - 1];
      s.value.textContent = last ? `${fmt(last.v)}${s.meta.unit ? ` ${s.meta.unit}` : ''}` : '–';
      s.xs.textContent = clockTime(t0);
      s.xe.textContent = clockTime(now);
      if (!pts.length) {
        s.line.setAttribute('points', '');
        s.area.setAttribute('points', '');
        s.ymax.textContent = '';
        s.ymin.textContent = '';
        continue;
      }
      let lo = Math.min(...pts.map((p) => p.v));
      let hi = Math.max(...pts.map((p) => p.v));
      if (lo === hi) { lo -= 1; hi += 1; }
      const pad = (hi - lo) * 0.1;
      lo -= pad;
      hi += pad;
      const xy = pts.map((p) => [((p.t - t0) / w) * 1000, 100 - ((p.v - lo) / (hi - lo)) * 100]);
      const line = xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(2)}`).join(' ');
      s.line.setAttribute('points', line);
      s.area.setAttribute('points', `${xy[0][0].toFixed(1)},100 ${line} ${xy[xy.length - 1][0].toFixed(1)},100`);
      s.ymax.textContent = fmt(hi - pad);
      s.ymin.textContent = fmt(lo + pad);
      s.summary.textContent = `${pts.length} points in the window, from ${fmt(lo + pad)} to ${fmt(hi - pad)}`;
    }
  }

  // Redraws every second so the window slides while nothing arrives.
  start() {
    if (!this.timer) this.timer = setInterval(() => this.render(), 1000);
    this.render();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  reset() {
    this.series.clear();
    clear(this.list);
    this.empty.hidden = false;
  }
}
