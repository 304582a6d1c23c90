// cases.js: an operator's view of cases. With ?screen=S&panel=P, the
// cases of that list panel with every column; with ?feed=F&id=ID, one
// case as it stands and all its events, oldest first.
import { api, t, when, cell, label, labelOf, lateness } from "./live.js";

const params = new URLSearchParams(location.search);
const error = document.getElementById("error");

function link(text, href) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

async function showList(screen, panel) {
  document.getElementById("list").hidden = false;
  let snap;
  try {
    snap = await api("/api/screens/" + encodeURIComponent(screen));
  } catch (e) {
    error.textContent = String(e);
    return;
  }
  const labels = (snap.meta && snap.meta.labels) || {};
  const p = (snap.panels || []).find((x) => x.id === panel);
  if (!p) {
    error.textContent = t("no such panel");
    return;
  }
  document.getElementById("heading").textContent = p.title;
  const body = document.getElementById("rows");
  body.textContent = "";
  const now = Date.now();
  for (const c of p.cases || []) {
    const tr = document.createElement("tr");
    tr.dataset.case = c.id;
    cell(tr, "").appendChild(link(c.id, "cases.html?feed=" + encodeURIComponent(p.feed) + "&id=" + encodeURIComponent(c.id) + location.hash));
    cell(tr, label(c.tags, labels));
    cell(tr, labelOf(labels, "status", c.status));
    cell(tr, when(c.opened));
    cell(tr, when(c.due));
    const l = lateness(c.due, now);
    cell(tr, l.text, l.late ? "status crit" : "status warn");
    body.appendChild(tr);
  }
}

async function showCase(feed, id) {
  document.getElementById("one").hidden = false;
  document.getElementById("heading").textContent = id;
  let c;
  try {
    c = await api("/api/cases/" + encodeURIComponent(feed) + "/" + encodeURIComponent(id));
  } catch (e) {
    error.textContent = String(e);
    return;
  }
  const facts = document.getElementById("facts");
  facts.textContent = "";
  const now = Date.now();
  const s = c.case;
  const rows = s ? [
    [t("Status"), s.closed ? t("closed") : s.status],
    [t("Group"), label(s.tags)],
    [t("Opened"), when(s.opened)],
    [t("Due"), s.due ? when(s.due) + (s.closed ? "" : " (" + lateness(s.due, now).text + ")") : "—"],
    [t("Closed"), s.closed ? when(s.closed) : "—"],
    [t("Reopened"), String(s.reopens)],
  ] : [[t("Status"), t("no longer held: its events follow")]];
  for (const [k, v] of rows) {
    const tr = document.createElement("tr");
    cell(tr, k);
    cell(tr, v);
    facts.appendChild(tr);
  }
  const body = document.getElementById("events");
  body.textContent = "";
  for (const e of c.events) {
    const tr = document.createElement("tr");
    cell(tr, when(e.time));
    cell(tr, String(e.fields.status ?? ""));
    const rest = Object.entries(e.fields).filter(([k]) => k !== "status").map(([k, v]) => k + "=" + v);
    cell(tr, rest.concat(Object.entries(e.tags).map(([k, v]) => k + "=" + v)).join(" · "));
    body.appendChild(tr);
  }
}

if (params.get("id")) {
  showCase(params.get("feed") || "", params.get("id"));
} else if (params.get("screen") && params.get("panel")) {
  const refresh = () => showList(params.get("screen"), params.get("panel"));
  refresh();
  setInterval(refresh, 5000);
} else {
  error.textContent = t("open this page from a list of cases: ?screen=…&panel=…");
}
