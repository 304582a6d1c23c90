// history.js: any panel's history. ?screen=S&panel=P with range=1h|24h|
// 7d|30d or from=&to= (RFC 3339), compare=1d|7d, group=tag=value; the
// panel's aggregate per step, by group, the same range earlier dashed
// beside it, its thresholds and the alerts raised in the range. Selecting
// a range on the chart zooms in; the address always names what is shown.
import { api, token, t, label, title, when, duration, format } from "./live.js";

const params = new URLSearchParams(location.search);
const screen = params.get("screen") || "";
const panelID = params.get("panel") || "";
const error = document.getElementById("error");
const base = "/api/screens/" + encodeURIComponent(screen) + "/panels/" + encodeURIComponent(panelID) + "/history";
const RANGES = { "1h": "-1h", "24h": "-24h", "7d": "-7d", "30d": "-30d" };
let chart = null;
let labels = {};

// query is the API's query for what the address names.
function query(format) {
  const q = new URLSearchParams();
  if (params.get("from") && params.get("to")) {
    q.set("from", params.get("from"));
    q.set("to", params.get("to"));
  } else {
    q.set("from", RANGES[params.get("range") || "24h"] || "-24h");
    q.set("to", "now");
  }
  for (const k of ["step", "compare"]) if (params.get(k)) q.set(k, params.get(k));
  for (const g of params.getAll("group")) q.append("group", g);
  if (format) q.set("format", format);
  return q.toString();
}

// fetchAuthed fetches with the token or the cookie, and throws the
// server's reason for a refusal.
async function fetchAuthed(url) {
  const r = await fetch(url, token ? { headers: { Authorization: "Bearer " + token } } : {});
  if (!r.ok) {
    let why = r.status + "";
    try { why = (await r.json()).error || why; } catch (e) { /* not JSON */ }
    throw new Error(why);
  }
  return r;
}

// go shows another history: the address changes, so it can be shared.
function go(change) {
  for (const [k, v] of Object.entries(change)) {
    if (v === null || v === "") params.delete(k); else params.set(k, v);
  }
  history.pushState(null, "", "?" + params.toString() + location.hash);
  load();
}

function seriesName(s, ans) {
  const name = Object.keys(s.tags || {}).length ? label(s.tags, labels) : ans.panelTitle;
  return name || panelID;
}

function draw(ans, alerts) {
  if (!chart) {
    chart = echarts.init(document.getElementById("chart"));
    addEventListener("resize", () => chart.resize());
    chart.on("datazoom", () => {
      const z = chart.getOption().dataZoom[0];
      if (z.startValue === undefined || z.endValue === undefined) return;
      go({ from: new Date(z.startValue).toISOString(), to: new Date(z.endValue).toISOString(), range: null, step: null });
    });
  }
  const series = ans.series.map((s) => ({ name: seriesName(s, ans), type: "line", showSymbol: s.points.length < 60, data: s.points }));
  for (const s of ans.compare || []) {
    series.push({ name: seriesName(s, ans) + " (" + t("{d} earlier", { d: duration(ans.offset) }) + ")", type: "line", showSymbol: false,
      lineStyle: { type: "dashed", opacity: 0.7 }, data: s.points });
  }
  if (series.length === 0) series.push({ name: ans.panelTitle, type: "line", data: [] });
  const th = ans.thresholds || {};
  const lines = [];
  if (th.warn !== undefined && th.warn !== null) lines.push({ yAxis: th.warn, name: t("warn"), lineStyle: { color: "#e0a030" } });
  if (th.crit !== undefined && th.crit !== null) lines.push({ yAxis: th.crit, name: t("crit"), lineStyle: { color: "#e04040" } });
  const from = Date.parse(ans.from), to = Date.parse(ans.to);
  const areas = alerts.map((a) => [
    { xAxis: Math.max(from, Date.parse(a.since)), itemStyle: { color: a.status === "crit" ? "rgba(224,64,64,0.15)" : "rgba(224,160,48,0.15)" } },
    { xAxis: Math.min(to, a.cleared ? Date.parse(a.cleared) : to) },
  ]);
  series[0].markLine = { symbol: "none", data: lines, label: { formatter: "{b}" } };
  series[0].markArea = { silent: true, data: areas };
  chart.setOption({
    animation: false,
    tooltip: { trigger: "axis", valueFormatter: (v) => format(v) },
    legend: { type: "scroll", top: 0 },
    grid: { left: 48, right: 16, top: 36, bottom: 56 },
    xAxis: { type: "time", min: from, max: to },
    yAxis: { type: "value", scale: true },
    toolbox: { right: 0, bottom: 0, feature: { dataZoom: { yAxisIndex: "none" } } },
    dataZoom: [{ type: "inside", xAxisIndex: 0, zoomOnMouseWheel: false, moveOnMouseMove: false, moveOnMouseWheel: false }],
    series,
  }, true);
  // Selecting a range zooms in, without first pressing the toolbox button.
  chart.dispatchAction({ type: "takeGlobalCursor", key: "dataZoomSelect", dataZoomSelectActive: true });
}

