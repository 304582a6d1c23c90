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
