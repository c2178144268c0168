// Charts over the vendored uPlot (loaded by index.html as a classic script: window.uPlot).
import { h } from "./ui.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];

/** A line (or bar) chart. xs: unix seconds; series: [{label, values}]. Returns {el, update(xs, series)}. */
export function chart(title, series, { bars = false, height = 220, testid } = {}) {
  const el = h("div", { class: "chart", "data-testid": testid });
  const width = () => Math.max(320, Math.min(960, (document.querySelector("main")?.clientWidth ?? 800) - 40));
  const opts = {
    title, width: width(), height,
    series: [{}, ...series.map((s, i) => ({
      label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
      fill: bars ? `${COLORS[i % COLORS.length]}55` : undefined,
      paths: bars ? window.uPlot.paths.bars({ size: [0.6, 40] }) : undefined,
      points: { show: !bars, size: 5 },
      spanGaps: true,
    }))],
    axes: [{}, { size: 60 }],
    // bars: half a day of room on each side, so the first and last days are not cut in half
    scales: { x: { time: true, range: bars ? (u, min, max) => [min - 43200, max + 43200] : undefined } },
  };
  const plot = new window.uPlot(opts, [[], ...series.map(() => [])], el);
  return {
    el,
    update(xs, values) { plot.setData([xs, ...values]); },
    destroy() { plot.destroy(); },
  };
}
