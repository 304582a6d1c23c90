// feeds.js: feed health for engineers, refreshed every 5 seconds.
import * as CityScreen from "./live.js";

const get = CityScreen.api;
const cell = CityScreen.cell;
const send = CityScreen.send;
const show = (res) => {
  let pretty = res.text;
  try { pretty = JSON.stringify(JSON.parse(res.text), null, 2); } catch (e) { /* not JSON */ }
  document.getElementById("result").textContent = res.status + "\n" + pretty;
};
let selected = null;

// Messages the broker dropped never reach the table: say so when it
// reported dropping some in the last day.
async function brokerDrops() {
  const d = await get("/api/broker");
  const p = document.getElementById("broker-drops");
  const recent = d && d.last_drop && Date.now() - new Date(d.last_drop).getTime() < 24 * 3600 * 1000;
  p.hidden = !recent;
  if (recent) {
    p.textContent = CityScreen.t("The MQTT broker reported dropping messages because of its limits, last at {when} ({total} since it started, for all its clients): readings sent to cityscreen may be among them. Raise its max_queued_messages (see docs/reliability.md).",
      { when: CityScreen.when(d.last_drop), total: d.dropped_total.toLocaleString() });
  }
}

async function refresh() {
  brokerDrops().catch(() => { /* shown at the next refresh */ });
  const feeds = await get("/api/feeds");
  const body = document.getElementById("feeds");
  body.textContent = "";
  for (const f of feeds) {
    const tr = document.createElement("tr");
    const name = cell(tr, "");
    const a = document.createElement("a");
    a.href = "#" + f.id;
    a.textContent = CityScreen.title(f) + " (" + f.id + ")";
    a.onclick = () => { selected = f.id; refresh(); };
    name.appendChild(a);
    cell(tr, f.topic).className = "";
    cell(tr, f.format);
    cell(tr, f.stats.rate_per_second.toLocaleString("en-US", { maximumFractionDigits: 1 }), "num");
    cell(tr, f.stats.received.toLocaleString(), "num");
    cell(tr, f.stats.accepted.toLocaleString(), "num");
    cell(tr, f.stats.rejected.toLocaleString(), "num" + (f.stats.rejected ? " bad" : ""));
    const seen = f.stats.last_seen ? CityScreen.when(f.stats.last_seen) : "never";
    cell(tr, f.stats.silent ? "SILENT since " + seen : seen, f.stats.silent ? "bad" : "");
    // How its readings reach the server: subscribed, refused by the
    // broker (an ACL), or down; the connections' client IDs on hover.
    const sub = f.subscription;
    const state = cell(tr, sub ? (sub.state === "subscribed" ? sub.state : sub.state.toUpperCase()) : "",
      sub && sub.state !== "subscribed" ? "bad" : "");
    if (sub) state.title = sub.client_ids.join(", ");
    body.appendChild(tr);
  }
  if (!selected) return;
  document.getElementById("rejected-title").textContent = "Rejected messages of " + selected + " (newest first)";
  document.getElementById("replay").hidden = false;
  const rows = await get("/api/feeds/" + encodeURIComponent(selected) + "/rejected");
  const rb = document.getElementById("rejected");
  rb.textContent = "";
  for (const r of rows.slice(0, 200)) {
    const tr = document.createElement("tr");
    cell(tr, CityScreen.when(r.time));
    cell(tr, r.topic);
    cell(tr, r.reason, "bad");
    const td = cell(tr, "");
    const code = document.createElement("code");
    code.textContent = r.payload + (r.truncated ? " … (" + r.size + " bytes, cut)" : "");
    td.appendChild(code);
    rb.appendChild(tr);
  }
}

document.getElementById("dryrun").onclick = async () => {
  let feed;
  try { feed = JSON.parse(document.getElementById("def").value); } catch (e) {
    document.getElementById("result").textContent = "The definition is not JSON: " + e.message;
    return;
  }
  show(await send("POST", "/api/feeds/test", JSON.stringify({
    feed, topic: document.getElementById("topic").value, payload: document.getElementById("payload").value,
  })));
};
document.getElementById("register").onclick = async () => {
  show(await send("POST", "/api/feeds", document.getElementById("def").value));
  refresh();
};
document.getElementById("preview").onclick = async () => {
  const out = document.getElementById("preview-out");
  out.textContent = "listening…";
  const topic = encodeURIComponent(document.getElementById("preview-topic").value);
  const res = await send("GET", "/api/feeds/preview?seconds=5&topic=" + topic);
  out.textContent = "";
  let msgs;
  try { msgs = JSON.parse(res.text); } catch (e) { msgs = null; }
  if (!Array.isArray(msgs)) { out.textContent = res.status + " " + res.text; return; }
  if (!msgs.length) out.textContent = "nothing in 5 s";
  for (const m of msgs.slice(0, 20)) {
    const b = document.createElement("button");
    b.className = "sample";
    b.textContent = m.topic + "  " + m.payload;
    b.onclick = () => {
      document.getElementById("topic").value = m.topic;
      document.getElementById("payload").value = m.payload;
    };
    out.appendChild(b);
  }
};
document.getElementById("replay").onclick = async () => {
  if (!selected) return;
  show(await send("POST", "/api/feeds/" + encodeURIComponent(selected) + "/rejected/replay"));
  refresh();
};

refresh();
setInterval(refresh, 5000);
