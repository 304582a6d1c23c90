// live.js: keeps a screen's panels current over the websocket.
//
// It connects to /ws?screen=ID, takes the snapshot, applies updates in
// sequence order, and reconnects by itself forever with jittered backoff
// (never reloading the page). A gap in the sequence, or a server restart,
// resumes from a fresh snapshot. Listeners get the whole screen state.
import { t, lang, locale, when, duration } from "./i18n.js";
// local picks a text in the page's language: a plain string, or one
// per language ({zh, en}), as screens and labels give them.
function local(text) {
  if (text === null || text === undefined) return "";
  if (typeof text === "string") return text;
  return text[lang] || text.zh || text.en || "";
}

// title is a panel's (or a screen's) title in the page's language.
function title(x) {
  return (x.titles && x.titles[lang]) || x.title || x.id || "";
}

// labelOf names one tag value in people's words, from the labels the
// server sent (labels.yaml, the feeds', the screen's); a value without a
// label is shown as it is.
function labelOf(labels, tag, value) {
  const l = labels && labels[tag] && labels[tag][value];
  return l ? local(l) : (value || t("(none)"));
}

// label names a group by its tag values, in the tags' order of name.
function label(tags, labels) {
  return Object.keys(tags).sort().map((k) => labelOf(labels, k, tags[k])).join(" · ");
}

// localUnit puts a panel's unit in the page's language, when its unit is
// given per language (units).
function localUnit(p) {
  if (p.units) p.unit = p.units[lang] || p.unit;
}

