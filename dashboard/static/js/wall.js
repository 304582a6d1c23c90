// wall.js: the command centre's wall screen. One tile per panel: a big
// number with its trend for an ungrouped panel, bars by group for a grouped
// one, the city's map for a map panel; status colours from the thresholds;
// every tile shows its age and turns visibly stale when its data stops.
// A screen with a layout places its tiles in its grid; without one they
// follow each other, as many as fit.
import { Live, api, format, age, effectiveStatus, rank, css, showValue, title, duration, when, t as tr, lateness } from "./live.js";
import { MapView } from "./citymap.js";

// color is a status's colour, the page's (cityscreen.css).
function color(status) {
  return css(status) || css("ok");
}
const params = new URLSearchParams(location.search);
// A playlist (?playlist=ID) rotates through its screens, each for its
// own time; otherwise ?screen=ID stays.
const playlistID = params.get("playlist");
let screenID = params.get("screen") || "city-overview";
const live = new Live(playlistID ? "" : screenID);
const tiles = new Map(); // panel id -> {el, chart}
let built = "";

function fontPx(vh) { return Math.round((window.innerHeight * vh) / 100); }

function build(state) {
  const grid = document.getElementById("grid");
  grid.textContent = "";
  for (const t of tiles.values()) (t.map || t.chart) && (t.map || t.chart).dispose();
  tiles.clear();
  const layout = state.meta.layout;
  const overlaid = new Set([...state.panels.values()].map((p) => p.overlay).filter(Boolean));
  let cells = 0;
  for (const id of state.order) {
    const p = state.panels.get(id);
    if (overlaid.has(id) && (!layout || !p.place)) continue; // drawn over its map
    if (layout && !p.place) continue;
    const isList = p.view === "list";
    const grouped = Array.isArray(p.groups) && !isList;
    const isMap = p.view === "map";
    const el = document.createElement("section");
    el.dataset.panel = id;
    el.innerHTML = '<h2></h2><div class="value"></div><div class="chart"></div><div class="meta"><span class="badge"></span><span class="age"></span></div>';
    el.querySelector("h2").textContent = title(p);
    if (grouped) el.querySelector(".value").remove();
    const base = "tile" + (isMap ? " map" : "") + (isList ? " list" : "") + (!layout && (grouped || isList) ? " wide" : "") + (!layout && (isMap || isList) ? " tall" : "");
    if (layout) {
      const pl = p.place;
      el.style.gridColumn = pl.col + " / span " + Math.max(1, pl.width);
      el.style.gridRow = pl.row + " / span " + Math.max(1, pl.height);
    }
    grid.appendChild(el);
    const box = el.querySelector(".chart");
    let chart = null, map = null, list = null;
    if (isList) {
      // The cases themselves, most overdue (or soonest due) first.
      list = document.createElement("ol");
      list.className = "cases";
      box.replaceWith(list);
    } else if (isMap && window.echarts) {
      const aside = document.createElement("div");
      aside.className = "offmap";
      aside.hidden = true;
      const legend = document.createElement("div");
      legend.className = "legend";
      box.after(aside, legend);
      const holder = document.createElement("div");
      holder.className = "canvas";
      box.appendChild(holder);
      map = new MapView(live, holder, aside, legend, { fontPx: fontPx(1.5) });
    } else if (window.echarts) {
      chart = echarts.init(box, null, { renderer: "canvas" });
      new ResizeObserver(() => chart.resize()).observe(box);
    }
    tiles.set(id, { el, chart, map, list, grouped, base });
    cells += isMap || isList ? 4 : grouped ? 2 : 1;
  }
  if (layout) {
    grid.style.setProperty("--cols", layout.columns);
    grid.style.setProperty("--rows", layout.rows);
  } else {
    const cols = 6;
    grid.style.setProperty("--cols", cols);
    grid.style.setProperty("--rows", Math.max(1, Math.ceil(cells / cols)));
  }
  built = builtKey(state);
}

// builtKey changes when the tiles must be built again: other panels, or
// another layout.
function builtKey(state) {
  return state.order.join(",") + "|" + JSON.stringify(state.meta.layout || null) + "|" + (state.meta.map ? state.meta.map.url : "");
}

