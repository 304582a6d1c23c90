// summary.js: the leaders' phone summary. One card per panel, panels in
// trouble first; a grouped panel lists its groups, worst first.
"use strict";

(function () {
  const { Live, api, label, format, age, effectiveStatus, showValue } = window.CityScreen;
  const RANK = { crit: 0, warn: 1, stale: 2, ok: 3, nodata: 4 };
  const screenID = new URLSearchParams(location.search).get("screen") || "city-overview";
  const live = new Live(screenID);

  function render() {
    const now = Date.now();
    const panels = live.state.order.map((id) => live.state.panels.get(id));
    const withStatus = panels.map((p) => [p, effectiveStatus(p.status, p.updated, p.stale_after, now)]);
    withStatus.sort((a, b) => RANK[a[1]] - RANK[b[1]]);
    const main = document.getElementById("cards");
    main.textContent = "";
    for (const [p, status] of withStatus) {
      const grouped = Array.isArray(p.groups);
      const card = document.createElement("section");
      card.className = "card " + status + (grouped ? " wide" : "");
      card.dataset.panel = p.id;
      const h = document.createElement("h2");
      h.textContent = p.title;
      card.appendChild(h);
      if (!grouped) {
        const v = document.createElement("div");
        v.className = "value";
        showValue(v, p);
        card.appendChild(v);
      } else {
        const ul = document.createElement("ul");
        const groups = (p.groups || []).map((g) => [g, effectiveStatus(g.status, g.updated, p.stale_after, now)]);
        groups.sort((a, b) => RANK[a[1]] - RANK[b[1]] || b[0].value - a[0].value);
        for (const [g, gs] of groups.slice(0, 5)) {
          const li = document.createElement("li");
          li.className = gs;
          const name = document.createElement("span");
          name.textContent = label(g.tags);
          const val = document.createElement("span");
          val.textContent = format(g.value) + (p.unit ? " " + p.unit : "");
          li.append(name, val);
          ul.appendChild(li);
        }
        card.appendChild(ul);
      }
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = (status === "ok" ? "" : status + " · ") + p.agg + " " + p.window + " · " +
        (p.updated ? age(now - Date.parse(p.updated)) + " ago" : "no data");
      card.appendChild(meta);
      main.appendChild(card);
    }
  }

  live.on((l, changed) => {
    const conn = document.getElementById("conn");
    conn.className = "conn " + l.connState;
    conn.textContent = l.connState === "live" ? "live" : "offline";
    document.body.classList.toggle("disconnected", l.connState !== "live");
    if (l.unauthorized) document.querySelector(".banner").textContent = "Access revoked or not valid: sign in again, or open this page with a valid #token=…";
    if (changed) render();
  });
  api("/api/screens").then((list) => {
    const s = list.find((x) => x.id === screenID);
    if (s) document.getElementById("title").textContent = s.title;
  }).catch(() => {});
  setInterval(() => { if (live.state.order.length) render(); }, 5000);
  live.start();
})();
