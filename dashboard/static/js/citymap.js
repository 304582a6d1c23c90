// citymap.js: a grouped panel drawn on the city's map (view: map).
//
// The screen's map (GeoJSON, from GET /api/screens/{id}/map) is fetched
// once and registered with ECharts. Each district is filled by its
// group's value on a colour scale and outlined by its status; a district
// without data is dark and dotted, not the colour of 0. Stations (groups
// with a position) are points coloured by status and sized by value; one
// in alert is drawn larger, ringed and named. Groups the map cannot place
// are listed beside it, never dropped. A frame changes the regions' styles
// and the points only: the viewer's zoom and pan stay.
import { api, t, format, age, effectiveStatus, css } from "./live.js";
const loaded = new Map(); // map URL -> promise of its registration
const centres = new Map(); // map URL -> feature name -> [lon, lat] of its label

function register(url, nameProp) {
  if (!loaded.has(url)) {
    const p = api(url).then((geo) => {
      echarts.registerMap(url, geo);
      centres.set(url, new Map(geo.features.map((f) => [f.properties[nameProp || "name"], centreOf(f)])));
      return url;
    });
    p.catch(() => loaded.delete(url)); // try again at the next frame
    loaded.set(url, p);
  }
  return loaded.get(url);
}

// centreOf is where a feature's label goes: its cp property (the label
// point boundary files made for ECharts carry), else the middle of the
// bounding box of its largest polygon.
function centreOf(f) {
  const cp = f.properties && f.properties.cp;
  if (Array.isArray(cp) && cp.length === 2) return cp;
  const g = f.geometry;
  const polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
  let best = null, bestArea = -1;
  for (const poly of polys) {
    const xs = poly[0].map((c) => c[0]), ys = poly[0].map((c) => c[1]);
    const box = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    const area = (box[2] - box[0]) * (box[3] - box[1]);
    if (area > bestArea) { bestArea = area; best = box; }
  }
  return [(best[0] + best[2]) / 2, (best[1] + best[3]) / 2];
}

// The fill scale, low to high: blue, teal, yellow, orange, red.
const RAMP = [[31, 111, 181], [47, 184, 154], [232, 212, 77], [232, 106, 44], [196, 30, 58]];

function ramp(x) {
  x = Math.max(0, Math.min(1, x));
  const i = Math.min(RAMP.length - 2, Math.floor(x * (RAMP.length - 1)));
  const f = x * (RAMP.length - 1) - i;
  const c = RAMP[i].map((a, k) => Math.round(a + (RAMP[i + 1][k] - a) * f));
  return "rgb(" + c.join(",") + ")";
}

// domain is the range the colour scale spans: from 0 (or the lowest
// value, if below 0) to the crit threshold or the highest value, the
// larger; with below thresholds (low is trouble) the scale turns over.
function domain(p, values) {
  const th = p.thresholds || {};
  let lo = Math.min(0, ...values), hi = Math.max(...values, th.crit ?? -Infinity, th.warn ?? -Infinity);
  if (!isFinite(hi) || hi <= lo) hi = lo + 1;
  return { lo, hi, below: !!th.below };
}

function scaled(d, v) {
  const x = (v - d.lo) / (d.hi - d.lo);
  return d.below ? 1 - x : x;
}

class MapView {
  // el is the tile; box the element the chart fills; aside where the
  // groups the map cannot place are listed.
  constructor(live, box, aside, legend, opts) {
    this.live = live;
    this.box = box;
    this.aside = aside;
    this.legend = legend;
    this.opts = Object.assign({ fontPx: 14 }, opts || {});
    this.chart = echarts.init(box, null, { renderer: "canvas" });
    this.url = "";
    this.last = "";
    new ResizeObserver(() => this.chart.resize()).observe(box);
  }

  dispose() { this.chart.dispose(); }

