// The dashboard's shared parts: the report's embedded data, colours, the view session
// (poll timer, abort signal), DOM helpers and the one number format (charts: plot.js).

const reportNode = document.getElementById("report-data");
export const REPORT = reportNode ? JSON.parse(reportNode.textContent) : null;
export const STATUS_COLOURS = {
  finished: "#2e7d32", running: "#1565c0", pending: "#757575", failed: "#c62828",
  diverged: "#ef6c00",
};
export const CLASS_COLOURS = { past: "#2e7d32", near: "#ef6c00", far: "#c62828" };
export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
export const X_LABELS = { step: "step", tokens: "tokens", flops: "FLOPs", wall_time: "wall time (s)",
  N: "N (parameters)", D: "D (tokens)", C: "C (FLOPs)" };
export const session = {  // the current view's poll timer and abort signal
  pollTimer: null,
  viewAbort: new AbortController(),  // aborted when the view changes: its requests stop
};
export const compareSelection = new Set();

// ------------------------------------------------------------------ small helpers
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "checked" || k === "value" || k === "selected") node[k] = v;
    else node.setAttribute(k, String(v));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
export function esc(s) {  // for Plotly labels and hover text only
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
export function fmt(v) {  // scaletrack/number_format.py's rule, digit for digit: 2.211, 2500, 5.33e8, 4e-4
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  if (v === 0) return "0";
  const plain = Number(v.toPrecision(4));
  if (Math.abs(v) >= 1e-3 && Math.abs(plain) < 1e4) return String(plain);
  const [mantissa, exponent] = v.toExponential(2).split("e");
  return String(Number(mantissa)) + "e" + String(Number(exponent));
}
export function option(value, label, selected) {
  return el("option", { value: value, selected: selected }, label);
}
export function select(id, choices, current, onchange) {
  const s = el("select", { id: id, onchange: onchange });
  for (const [value, label] of choices) s.append(option(value, label, value === current));
  return s;
}
export function checkbox(id, label, checked, onchange) {
  return el("label", { class: "toggle" },
    el("input", { type: "checkbox", id: id, checked: checked, onchange: onchange }), label);
}
export function statusBadge(status) {
  return el("span", { class: "badge status-" + status,
    style: "background:" + (STATUS_COLOURS[status] || "#555") }, status);
}
export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { view: parts[0] || "runs", arg: parts[1] || null, params: params };
}
export function setHash(view, arg, params) {
  let h = "#/" + view + (arg ? "/" + encodeURIComponent(arg) : "");
  const q = params ? params.toString() : "";
  if (q) h += "?" + q;
  if (location.hash !== h) history.replaceState(null, "", h);
}
export function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
// a table cell whose long text is cut at the column's width, whole in its tooltip
export function clipped(text, cls) { return el("td", { class: "clip" + (cls ? " " + cls : ""), title: text }, text); }
export function message(text, cls) { return el("p", { class: cls || "note" }, text); }
