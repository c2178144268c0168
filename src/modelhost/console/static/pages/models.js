// Models and versions (metrics, signature, lineage, format, size, sha256), aliases with their history,
// one-click promote / roll back (protected aliases ask for a typed confirmation), and registration.
import { api } from "../api.js";
import { action, clear, confirmDialog, fmt, h, pre, table, toast } from "../ui.js";

const enc = encodeURIComponent;

export async function modelsPage(root, { me }) {
  const models = await api("/api/v1/console/models");
  clear(root,
    h("h2", { text: "Models" }),
    table([
      ["Model", (m) => h("a", { href: `#/models/${enc(m.name)}`, text: m.name, "data-testid": `model-${m.name}` })],
      ["Task", (m) => m.task ?? ""],
      ["Versions", (m) => String(m.versions.length)],
      ["Latest", (m) => m.latest_version ?? ""],
      ["Aliases", (m) => m.alias_list.map((a) => h("span", { class: `badge${a.protected ? " protected" : ""}`,
        text: `${a.alias} → v${a.version}` }))],
      ["Format", (m) => m.versions.at(-1)?.format ?? ""],
      ["Try", (m) => h("a", { href: `#/try/${enc(m.name)}`, text: "try it" })],
    ], models, { empty: "No models registered yet.", testid: "models-table" }),
    me.is_admin ? registerForm(null) : null);
}

function registerForm(model) {
  const name = h("input", { name: "name", value: model ?? "", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
    readonly: !!model, "data-testid": "register-name" });
  const file = h("input", { type: "file", name: "file", required: true, "data-testid": "register-file" });
  const metrics = h("input", { name: "metrics", placeholder: '{"accuracy": 0.97}', "data-testid": "register-metrics" });
  const description = h("input", { name: "description" });
  const onnx = h("input", { type: "checkbox", name: "convert_onnx" });
  return h("form", { class: "card", "data-testid": "register-form", onsubmit: action(async () => {
    const form = new FormData();
    form.append("file", file.files[0]);
    if (metrics.value.trim()) form.append("metrics", metrics.value.trim());
    if (description.value) form.append("description", description.value);
    if (onnx.checked) form.append("convert_onnx", "true");
    const v = await api(`/api/v1/models/${enc(name.value)}/versions`, { method: "POST", body: form });
    toast(`registered ${v.model} v${v.version} (sha256 ${v.sha256.slice(0, 12)}…)`);
    location.hash = `#/models/${enc(v.model)}`;
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  }) },
  h("h3", { text: model ? "Register a new version" : "Register a model" }),
  h("div", { class: "grid" },
    h("label", {}, "Name ", name), h("label", {}, "Artifact (skops, ONNX, .keras, safetensors…) ", file),
    h("label", {}, "Metrics (JSON) ", metrics), h("label", {}, "Description ", description),
    h("label", {}, onnx, " also convert to ONNX")),
  h("button", { type: "submit", text: "Register" }));
}

function versionDetails(v) {
  return h("details", { "data-testid": `version-${v.version}` },
    h("summary", {}, `v${v.version} · ${v.format} · ${v.runtime} · ${fmt.bytes(v.size_bytes)}`),
    h("dl", {},
      h("dt", { text: "sha256" }), h("dd", { class: "mono", text: v.sha256 }),
      h("dt", { text: "created" }), h("dd", { text: `${fmt.time(v.created_at)} by ${v.created_by}` }),
      h("dt", { text: "description" }), h("dd", { text: v.description || "–" }),
      h("dt", { text: "metrics" }), h("dd", {}, pre(v.metrics)),
      h("dt", { text: "signature" }), h("dd", {}, table([
        ["", (t) => t.io], ["name", (t) => t.name], ["datatype", (t) => t.datatype],
        ["shape", (t) => JSON.stringify(t.shape)],
      ], [...v.signature.inputs.map((t) => ({ ...t, io: "input" })),
        ...v.signature.outputs.map((t) => ({ ...t, io: "output" }))])),
      h("dt", { text: "lineage" }), h("dd", {}, pre(v.lineage)),
      h("dt", { text: "params" }), h("dd", {}, pre(v.params)),
      h("dt", { text: "tags" }), h("dd", {}, pre(v.tags))));
}