async function load() {
  error.textContent = "";
  for (const b of document.querySelectorAll("#ranges button")) {
    b.classList.toggle("on", !params.get("from") && (params.get("range") || "24h") === b.dataset.range);
  }
  document.getElementById("compare").value = params.get("compare") || "";
  const csv = document.getElementById("csv");
  csv.href = base + "?" + query("csv");
  let ans;
  try {
    const [r, snap] = await Promise.all([fetchAuthed(base + "?" + query()), api("/api/screens/" + encodeURIComponent(screen))]);
    ans = await r.json();
    labels = (snap.meta && snap.meta.labels) || {};
    const p = (snap.panels || []).find((x) => x.id === panelID);
    ans.panelTitle = p ? title(p) : panelID;
    document.getElementById("heading").textContent = ans.panelTitle;
    document.title = ans.panelTitle + " · " + t("History");
  } catch (e) {
    error.textContent = t("No history: ") + e.message;
    return;
  }
  document.getElementById("about").textContent = t("{agg} per {step}", { agg: t(ans.agg), step: duration(ans.step) }) + " · " + when(ans.from) + " – " + when(ans.to);
  let alerts = [];
  try {
    alerts = (await api("/api/alerts")).filter((a) => a.screen === screen && a.panel === panelID &&
      Date.parse(a.since) < Date.parse(ans.to) && (!a.cleared || Date.parse(a.cleared) > Date.parse(ans.from)));
  } catch (e) { /* a display may not list alerts: the chart goes without */ }
  window.cityscreenHistory = ans;
  draw(ans, alerts);
}

for (const b of document.querySelectorAll("#ranges button")) {
  b.addEventListener("click", () => go({ range: b.dataset.range, from: null, to: null, step: null }));
}
document.getElementById("compare").addEventListener("change", (e) => go({ compare: e.target.value }));
document.getElementById("custom").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = document.getElementById("from").value, to = document.getElementById("to").value;
  if (f && to) go({ from: new Date(f).toISOString(), to: new Date(to).toISOString(), range: null, step: null });
});
// The CSV comes with the token when the page has one (a link alone would
// carry only the cookie).
document.getElementById("csv").addEventListener("click", async (e) => {
  e.preventDefault();
  const link = e.currentTarget;
  try {
    const r = await fetchAuthed(link.href);
    const text = await r.text();
    const name = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    a.download = name ? name[1] : "history.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    link.dataset.downloaded = String(text.trim().split("\n").length);
  } catch (err) {
    error.textContent = t("No history: ") + err.message;
  }
});
document.getElementById("back").href = "/" + location.hash;
addEventListener("popstate", () => {
  for (const k of [...params.keys()]) params.delete(k);
  for (const [k, v] of new URLSearchParams(location.search)) params.append(k, v);
  load();
});
if (!screen || !panelID) error.textContent = t("open this page from a panel: ?screen=…&panel=…");
else if (document.readyState === "loading") addEventListener("DOMContentLoaded", load);
else load();
