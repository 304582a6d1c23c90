// alerts.js: the operators' list of alerts, with acknowledgement.
import { api, send, label, format, t, when, cell } from "./live.js";
// The labels of each screen's tag values come with its snapshot.
const labels = new Map(); // screen -> promise of its labels
function labelsOf(screen) {
  if (!labels.has(screen)) {
    labels.set(screen, api("/api/screens/" + encodeURIComponent(screen)).then((s) => (s.meta && s.meta.labels) || {}, () => ({})));
  }
  return labels.get(screen);
}

async function refresh() {
  let list;
  try {
    list = await api("/api/alerts");
  } catch (e) {
    return;
  }
  const screens = await Promise.all([...new Set(list.map((a) => a.screen))].map(async (s) => [s, await labelsOf(s)]));
  const byScreen = new Map(screens);
  const body = document.getElementById("alerts");
  body.textContent = "";
  for (const a of list) {
    const tr = document.createElement("tr");
    tr.dataset.id = a.id;
    cell(tr, t(a.cleared ? "cleared" : a.status), a.cleared ? "" : "status " + a.status);
    cell(tr, a.title + " (" + a.screen + ")");
    cell(tr, a.tags ? label(a.tags, byScreen.get(a.screen)) : "");
    cell(tr, format(a.value), "num");
    cell(tr, when(a.since));
    cell(tr, when(a.cleared));
    cell(tr, a.acked_by ? (a.acked_name || a.acked_by) + ", " + when(a.acked_at) : "");
    const td = cell(tr, "");
    if (!a.cleared && !a.acked_by) {
      const b = document.createElement("button");
      b.textContent = t("Acknowledge");
      b.className = "ack";
      b.addEventListener("click", async () => {
        const r = await send("POST", "/api/alerts/" + encodeURIComponent(a.id) + "/ack", "");
        document.getElementById("error").textContent = r.status === 200 ? "" : t("Not acknowledged: ") + r.text;
        refresh();
      });
      td.appendChild(b);
    }
    body.appendChild(tr);
  }
}

refresh();
setInterval(refresh, 5000);
