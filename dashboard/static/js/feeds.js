// feeds.js: feed health for engineers, refreshed every 5 seconds.
"use strict";

(function () {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const get = (path) => fetch(path, token ? { headers: { Authorization: "Bearer " + token } } : {}).then((r) => r.json());
  let selected = null;

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  async function refresh() {
    const feeds = await get("/api/feeds");
    const body = document.getElementById("feeds");
    body.textContent = "";
    for (const f of feeds) {
      const tr = document.createElement("tr");
      const name = cell(tr, "");
      const a = document.createElement("a");
      a.href = "#" + f.id;
      a.textContent = f.title + " (" + f.id + ")";
      a.onclick = () => { selected = f.id; refresh(); };
      name.appendChild(a);
      cell(tr, f.topic).className = "";
      cell(tr, f.format);
      cell(tr, f.stats.rate_per_second.toLocaleString("en-US", { maximumFractionDigits: 1 }), "num");
      cell(tr, f.stats.received.toLocaleString(), "num");
      cell(tr, f.stats.accepted.toLocaleString(), "num");
      cell(tr, f.stats.rejected.toLocaleString(), "num" + (f.stats.rejected ? " bad" : ""));
      const seen = f.stats.last_seen ? new Date(f.stats.last_seen).toLocaleString("zh-CN", { hour12: false }) : "never";
      cell(tr, f.stats.silent ? "SILENT since " + seen : seen, f.stats.silent ? "bad" : "");
      body.appendChild(tr);
    }
    if (!selected) return;
    document.getElementById("rejected-title").textContent = "Rejected messages of " + selected + " (newest first)";
    const rows = await get("/api/feeds/" + encodeURIComponent(selected) + "/rejected");
    const rb = document.getElementById("rejected");
    rb.textContent = "";
    for (const r of rows.slice(0, 200)) {
      const tr = document.createElement("tr");
      cell(tr, new Date(r.time).toLocaleString("zh-CN", { hour12: false }));
      cell(tr, r.topic);
      cell(tr, r.reason, "bad");
      const td = cell(tr, "");
      const code = document.createElement("code");
      code.textContent = r.payload + (r.truncated ? " … (" + r.size + " bytes, cut)" : "");
      td.appendChild(code);
      rb.appendChild(tr);
    }
  }

  refresh();
  setInterval(refresh, 5000);
})();
