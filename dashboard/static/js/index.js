"use strict";
fetch("/api/screens").then((r) => r.json()).then((list) => {
  const body = document.getElementById("screens");
  for (const s of list) {
    const tr = document.createElement("tr");
    const id = encodeURIComponent(s.id);
    for (const [text, href] of [[s.title, null], ["wall", "wall.html?screen=" + id], ["summary", "summary.html?screen=" + id]]) {
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
