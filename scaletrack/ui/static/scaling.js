// The scaling view: final loss against N, D or C with the fitted laws and their bands,
// the back-test, IsoFLOP profiles, compute-optimal N and D and a "predict at" box.
import { REPORT, PALETTE, X_LABELS, el, esc, fmt, select, checkbox, setHash, message } from "./common.js";
import { clear, plot } from "./plot.js";
import { api } from "./api.js";
import { drawAdaptive } from "./adaptive.js";

// ------------------------------------------------------------------ scaling view
function colourScale(values) {
  const positive = values.every((v) => typeof v !== "number" || v > 0);
  return { color: values.map((v) => (typeof v === "number" && positive ? Math.log10(v) : v)),
    colorscale: "Viridis", showscale: true };
}
export async function viewScaling(root, params) {
  const sweeps = await api("/api/sweeps");
  const state = { sweep: params.get("sweep") || (REPORT ? REPORT.default_sweep || "" : ""), x: params.get("x") || "C", colour: params.get("colour") || "N",
    logx: params.get("logx") !== "0", logy: params.get("logy") === "1" };
  root.append(el("h1", {}, "Scaling"));
  const controls = el("div", { class: "controls" });
  const main = el("div", { id: "chart-scaling", class: "chart" });
  const fitBox = el("div", { id: "fit-summary" });
  const iso = el("div", { id: "chart-isoflop", class: "chart half" });
  const opt = el("div", { id: "chart-optimal", class: "chart half" });
  const adaptiveBox = el("div", { id: "adaptive" });
  const pair = el("div", { class: "two-col" }, iso, opt);
  root.append(controls, main, fitBox, pair, adaptiveBox);
  let data = null, optimal = null, predicted = null;
  const predictInput = el("input", { id: "s-predict", placeholder: "e.g. 1e22", size: 10 });
  const predictOut = el("span", { id: "s-predicted", class: "note" });
  const predictBox = el("span", { class: "predict" }, el("label", {}, "predict at x = ", predictInput), el("button", { id: "s-predict-go", onclick: predictAt }, "predict"), predictOut);
  async function predictAt() {
    const at = predictInput.value.trim();
    if (!at) { predicted = null; predictOut.textContent = ""; redraw(); return; }
    const p = new URLSearchParams(); if (state.sweep) p.set("sweep", state.sweep);
    p.set("x", state.x); p.set("at", at);
    try {
      predicted = await api("/api/predict", p);
      predictOut.textContent = predicted.label + " at " + fmt(predicted.at) + ": " + fmt(predicted.loss) + " nats/token; 95% confidence [" + fmt(predicted.conf[0]) + ", " + fmt(predicted.conf[1]) + "], 95% prediction [" + fmt(predicted.pred[0]) + ", " + fmt(predicted.pred[1]) + "]" + (predicted.decades_beyond > 0 ? "; " + fmt(predicted.decades_beyond) + " decades beyond the largest run" : "");
    } catch (err) { predicted = null; predictOut.textContent = err.message; }
    redraw();
  }
  async function refetch() {
    const p = new URLSearchParams(); if (state.sweep) p.set("sweep", state.sweep);
    data = await api("/api/scaling", p);
    optimal = null;
    redraw();
    const wanted = state.sweep;
    const steps = await api("/api/adaptive", p);  // an adaptive sweep's decisions, if any
    if (wanted === state.sweep) await drawAdaptive(adaptiveBox, steps);
    if (!data.n) return;  // no finished runs: nothing for a Chinchilla fit either
    // the Chinchilla fit behind compute-optimal N and D is slower: it arrives afterwards
    clear(opt); opt.replaceChildren(message("fitting L(N, D) for compute-optimal N and D…"));
    const answer = await api("/api/optimal", p);
    if (wanted === state.sweep) { optimal = answer; drawOptimal(); }
  }
  function drawOptimal() {
    const o = optimal, isoData = data.isoflop;
    if (!o) return;
    if (o.status === "ok") {
      clear(opt);
      plot(opt, [
        { type: "scatter", mode: "lines", name: "N_opt (parameters)", x: o.C, y: o.N_opt },
        { type: "scatter", mode: "lines", name: "D_opt (tokens)", x: o.C, y: o.D_opt },
        ...(isoData && isoData.minima.length ? [{ type: "scatter", mode: "markers", name: "IsoFLOP N_opt", x: isoData.minima.map((m) => m.C), y: isoData.minima.map((m) => m.N_opt), marker: { symbol: "star", size: 10 } }] : []),
      ], { title: { text: "compute-optimal N and D (Chinchilla fit: E=" + fmt(o.params.E) + ", α=" + fmt(o.params.alpha) + ", β=" + fmt(o.params.beta) + ")" },
        xaxis: { type: "log", title: { text: "C (FLOPs)" } }, yaxis: { type: "log", title: { text: "N_opt (parameters), D_opt (tokens)" } }, height: 420 });
    } else { clear(opt); opt.replaceChildren(message(o.reason || "no compute-optimal allocation")); }
  }
  function redraw() {
    const hp = new URLSearchParams(); for (const k of ["sweep", "x", "colour"]) if (state[k]) hp.set(k, state[k]);
    hp.set("logx", state.logx ? "1" : "0"); hp.set("logy", state.logy ? "1" : "0");
    setHash("scaling", null, hp);
    const pts = data.points, x = state.x;
    pair.hidden = !data.n;
    const law = data.fits && data.fits[state.x];
    predictBox.hidden = !law || law.status !== "ok";  // no law of this x to predict with
    main.classList.toggle("empty", !data.n);
    if (!data.n) {  // nothing to draw: the reason instead of an empty axis
      for (const box of [main, iso, opt]) { clear(box); box.append(message(data.note)); }
      fitBox.replaceChildren();
      return;
    }
    const text = pts.run_key.map((k, i) => esc(k.slice(0, 10) + " · " + (pts.sweep[i] === null ? "" : pts.sweep[i])));
    const marker = state.colour === "none" ? { color: "#1f77b4", size: 8 } :
      Object.assign({ size: 8, colorbar: { title: { text: (["N", "D", "C"].includes(state.colour) ? "log10 " : "") + state.colour } } }, colourScale(pts[state.colour]));
    const traces = [{ type: "scatter", mode: "markers", name: "final loss", x: pts[x], y: pts.loss, text: text, marker: marker, meta: "points" }];
    const shapes = [], annotations = [];
    const fit = data.fits && data.fits[x];
    if (fit && fit.status === "ok") {
      // drawn out to a predicted point beyond the fitted range, so the star sits on the curve
      const c = predicted && predicted.x === x && predicted.curve ? predicted.curve : fit.curve;
      if (c.pred_lo) {
        traces.push({ type: "scatter", mode: "lines", x: c.x, y: c.pred_hi, line: { width: 0 }, showlegend: false, hoverinfo: "skip" });
        traces.push({ type: "scatter", mode: "lines", x: c.x, y: c.pred_lo, fill: "tonexty", fillcolor: "rgba(255,127,14,0.12)", line: { width: 0 }, name: "95% prediction interval", hoverinfo: "skip" });
        traces.push({ type: "scatter", mode: "lines", x: c.x, y: c.conf_hi, line: { width: 0 }, showlegend: false, hoverinfo: "skip" });
        traces.push({ type: "scatter", mode: "lines", x: c.x, y: c.conf_lo, fill: "tonexty", fillcolor: "rgba(255,127,14,0.35)", line: { width: 0 }, name: "95% confidence band", hoverinfo: "skip" });
      }
      traces.push({ type: "scatter", mode: "lines", x: c.x, y: c.y, name: esc(fit.label), line: { color: "#ff7f0e", width: 2 } });
      if (c.extrapolate_from) {  // beyond the largest fitted run the law is an extrapolation
        const end = c.x[c.x.length - 1];
        shapes.push({ type: "rect", xref: "x", yref: "paper", x0: c.extrapolate_from, x1: end, y0: 0, y1: 1, fillcolor: "rgba(120,120,120,0.08)", line: { width: 0 }, layer: "below" });
        annotations.push({ xref: "x", yref: "paper", x: state.logx ? Math.log10(Math.sqrt(c.extrapolate_from * end)) : (c.extrapolate_from + end) / 2, y: 0.98, text: "extrapolation", showarrow: false, font: { size: 11, color: "#666" } });
      }
    }
    if (predicted && predicted.x === x) {
      traces.push({ type: "scatter", mode: "markers", name: "predicted at " + x + " = " + fmt(predicted.at) + " (95% prediction interval)", x: [predicted.at], y: [predicted.loss],
        error_y: { type: "data", symmetric: false, array: [predicted.pred[1] - predicted.loss], arrayminus: [predicted.loss - predicted.pred[0]], color: "#6a1b9a" },
        marker: { symbol: "star", size: 12, color: "#6a1b9a" } });
    }
    if (data.frontier && x === "C") traces.push({ type: "scatter", mode: "lines+markers", name: "compute frontier", x: data.frontier.C, y: data.frontier.loss, line: { color: "#2ca02c", dash: "dash", shape: "hv" }, marker: { size: 5 } });
    const bt = data.backtest;
    if (bt && bt.status === "ok") {
      traces.push({ type: "scatter", mode: "markers", name: "back-test: predicted (fit on C < " + fmt(bt.threshold_C) + ")", x: bt[x], y: bt.predicted, marker: { symbol: "diamond-open", size: 11, color: "#d62728", line: { width: 2 } } });
    }
    plot(main, traces, { shapes: shapes, annotations: annotations, xaxis: { title: { text: X_LABELS[x] }, type: state.logx ? "log" : "linear" },
      yaxis: { title: { text: "final loss (nats/token)" }, type: state.logy ? "log" : "linear" }, height: 480,
      title: { text: esc("final loss vs " + x + (state.sweep ? " · " + state.sweep : "")) } });
    fitBox.replaceChildren();
    const ft = el("table", { class: "grid", id: "fit-table" }, el("tr", {}, el("th", {}, "law"), el("th", {}, "parameters (95% CI)"), el("th", {}, "points"), el("th", {}, "point selection")));
    for (const key of ["N", "D", "C"]) {
      const f = data.fits && data.fits[key];
      if (!f) continue;
      const ptxt = f.status === "ok" ? Object.entries(f.params).map(([k, v]) => k + " = " + fmt(v) + " [" + fmt(f.ci95[k][0]) + ", " + fmt(f.ci95[k][1]) + "]").join("; ") : f.reason;
      ft.append(el("tr", {}, el("td", {}, f.status === "ok" ? f.label : "L(" + key + ")"), el("td", {}, ptxt), el("td", {}, f.n_points || "-"), el("td", {}, f.points || "-")));
    }
    if (bt && bt.status === "ok") fitBox.append(message("Back-test: L(C) fitted on runs below C = " + fmt(bt.threshold_C) + " FLOPs predicts the " + bt.loss.length + " larger runs with mean |relative error| " + fmt(bt.summary.mean_abs_rel_error) + "."));
    if (data.note) fitBox.append(message(data.note));
    fitBox.append(ft);
    const isoData = data.isoflop;
    if (isoData && isoData.profiles.length) {
      const t2 = [];
      isoData.profiles.forEach((p, i) => {
        const colour = PALETTE[i % PALETTE.length];
        t2.push({ type: "scatter", mode: "markers", x: p.N, y: p.loss, name: "C = " + fmt(p.C), marker: { color: colour, size: 6 }, legendgroup: String(i) });
        t2.push({ type: "scatter", mode: "lines", x: p.curve_N, y: p.curve_loss, line: { color: colour }, showlegend: false, legendgroup: String(i) });
      });
      t2.push({ type: "scatter", mode: "markers", name: "minima", x: isoData.profiles.map((p) => p.N_opt), y: isoData.profiles.map((p) => p.loss_opt), marker: { symbol: "star", size: 13, color: "black" } });
      plot(iso, t2, { title: { text: "IsoFLOP profiles" }, xaxis: { type: "log", title: { text: "N (parameters)" } }, yaxis: { title: { text: "final loss (nats/token)" } }, height: 420 });
    } else { clear(iso); iso.replaceChildren(message(isoData && isoData.reason ? isoData.reason : "no IsoFLOP profiles")); }
    drawOptimal();
  }
  const sweepChoices = REPORT ? Object.keys(REPORT.scaling).map((s) => [s, s || "all runs"]) :
    [["", "all sweeps"]].concat(sweeps.sweeps.filter((s) => s.name !== null).map((s) => [s.name, s.name]));
  controls.append(
    select("s-sweep", sweepChoices, state.sweep, (e) => { state.sweep = e.target.value; refetch(); }),
    el("label", {}, "x ", select("s-x", [["N", "N (params)"], ["D", "D (tokens)"], ["C", "C (FLOPs)"]], state.x, (e) => { state.x = e.target.value; redraw(); })),
    el("label", {}, "colour ", select("s-colour", [["N", "N"], ["D", "D"], ["C", "C"], ["lr", "lr"], ["seed", "seed"], ["none", "none"]], state.colour, (e) => { state.colour = e.target.value; redraw(); })),
    checkbox("s-logx", "log x", state.logx, (e) => { state.logx = e.target.checked; redraw(); }),
    checkbox("s-logy", "log y", state.logy, (e) => { state.logy = e.target.checked; redraw(); }));
  // predictions are computed by the server: an offline report has no predict box
  if (!REPORT) controls.append(predictBox);
  predictInput.addEventListener("change", predictAt);
  await refetch();
}
