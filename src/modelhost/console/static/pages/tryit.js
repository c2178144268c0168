// "Try it": a panel per model, picked from the runtime of the version the model serves: a form built
// from the signature (tabular, OIP v2), a streaming chat (LLMs, /v1/chat/completions SSE), a similarity
// box (embeddings, /v1/embeddings), or a file box (speech to text, image classification).
import { api, sse } from "../api.js";
import { action, clear, h, pre, table } from "../ui.js";

const enc = encodeURIComponent;
const NUMERIC = /^(FP|INT|UINT)/;

export async function tryPage(root, { args: [name] }) {
  const models = await api("/api/v1/console/models");
  const picker = h("select", { "data-testid": "try-model", onchange: () => { location.hash = `#/try/${enc(picker.value)}`; } },
    h("option", { value: "", text: "choose a model…" }),
    models.map((m) => h("option", { value: m.name, selected: m.name === name, text: m.name })));
  const model = models.find((m) => m.name === name);
  clear(root, h("h2", { text: "Try it" }), h("p", {}, "Model ", picker), model ? panel(model) : null);
}

function served(m) {
  const production = m.alias_list.find((a) => a.alias === "production");
  const number = production?.version ?? m.latest_version;
  return m.versions.find((v) => v.version === number) ?? m.versions.at(-1);
}

function panel(m) {
  const v = served(m);
  if (!v) return h("p", { class: "muted", text: "This model has no version yet." });
  const about = h("p", { class: "muted", text: `serves v${v.version} (${v.runtime}, ${v.format})` });
  const widgets = { llm: chat, embeddings: similarity, whisper: transcription,
    "image-classifier": imageClassifier };
  return h("div", { class: "card" }, about, (widgets[v.runtime] ?? tabular)(m, v));
}

function tabular(m, v) {
  const fields = [];
  const inputs = v.signature.inputs.map((spec) => {
    const width = spec.shape.length === 2 && spec.shape[1] > 0 ? spec.shape[1] : 1;
    const names = v.tags?.feature_names ?? v.params?.feature_names;
    const boxes = Array.from({ length: width }, (_, i) => {
      const label = Array.isArray(names) && names.length === width ? names[i] : width > 1 ? `${spec.name}[${i}]` : spec.name;
      const input = NUMERIC.test(spec.datatype)
        ? h("input", { type: "number", step: "any", required: true, "data-testid": `field-${spec.name}-${i}` })
        : h("input", { required: true, "data-testid": `field-${spec.name}-${i}` });
      fields.push(input);
      return h("label", {}, `${label} `, input);
    });
    return { spec, width, boxes };
  });
  const result = h("div", { "data-testid": "try-result" });
  return h("form", { "data-testid": "try-form", onsubmit: action(async () => {
    let at = 0;
    const body = { inputs: inputs.map(({ spec, width }) => {
      const values = fields.slice(at, at + width).map((f) => (NUMERIC.test(spec.datatype) ? Number(f.value) : f.value));
      at += width;
      return { name: spec.name, datatype: spec.datatype, shape: spec.shape.length === 2 ? [1, width] : [1], data: values };
    }) };
    const out = await api(`/v2/models/${enc(m.name)}/infer`, { method: "POST", body });
    clear(result, h("h4", { text: `Prediction (v${out.model_version})` }),
      table([["output", (o) => o.name], ["value", (o) => JSON.stringify(o.data)]], out.outputs, { testid: "prediction" }));
  }) },
  h("div", { class: "grid" }, inputs.map((i) => i.boxes)),
  h("button", { type: "submit", "data-testid": "try-submit", text: "Predict" }), result);
}

