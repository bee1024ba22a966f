// The emergence view: one fitted, classified curve per task x metric x shot count, paged.
import { CLASS_COLOURS, el, esc, fmt, setHash, plural } from "./common.js";
import { plot } from "./plot.js";
import { api } from "./api.js";

// ------------------------------------------------------------------ emergence view
function curveName(t) { return t.task + " · " + t.metric + (t.shot === null || t.shot === undefined ? "" : " · " + t.shot + "-shot"); }
// values over three decades and more, all positive (perplexities): a log axis, or all but the outliers sit at 0
function spansDecades(values) {
  const v = values.filter((x) => typeof x === "number");
  return v.length > 1 && v.every((x) => x > 0) && Math.max(...v) / Math.min(...v) >= 1000;
}
export async function viewEmergence(root, params) {
  const state = { q: params.get("q") || "", offset: Number(params.get("offset") || 0), limit: 12 };
  root.append(el("h1", {}, "Emergence"));
  const controls = el("div", { class: "controls" });
  const info = el("p", { class: "note", id: "emergence-info" });
  const summary = el("div", { id: "emergence-summary" });
  const charts = el("div", { class: "grid-charts", id: "emergence-charts" });
  const pager = el("div", { class: "pager" });
  const search = el("input", { id: "e-search", placeholder: "task name contains…", value: state.q, size: 24 });
  let typing = null;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { state.q = search.value.trim(); state.offset = 0; load(); }, 300); });
  controls.append(search, info);
  root.append(controls, summary, pager, charts);
  let current = null;
  async function load() {
    const hp = new URLSearchParams(); if (state.q) hp.set("q", state.q); if (state.offset) hp.set("offset", String(state.offset));
    setHash("emergence", null, hp);
    const p = new URLSearchParams(hp); p.set("limit", String(state.limit));
    if (current) current.abort();
    const mine = new AbortController(); current = mine;
    info.textContent = "classifying this page's curves…";
    let data;
    try { data = await api("/api/emergence", p, mine.signal); }
    catch (err) { if (err.name !== "AbortError") info.textContent = err.message; return; }
    finally { if (current === mine) current = null; }
    draw(data);
  }
  function draw(data) {
    if (!data.total) { info.textContent = state.q ? "No curve's task matches." : "No evaluations in this store yet."; summary.replaceChildren(); charts.replaceChildren(); pager.replaceChildren(); return; }
    const tasks = new Set(data.groups.map((g) => g.task));
    info.textContent = plural(data.total, "curve") + " (one per task × metric × shot count) over " + plural(tasks.size, "task") + "; showing " + (data.offset + 1) + "–" + Math.min(data.offset + data.tasks.length, data.total) + ". Each curve is fitted and classified on its own: metrics and shot counts are never pooled.";
    const t = el("table", { class: "grid", id: "emergence-table" }, el("tr", {}, ...["task", "metric", "shots", "class", "threshold", "predicted crossing (FLOPs)", "95% interval", "points", "why"].map((h) => el("th", {}, h))));
    for (const c of data.tasks) {
      t.append(el("tr", { "data-task": c.task, "data-metric": c.metric, "data-shot": c.shot === null ? "" : String(c.shot) }, el("td", {}, c.task), el("td", {}, c.metric), el("td", {}, c.shot === null ? "-" : String(c.shot)),
        el("td", {}, el("span", { class: "badge", style: "background:" + (CLASS_COLOURS[c.label] || "#757575") }, c.label)),
        el("td", {}, fmt(c.threshold)), el("td", {}, fmt(c.crossing)), el("td", {}, c.crossing_lo === null ? "-" : "[" + fmt(c.crossing_lo) + ", " + fmt(c.crossing_hi) + "]"), el("td", {}, c.C.length), el("td", { class: "note" }, c.reason || "")));
    }
    summary.replaceChildren(t);
    pager.replaceChildren(
      el("button", { id: "e-prev", disabled: data.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); load(); } }, "◀ prev"),
      el("span", {}, "page " + (Math.floor(data.offset / state.limit) + 1) + " of " + Math.ceil(data.total / state.limit)),
      el("button", { id: "e-next", disabled: data.offset + state.limit >= data.total, onclick: () => { state.offset += state.limit; load(); } }, "next ▶"));
    charts.replaceChildren();
    data.tasks.forEach((c, i) => {
      const div = el("div", { class: "chart small", id: "chart-emergence-" + i });
      charts.append(div);
      const colour = CLASS_COLOURS[c.label] || "#555";
      const traces = [];
      if (c.curve && c.curve.lo) {
        traces.push({ type: "scatter", mode: "lines", x: c.curve.C, y: c.curve.hi, line: { width: 0 }, showlegend: false, hoverinfo: "skip" });
        traces.push({ type: "scatter", mode: "lines", x: c.curve.C, y: c.curve.lo, fill: "tonexty", fillcolor: "rgba(120,120,120,0.15)", line: { width: 0 }, name: "95% band", hoverinfo: "skip" });
      }
      traces.push({ type: "scatter", mode: "markers", name: "measured", x: c.C, y: c.value, marker: { size: c.C.length > 60 ? 4 : 7, color: "#264653", opacity: 0.75 } });
      if (c.curve) traces.push({ type: "scatter", mode: "lines", name: "floored sigmoid fit", x: c.curve.C, y: c.curve.value, line: { color: colour, width: 2 } });
      const shapes = [];
      if (c.threshold !== null) shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: c.threshold, y1: c.threshold, line: { dash: "dot", color: "#999" } });
      if (c.curve && c.curve.x_max) shapes.push({ type: "rect", xref: "x", yref: "paper", x0: c.curve.x_max, x1: c.curve.C[c.curve.C.length - 1], y0: 0, y1: 1, fillcolor: "rgba(120,120,120,0.07)", line: { width: 0 }, layer: "below" });
      if (c.crossing !== null && c.crossing > 0) shapes.push({ type: "line", yref: "paper", y0: 0, y1: 1, x0: c.crossing, x1: c.crossing, line: { dash: "dash", color: colour } });
      plot(div, traces, { title: { text: esc(curveName(c) + (c.label && c.label !== "-" ? " · " + c.label : "")) }, xaxis: { type: "log", title: { text: "C (FLOPs)" } }, yaxis: { title: { text: esc(c.metric) }, type: spansDecades(c.value) ? "log" : "linear" }, shapes: shapes, height: 320, showlegend: false });
    });
  }
  await load();
}
