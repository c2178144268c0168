// The console's shell: login, navigation and a hash router (#/models, #/keys ...). Each page is a
// function (root, ctx) that renders into root and may return a cleanup function (stops polling).
import { api, session } from "./api.js";
import { action, clear, h, toast } from "./ui.js";
import { modelsPage, modelPage } from "./pages/models.js";
import { deploymentsPage } from "./pages/deployments.js";
import { tryPage } from "./pages/tryit.js";
import { keysPage } from "./pages/keys.js";
import { usagePage } from "./pages/usage.js";
import { metricsPage } from "./pages/metrics.js";
import { driftPage } from "./pages/drift.js";
import { auditPage } from "./pages/audit.js";

const PAGES = [
  ["models", "Models", modelsPage],
  ["deployments", "Deployments", deploymentsPage],
  ["try", "Try it", tryPage],
  ["keys", "API keys", keysPage],
  ["usage", "Usage", usagePage],
  ["metrics", "Live metrics", metricsPage],
  ["drift", "Drift", driftPage],
  ["audit", "Audit log", auditPage],
];

const root = document.getElementById("app");
let me = null;
let cleanup = null;

function loginView(message) {
  const key = h("input", { type: "password", name: "key", id: "key", autocomplete: "off",
    placeholder: "mh_live_…", required: true, "data-testid": "login-key" });
  const form = h("form", { class: "login", method: "post", action: "#",
    onsubmit: action(async () => {
      session.set(key.value.trim());
      try {
        me = await api("/api/v1/console/session");
      } catch (err) {
        session.clear();
        throw err;
      }
      if (!location.hash || location.hash === "#/") location.hash = "#/models";
      shell();
    }) },
  h("h1", { text: "modelhost console" }),
  h("label", { for: "key", text: "API key" }), key,
  h("p", { class: "muted", text: "The key stays in this browser tab (sessionStorage) and is sent only "
    + "in an Authorization header to this server. An admin key can act; a models:read key can look." }),
  message ? h("p", { class: "error", role: "alert", text: message }) : null,
  h("button", { type: "submit", "data-testid": "login-submit", text: "Sign in" }));
  clear(root, form);
  key.focus();
}

function shell() {
  const nav = h("nav", {},
    h("span", { class: "brand", text: "modelhost" }),
    PAGES.map(([id, label]) => h("a", { href: `#/${id}`, "data-page": id, text: label })),
    h("span", { class: "who", "data-testid": "whoami" },
      `${me.name} (${me.key_id}) · ${me.is_admin ? "admin" : "read-only"}`),
    h("button", { class: "link", "data-testid": "logout", text: "Sign out", onclick: logout }));
  clear(root, h("header", {}, nav), h("main", { id: "page" }));
  route();
}

function logout() {
  session.clear();
  me = null;
  cleanup?.();
  cleanup = null;
  history.replaceState(null, "", "#/");
  loginView();
}

async function route() {
  if (!me) return;
  cleanup?.();
  cleanup = null;
  const [, id = "models", ...rest] = location.hash.split("/");
  const args = rest.map(decodeURIComponent);
  const page = document.getElementById("page");
  for (const a of root.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === id);
  const render = id === "models" && args.length ? modelPage : PAGES.find(([p]) => p === id)?.[2];
  if (!render) return clear(page, h("p", { text: `No page '${id}'.` }));
  const view = h("section", { class: `page page-${id}` }, h("p", { class: "muted", text: "Loading…" }));
  clear(page, view);
  try {
    const result = await render(view, { me, args });
    if (typeof result !== "function") return;
    if (view.isConnected) cleanup = result;
    else result(); // the user went elsewhere while it loaded
  } catch (err) {
    clear(view, h("p", { class: "error", role: "alert", text: err.message }));
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("console:unauthorized", (event) => {
  if (!me) return;
  session.clear();
  me = null;
  cleanup?.();
  loginView(`Signed out: ${event.detail}`);
});

(async () => {
  if (!session.key) return loginView();
  try {
    me = await api("/api/v1/console/session");
    shell();
  } catch (err) {
    session.clear();
    toast(err.message, "error");
    loginView();
  }
})();