  // render draws panel p (and the stations of overlay, a panel or null).
  render(p, overlay, now) {
    const meta = this.live.state.meta.map;
    if (!meta) return;
    if (this.url !== meta.url) {
      this.pending = [p, overlay];
      register(meta.url, meta.name).then((url) => {
        if (this.url === url) return;
        this.url = url;
        this.last = "";
        this.chart.setOption(this.base(meta), { notMerge: true });
        const [pp, oo] = this.pending;
        this.render(pp, oo, Date.now());
      }, () => {});
      if (this.url !== meta.url) return;
    }
    const features = new Set(meta.features);
    const feature = (v) => (meta.match && meta.match[v]) || (features.has(v) ? v : null);
    const points = [], off = [], byFeature = new Map();
    const stations = [];
    if (p.points) stations.push(p);
    else {
      for (const g of p.groups || []) {
        const f = feature(g.tags[meta.key]);
        if (f && !byFeature.has(f)) byFeature.set(f, g);
        else off.push([p, g, t("Not on the map")]);
      }
    }
    if (overlay) stations.push(overlay);
    for (const sp of stations) {
      for (const g of sp.groups || []) {
        if (!g.pos) off.push([sp, g, t("no position")]);
        else if (g.off_map) off.push([sp, g, t("Not on the map")]);
        else points.push([sp, g]);
      }
    }
    const d = domain(p, [...byFeature.values()].map((g) => g.value));
    const styled = meta.features.map((name) => this.region(p, meta, name, byFeature.get(name), d, now));
    const regions = styled.map((r) => r.region);
    // The districts' names and values are a series of their own, drawn
    // above the stations (a region's own label would sit under them).
    const at = centres.get(meta.url) || new Map();
    const labels = styled.filter((r) => at.has(r.region.name)).map((r) => ({
      name: r.region.name, value: at.get(r.region.name), text: r.text, label: { color: r.color },
    }));
    const normal = [], alerting = [];
    const domains = new Map(stations.map((sp) => [sp, domain(sp, (sp.groups || []).map((x) => x.value))]));
    for (const [sp, g] of points) {
      const st = effectiveStatus(g.status, g.updated, sp.stale_after, now);
      const sd = domains.get(sp);
      const alert = st === "warn" || st === "crit";
      const size = Math.round(this.opts.fontPx * (0.6 + 1.2 * Math.max(0, Math.min(1, (g.value - sd.lo) / (sd.hi - sd.lo)))));
      const item = {
        name: this.live.label(g.tags), value: [g.pos[0], g.pos[1], g.value],
        symbolSize: alert ? size * 1.6 : size,
        itemStyle: alert ? { color: css(st), borderColor: css("text"), borderWidth: 3 } : { color: css(st), borderColor: css("bg"), borderWidth: 1 },
        panel: sp.id, status: st, updated: g.updated, unit: sp.unit,
      };
      (alert ? alerting : normal).push(item);
    }
    const option = {
      geo: { regions },
      series: [{ id: "points", data: normal }, { id: "alerting", data: alerting }, { id: "labels", data: labels }],
    };
    const key = JSON.stringify(option);
    if (key !== this.last) { // ages alone do not redraw the map
      this.last = key;
      this.chart.setOption(option);
    }
    this.showOff(off, now);
    this.showLegend(p, d);
    this.groups = byFeature; // for the tooltip
    this.panel = p;
  }

  // base is the chart's option when the map is first drawn.
  base(meta) {
    const fs = this.opts.fontPx;
    return {
      animation: false,
      tooltip: { trigger: "item", confine: true, triggerOn: "mousemove|click", formatter: (x) => this.tip(x),
        backgroundColor: css("panel"), borderColor: css("edge"), textStyle: { color: css("text"), fontSize: fs } },
      geo: {
        map: meta.url, nameProperty: meta.name, roam: true, center: meta.center, zoom: meta.zoom || 1,
        tooltip: { show: true, formatter: (x) => this.tip(x) },
        scaleLimit: { min: 0.5, max: 40 },
        label: { show: false },
        itemStyle: { areaColor: "#141c2b", borderColor: css("edge"), borderWidth: 1 },
        emphasis: { label: { show: false }, itemStyle: { areaColor: null, borderWidth: 3, borderColor: css("accent") } },
        select: { disabled: true },
      },
      series: [
        { id: "points", type: "scatter", coordinateSystem: "geo", geoIndex: 0, data: [], zlevel: 1 },
        // Stations in alert: above the others, ringed and named. (A
        // rippling effectScatter would redraw the wall sixty times a
        // second, all day.)
        { id: "alerting", type: "scatter", coordinateSystem: "geo", geoIndex: 0, data: [], zlevel: 1, z: 3,
          label: { show: true, position: "right", color: css("text"), fontSize: fs * 0.8, formatter: (d) => d.name,
            textBorderColor: css("bg"), textBorderWidth: 2 } },
        { id: "labels", type: "scatter", coordinateSystem: "geo", geoIndex: 0, data: [], zlevel: 1, z: 4, symbolSize: 0, silent: true,
          label: { show: true, position: "inside", fontSize: fs * 0.85, lineHeight: fs, formatter: (d) => d.data.text,
            textBorderColor: css("bg"), textBorderWidth: 3 } },
      ],
    };
  }

