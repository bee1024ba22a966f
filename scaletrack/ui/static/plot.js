// Charts: Plotly drawn the dashboard's way (titles at the left, the toolbar clear of titles and
// colour bars, ticks and hover text by the one number rule) and emptied safely.
import { fmt } from "./common.js";

const PLOT_CONFIG = { displaylogo: false, responsive: true,
  modeBarButtonsToRemove: ["sendDataToCloud"] };
// Empty a chart's box: Plotly keeps state on a div it drew, and after a plain emptying its
// next Plotly.react with unchanged data draws nothing there.
export function clear(div) { Plotly.purge(div); div.replaceChildren(); }
// Hover text by the one number rule (Plotly's own writes 4.888166×10^12): each point's x and
// y written by fmt, after the point's own text when it has one.
function hoverByRule(t) {
  if (t.hoverinfo === "skip" || t.hovertemplate || !Array.isArray(t.x) || !Array.isArray(t.y)) return t;
  const customdata = t.x.map((x, i) => [fmt(x), fmt(t.y[i])]);
  return Object.assign({}, t, { customdata: customdata, hovertemplate: (t.text ? "%{text}<br>" : "") + "%{customdata[0]}, %{customdata[1]}" });
}
// Ticks of a log axis spanning under 2.5 decades: the sparsest of 1, 1-2-5 and 1…9 per decade
// that gives 3 labels or more within `room`, written by the one number rule (2000, 5000, 1e4);
// Plotly's own put small "2 … 9" between the decades, crowding the next power of ten.
function logTicks(lo, hi, room) {
  const pad = (Math.log10(hi) - Math.log10(lo)) * 0.04;
  const a = Math.log10(lo) - pad, b = Math.log10(hi) + pad;
  let best = null;
  for (const mantissas of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const vals = [];
    for (let e = Math.floor(a); e <= Math.ceil(b); e++) for (const m of mantissas) {
      const v = m * Math.pow(10, e), l = Math.log10(v);
      if (l >= a && l <= b) vals.push(Number(v.toPrecision(6)));
    }
    if (vals.length > room) break;
    best = vals;
    if (vals.length >= 3) break;
  }
  if (!best || best.length < 2) {  // narrower than one step of 1…9: five even steps
    best = [0, 1, 2, 3, 4].map((i) => Number(Math.pow(10, Math.log10(lo) + (i / 4) * (Math.log10(hi) - Math.log10(lo))).toPrecision(4)));
  }
  return { tickmode: "array", tickvals: best, ticktext: best.map(fmt) };
}
// Ticks of a linear axis reaching 10,000 or more, by the rule (5e4, 1e5, 1.5e5), not 0.5×10⁵.
function linTicks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(2, n), mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw);
  const vals = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) vals.push(Number(v.toPrecision(12)));
  return { tickmode: "array", tickvals: vals, ticktext: vals.map(fmt) };
}
// Fixed ticks hold for the whole range only: zoomed, Plotly places its own; reset, ours return.
function followZoom(div) {
  if (div.stFollowsZoom) return;
  div.stFollowsZoom = true;
  div.on("plotly_relayout", (ev) => {
    const change = {};
    for (const ax of ["xaxis", "yaxis"]) {
      const ticks = (div.stTicks || {})[ax];
      if (!ticks) continue;
      if (ev[ax + ".range[0]"] !== undefined || ev[ax + ".range"] !== undefined) change[ax + ".tickmode"] = "auto";
      else if (ev[ax + ".autorange"]) Object.assign(change, { [ax + ".tickmode"]: "array", [ax + ".tickvals"]: ticks.tickvals, [ax + ".ticktext"]: ticks.ticktext });
    }
    if (Object.keys(change).length) Plotly.relayout(div, change);
  });
}
export function plot(div, traces, layout) {
  // titles sit at the left, under a top margin; the toolbar stands vertically at the right,
  // so it never covers a title, or lies at the top when a colour bar takes the right edge;
  // axes keep their labels apart (automargin, few ticks, powers of ten on log axes)
  const colourBar = traces.some((t) => t.marker && t.marker.showscale);
  const base = { margin: { l: 64, r: 36, t: 44, b: 56 }, hovermode: "closest",
    legend: { orientation: "h", y: -0.3, yanchor: "top" }, font: { size: 12 }, modebar: { orientation: colourBar ? "h" : "v" } };
  const full = Object.assign(base, layout);
  if (full.title && full.title.text !== undefined) full.title = Object.assign({ x: 0.01, xanchor: "left", y: 0.98, yanchor: "top", font: { size: 13 } }, full.title);
  const width = div.clientWidth || 600;
  div.stTicks = {};
  for (const ax of ["xaxis", "yaxis"]) {
    // linear axes: never SI suffixes (200M) that read as units; large values by the rule
    full[ax] = Object.assign({ automargin: true, nticks: 7, exponentformat: "power" }, full[ax] || {});
    const log = full[ax].type === "log";
    const vals = traces.flatMap((t) => (ax === "xaxis" ? t.x : t.y) || []).filter((v) => typeof v === "number" && Number.isFinite(v) && (!log || v > 0));
    let lo = Infinity, hi = -Infinity;
    for (const v of vals) { if (v < lo) lo = v; if (v > hi) hi = v; }
    const room = (ax === "xaxis" ? width / 70 : (full.height || 400) / 45);
    let tick = {};
    if (vals.length && hi === lo && full[ax].type !== "category") tick = { tickmode: "array", tickvals: [lo], ticktext: [fmt(lo)] };  // one value: one tick
    else if (log && vals.length) {  // whole decades (every other one when many); short ranges: 1-2-5 ticks by the rule
      const decades = Math.log10(hi) - Math.log10(lo);
      tick = decades < 2.5 ? logTicks(lo, hi, Math.max(3, Math.floor(room))) : { dtick: decades > room ? Math.ceil(decades / room) : 1 };
    } else if (!log && full[ax].type !== "category" && vals.length && hi > lo && Math.max(Math.abs(lo), Math.abs(hi)) >= 1e4) {
      tick = linTicks(lo, hi, Math.min(7, Math.floor(room)));
    }
    if (tick.tickmode === "array" && full[ax].tickmode === undefined) div.stTicks[ax] = tick;
    full[ax] = Object.assign({ exponentformat: "power" }, tick, full[ax]);
  }
  return Plotly.react(div, traces.map(hoverByRule), full, PLOT_CONFIG).then(() => {
    followZoom(div);
    div.dataset.drawn = String(Date.now());
  });
}
