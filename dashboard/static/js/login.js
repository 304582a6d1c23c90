// login.js: sign in (or create the first administrator), then go back to
// the page that sent us here.
import { t } from "./i18n.js";

// Only a path on this server: never an address elsewhere.
function next() {
  const n = new URLSearchParams(location.search).get("next") || "/";
  return n.startsWith("/") && !n.startsWith("//") && !n.startsWith("/\\") ? n : "/";
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  let msg = "";
  try { msg = (await r.json()).error || ""; } catch (e) { /* no body */ }
  return { ok: r.ok, status: r.status, msg };
}

async function signIn(user, password, errorEl) {
  const r = await post("/api/login", { user, password });
  if (r.ok) {
    location.href = next();
    return;
  }
  errorEl.textContent = r.msg || t("Sign-in failed") + " (" + r.status + ")";
}

document.getElementById("signin").addEventListener("submit", (e) => {
  e.preventDefault();
  const err = document.getElementById("error");
  err.textContent = "";
  signIn(document.getElementById("user").value.trim(), document.getElementById("password").value, err);
});

document.getElementById("setup").addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = document.getElementById("setup-error");
  err.textContent = "";
  const user = document.getElementById("setup-user").value.trim();
  const password = document.getElementById("setup-password").value;
  const r = await post("/api/setup", { code: document.getElementById("code").value.trim(), user, password });
  if (!r.ok) {
    err.textContent = r.msg || t("Setup failed") + " (" + r.status + ")";
    return;
  }
  signIn(user, password, err);
});

// The buttons work once this script has taken the forms over: never a
// browser's own submission, which would put the password in an address.
for (const b of document.querySelectorAll("form.signin button")) b.disabled = false;

fetch("/api/setup").then((r) => r.json()).then((s) => {
  document.getElementById("setup").hidden = !s.needed;
}).catch(() => {});