  // region styles one district (fill by value, outline by status) and
  // says what its label reads, in which colour.
  region(p, meta, name, g, d, now) {
    const shown = this.featureLabel(meta, name);
    if (!g) {
      return { region: { name, itemStyle: { areaColor: "#141c2b", borderColor: css("stale"), borderWidth: 1, borderType: "dotted" } },
        text: shown + "\n" + t("no data"), color: css("muted") };
    }
    const st = effectiveStatus(g.status, g.updated, p.stale_after, now);
    const border = {
      ok: [css("edge"), 1, "solid"], warn: [css("warn"), 3, "solid"], crit: [css("crit"), 4, "solid"],
      stale: [css("stale"), 2, "dashed"], nodata: [css("stale"), 1, "dotted"],
    }[st] || [css("edge"), 1, "solid"];
    let fill = ramp(scaled(d, g.value));
    if (st === "stale") fill = "#2a3140"; // an old value is not shown as a fresh colour
    return { region: { name, itemStyle: { areaColor: fill, borderColor: border[0], borderWidth: border[1], borderType: border[2] } },
      text: shown + "\n" + format(g.value) + (st === "stale" ? " (" + t("stale") + ")" : ""), color: css("text") };
  }

  // featureLabel names a feature in the page's language: the label of the
  // value of the map's key that names it, else its own name.
  featureLabel(meta, name) {
    for (const v in meta.match || {}) if (meta.match[v] === name) return this.live.labelOf(meta.key, v);
    return this.live.labelOf(meta.key, name);
  }

  tip(x) {
    const now = Date.now();
    const p = this.panel;
    if (!p) return "";
    const meta = this.live.state.meta.map;
    let name, value, status, updated, unit;
    if (x.componentType === "geo") {
      const g = this.groups.get(x.name);
      name = this.featureLabel(meta, x.name);
      if (!g) return esc(name) + "<br>" + esc(t("no data"));
      value = g.value; updated = g.updated; unit = p.unit;
      status = effectiveStatus(g.status, g.updated, p.stale_after, now);
    } else {
      const it = x.data;
      name = it.name; value = it.value[2]; status = it.status; updated = it.updated; unit = it.unit;
    }
    return "<b>" + esc(name) + "</b><br>" + esc(format(value) + (unit ? " " + unit : "")) + " · " + esc(t(status)) +
      "<br>" + esc(updated ? t("Updated {age} ago", { age: age(now - Date.parse(updated)) }) : t("no data"));
  }

  showOff(off, now) {
    if (!this.aside) return;
    this.aside.textContent = "";
    this.aside.hidden = off.length === 0;
    if (!off.length) return;
    const h = document.createElement("div");
    h.className = "head";
    h.textContent = [...new Set(off.map((o) => o[2]))].join(" / ");
    this.aside.appendChild(h);
    for (const [sp, g] of off) {
      const row = document.createElement("div");
      row.className = "item " + effectiveStatus(g.status, g.updated, sp.stale_after, now);
      row.textContent = this.live.label(g.tags) + " " + format(g.value) + (sp.unit ? " " + sp.unit : "");
      this.aside.appendChild(row);
    }
  }

  showLegend(p, d) {
    if (!this.legend) return;
    const lo = d.below ? d.hi : d.lo, hi = d.below ? d.lo : d.hi;
    const key = lo + "," + hi + "," + (p.unit || "");
    if (this.legend.dataset.key === key) return;
    this.legend.dataset.key = key;
    this.legend.innerHTML = '<span class="lo"></span><span class="bar"></span><span class="hi"></span>';
    this.legend.querySelector(".lo").textContent = format(lo);
    this.legend.querySelector(".hi").textContent = format(hi) + (p.unit ? " " + p.unit : "");
    this.legend.querySelector(".bar").style.background = "linear-gradient(90deg, " + RAMP.map((c, i) =>
      "rgb(" + c.join(",") + ") " + Math.round((i / (RAMP.length - 1)) * 100) + "%").join(", ") + ")";
  }
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

export { MapView, ramp, register };
