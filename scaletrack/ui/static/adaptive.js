// An adaptive sweep's decisions under the scaling chart (recorded by the sweep in the store):
// each step's cell, the 95 % band width at the target after it, the FLOPs spent so far and
// why it stopped; a chart of that width against the compute spent.
import { el, esc, fmt, message, plural } from "./common.js";
import { plot } from "./plot.js";

function pct(w) { return w === null || w === undefined ? "-" : fmt(100 * w) + " %"; }
function cell(text, cls) { return el("td", { class: cls || "" }, text === null || text === undefined ? "-" : text); }
function summary(answer) {
  const steps = answer.steps, last = steps[steps.length - 1];
  const ran = steps.filter((s) => s.action === "run").length;
  let text = "Cells run in the planner's order until the 95% prediction band at C = " + fmt(answer.target_compute) +
    " FLOPs is " + pct(answer.until_width) + " wide" + (answer.budget ? " or " + fmt(answer.budget) + " FLOPs are spent" : "") +
    ": " + plural(ran, "cell") + " trained, " + fmt(last.spent_flops) + " of the full grid's " + fmt(answer.full_grid_flops) + " FLOPs spent";
  if (answer.stopped) text += "; stopped: " + answer.stopped + (answer.saved_flops ? " (" + fmt(answer.saved_flops) + " FLOPs not spent)" : "");
  else text += "; no stop recorded yet (still running, or interrupted)";
  return text + ".";
}
export function drawAdaptive(box, answer) {
  box.replaceChildren();
  if (!answer || !answer.steps || !answer.steps.length) return;
  const steps = answer.steps;
  const headers = ["step", "action", "cell", "N", "D (tokens)", "cell FLOPs", "FLOPs spent", "runs fitted", "band width at target", "predicted loss at target (nats/token)", "why"];
  const t = el("table", { class: "grid", id: "adaptive-table" }, el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  for (const s of steps) {
    t.append(el("tr", { "data-step": s.step, "data-action": s.action }, cell(String(s.step)), cell(s.action), cell(s.size, "nowrap"),
      cell(fmt(s.N), "num"), cell(fmt(s.D), "num"), cell(s.action === "stop" ? "-" : fmt(s.cell_flops), "num"), cell(fmt(s.spent_flops), "num"),
      cell(String(s.n_points), "num"), cell(s.band || pct(s.width), "num"), cell(fmt(s.prediction), "num"), cell(s.reason, "note")));
  }
  const skipped = steps.filter((s) => s.action === "stop").flatMap((s) => s.skipped || []);
  const chart = el("div", { id: "chart-adaptive", class: "chart" });
  box.append(el("h2", {}, "Adaptive decisions"), message(summary(answer)), el("div", { class: "table-box" }, t));
  if (skipped.length) box.append(message("Never run: " + [...new Set(skipped)].join(", ") + "."));
  box.append(chart);
  const measured = steps.filter((s) => s.width !== null && s.spent_flops > 0);
  if (!measured.length) {
    chart.classList.add("empty");
    chart.append(message("No band width yet: a fit of L(N, D) needs 7 finished runs."));
    return;
  }
  const traces = [{ type: "scatter", mode: "lines+markers", name: "band width after each step", x: measured.map((s) => s.spent_flops),
    y: measured.map((s) => 100 * s.width), text: measured.map((s) => esc("step " + s.step + " · " + s.action + (s.size ? " " + s.size + " D=" + fmt(s.D) : ""))),
    marker: { size: 8, color: measured.map((s) => (s.action === "stop" ? "#c62828" : "#1565c0")) }, line: { color: "#1565c0" } }];
  if (answer.until_width) {
    const xs = measured.map((s) => s.spent_flops);
    traces.push({ type: "scatter", mode: "lines", name: "width wanted (" + pct(answer.until_width) + ")", x: [Math.min(...xs), Math.max(...xs)],
      y: [100 * answer.until_width, 100 * answer.until_width], line: { dash: "dot", color: "#2e7d32" }, hoverinfo: "skip" });
  }
  return plot(chart, traces, { title: { text: "95% band width at the target against the compute spent" }, height: 380,
    xaxis: { type: "log", title: { text: "FLOPs spent (cumulative)" } },
    yaxis: { type: "log", title: { text: "band width at target (%)" } } });
}
