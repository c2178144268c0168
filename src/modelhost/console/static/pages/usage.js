// Usage and cost per day (charts), per model and per key (tables), from /api/v1/console/usage.
import { api } from "../api.js";
import { chart } from "../charts.js";
import { clear, fmt, h, table } from "../ui.js";

const epoch = (day) => Date.parse(`${day}T00:00:00Z`) / 1000;

export async function usagePage(root) {
  const days = h("select", { "data-testid": "usage-days" },
    [7, 30, 90].map((n) => h("option", { value: n, selected: n === 30, text: `last ${n} days` })));
  const body = h("div");
  const load = async () => {
    const u = await api(`/api/v1/console/usage?days=${days.value}`);
    const xs = u.days.map((d) => epoch(d.day));
    const requests = chart("Requests per day", [{ label: "requests" }, { label: "errors" }], { bars: true, testid: "chart-requests" });
    const tokens = chart("Tokens per day", [{ label: "input" }, { label: "output" }], { bars: true });
    const cost = chart("Cost per day", [{ label: "cost" }], { bars: true });
    const total = u.days.reduce((sum, d) => sum + d.requests, 0);
    clear(body,
      h("p", { "data-testid": "usage-total" }, `${total} requests, `,
        `${u.days.reduce((s, d) => s + d.input_tokens + d.output_tokens, 0)} tokens, cost `,
        fmt.num(u.days.reduce((s, d) => s + d.cost, 0), 4), ` (${u.since} – ${u.until}, UTC`,
        u.scope === "own" ? ", your key only)" : ", all keys)"),
      requests.el, tokens.el, cost.el,
      h("h3", { text: "Per model" }),
      table([["model", (r) => r.model], ["requests", (r) => String(r.requests)], ["errors", (r) => String(r.errors)],
        ["rows", (r) => String(r.rows)], ["tokens in/out", (r) => `${r.input_tokens} / ${r.output_tokens}`],
        ["cost", (r) => fmt.num(r.cost, 4)]], u.per_model, { testid: "usage-per-model" }),
      h("h3", { text: "Per key" }),
      table([["key", (r) => r.key_id], ["requests", (r) => String(r.requests)], ["errors", (r) => String(r.errors)],
        ["tokens in/out", (r) => `${r.input_tokens} / ${r.output_tokens}`], ["cost", (r) => fmt.num(r.cost, 4)]],
      u.per_key, { testid: "usage-per-key" }));
    requests.update(xs, [u.days.map((d) => d.requests), u.days.map((d) => d.errors)]);
    tokens.update(xs, [u.days.map((d) => d.input_tokens), u.days.map((d) => d.output_tokens)]);
    cost.update(xs, [u.days.map((d) => d.cost)]);
  };
  days.addEventListener("change", load);
  clear(root, h("h2", { text: "Usage and cost" }), h("p", {}, days,
    h("button", { class: "secondary", text: "Refresh", "data-testid": "usage-refresh", onclick: load })), body);
  await load();
}
