// Drift report per version: the served inputs (prediction log) against the version's reference data.
import { api } from "../api.js";
import { action, clear, fmt, h, table } from "../ui.js";

const enc = encodeURIComponent;

export async function driftPage(root, { args: [name] }) {
  const models = await api("/api/v1/console/models");
  const model = h("select", { "data-testid": "drift-model" },
    models.map((m) => h("option", { value: m.name, selected: m.name === name, text: m.name })));
  const version = h("select", { "data-testid": "drift-version" });
  const fill = () => {
    const m = models.find((x) => x.name === model.value);
    clear(version, h("option", { value: "", text: "the served version" }),
      [...(m?.versions ?? [])].reverse().map((v) => h("option", { value: v.version, text: `v${v.version}` })));
  };
  model.addEventListener("change", fill);
  fill();
  const out = h("div", { "data-testid": "drift-report" });
  const run = action(async () => {
    const q = version.value ? `?version=${enc(version.value)}` : "";
    const r = await api(`/api/v1/console/drift/${enc(model.value)}${q}`);
    clear(out,
      h("p", { class: r.drifted ? "error" : "ok", text: `${r.model} v${r.version}: ${r.drifted ? "DRIFT" : "no drift"} `
        + `(${r.current_rows} served rows vs ${r.reference_rows} reference rows)` }),
      r.note ? h("p", { class: "muted", text: r.note }) : null,
      table([["feature", (f) => f.feature], ["kind", (f) => f.kind], ["test", (f) => f.test],
        ["score", (f) => fmt.num(f.score, 4)], ["p-value", (f) => fmt.num(f.p_value, 4)],
        ["severity", (f) => h("span", { class: `badge ${f.severity}`, text: f.severity })]], r.features,
      { empty: "No features compared." }));
  });
  clear(root, h("h2", { text: "Drift" }),
    h("form", { class: "row", onsubmit: run }, "Model ", model, " version ", version,
      h("button", { type: "submit", "data-testid": "drift-run", text: "Compute" })), out);
  if (name) await run();
}
