// summary.js: the leaders' phone summary. One card per panel, panels in
// trouble (active alerts) first; a grouped panel lists its groups, worst
// first; a map panel ranks every district, with a bar for its value, and
// names those without data; a calendar panel shows the previous period
// beside this one; a tap opens a card's trend. The last values are kept on
// the phone, so that offline the page shows them, with their age.
import { Live, format, age, effectiveStatus, rank, showValue, title, duration, lang, t, lateness } from "./live.js";
const PREVIOUS = { day: "yesterday", hour: "last hour", week: "last week" };
const screenID = new URLSearchParams(location.search).get("screen") || "city-overview";
const live = new Live(screenID);
const open = new Set(); // cards showing their trend
const storeKey = "cityscreen.summary." + screenID;

// The last values seen, shown at once (and offline) until the server's
// snapshot replaces them.
try {
  const saved = JSON.parse(localStorage.getItem(storeKey) || "null");
  if (saved && Array.isArray(saved.panels)) {
    live.state.order = saved.panels.map((p) => p.id);
    live.setMeta(saved.meta);
    live.state.panels = new Map(saved.panels.map((p) => [p.id, p]));
    for (const [id, h] of saved.trends || []) live.trends.set(id, h);
  }
} catch (e) { /* nothing kept */ }
let lastSave = 0;
function save() {
  if (Date.now() - lastSave < 10000 || live.connState !== "live") return;
  lastSave = Date.now();
  try {
    localStorage.setItem(storeKey, JSON.stringify({
      saved: lastSave, meta: live.state.meta, panels: live.state.order.map((id) => live.state.panels.get(id)), trends: [...live.trends],
    }));
  } catch (e) { /* storage full or off: nothing kept */ }
}

// sparkline draws a trend as an SVG line.
function sparkline(points) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 300 60");
  svg.setAttribute("class", "trend");
  if (points.length < 2) return svg;
  const ts = points.map((p) => p[0]), vs = points.map((p) => p[1]);
  const t0 = Math.min(...ts), t1 = Math.max(...ts), v0 = Math.min(...vs), v1 = Math.max(...vs);
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * 296 + 2;
  const y = (v) => 58 - ((v - v0) / Math.max(1e-9, v1 - v0)) * 56;
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" "));
  svg.appendChild(line);
  return svg;
}

// districtList ranks a map panel's groups, worst status then highest
// value first, each with a bar of its value; then the districts of the
// map that have no data (those the labels name), so that a district with
// nothing is not taken for one with 0.
function districtList(p, now) {
  const box = document.createElement("div");
  const ul = document.createElement("ul");
  const groups = (p.groups || []).map((g) => [g, effectiveStatus(g.status, g.updated, p.stale_after, now)]);
  groups.sort((a, b) => rank(a[1]) - rank(b[1]) || b[0].value - a[0].value);
  const top = Math.max(...groups.map(([g]) => Math.abs(g.value)), 1e-9);
  for (const [g, gs] of groups.slice(0, p.points ? 8 : groups.length)) {
    const li = document.createElement("li");
    li.className = "ranked " + gs;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = live.label(g.tags);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.setProperty("--w", Math.round((Math.abs(g.value) / top) * 100) + "%");
    const val = document.createElement("span");
    val.className = "val";
    val.textContent = format(g.value) + (p.unit ? " " + p.unit : "");
    li.append(name, bar, val);
    ul.appendChild(li);
  }
  box.appendChild(ul);
  const m = live.state.meta.map;
  if (m && !p.points) {
    const seen = new Set(groups.map(([g]) => g.tags[m.key]));
    const missing = Object.keys((live.state.meta.labels || {})[m.key] || {}).filter((v) => !seen.has(v));
    if (missing.length) {
      const none = document.createElement("div");
      none.className = "nodata";
      none.textContent = t("Districts without data") + (lang === "zh" ? "：" : ": ") + missing.map((v) => live.labelOf(m.key, v)).join("、");
      box.appendChild(none);
    }
  }
  return box;
}

// caseList shows a list panel's first five cases: ID, where, how late.
function caseList(p, now) {
  const ul = document.createElement("ul");
  ul.className = "cases";
  for (const c of (p.cases || []).slice(0, 5)) {
    const li = document.createElement("li");
    const l = lateness(c.due, now);
    li.className = l.late ? "crit" : "warn";
    li.dataset.case = c.id;
    const name = document.createElement("span");
    name.textContent = c.id + " · " + live.label(c.tags);
    const late = document.createElement("span");
    late.textContent = l.text;
    li.append(name, late);
    ul.appendChild(li);
  }
  return ul;
}