// render shows a panel's state in its tile: status, number, age; its
// chart is marked to be drawn. fromFrame tells that the panel's data
// changed (a frame), not only the time.
function render(p, t, now, fromFrame) {
  const status = effectiveStatus(p.status, p.updated, p.stale_after, now);
  t.el.className = t.base + " " + status;
  t.el.dataset.stale = tr("stale");
  const badge = tr({ ok: "", warn: "warn", crit: "crit", stale: "", nodata: "no data" }[status] ?? status);
  t.el.querySelector(".badge").textContent = badge + (badge ? " · " : "") + tr(p.agg) + " " + duration(p.window);
  t.el.querySelector(".age").textContent = p.updated ? tr("{age} ago", { age: age(now - Date.parse(p.updated)) }) : tr("no data in {w}", { w: duration(p.window) });
  if (!t.grouped) {
    showValue(t.el.querySelector(".value"), p);
  }
  if (t.list) showCases(t.list, p, now);
  // The chart is drawn apart (draw), at most once a second unless a
  // status on it changed: the number and the age above move with every
  // frame, and one frame's work stays short whatever the wall holds.
  const sig = statusSignature(p, now);
  if (sig !== t.sig) {
    t.sig = sig;
    t.urgent = true;
  }
  if (fromFrame || t.urgent) {
    t.dirty = true;
    scheduleDraw();
  }
}

// showCases fills a list tile: each case's ID, its attributes in the
// city's words, its status, and how late it is (or how soon it is due),
// counted from this page's clock so that it moves between frames.
function showCases(ol, p, now) {
  const rows = p.cases || [];
  while (ol.children.length > rows.length) ol.lastChild.remove();
  rows.forEach((c, i) => {
    let li = ol.children[i];
    if (!li) {
      li = document.createElement("li");
      li.innerHTML = '<span class="id"></span><span class="where"></span><span class="st"></span><span class="late"></span>';
      ol.appendChild(li);
    }
    const l = lateness(c.due, now);
    li.dataset.case = c.id;
    li.className = l.late ? "crit" : "warn";
    li.querySelector(".id").textContent = c.id;
    li.querySelector(".where").textContent = live.label(c.tags);
    li.querySelector(".st").textContent = live.labelOf("status", c.status);
    li.querySelector(".late").textContent = l.text;
  });
  ol.dataset.empty = rows.length ? "" : tr("none");
}

// statusSignature is every status a panel's chart shows.
function statusSignature(p, now) {
  let s = effectiveStatus(p.status, p.updated, p.stale_after, now);
  for (const g of p.groups || []) s += "," + effectiveStatus(g.status, g.updated, p.stale_after, now);
  const o = p.overlay && live.state.panels.get(p.overlay);
  if (o) s += "|" + statusSignature(o, now);
  return s;
}

