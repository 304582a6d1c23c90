import * as CityScreen from "./live.js";

// The screens this principal may see; a token in the fragment is passed on
// to the pages.
CityScreen.api("/api/screens").then((list) => {
  const body = document.getElementById("screens");
  for (const s of list) {
    const tr = document.createElement("tr");
    const id = encodeURIComponent(s.id);
    for (const [text, href] of [[CityScreen.title(s), null], [CityScreen.t("Wall"), "wall.html?screen=" + id + location.hash], [CityScreen.t("Summary"), "summary.html?screen=" + id + location.hash]]) {
      const td = document.createElement("td");
      if (href) {
        const a = document.createElement("a");
        a.href = href;
        a.textContent = text;
        td.appendChild(a);
      } else td.textContent = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
    // Each panel's history, one tap away.
    const more = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 3;
    const det = document.createElement("details");
    det.className = "panels";
    const sum = document.createElement("summary");
    sum.textContent = CityScreen.t("Panels") + " · " + CityScreen.t("History");
    det.appendChild(sum);
    det.addEventListener("toggle", async () => {
      if (!det.open || det.dataset.loaded) return;
      det.dataset.loaded = "1";
      const snap = await CityScreen.api("/api/screens/" + id).catch(() => ({ panels: [] }));
      for (const p of snap.panels || []) {
        if (["open", "overdue", "due_soon", "oldest_age"].includes(p.agg)) continue;
        const a = document.createElement("a");
        a.href = "history.html?screen=" + id + "&panel=" + encodeURIComponent(p.id) + "&range=24h" + location.hash;
        a.textContent = CityScreen.title(p);
        det.appendChild(a);
      }
    });
    td.appendChild(det);
    more.appendChild(td);
    body.appendChild(more);
  }
}).catch(() => {});
CityScreen.api("/api/me").then((me) => {
  document.getElementById("who").textContent = me.name + " (" + me.role + ")";
  const out = document.getElementById("signout");
  if (me.kind === "user") {
    out.hidden = false;
    out.addEventListener("click", (e) => { e.preventDefault(); CityScreen.signOut(); });
  }
}).catch(() => {});
document.querySelector('a[href="feeds.html"]').href = "feeds.html" + location.hash;
