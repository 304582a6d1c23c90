"use strict";
// The admin token, if any, rides in the fragment and is passed on to the pages.
const token = new URLSearchParams(location.hash.slice(1)).get("token");
fetch("/api/screens", token ? { headers: { Authorization: "Bearer " + token } } : {}).then((r) => r.json()).then((list) => {
  const body = document.getElementById("screens");
  for (const s of list) {
    const tr = document.createElement("tr");
    const id = encodeURIComponent(s.id);
    for (const [text, href] of [[s.title, null], ["wall", "wall.html?screen=" + id + location.hash], ["summary", "summary.html?screen=" + id + location.hash]]) {
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
});
document.querySelector('a[href="feeds.html"]').href = "feeds.html" + location.hash;