// drawChart draws a tile's chart with its panel's current state.
function drawChart(p, t, now) {
  const status = effectiveStatus(p.status, p.updated, p.stale_after, now);
  if (t.map) {
    t.map.render(p, p.overlay ? live.state.panels.get(p.overlay) : null, now);
    return;
  }
  if (!t.chart) return;
  const axis = { color: "#8fa0c2", fontSize: fontPx(1.4) };
  if (t.grouped) {
    const groups = (p.groups || []).slice();
    const names = groups.map((g) => live.label(g.tags));
    const perBar = t.el.clientWidth / Math.max(1, groups.length);
    const longest = Math.max(0, ...names.map(textWidth));
    const crowded = longest * axis.fontSize > perBar - 4;
    // A value over its bar when it fits there; the axis tells the rest.
    const valuesFit = Math.max(0, ...groups.map((g) => format(g.value).length)) * axis.fontSize * 0.62 < perBar - 2;
    t.chart.setOption({
      animation: false,
      grid: { left: 8, right: 8, top: fontPx(2.2), bottom: fontPx(0.4), containLabel: true },
      xAxis: {
        type: "category", data: names,
        // Names that do not fit under their bar turn, rather than being cut.
        axisLabel: Object.assign({ interval: 0, rotate: crowded ? 40 : 0 }, axis),
      },
      yAxis: { type: "value", axisLabel: axis, splitLine: { lineStyle: { color: "#1d2c4a" } } },
      series: [{
        type: "bar",
        data: groups.map((g) => ({
          value: g.value,
          itemStyle: { color: color(effectiveStatus(g.status, g.updated, p.stale_after, now)) },
        })),
        label: { show: valuesFit, position: "top", color: "#e8eefc", fontSize: fontPx(1.4), formatter: (d) => format(d.value) },
        markLine: thresholdLines(p),
      }],
    }, { notMerge: !t.drawn });
    return;
  }
  if (p.unit === "%") {
    // A share (a ratio) is a bar from 0 to 100% with its thresholds marked.
    const th = p.thresholds || {};
    const marks = [];
    if (th.warn !== undefined) marks.push({ xAxis: th.warn, lineStyle: { color: css("warn"), width: 2, type: "solid" } });
    if (th.crit !== undefined) marks.push({ xAxis: th.crit, lineStyle: { color: css("crit"), width: 2, type: "solid" } });
    t.chart.setOption({
      animation: false,
      grid: { left: 0, right: 0, top: "25%", bottom: "25%" },
      xAxis: { type: "value", min: 0, max: 100, show: false },
      yAxis: { type: "category", data: [""], show: false },
      series: [{
        type: "bar", data: [p.value ?? 0], barWidth: "100%", showBackground: true,
        backgroundStyle: { color: "#1d2c4a" }, itemStyle: { color: color(status) },
        markLine: { silent: true, symbol: "none", label: { show: false }, data: marks },
      }],
    }, { notMerge: !t.drawn });
    return;
  }
  // The server's trend (history: span and step) when the panel keeps
  // one, else the values seen since the page opened.
  const h = live.trends.get(p.id) || live.history.get(p.id) || [];
  t.chart.setOption({
    animation: false,
    grid: { left: 0, right: 0, top: 4, bottom: 0 },
    xAxis: { type: "time", show: false },
    yAxis: { type: "value", show: false, scale: true },
    series: [{ type: "line", showSymbol: false, data: h, lineStyle: { color: color(status), width: 2 },
      areaStyle: { color: color(status) + "33" } }],
  }, { notMerge: !t.drawn });
}

// draw draws the charts marked, those whose statuses changed first, then
// those drawn longest ago, each at most once a second otherwise, within
// a budget of 8 ms per animation frame; what is left waits for the next.
let drawQueued = false;
function scheduleDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(draw);
}
function draw() {
  drawQueued = false;
  const t0 = performance.now();
  const now = Date.now();
  const due = [...tiles].filter(([, t]) => t.dirty && (t.urgent || now - (t.drawn || 0) >= 1000));
  due.sort((a, b) => (b[1].urgent ? 1 : 0) - (a[1].urgent ? 1 : 0) || (a[1].drawn || 0) - (b[1].drawn || 0));
  let drew = 0;
  for (const [id, t] of due) {
    if (performance.now() - t0 > 8) break;
    const c0 = performance.now();
    drawChart(live.state.panels.get(id), t, now);
    live.timed("chart:" + id, c0);
    t.dirty = t.urgent = false;
    t.drawn = now;
    drew++;
  }
  if (drew) live.timed("draw", t0); // a task that drew charts
  if ([...tiles.values()].some((t) => t.dirty)) {
    // Not yet due, or over the budget: look again shortly.
    setTimeout(scheduleDraw, 100);
  }
}

// textWidth is a text's width in ems: a CJK character one, others about
// six tenths.
function textWidth(s) {
  let w = 0;
  for (const ch of s) w += ch.charCodeAt(0) > 0x2e80 ? 1 : 0.6;
  return w;
}

function thresholdLines(p) {
  const t = p.thresholds || {};
  const data = [];
  if (t.warn !== undefined) data.push({ yAxis: t.warn, lineStyle: { color: css("warn") } });
  if (t.crit !== undefined) data.push({ yAxis: t.crit, lineStyle: { color: css("crit") } });
  return { silent: true, symbol: "none", label: { show: false }, data };
}

// Feeds this screen uses that have gone silent, from /api/feeds.
let silentFeeds = [];
function pollFeeds() {
  api("/api/feeds").then((feeds) => {
    const used = new Set([...live.state.panels.values()].map((p) => p.feed));
    silentFeeds = feeds.filter((f) => f.stats.silent && used.has(f.id));
  }).catch(() => {});
}

