// Deployments: batching settings and workers per model, and a traffic-split slider per alias (canary).
import { api } from "../api.js";
import { action, clear, h, table, toast } from "../ui.js";

const enc = encodeURIComponent;

export async function deploymentsPage(root, { me }) {
  const models = await api("/api/v1/console/models");
  const render = async () => deploymentsPage(root, { me });
  clear(root, h("h2", { text: "Deployments" }),
    h("p", { class: "muted", text: "Empty fields use the server's defaults. A canary sends a share of an "
      + "alias's traffic to another version (sticky per routing key)." }),
    models.length ? models.map((m) => deploymentCard(m, me, render)) : h("p", { class: "muted", text: "No models." }));
}

function numberInput(name, value, attrs) {
  return h("input", { type: "number", name, value: value ?? "", placeholder: "default",
    "data-testid": `${name}`, ...attrs });
}

function deploymentCard(m, me, render) {
  const d = m.deployment;
  const ro = !me.is_admin;
  const batch = numberInput("max_batch_size", d.max_batch_size, { min: 1, max: 4096, disabled: ro });
  const wait = numberInput("max_wait_ms", d.max_wait_ms, { min: 0, max: 10000, step: "any", disabled: ro });
  const workers = numberInput("workers", d.workers, { min: 0, max: 64, disabled: ro });
  const value = (input) => (input.value === "" ? null : Number(input.value));
  const settings = h("form", { class: "row", onsubmit: action(async () => {
    await api(`/api/v1/models/${enc(m.name)}/deployment`, { method: "PATCH",
      body: { max_batch_size: value(batch), max_wait_ms: value(wait), workers: value(workers) } });
    toast(`${m.name}: deployment updated`);
    await render();
  }) },
  h("label", {}, "max batch size ", batch), h("label", {}, "max wait (ms) ", wait),
  h("label", {}, "workers ", workers), ro ? null : h("button", { type: "submit", text: "Save" }));
  return h("div", { class: "card", "data-testid": `deployment-${m.name}` },
    h("h3", {}, h("a", { href: `#/models/${enc(m.name)}`, text: m.name })),
    settings,
    h("h4", { text: "Traffic split" }),
    m.alias_list.length ? m.alias_list.map((a) => canaryRow(m, a, ro, render))
      : h("p", { class: "muted", text: "No aliases: promote a version first." }));
}

function canaryRow(m, a, ro, render) {
  const canary = m.deployment.canaries[a.alias];
  const others = m.versions.filter((v) => v.version !== a.version);
  const version = h("select", { disabled: ro, "data-testid": `canary-version-${m.name}-${a.alias}` },
    others.map((v) => h("option", { value: v.version, selected: canary?.version === v.version, text: `v${v.version}` })));
  const percent = h("input", { type: "range", min: 0, max: 100, step: 1, value: canary?.percent ?? 0, disabled: ro,
    "data-testid": `canary-percent-${m.name}-${a.alias}` });
  const label = h("output", {});
  const show = () => { label.textContent = `v${a.version} ${100 - Number(percent.value)}% · canary ${percent.value}%`; };
  percent.addEventListener("input", show);
  show();
  return h("div", { class: "row canary" },
    h("strong", { text: `${a.alias}` }), h("span", { class: "muted", text: ` (v${a.version})` }),
    others.length ? [version, percent, label] : h("span", { class: "muted", text: " only one version" }),
    ro || !others.length ? null : h("button", { text: "Apply", "data-testid": `canary-apply-${m.name}-${a.alias}`,
      onclick: action(async () => {
        await api(`/api/v1/models/${enc(m.name)}/canaries/${enc(a.alias)}`, { method: "PUT",
          body: { version: Number(version.value), percent: Number(percent.value) } });
        toast(`${m.name}@${a.alias}: ${percent.value}% to v${version.value}`);
        await render();
      }) }),
    ro || !canary ? null : h("button", { class: "secondary", text: "Clear", onclick: action(async () => {
      await api(`/api/v1/models/${enc(m.name)}/canaries/${enc(a.alias)}`, { method: "DELETE" });
      toast(`${m.name}@${a.alias}: canary cleared`);
      await render();
    }) }),
    canary ? table([["canary", (c) => `v${c.version}`], ["share", (c) => `${c.percent}%`]], [canary]) : null);
}
