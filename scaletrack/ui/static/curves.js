// Curves of one run or several (the run and compare views): smoothing, spikes, divergence.
import { PALETTE, X_LABELS, el, esc, fmt, select, checkbox, statusBadge, parseHash, setHash, message, plural } from "./common.js";
import { plot } from "./plot.js";
import { api } from "./api.js";
import { loadEvals } from "./runevals.js";

// ------------------------------------------------------------------ curves (run, compare)
function smooth(y, alpha) {
  if (!alpha) return y;
  const out = []; let s = null, w = 0;
  for (const v of y) {
    if (v === null) { out.push(null); continue; }
    s = s === null ? 0 : s; s = alpha * s + (1 - alpha) * v; w = alpha * w + (1 - alpha);
    out.push(s / w);  // debiased EMA, like TensorBoard's
  }
  return out;
}
function curveControls(state, names, redraw, refetch) {
  const metricChoices = names.map((n) => [n, n]);
  return el("div", { class: "controls" },
    el("label", {}, "metric ", select("metric", metricChoices, state.metric, (e) => { state.metric = e.target.value; refetch(); })),
    el("label", {}, "x ", select("xaxis", [["step", "step"], ["tokens", "tokens"], ["flops", "FLOPs"], ["wall_time", "wall time"]], state.x, (e) => { state.x = e.target.value; redraw(); })),
    checkbox("logx", "log x", state.logx, (e) => { state.logx = e.target.checked; redraw(); }),
    checkbox("logy", "log y", state.logy, (e) => { state.logy = e.target.checked; redraw(); }),
    el("label", {}, "smoothing ", el("input", { type: "range", id: "smoothing", min: 0, max: 0.99, step: 0.01, value: state.smooth,
      oninput: (e) => { state.smooth = Number(e.target.value); redraw(); } })));
}
function curveTraces(data, state) {
  const traces = [];
  data.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const x = s.x[state.x];
    const few = s.y.length <= 40;  // a short curve shows its points
    if (state.smooth > 0) {  // the raw curve, faint, under the smoothed one
      traces.push({ type: "scatter", mode: few ? "lines+markers" : "lines", name: esc(s.label) + " (raw)", x: x, y: s.y,
        line: { color: colour, width: 1 }, marker: { size: 4 }, opacity: 0.25, showlegend: false, hoverinfo: "skip" });
    }
    traces.push({ type: "scatter", mode: few ? "lines+markers" : "lines", name: esc(s.label), x: x, y: smooth(s.y, state.smooth),
      line: { color: colour, width: 1.6 }, marker: { size: 5 }, meta: s.run_key });
    if (s.spikes.y.length) {
      traces.push({ type: "scatter", mode: "markers", name: "spikes " + esc(s.run_key.slice(0, 8)), x: s.spikes.x[state.x], y: s.spikes.y,
        marker: { symbol: "x", size: 9, color: "#d62728" } });
    }
  });
  return traces;
}
function divergenceShapes(data, state) {
  const shapes = [], notes = [];
  for (const s of data.series) {
    if (s.status === "diverged" || s.nonfinite_steps.length) {
      const xs = s.x[state.x].filter((v) => v !== null);
      if (xs.length) shapes.push({ type: "line", xref: "x", yref: "paper", x0: xs[xs.length - 1], x1: xs[xs.length - 1], y0: 0, y1: 1, line: { color: "#ef6c00", dash: "dot" } });
      notes.push(s.run_key.slice(0, 8) + " diverged" + (s.nonfinite_steps.length ? " (non-finite from step " + s.nonfinite_steps[0] + ")" : ""));
    }
  }
  return { shapes: shapes, notes: notes };
}
async function curvesView(root, keys, params, title, names, extra) {
  const state = { metric: params.get("metric") || (names.includes("train/loss") ? "train/loss" : names[0]),
    x: params.get("x") || "step", logx: params.get("logx") === "1", logy: params.get("logy") === "1", smooth: Number(params.get("smooth") || 0) };
  const chart = el("div", { id: "chart-main", class: "chart" });
  const info = el("p", { id: "curve-info", class: "note" });
  let data = null;
  async function refetch() {
    const p = new URLSearchParams(); for (const k of keys) p.append("run", k);
    p.set("name", state.metric); p.set("points", "1500");
    data = await api("/api/metrics", p);
    redraw();
  }
  function redraw() {
    const hp = new URLSearchParams(params);
    hp.set("metric", state.metric); hp.set("x", state.x); hp.set("logx", state.logx ? "1" : "0"); hp.set("logy", state.logy ? "1" : "0"); hp.set("smooth", String(state.smooth));
    setHash(parseHash().view, parseHash().arg, hp);
    const div = divergenceShapes(data, state);
    const shown = data.series.map((s) => s.n_shown + " of " + s.n_raw + " points").join("; ");
    info.textContent = shown + (div.notes.length ? " · " + div.notes.join("; ") : "");
    plot(chart, curveTraces(data, state), {
      xaxis: { title: { text: X_LABELS[state.x] }, type: state.logx ? "log" : "linear" },
      yaxis: { title: { text: esc(state.metric) }, type: state.logy ? "log" : "linear" },
      shapes: div.shapes, title: { text: esc(title) } });
  }
  if (!names.length) {  // no curve to draw: say so instead of empty controls
    root.append(message("No metrics logged for " + (keys.length > 1 ? "these runs." : "this run."), "note no-metrics"));
    if (extra) root.append(extra);
    return;
  }
  root.append(curveControls(state, names, redraw, refetch), chart, info);
  if (extra) root.append(extra);
  await refetch();
}
export async function viewRun(root, key, params) {
  const d = await api("/api/runs/" + encodeURIComponent(key));
  const r = d.run;
  // the run's name first when it has one, its key beside it
  root.append(el("h1", {}, "Run ", r.name ? el("span", { id: "run-name" }, r.name) : null, r.name ? " " : null,
    el("span", { class: r.name ? "mono dim" : "mono", id: "run-key" }, r.run_key), " ", statusBadge(r.status)));
  const role = el("span", { id: "run-role" }, "role " + (r.role || "cell"));
  if (r.parent_run_key) role.append(", branch of ", el("a", { href: "#/run/" + encodeURIComponent(r.parent_run_key), class: "mono" }, r.parent_run_key.slice(0, 10)));
  root.append(el("p", { class: "note" }, "sweep " + (r.sweep === null ? "-" : r.sweep) + " · " + r.family + " · ", role, " · N " + fmt(r.N) + " · D " + fmt(r.D) + " tokens · C " + fmt(r.C) + " FLOPs · final loss " + fmt(r.final_loss) + (d.tags.length ? " · tags: " + d.tags.join(", ") : "")));
  if (d.error) root.append(message("error: " + d.error, "error"));
  const details = el("div", { class: "two-col" });
  const ck = el("table", { class: "grid", id: "checkpoints" }, el("tr", {}, ...["id", "kind", "step", "N", "tokens", "FLOPs", "path"].map((h) => el("th", {}, h))));
  for (const c of d.checkpoints) ck.append(el("tr", {}, el("td", {}, c.id), el("td", {}, c.kind), el("td", { class: "num" }, fmt(c.step)), el("td", { class: "num" }, fmt(c.N)), el("td", { class: "num" }, fmt(c.tokens)), el("td", { class: "num" }, fmt(c.flops)), el("td", { class: "mono clip", title: c.path }, c.path)));
  details.append(el("div", {}, el("h2", {}, "Config"), el("pre", { id: "config" }, JSON.stringify(d.config, null, 2))),
    el("div", {}, el("h2", {}, "Checkpoints (" + d.checkpoints.length + ", by step)"), el("div", { class: "table-box" }, ck)));
  const evals = el("div", { id: "run-evals" });
  await curvesView(root, [key], params, "run " + (r.name || key.slice(0, 10)), d.metrics.map((m) => m.name), el("div", {}, evals, details));
  await loadEvals(evals, key, params);  // the run's checkpoint evaluations, when it has any
}
export async function viewCompare(root, params) {
  const keys = (params.get("runs") || "").split(",").filter(Boolean);
  root.append(el("h1", {}, "Compare runs"));
  if (!keys.length) {
    root.append(message("Tick runs in the Runs view and press “Compare selected”."));
    return;
  }
  const names = new Set();
  for (const k of keys) (await api("/api/runs/" + encodeURIComponent(k))).metrics.forEach((m) => names.add(m.name));
  await curvesView(root, keys, params, plural(keys.length, "run"), [...names].sort());
}