// format writes a value legibly across a room: few digits, thousands grouped.
function format(x) {
  if (x === null || x === undefined) return "—";
  const a = Math.abs(x);
  let digits = 2;
  if (a >= 100) digits = 0;
  else if (a >= 10) digits = 1;
  return x.toLocaleString(locale, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

// age writes how old a time is: "4 s", "3 min", "2 h" (4秒, 3分钟...).
function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return t("{n} s", { n: s });
  if (s < 3600) return t("{n} min", { n: Math.floor(s / 60) });
  if (s < 86400) return t("{n} h", { n: Math.floor(s / 3600) });
  return t("{n} d", { n: Math.floor(s / 86400) });
}

function parseDuration(s) {
  let ms = 0;
  const re = /([\d.]+)(ms|h|m|s)/g;
  let m;
  while ((m = re.exec(s || ""))) {
    ms += parseFloat(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
  }
  return ms;
}

// css reads a colour of the page's palette (cityscreen.css :root), once:
// reading styles while a frame changes the page makes the browser lay
// it out again.
const palette = new Map();
function css(name) {
  if (!palette.has(name)) palette.set(name, getComputedStyle(document.documentElement).getPropertyValue("--" + name).trim());
  return palette.get(name);
}

// rank orders statuses by the attention they need, the most first, as
// the server ranks them: each screen's meta carries the order (statuses:
// crit, warn, stale, ok, nodata). Every page sorts by it; a status the
// order does not name comes last.
let ranks = new Map();
function setRanks(statuses) {
  ranks = new Map((statuses || []).map((s, i) => [s, i]));
}
function rank(status) {
  return ranks.get(status) ?? ranks.size;
}

// effectiveStatus is the server's status, unless the screen has seen
// nothing new for longer than the panel's stale_after: then stale, even
// if the server has not said so (the connection may be down).
function effectiveStatus(status, updated, staleAfter, now) {
  if (status === "nodata" || !updated) return status;
  if (now - Date.parse(updated) > parseDuration(staleAfter) + 2000) return "stale";
  return status;
}

// A token (a display's, or an API token) comes in the page's address as
// #token=...: a fragment is never sent to the server or logged. Without
// one the page uses the sign-in cookie, and sends the signed-out to the
// sign-in page.
const token = new URLSearchParams(location.hash.slice(1)).get("token");

function signIn() {
  location.href = "/login.html?next=" + encodeURIComponent(location.pathname + location.search);
}

// api fetches a JSON route with the token or the cookie.
async function api(path) {
  const r = await fetch(path, token ? { headers: { Authorization: "Bearer " + token } } : {});
  if (r.status === 401) {
    if (!token) signIn();
    throw new Error("unauthorized");
  }
  if (r.status === 403) throw new Error("forbidden");
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

// send makes a change: with the token, or with the cookie and the
// session's anti-forgery value. It answers the status and the body.
let csrf = null;
async function send(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  else {
    if (csrf === null) csrf = (await api("/api/me")).csrf || "";
    headers["X-CSRF-Token"] = csrf;
  }
  const r = await fetch(path, { method, headers, body });
  if (r.status === 401 && !token) signIn();
  return { status: r.status, text: await r.text() };
}

async function signOut() {
  await send("POST", "/api/logout", "");
  location.href = "/login.html";
}

// cell appends a table cell with text (and a class) to a row.
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

// showValue writes a panel's value, with its unit, into el.
function showValue(el, p) {
  el.textContent = format(p.value);
  if (p.unit && p.value !== null && p.value !== undefined) {
    const u = document.createElement("span");
    u.className = "unit";
    u.textContent = p.unit;
    el.appendChild(u);
  }
}

class Live {
  constructor(screen, opts) {
    this.screen = screen;
    this.opts = Object.assign({ minDelay: 500, maxDelay: 30000, history: 240 }, opts || {});
    this.state = { title: "", seq: -1, panels: new Map(), order: [], meta: {} };
    this.history = new Map(); // panel id -> [[time, value]], bounded
    this.trends = new Map(); // panel id -> the server's trend, [[time, value]], for panels that keep one
    this.listeners = [];
    this.connState = "connecting";
    this.attempt = 0;
    this.lastFrame = 0;
    this.ws = null;
    // The script time of the last frames (parsing, applying and drawing
    // them) and of the pages' other work, in ms, for people and the soak
    // test to read (performance.now()); bounded.
    this.timings = { frame: [], tick: [] };
  }

  // timed records the script time since t0 (performance.now()) under kind.
  timed(kind, t0) {
    const list = this.timings[kind] || (this.timings[kind] = []);
    list.push(performance.now() - t0);
    if (list.length > 10000) list.splice(0, list.length - 5000);
  }

  on(fn) { this.listeners.push(fn); }

  // label names a group of this screen by its tag values.
  label(tags) { return label(tags, this.state.meta.labels); }

  // labelOf names one tag value of this screen.
  labelOf(tag, value) { return labelOf(this.state.meta.labels, tag, value); }

  // screenTitle is the screen's title in the page's language.
  screenTitle() { return this.state.meta.title ? title(this.state.meta) : ""; }

  emit(changed) {
    for (const fn of this.listeners) fn(this, changed || null);
  }

  setConn(s) {
    if (this.connState !== s) {
      this.connState = s;
      this.emit(null);
    }
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ screen: this.screen });
    if (token) params.set("token", token);
    return proto + "//" + location.host + "/ws?" + params.toString();
  }

  // switchTo shows another screen: a new connection, a new snapshot.
  switchTo(screen) {
    if (screen === this.screen) return;
    this.screen = screen;
    this.state = { title: "", seq: -1, panels: new Map(), order: [], meta: {} };
    this.history.clear();
    this.trends.clear();
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.onclose = null;
      old.close();
    }
    if (this.started) this.connect();
  }

  start() {
    this.started = true;
    // A wrong or missing token fails the websocket without a reason the
    // page can read, so ask the API once and say so.
    const check = this.screen ? "/api/screens/" + encodeURIComponent(this.screen) : "/api/screens";
    api(check).then(() => { this.unauthorized = false; }, (e) => {
      if (e.message === "unauthorized" || e.message === "forbidden") {
        this.unauthorized = true; // the pages say access is not valid
        this.emit(null);
      }
    });
    if (this.screen) this.connect(); // else a playlist picks the screen
    // The watchdog: a socket that says it is open but has delivered
    // nothing for long while the server's panels re-evaluate every
    // second is replaced; if that keeps happening, or the page cannot
    // connect at all, while the server answers, the page reloads itself.
    this.trips = 0;
    setInterval(() => {
      if (this.ws && this.ws.readyState === WebSocket.OPEN && Date.now() - this.lastFrame > 120000) {
        this.trips++;
        this.ws.close();
        if (this.trips >= 3) this.reloadIfServerUp();
      }
    }, 10000);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && (!this.ws || this.ws.readyState > WebSocket.OPEN)) this.connect();
    });
  }

  connect() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    clearTimeout(this.retryTimer);
    this.setConn(this.attempt === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => {
      this.lastFrame = Date.now();
      const t0 = performance.now();
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      this.apply(f);
      this.timed("frame", t0);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 4001) {
        // Revoked, or signed out elsewhere: say so; a user signs in again.
        this.unauthorized = true;
        this.emit(null);
        if (!token) { signIn(); return; }
        this.attempt = 10; // a display retries slowly, until given a new token
      }
      this.retry();
    };
    ws.onerror = () => {};
  }

  // reloadIfServerUp reloads the page when the server answers: what is
  // stuck is the page, not the network.
  reloadIfServerUp() {
    if (this.unauthorized) return;
    fetch("/healthz", { cache: "no-store" }).then((r) => { if (r.ok) location.reload(); }, () => {});
  }

  // retry waits a jittered, growing delay (full jitter, capped) and connects again.
  retry() {
    this.attempt++;
    if (this.attempt % 20 === 0) this.reloadIfServerUp(); // ten minutes or so of failures
    this.setConn("reconnecting");
    const cap = Math.min(this.opts.maxDelay, this.opts.minDelay * Math.pow(2, this.attempt));
    const delay = this.opts.minDelay / 2 + Math.random() * cap;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // setMeta takes a screen's meta: its words, its map and the statuses'
  // order every page sorts by.
  setMeta(meta) {
    this.state.meta = meta || {};
    setRanks(this.state.meta.statuses);
  }

  apply(f) {
    if (f.type === "reload") {
      location.reload(); // an administrator asked this display to reload
      return;
    }
    if (f.type === "snapshot") {
      this.state.seq = f.seq;
      this.setMeta(f.meta);
      this.state.order = f.panels.map((p) => p.id);
      for (const p of f.panels) localUnit(p);
      this.state.panels = new Map(f.panels.map((p) => [p.id, p]));
      this.trends.clear();
      for (const p of f.panels) this.remember(p);
      this.attempt = 0;
      this.setConn("live");
      this.emit(new Set(this.state.order));
      return;
    }
    if (f.type !== "update") return;
    if (f.seq !== this.state.seq + 1) {
      // A frame was missed: start again from a snapshot.
      if (this.ws) this.ws.close();
      return;
    }
    this.state.seq = f.seq;
    this.trips = 0; // updates flow: the page is not stuck
    const changed = new Set();
    for (const p of f.panels) {
      localUnit(p);
      this.state.panels.set(p.id, p);
      this.remember(p);
      changed.add(p.id);
    }
    this.emit(changed);
  }

  // remember keeps a bounded trend of each ungrouped panel's value, and
  // the server's trend when the panel carries one (updates carry it
  // whole when a step begins; in between, its step in progress,
  // history_now, which replaces or follows its last point).
  remember(p) {
    if (Array.isArray(p.history)) this.trends.set(p.id, p.history);
    else if (Array.isArray(p.history_now)) {
      const tr = (this.trends.get(p.id) || []).slice();
      if (tr.length && tr[tr.length - 1][0] === p.history_now[0]) tr.pop();
      tr.push(p.history_now);
      this.trends.set(p.id, tr);
    }
    if (p.value === null || p.value === undefined || !p.updated) return;
    let h = this.history.get(p.id);
    if (!h) this.history.set(p.id, (h = []));
    const t = Date.now();
    if (h.length && t - h[h.length - 1][0] < 1000) h[h.length - 1] = [t, p.value];
    else h.push([t, p.value]);
    if (h.length > this.opts.history) h.splice(0, h.length - this.opts.history);
  }
}

// lateness says how late a case is past its due time, or how soon it is
// due, by this page's clock: late, and the words.
function lateness(due, now) {
  const d = now - Date.parse(due);
  return { late: d > 0, text: d > 0 ? t("late by {age}", { age: age(d) }) : t("due in {age}", { age: age(-d) }) };
}

export { Live, api, lateness, send, signOut, token, t, lang, when, duration, cell, label, labelOf, local, title, format, age, effectiveStatus, rank, css, parseDuration, showValue };