// acked says who acknowledged an alert, as every screen shows it.
function acked(alert) {
  if (!alert) return "";
  let s = alert.escalated ? " ⇑ " + tr("escalated") : "";
  if (alert.shelved_until) s += " ⏸ " + tr("shelved until {when}", { when: when(alert.shelved_until) });
  if (alert.acked_by) s += " ✓ " + (alert.acked_name || alert.acked_by);
  if (alert.assignee) s += " → " + alert.assignee;
  return s;
}

function renderAlerts(state, now) {
  const items = [];
  for (const f of silentFeeds) {
    const quiet = f.stats.last_seen ? tr("nothing for {age}", { age: age(now - Date.parse(f.stats.last_seen)) }) : tr("nothing since cityscreen started");
    items.push(["crit", tr("Feed silent: {title}, {quiet}", { title: title(f), quiet })]);
  }
  for (const id of state.order) {
    const p = state.panels.get(id);
    const status = effectiveStatus(p.status, p.updated, p.stale_after, now);
    if (Array.isArray(p.groups)) {
      for (const g of p.groups) {
        const gs = effectiveStatus(g.status, g.updated, p.stale_after, now);
        if (gs === "warn" || gs === "crit") items.push([gs, title(p) + ": " + live.label(g.tags) + " " + format(g.value) + (p.unit ? " " + p.unit : "") + acked(g.alert)]);
      }
      if (status === "stale") items.push(["stale", title(p) + ": " + tr("stale") + acked(p.alert)]);
    } else if (status === "warn" || status === "crit" || status === "stale") {
      items.push([status, title(p) + ": " + (status === "stale" ? tr("stale") : format(p.value) + (p.unit ? " " + p.unit : "")) + acked(p.alert)]);
    }
  }
  items.sort((a, b) => rank(a[0]) - rank(b[0]));
  const box = document.getElementById("alerts");
  box.textContent = items.length ? "" : tr("none");
  for (const [st, text] of items) {
    const s = document.createElement("span");
    s.className = "item " + st;
    s.textContent = "● " + text + "   ";
    box.appendChild(s);
  }
}

function renderAll(changed) {
  const state = live.state;
  if (builtKey(state) !== built) {
    build(state);
    changed = null;
    showTitle();
  }
  const now = Date.now();
  for (const [id, t] of tiles) {
    const p = state.panels.get(id);
    if (changed && !changed.has(id) && !(p.overlay && changed.has(p.overlay))) continue;
    render(p, t, now, !!changed);
  }
  renderAlerts(state, now);
}

live.on((l, changed) => {
  const conn = document.getElementById("conn");
  conn.className = "conn " + l.connState;
  conn.textContent = l.connState === "live" ? tr("live") : tr(l.connState) + "…";
  document.body.classList.toggle("disconnected", l.connState !== "live");
  if (l.unauthorized) {
    document.getElementById("banner").textContent = tr("Access revoked or not valid: this display needs a new token") + " (wall.html?screen=" + screenID + "#token=…)";
  }
  if (changed) renderAll(changed);
});

function tick() {
  const t0 = performance.now();
  const now = new Date();
  document.getElementById("clock").textContent = when(now);
  if (live.state.order.length) renderAll(null); // ages move, and data can turn stale without a frame
  live.timed("tick", t0);
}

// The screen's title comes with its snapshot, in both languages.
function showTitle() {
  const t = live.screenTitle();
  if (t) {
    document.getElementById("title").textContent = t;
    document.title = t + " · cityscreen";
  }
}

// rotate shows a playlist's screens in turn, forever; the playlist is
// read again at each round, so a changed playlist takes effect.
async function rotate() {
  let entries = [];
  try {
    entries = (await api("/api/playlists/" + encodeURIComponent(playlistID))).screens;
  } catch (e) {
    setTimeout(rotate, 10000);
    return;
  }
  for (const e of entries) {
    screenID = e.screen;
    live.switchTo(screenID);
    await new Promise((r) => setTimeout(r, e.seconds * 1000));
  }
  rotate();
}
window.addEventListener("resize", () => { // font sizes follow the height
  for (const t of tiles.values()) t.sig = null;
  renderAll(null);
});
setInterval(tick, 1000);
setInterval(pollFeeds, 10000);
setTimeout(pollFeeds, 2000); // once the snapshot says which feeds this screen uses
tick();
if (playlistID) rotate();
live.start();
window.cityscreenLive = live; // for people and tests inspecting the page
