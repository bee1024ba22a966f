// The ideas view: ideas that did not work yet and their attempts across scale.
import { PALETTE, el, esc, fmt, message } from "./common.js";
import { plot } from "./plot.js";
import { api } from "./api.js";

// ------------------------------------------------------------------ ideas view
export async function viewIdeas(root) {
  const data = await api("/api/ideas");
  root.append(el("h1", {}, "Ideas that did not work yet"));
  if (!data.ideas.length) { root.append(message("No ideas registered.")); return; }
  const t = el("table", { class: "grid", id: "ideas-table" }, el("tr", {}, ...["id", "idea", "task · metric", "bar", "status", "best", "attempts", "largest N tried", "class", "predicted crossing (FLOPs)", "due"].map((h) => el("th", {}, h))));
  for (const idea of data.ideas) {
    t.append(el("tr", { "data-id": idea.id }, el("td", {}, idea.id), el("td", { class: "idea-title" }, idea.title), el("td", {}, idea.task + " · " + idea.metric),
      el("td", {}, (idea.direction === "above" ? "≥ " : "≤ ") + fmt(idea.threshold)), el("td", {}, el("span", { class: "badge idea-" + idea.status }, idea.status)),
      el("td", {}, fmt(idea.best_value)), el("td", {}, idea.attempts), el("td", {}, fmt(idea.max_N_tried)),
      el("td", {}, idea.class), el("td", {}, fmt(idea.predicted_crossing)), el("td", {}, idea.due ? "due" : "")));
  }
  const chart = el("div", { id: "chart-ideas", class: "chart" });
  root.append(t, el("h2", {}, "Attempts across scale"), chart);
  const traces = [], shapes = [];
  data.ideas.forEach((idea, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const a = idea.attempts_list;
    traces.push({ type: "scatter", mode: "lines+markers", name: esc("#" + idea.id + " " + idea.title), x: a.map((r) => r.flops), y: a.map((r) => r.value),
      marker: { color: colour, size: 9, symbol: a.map((r) => (r.passed ? "circle" : "circle-open")) }, line: { color: colour } });
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: idea.threshold, y1: idea.threshold, line: { color: colour, dash: "dot" } });
  });
  plot(chart, traces, { xaxis: { type: "log", title: { text: "checkpoint compute (FLOPs)" } }, yaxis: { title: { text: "value (dotted: each idea's bar; filled: passed)" } }, shapes: shapes, height: 420, showlegend: true });  // a legend even for one idea
}