function render() {
  const now = Date.now();
  const panels = live.state.order.map((id) => live.state.panels.get(id));
  const withStatus = panels.map((p) => [p, effectiveStatus(p.status, p.updated, p.stale_after, now)]);
  withStatus.sort((a, b) => rank(a[1]) - rank(b[1]));
  const main = document.getElementById("cards");
  main.textContent = "";
  for (const [p, status] of withStatus) {
    const grouped = Array.isArray(p.groups);
    const card = document.createElement("section");
    card.className = "card " + status + (grouped ? " wide" : "");
    card.dataset.panel = p.id;
    const h = document.createElement("h2");
    h.textContent = title(p);
    card.appendChild(h);
    if (!["open", "overdue", "due_soon", "oldest_age"].includes(p.agg)) {
      // Its history over any range (not for a panel over open cases,
      // whose value is the cases open now).
      const drill = document.createElement("a");
      drill.className = "drill";
      drill.href = "history.html?screen=" + encodeURIComponent(screenID) + "&panel=" + encodeURIComponent(p.id) + "&range=24h" + location.hash;
      drill.textContent = t("History ›");
      drill.addEventListener("click", (e) => e.stopPropagation());
      card.appendChild(drill);
    }
    if (!grouped) {
      const v = document.createElement("div");
      v.className = "value";
      showValue(v, p);
      card.appendChild(v);
      if (p.calendar && p.previous !== undefined && p.previous !== null) {
        const prev = document.createElement("div");
        prev.className = "previous";
        let text = t(PREVIOUS[p.calendar]) + " " + format(p.previous);
        if (p.value !== null && p.value !== undefined && p.previous !== 0) {
          const pct = ((p.value - p.previous) / Math.abs(p.previous)) * 100;
          text += " (" + (pct >= 0 ? "+" : "") + format(pct) + "%)";
        }
        prev.textContent = text;
        card.appendChild(prev);
      }
      if (p.view === "list") card.appendChild(caseList(p, now));
      if (open.has(p.id)) card.appendChild(sparkline(live.trends.get(p.id) || live.history.get(p.id) || []));
      card.addEventListener("click", () => {
        if (open.has(p.id)) open.delete(p.id); else open.add(p.id);
        render();
      });
    } else if (p.view === "map") {
      card.classList.add("districts");
      card.appendChild(districtList(p, now));
    } else {
      const ul = document.createElement("ul");
      const groups = (p.groups || []).map((g) => [g, effectiveStatus(g.status, g.updated, p.stale_after, now)]);
      groups.sort((a, b) => rank(a[1]) - rank(b[1]) || b[0].value - a[0].value);
      for (const [g, gs] of groups.slice(0, 5)) {
        const li = document.createElement("li");
        li.className = gs;
        const name = document.createElement("span");
        name.textContent = live.label(g.tags);
        const val = document.createElement("span");
        val.textContent = format(g.value) + (p.unit ? " " + p.unit : "");
        li.append(name, val);
        ul.appendChild(li);
      }
      card.appendChild(ul);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = (status === "ok" ? "" : t(status) + " · ") + t(p.agg) + " " + duration(p.window) + " · " +
      (p.updated ? t("{age} ago", { age: age(now - Date.parse(p.updated)) }) : t("no data"));
    card.appendChild(meta);
    main.appendChild(card);
  }
  save();
}

live.on((l, changed) => {
  const conn = document.getElementById("conn");
  conn.className = "conn " + l.connState;
  conn.textContent = l.connState === "live" ? t("live") : t("offline");
  document.body.classList.toggle("disconnected", l.connState !== "live");
  if (l.unauthorized) document.querySelector(".banner").textContent = t("Access revoked or not valid: sign in again, or open this page with a valid #token=…");
  if (changed) {
    showTitle();
    render();
  }
});
function showTitle() {
  const s = live.screenTitle();
  if (s) document.getElementById("title").textContent = s;
}
setInterval(() => { if (live.state.order.length) render(); }, 5000);
if (live.state.order.length) { showTitle(); render(); } // what was kept, until the snapshot
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
live.start();