export async function modelPage(root, { me, args: [name] }) {
  const m = await api(`/api/v1/console/models/${enc(name)}`);
  const reload = () => modelPage(root, { me, args: [name] });
  const versions = [...m.versions].reverse();
  clear(root,
    h("h2", {}, h("a", { href: "#/models", text: "Models" }), " / ", m.name),
    h("p", { class: "muted" }, [
      m.description, m.task && `task: ${m.task}`,
      m.loaded.length ? `loaded here: ${m.loaded.map((l) => `v${l.version} (${l.state})`).join(", ")}`
        : "not loaded on this server",
    ].filter(Boolean).join(" · "), " · ", h("a", { href: `#/try/${enc(m.name)}`, text: "try it" }),
    " · ", h("a", { href: `#/drift/${enc(m.name)}`, text: "drift" })),
    h("h3", { text: "Aliases" }),
    aliasesSection(m, me, reload),
    h("h3", { text: "Versions" }),
    table([
      ["Version", (v) => `v${v.version}`],
      ["Format", (v) => v.format], ["Runtime", (v) => v.runtime],
      ["Size", (v) => fmt.bytes(v.size_bytes)],
      ["sha256", (v) => h("span", { class: "mono", title: v.sha256, text: `${v.sha256.slice(0, 12)}…` })],
      ["Metrics", (v) => fmt.json(v.metrics)],
      ["Aliases", (v) => v.aliases.join(", ")],
      ["Created", (v) => fmt.time(v.created_at)],
    ], versions, { testid: "versions-table" }),
    versions.map(versionDetails),
    me.is_admin ? registerForm(m.name) : null);
}

function aliasesSection(m, me, reload) {
  const setAlias = async (alias, version, protectedAlias, extra = {}) => {
    if (protectedAlias && !(await confirmDialog(
      `'${alias}' is protected: moving it changes what production traffic gets (v${version}).`,
      { typed: alias, action: `Move ${alias} to v${version}` }))) return;
    const body = { version, force: protectedAlias, reason: "console", ...extra };
    await api(`/api/v1/models/${enc(m.name)}/aliases/${enc(alias)}`, { method: "PUT", body });
    toast(`${m.name}@${alias} → v${version}`);
    await reload();
  };
  const rollback = async (a) => {
    const ok = await confirmDialog(`Roll ${m.name}@${a.alias} back to the version it pointed to before v${a.version}?`,
      a.protected ? { typed: a.alias, action: "Roll back" } : { action: "Roll back" });
    if (!ok) return;
    const info = await api(`/api/v1/models/${enc(m.name)}/aliases/${enc(a.alias)}/rollback`,
      { method: "POST", body: { reason: "console" } });
    toast(`${m.name}@${a.alias} rolled back to v${info.version}`);
    await reload();
  };
  const versionSelect = (current, testid) => h("select", { "data-testid": testid },
    [...m.versions].reverse().map((v) => h("option", { value: v.version, selected: v.version === current,
      text: `v${v.version}` })));
  const rows = m.alias_list.map((a) => {
    const select = versionSelect(a.version, `promote-version-${a.alias}`);
    return h("div", { class: "card alias", "data-testid": `alias-${a.alias}` },
      h("div", { class: "row" },
        h("strong", { text: `${a.alias}` }), " → ",
        h("span", { class: "badge", "data-testid": `alias-version-${a.alias}`, text: `v${a.version}` }),
        a.protected ? h("span", { class: "badge protected", text: "protected" }) : null,
        h("span", { class: "muted", text: ` updated ${fmt.time(a.updated_at)} by ${a.updated_by}` }),
        me.is_admin ? [
          select,
          h("button", { "data-testid": `promote-${a.alias}`, text: "Promote",
            onclick: action(() => setAlias(a.alias, Number(select.value), a.protected)) }),
          h("button", { "data-testid": `rollback-${a.alias}`, text: "Roll back", class: "secondary",
            onclick: action(() => rollback(a)) }),
        ] : null),
      h("details", {}, h("summary", { text: `history (${a.history.length})` }),
        table([
          ["When", (e) => fmt.time(e.at)], ["Change", (e) => `${e.from_version ?? "–"} → ${e.to_version ?? "–"}`],
          ["Kind", (e) => e.kind], ["By", (e) => e.actor], ["Reason", (e) => e.reason],
        ], [...a.history].reverse(), { testid: `history-${a.alias}` })));
  });
  if (me.is_admin && m.versions.length) {
    const alias = h("input", { placeholder: "staging", pattern: "[a-z][a-z0-9_-]{0,63}", required: true,
      "data-testid": "new-alias-name" });
    const select = versionSelect(m.latest_version, "new-alias-version");
    const protect = h("input", { type: "checkbox" });
    rows.push(h("form", { class: "row", onsubmit: action(() => setAlias(alias.value, Number(select.value), false,
      { protect: protect.checked || null })) },
    "New alias ", alias, select, h("label", {}, protect, " protected"), h("button", { type: "submit", text: "Set" })));
  }
  return rows.length ? rows : h("p", { class: "muted", text: "No aliases." });
}
