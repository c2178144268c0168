// The audit log (admin): who did what to which model, alias or key, newest first.
import { api } from "../api.js";
import { action, clear, fmt, h, table } from "../ui.js";

export async function auditPage(root, { me }) {
  if (!me.is_admin) {
    return clear(root, h("h2", { text: "Audit log" }), h("p", { class: "muted", text: "The audit log needs an admin key." }));
  }
  const actor = h("input", { placeholder: "actor" });
  const act = h("input", { placeholder: "action (alias.set, key.revoke…)" });
  const target = h("input", { placeholder: "target prefix (model:iris, key:)" });
  const out = h("div");
  const load = action(async () => {
    const q = new URLSearchParams({ limit: "200" });
    if (actor.value) q.set("actor", actor.value);
    if (act.value) q.set("action", act.value);
    if (target.value) q.set("target", target.value);
    const events = await api(`/api/v1/audit?${q}`);
    clear(out, table([["when", (e) => fmt.time(e.at)], ["actor", (e) => e.actor], ["action", (e) => e.action],
      ["target", (e) => e.target], ["details", (e) => h("span", { class: "mono", text: fmt.json(e.details) })]],
    events, { testid: "audit-table" }));
  });
  clear(root, h("h2", { text: "Audit log" }),
    h("form", { class: "row", onsubmit: load }, actor, act, target, h("button", { type: "submit", text: "Filter" })), out);
  await load();
}
