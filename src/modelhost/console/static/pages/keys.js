// API keys: create (the secret is shown once), revoke, and usage per key.
import { api } from "../api.js";
import { action, clear, confirmDialog, fmt, h, table, toast } from "../ui.js";

const SCOPES = ["admin", "models:read", "models:load", "infer"];

export async function keysPage(root, { me }) {
  if (!me.is_admin) {
    return clear(root, h("h2", { text: "API keys" }),
      h("p", { class: "muted", text: "Managing keys needs an admin key. Your key:" }),
      table([["id", (k) => k.key_id], ["name", (k) => k.name], ["scopes", (k) => k.scopes.join(" ")]], [me]));
  }
  const [keys, usage] = await Promise.all([api("/api/v1/keys"), api("/api/v1/console/usage?days=30")]);
  const perKey = Object.fromEntries(usage.per_key.map((u) => [u.key_id, u]));
  const reload = () => keysPage(root, { me });
  const secret = h("div", { "data-testid": "new-key-box" });
  const name = h("input", { name: "name", required: true, maxlength: 128, "data-testid": "key-name" });
  const owner = h("input", { name: "owner" });
  const boxes = SCOPES.map((s) => h("input", { type: "checkbox", value: s, checked: s === "infer",
    "data-testid": `scope-${s}` }));
  const pattern = h("input", { placeholder: "iris*  (scope infer:<pattern>)", "data-testid": "scope-pattern" });
  const rpm = h("input", { type: "number", min: 1, placeholder: "none" });
  const create = h("form", { class: "card", "data-testid": "create-key", onsubmit: action(async () => {
    const scopes = boxes.filter((b) => b.checked).map((b) => b.value);
    if (pattern.value.trim()) scopes.push(`infer:${pattern.value.trim()}`);
    const limits = rpm.value ? { rpm: Number(rpm.value) } : {};
    const created = await api("/api/v1/keys", { method: "POST", body: { name: name.value, owner: owner.value, scopes, limits } });
    await reload();
    // after the reload (which rebuilt the page), show the secret once in the fresh page
    root.querySelector("[data-testid=new-key-box]").replaceWith(secretBox(created));
  }) },
  h("h3", { text: "Create a key" }),
  h("div", { class: "grid" }, h("label", {}, "Name ", name), h("label", {}, "Owner ", owner),
    h("fieldset", {}, h("legend", { text: "Scopes" }), boxes.map((b) => h("label", {}, b, ` ${b.value} `)), pattern),
    h("label", {}, "Requests per minute ", rpm)),
  h("button", { type: "submit", "data-testid": "key-create", text: "Create" }));
  const revoke = (k) => action(async () => {
    if (!(await confirmDialog(`Revoke key ${k.key_id} (${k.name})? Requests with it get 401 from now on.`,
      { action: "Revoke" }))) return;
    await api(`/api/v1/keys/${encodeURIComponent(k.key_id)}/revoke`, { method: "POST" });
    toast(`key ${k.key_id} revoked`);
    await reload();
  });
  clear(root, h("h2", { text: "API keys" }), secret, create,
    table([
      ["Id", (k) => h("span", { class: "mono", text: k.key_id })], ["Name", (k) => k.name], ["Owner", (k) => k.owner],
      ["Scopes", (k) => k.scopes.join(" ")], ["Limits", (k) => fmt.json(k.limits)],
      ["Created", (k) => fmt.time(k.created_at)], ["Last used", (k) => fmt.time(k.last_used_at)],
      ["Requests (30 d)", (k) => String(perKey[k.key_id]?.requests ?? 0)],
      ["Tokens", (k) => String((perKey[k.key_id]?.input_tokens ?? 0) + (perKey[k.key_id]?.output_tokens ?? 0))],
      ["Cost", (k) => fmt.num(perKey[k.key_id]?.cost ?? 0, 4)],
      ["", (k) => (k.revoked ? h("span", { class: "badge revoked", text: `revoked ${fmt.time(k.revoked_at)}` })
        : k.key_id === me.key_id ? h("span", { class: "muted", text: "this session" })
          : h("button", { class: "danger", "data-testid": `revoke-${k.key_id}`, text: "Revoke", onclick: revoke(k) }))],
    ], keys, { testid: "keys-table" }));
}

function secretBox(created) {
  const value = h("code", { class: "secret", "data-testid": "new-key-secret", text: created.key });
  return h("div", { class: "card notice", "data-testid": "new-key-box" },
    h("strong", { text: `Key ${created.key_id} (${created.name}) created.` }),
    h("p", { text: "Copy it now: this is the only time the secret is shown. The server keeps only its HMAC." }),
    value,
    h("div", { class: "row" },
      h("button", { text: "Copy", onclick: action(async () => { await navigator.clipboard.writeText(created.key); toast("copied"); }) }),
      h("button", { class: "secondary", text: "Done, hide it", "data-testid": "hide-secret",
        onclick: (e) => e.currentTarget.closest(".notice").replaceChildren() })));
}
