// alerts.js: the operators' list of alerts, with acknowledgement.
import { api, send, label, format, t, when, cell } from "./live.js";
// The labels of each screen's tag values, and its panels' feeds, come
// with its snapshot.
const snaps = new Map(); // screen -> promise of {labels, feeds}
function labelsOf(screen) {
  if (!snaps.has(screen)) {
    snaps.set(screen, api("/api/screens/" + encodeURIComponent(screen)).then((s) => ({
      labels: (s.meta && s.meta.labels) || {},
      feeds: new Map((s.panels || []).map((p) => [p.id, p.feed])),
    }), () => ({ labels: {}, feeds: new Map() })));
  }
  return snaps.get(screen);
}

// caseLinks lists an overdue alert's cases, each a link to its events.
function caseLinks(td, a, feed) {
  const ids = a.cases || [];
  ids.slice(0, 5).forEach((id, i) => {
    if (i) td.append(" ");
    const link = document.createElement("a");
    link.href = "cases.html?feed=" + encodeURIComponent(feed || "") + "&id=" + encodeURIComponent(id) + location.hash;
    link.textContent = id;
    td.appendChild(link);
  });
  if (ids.length > 5) td.append(" +" + (ids.length - 5));
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
    cell(tr, t(a.cleared ? "cleared" : a.status) + (a.escalated && !a.cleared ? " ⇑ " + t("escalated") : "") +
      (a.shelved_until && !a.cleared ? " ⏸ " + t("shelved until {when}", { when: when(a.shelved_until) }) : ""), a.cleared ? "" : "status " + a.status);
    // The panel's history around the alert: an hour before it began to
    // an hour after it cleared (or now).
    const from = new Date(Date.parse(a.since) - 3600e3).toISOString();
    const to = a.cleared ? new Date(Date.parse(a.cleared) + 3600e3).toISOString() : "now";
    const hist = document.createElement("a");
    hist.href = "history.html?screen=" + encodeURIComponent(a.screen) + "&panel=" + encodeURIComponent(a.panel) +
      "&from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to) + location.hash;
    hist.textContent = a.title + " (" + a.screen + ")";
    cell(tr, "").appendChild(hist);
    const snap = byScreen.get(a.screen);
    cell(tr, a.tags ? label(a.tags, snap.labels) : "");
    cell(tr, format(a.value), "num");
    cell(tr, when(a.since));
    cell(tr, when(a.cleared) + (a.resolved_by ? " (" + t("by hand") + ": " + a.resolved_by + (a.resolved_comment ? ", " + a.resolved_comment : "") + ")" : ""));
    cell(tr, a.acked_by ? (a.acked_name || a.acked_by) + ", " + when(a.acked_at) + (a.ack_comment ? " · " + a.ack_comment : "") : "");
    cell(tr, a.assignee ? a.assignee + " (" + (a.assigned_by || "") + ")" : "", "assignee");
    caseLinks(cell(tr, ""), a, snap.feeds.get(a.panel));
    const td = cell(tr, "");
    td.className = "actions";
    const act = (cls, label, placeholder, path, key) => {
      const input = document.createElement("input");
      input.className = cls;
      input.placeholder = t(placeholder);
      input.maxLength = 500;
      const b = document.createElement("button");
      b.textContent = t(label);
      b.className = cls;
      b.addEventListener("click", async () => {
        const r = await send("POST", "/api/alerts/" + encodeURIComponent(a.id) + "/" + path, JSON.stringify({ [key]: input.value }));
        document.getElementById("error").textContent = r.status === 200 ? "" : t("Not done: ") + r.text;
        refresh();
      });
      td.append(input, b);
    };
    if (!a.cleared && !a.acked_by) act("ack", "Acknowledge", "comment", "ack", "comment");
    if (!a.cleared) act("assign", "Assign", "person or department", "assign", "to");
    if (!a.cleared && !a.shelved_until) act("shelve", "Shelve", "for, like 2h", "shelve", "for");
    if (!a.cleared && a.status === "stale") act("resolve", "Resolve", "why", "resolve", "comment");
    if (a.shelved_until) {
      const b = document.createElement("button");
      b.textContent = t("Unshelve");
      b.className = "unshelve";
      b.addEventListener("click", async () => {
        const r = await send("DELETE", "/api/alerts/" + encodeURIComponent(a.id) + "/shelve", "");
        document.getElementById("error").textContent = r.status === 200 ? "" : t("Not done: ") + r.text;
        refresh();
      });
      td.appendChild(b);
    }
    body.appendChild(tr);
  }
}

refresh();
setInterval(refresh, 5000);