function chat(m) {
  const messages = [];
  const log = h("div", { class: "chat", "data-testid": "chat-log" });
  const text = h("textarea", { rows: 2, placeholder: "Say something…", "data-testid": "chat-input" });
  const maxTokens = h("input", { type: "number", value: 64, min: 1, max: 2048 });
  const temperature = h("input", { type: "number", value: 0.7, min: 0, max: 2, step: 0.1, "data-testid": "chat-temperature" });
  return h("form", { onsubmit: action(async () => {
    const content = text.value.trim();
    if (!content) return;
    messages.push({ role: "user", content });
    log.append(h("div", { class: "msg user", text: content }));
    text.value = "";
    const bubble = h("div", { class: "msg assistant", "data-testid": "chat-answer" });
    log.append(bubble);
    let answer = "";
    for await (const chunk of sse("/v1/chat/completions",
      { model: m.name, messages, stream: true, max_tokens: Number(maxTokens.value), temperature: Number(temperature.value) })) {
      answer += chunk.choices?.[0]?.delta?.content ?? "";
      bubble.textContent = answer;
    }
    messages.push({ role: "assistant", content: answer });
  }) }, log, text, h("div", { class: "row" }, h("label", {}, "max tokens ", maxTokens), h("label", {}, "temperature ", temperature),
    h("button", { type: "submit", "data-testid": "chat-send", text: "Send" })));
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i += 1) { dot += a[i] * b[i]; na += a[i] ** 2; nb += b[i] ** 2; }
  return dot / Math.sqrt(na * nb);
}

function similarity(m) {
  const a = h("textarea", { rows: 2, value: "A cat sits on the mat." });
  const b = h("textarea", { rows: 2, value: "A kitten is resting on a rug." });
  const out = h("output", { "data-testid": "similarity" });
  return h("form", { onsubmit: action(async () => {
    const r = await api("/v1/embeddings", { method: "POST", body: { model: m.name, input: [a.value, b.value] } });
    out.textContent = `cosine similarity ${cosine(r.data[0].embedding, r.data[1].embedding).toFixed(4)} `
      + `(${r.data[0].embedding.length} dimensions, ${r.usage?.prompt_tokens ?? "?"} tokens)`;
  }) }, h("label", {}, "Text A ", a), h("label", {}, "Text B ", b),
  h("button", { type: "submit", text: "Compare" }), h("p", {}, out));
}

function transcription(m) {
  const file = h("input", { type: "file", accept: "audio/*", required: true });
  const out = h("pre", { "data-testid": "transcript" });
  return h("form", { onsubmit: action(async () => {
    const form = new FormData();
    form.append("file", file.files[0]);
    form.append("model", m.name);
    out.textContent = (await api("/v1/audio/transcriptions", { method: "POST", body: form })).text;
  }) }, h("label", {}, "Audio file ", file), h("button", { type: "submit", text: "Transcribe" }), out);
}

function imageClassifier(m, v) {
  const file = h("input", { type: "file", accept: "image/*", required: true });
  const out = h("div", { "data-testid": "classification" });
  const inputName = v.signature.inputs[0]?.name ?? "image";
  return h("form", { onsubmit: action(async () => {
    // OIP v2 binary tensor extension: JSON header, then the BYTES element (4-byte length + data).
    const data = new Uint8Array(await file.files[0].arrayBuffer());
    const header = new TextEncoder().encode(JSON.stringify({ inputs: [{ name: inputName, datatype: "BYTES",
      shape: [1], parameters: { binary_data_size: data.length + 4 } }] }));
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, data.length, true);
    const r = await api(`/v2/models/${enc(m.name)}/infer`, { method: "POST",
      body: new Blob([header, length, data]),
      headers: { "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": String(header.length) } });
    const labels = r.outputs.find((o) => o.name === "label")?.data ?? [];
    const scores = r.outputs.find((o) => o.name === "score")?.data ?? [];
    clear(out, labels.length ? table([["label", (x) => x[0]], ["score", (x) => Number(x[1]).toFixed(4)]],
      labels.map((l, i) => [l, scores[i]])) : pre(r.outputs));
  }) }, h("label", {}, "Image ", file), h("button", { type: "submit", text: "Classify" }), out);
}
