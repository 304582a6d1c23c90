// wall.js: the command centre's wall screen. One tile per panel: a big
// number with its trend for an ungrouped panel, bars by group for a grouped
// one; status colours from the thresholds; every tile shows its age and
// turns visibly stale when its data stops.
"use strict";

(function () {
  const { Live, api, label, format, age, effectiveStatus, showValue, t: tr } = window.CityScreen;
  const COLORS = { ok: "#2fd28a", warn: "#ffb020", crit: "#ff4d5e", stale: "#6b7280", nodata: "#6b7280" };
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
    for (const t of tiles.values()) if (t.chart) t.chart.dispose();
    tiles.clear();
    let cells = 0;
    for (const id of state.order) {
      const p = state.panels.get(id);
      const grouped = Array.isArray(p.groups);
      const el = document.createElement("section");
      el.className = "tile" + (grouped ? " wide" : "");
      el.dataset.panel = id;
      el.innerHTML = '<h2></h2><div class="value"></div><div class="chart"></div><div class="meta"><span class="badge"></span><span class="age"></span></div>';
      el.querySelector("h2").textContent = p.title;
      if (grouped) el.querySelector(".value").remove();
      grid.appendChild(el);
      const box = el.querySelector(".chart");
      const chart = window.echarts ? echarts.init(box, null, { renderer: "canvas" }) : null;
      if (chart) new ResizeObserver(() => chart.resize()).observe(box);
      tiles.set(id, { el, chart, grouped });
      cells += grouped ? 2 : 1;
    }
    const cols = 6;
    grid.style.setProperty("--cols", cols);
    grid.style.setProperty("--rows", Math.max(1, Math.ceil(cells / cols)));
    built = state.order.join(",");
  }

  function render(p, t, now) {
    const status = effectiveStatus(p.status, p.updated, p.stale_after, now);
    t.el.className = "tile " + status + (t.grouped ? " wide" : "");
    const badge = tr({ ok: "", warn: "warn", crit: "crit", stale: "", nodata: "no data" }[status] || status);
    t.el.querySelector(".badge").textContent = badge + (badge ? " · " : "") + tr(p.agg) + " " + tr(p.window);
    t.el.querySelector(".age").textContent = p.updated ? tr("{age} ago", { age: age(now - Date.parse(p.updated)) }) : tr("no data in {w}", { w: tr(p.window) });
    if (!t.grouped) {
      showValue(t.el.querySelector(".value"), p);
    }
    if (!t.chart) return;
    const axis = { color: "#8fa0c2", fontSize: fontPx(1.4) };
    if (t.grouped) {
      const groups = (p.groups || []).slice();
      t.chart.setOption({
        animation: false,
        grid: { left: 8, right: 8, top: fontPx(1.6), bottom: fontPx(0.4), containLabel: true },
        xAxis: {
          type: "category", data: groups.map((g) => label(g.tags)),
          axisLabel: Object.assign({ interval: 0, overflow: "truncate", width: t.el.clientWidth / Math.max(1, groups.length) - 4 }, axis),
        },
        yAxis: { type: "value", axisLabel: axis, splitLine: { lineStyle: { color: "#1d2c4a" } } },
        series: [{
          type: "bar",
          data: groups.map((g) => ({
            value: g.value,
            itemStyle: { color: COLORS[effectiveStatus(g.status, g.updated, p.stale_after, now)] || COLORS.ok },
          })),
          label: { show: true, position: "top", color: "#e8eefc", fontSize: fontPx(1.4), formatter: (d) => format(d.value) },
          markLine: thresholdLines(p),
        }],
      }, { notMerge: true });
      return;
    }
    if (p.unit === "%") {
      // A share (a ratio) is a bar from 0 to 100% with its thresholds marked.
      const th = p.thresholds || {};
      const marks = [];
      if (th.warn !== undefined) marks.push({ xAxis: th.warn, lineStyle: { color: COLORS.warn, width: 2, type: "solid" } });
      if (th.crit !== undefined) marks.push({ xAxis: th.crit, lineStyle: { color: COLORS.crit, width: 2, type: "solid" } });
      t.chart.setOption({
        animation: false,
        grid: { left: 0, right: 0, top: "25%", bottom: "25%" },
        xAxis: { type: "value", min: 0, max: 100, show: false },
        yAxis: { type: "category", data: [""], show: false },
        series: [{
          type: "bar", data: [p.value ?? 0], barWidth: "100%", showBackground: true,
          backgroundStyle: { color: "#1d2c4a" }, itemStyle: { color: COLORS[status] || COLORS.ok },
          markLine: { silent: true, symbol: "none", label: { show: false }, data: marks },
        }],
      }, { notMerge: true });
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
      series: [{ type: "line", showSymbol: false, data: h, lineStyle: { color: COLORS[status] || COLORS.ok, width: 2 },
        areaStyle: { color: (COLORS[status] || COLORS.ok) + "33" } }],
    }, { notMerge: true });
  }

  function thresholdLines(p) {
    const t = p.thresholds || {};
    const data = [];
    if (t.warn !== undefined) data.push({ yAxis: t.warn, lineStyle: { color: COLORS.warn } });
    if (t.crit !== undefined) data.push({ yAxis: t.crit, lineStyle: { color: COLORS.crit } });
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
    if (!alert || !alert.acked_by) return "";
    return " ✓ " + alert.acked_by.replace(/^user:/, "").replace(/ \(tok_.*\)$/, "").replace(/^token:/, "");
  }

  function renderAlerts(state, now) {
    const items = [];
    for (const f of silentFeeds) {
      const quiet = f.stats.last_seen ? tr("nothing for {age}", { age: age(now - Date.parse(f.stats.last_seen)) }) : tr("nothing since cityscreen started");
      items.push(["crit", tr("Feed silent: {title}, {quiet}", { title: f.title, quiet })]);
    }
    for (const id of state.order) {
      const p = state.panels.get(id);
      const status = effectiveStatus(p.status, p.updated, p.stale_after, now);
      if (Array.isArray(p.groups)) {
        for (const g of p.groups) {
          const gs = effectiveStatus(g.status, g.updated, p.stale_after, now);
          if (gs === "warn" || gs === "crit") items.push([gs, p.title + ": " + label(g.tags) + " " + format(g.value) + (p.unit ? " " + p.unit : "") + acked(g.alert)]);
        }
        if (status === "stale") items.push(["stale", p.title + ": " + tr("stale") + acked(p.alert)]);
      } else if (status === "warn" || status === "crit" || status === "stale") {
        items.push([status, p.title + ": " + (status === "stale" ? tr("stale") : format(p.value) + (p.unit ? " " + p.unit : "")) + acked(p.alert)]);
      }
    }
    items.sort((a, b) => ({ crit: 0, warn: 1, stale: 2 }[a[0]] - { crit: 0, warn: 1, stale: 2 }[b[0]]));
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
    if (state.order.join(",") !== built) {
      build(state);
      changed = null;
    }
    const now = Date.now();
    for (const [id, t] of tiles) {
      if (changed && !changed.has(id)) continue;
      render(state.panels.get(id), t, now);
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
    const now = new Date();
    document.getElementById("clock").textContent = window.CityScreen.when(now);
    if (live.state.order.length) renderAll(null); // ages move, and data can turn stale without a frame
  }

  let screenTitles = new Map();
  function showTitle() {
    const t = screenTitles.get(screenID);
    if (t) {
      document.getElementById("title").textContent = t;
      document.title = t + " · cityscreen";
    }
  }
  api("/api/screens").then((list) => {
    screenTitles = new Map(list.map((x) => [x.id, x.title]));
    showTitle();
  }).catch(() => {});

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
      showTitle();
      await new Promise((r) => setTimeout(r, e.seconds * 1000));
    }
    rotate();
  }
  window.addEventListener("resize", () => renderAll(null)); // font sizes follow the height
  setInterval(tick, 1000);
  setInterval(pollFeeds, 10000);
  setTimeout(pollFeeds, 2000); // once the snapshot says which feeds this screen uses
  tick();
  if (playlistID) rotate();
  live.start();
  window.cityscreenLive = live; // for people and tests inspecting the page
})();
