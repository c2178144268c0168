// Small DOM helpers. Text always goes in through textContent, never innerHTML: model names,
// metadata and audit details are data, not markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else if (name === "class") el.className = value;
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table: columns are [label, row => cell content]. */
export function table(columns, rows, { empty = "Nothing yet.", testid } = {}) {
  if (!rows.length) return h("p", { class: "muted", text: empty });
  return h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { text: label })))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))));
}

export function toast(message, kind = "info") {
  const box = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", text: message });
  document.getElementById("toasts").append(box);
  setTimeout(() => box.remove(), kind === "error" ? 8000 : 4000);
}

/** A modal confirmation; with `typed`, the user must type that word to confirm (protected aliases). */
export function confirmDialog(message, { typed, action = "Confirm" } = {}) {
  return new Promise((resolve) => {
    const input = typed ? h("input", { "data-testid": "confirm-input", autocomplete: "off" }) : null;
    const ok = h("button", { class: "danger", "data-testid": "confirm-ok", text: action, disabled: !!typed });
    const dialog = h("dialog", { class: "confirm" },
      h("p", { text: message }),
      typed ? h("label", {}, `Type ${typed} to confirm: `, input) : null,
      h("div", { class: "row" }, h("button", { "data-testid": "confirm-cancel", text: "Cancel",
        onclick: () => dialog.close("cancel") }), ok));
    input?.addEventListener("input", () => { ok.disabled = input.value !== typed; });
    ok.addEventListener("click", () => dialog.close("ok"));
    dialog.addEventListener("close", () => { dialog.remove(); resolve(dialog.returnValue === "ok"); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Run an async action from a button: disables it meanwhile, reports errors as a toast. */
export function action(fn) {
  return async (event) => {
    event?.preventDefault();
    const button = event?.submitter ?? event?.currentTarget;
    if (button instanceof HTMLButtonElement) button.disabled = true;
    try { await fn(event); } catch (err) { toast(err.message, "error"); } finally {
      if (button instanceof HTMLButtonElement) button.disabled = false;
    }
  };
}

export const fmt = {
  bytes(n) {
    if (n == null) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  },
  time(iso) { return iso ? new Date(iso).toLocaleString() : ""; },
  json(value) { return value && Object.keys(value).length ? JSON.stringify(value) : ""; },
  num(n, digits = 2) { return n == null ? "–" : Number(n).toFixed(digits); },
};

export function pre(value) { return h("pre", { text: JSON.stringify(value, null, 2) }); }
