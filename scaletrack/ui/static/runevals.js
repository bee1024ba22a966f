// A run's checkpoint evaluations (imported lm-eval results, evals after checkpoints): one
// series per task × metric × shot count, drawn against the checkpoint's step or tokens.
import { X_LABELS, el, esc, select, checkbox, message, plural } from "./common.js";
import { plot } from "./plot.js";
import { api } from "./api.js";

function seriesName(s) { return s.task + " · " + s.metric + (s.shot === null ? "" : " · " + s.shot + "-shot"); }
export async function loadEvals(box, key, params) {
  let data;
  try { data = await api("/api/runs/" + encodeURIComponent(key) + "/evals"); }
  catch (err) { if (err.name !== "AbortError") box.replaceChildren(message(err.message, "error")); return; }
  if (data.note) { box.replaceChildren(el("h2", {}, "Evaluations"), message(data.note)); return; }
  if (!data.series.length) return;  // no evaluations: nothing to show
  const names = data.series.map(seriesName);
  const wanted = params.get("eval");
  const state = { i: Math.max(0, names.indexOf(wanted)), x: params.get("evalx") === "tokens" ? "tokens" : "step", logx: params.get("evallogx") === "1" };
  const chart = el("div", { id: "chart-evals", class: "chart" });
  const tasks = new Set(data.series.map((s) => s.task));
  box.replaceChildren(el("h2", {}, "Evaluations (" + data.series.length + " series over " + plural(tasks.size, "task") + ")"),
    el("div", { class: "controls" },
      el("label", {}, "series ", select("e-series", names.map((n, i) => [String(i), n]), String(state.i), (e) => { state.i = Number(e.target.value); draw(); })),
      el("label", {}, "x ", select("e-x", [["step", "step"], ["tokens", "tokens"]], state.x, (e) => { state.x = e.target.value; draw(); })),
      checkbox("e-logx", "log x", state.logx, (e) => { state.logx = e.target.checked; draw(); })),
    chart);
  function draw() {
    const s = data.series[state.i];
    const hasErr = s.stderr.some((v) => v !== null);
    const trace = { type: "scatter", mode: "lines+markers", name: esc(seriesName(s)), x: s[state.x], y: s.value, marker: { size: 6 }, line: { width: 1.4 } };
    if (hasErr) trace.error_y = { type: "data", array: s.stderr.map((v) => (v === null ? 0 : v)), thickness: 1, width: 3, color: "#90a4ae" };
    return plot(chart, [trace], { title: { text: esc(seriesName(s)) }, height: 380, showlegend: false,
      xaxis: { title: { text: X_LABELS[state.x] }, type: state.logx ? "log" : "linear" },
      yaxis: { title: { text: esc(s.metric) + (hasErr ? " (bars: ±1 stderr)" : "") } } });
  }
  await draw();
}
