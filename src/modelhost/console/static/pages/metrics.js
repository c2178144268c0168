// Live metrics: p50/p99 latency, requests/s and tokens/s, polled every 2 s from the server's own
// Prometheus registry (/api/v1/console/metrics keeps the last 300 samples).
import { api } from "../api.js";
import { chart } from "../charts.js";
import { clear, fmt, h } from "../ui.js";

const POLL_MS = 2000;

export async function metricsPage(root) {
  let model = "*";
  const picker = h("select", { "data-testid": "metrics-model" }, h("option", { value: "*", text: "all models" }));
  const totals = h("p", { "data-testid": "metrics-totals" });
  const latency = chart("Latency (ms)", [{ label: "p50" }, { label: "p99" }], { testid: "chart-latency" });
  const rps = chart("Requests per second", [{ label: "requests/s" }, { label: "errors/s" }]);
  const tps = chart("Tokens per second", [{ label: "tokens/s" }]);
  const poll = async () => {
    const s = await api(`/api/v1/console/metrics?model=${encodeURIComponent(model)}`);
    const known = new Set([...picker.options].map((o) => o.value));
    for (const m of s.models) if (!known.has(m)) picker.append(h("option", { value: m, text: m }));
    const xs = s.points.map((p) => p.t);
    latency.update(xs, [s.points.map((p) => p.p50_ms), s.points.map((p) => p.p99_ms)]);
    rps.update(xs, [s.points.map((p) => p.rps), s.points.map((p) => p.errors_per_s)]);
    tps.update(xs, [s.points.map((p) => p.tokens_per_s)]);
    totals.dataset.points = String(s.points.length);
    const t = s.totals;
    totals.textContent = `since start: ${t.requests} requests, ${t.errors} errors, ${t.tokens} tokens; `
      + `latency p50 ${fmt.num(t.p50_ms)} ms, p99 ${fmt.num(t.p99_ms)} ms`;
  };
  picker.addEventListener("change", () => { model = picker.value; poll(); });
  clear(root, h("h2", { text: "Live metrics" }), h("p", {}, picker), totals, latency.el, rps.el, tps.el);
  await poll();
  const timer = setInterval(() => poll().catch(() => {}), POLL_MS);
  return () => { clearInterval(timer); [latency, rps, tps].forEach((c) => c.destroy()); };
}
