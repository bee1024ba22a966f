// scaletrack dashboard: views over the JSON API (served) or over the embedded data (report).
// Every user string goes into the page through textContent or, for Plotly labels, through
// esc() (Plotly reads a few HTML-like tags in labels); nothing is ever assigned to innerHTML.
// Modules: common.js (helpers), plot.js (charts), api.js (data), one module per view (with
// runevals.js and adaptive.js as parts of the run and scaling views); this one routes.
import { REPORT, parseHash, message, session } from "./common.js";
import { api } from "./api.js";
import { viewRuns } from "./runs.js";
import { viewRun, viewCompare } from "./curves.js";
import { viewScaling } from "./scaling.js";
import { viewEmergence } from "./emergence.js";
import { viewIdeas } from "./ideas.js";

// ------------------------------------------------------------------ router
const VIEWS = { runs: viewRuns, compare: viewCompare, scaling: viewScaling, emergence: viewEmergence, ideas: viewIdeas };
async function route() {
  if (session.pollTimer) { clearTimeout(session.pollTimer); session.pollTimer = null; }
  session.viewAbort.abort();
  session.viewAbort = new AbortController();
  const { view, arg, params } = parseHash();
  const root = document.getElementById("view");
  root.replaceChildren();
  root.dataset.ready = "0";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === view || (view === "run" && a.dataset.view === "runs"));
  try {
    if (view === "run" && arg) await viewRun(root, arg, params);
    else if (VIEWS[view]) await VIEWS[view](root, params);
    else root.append(message("unknown view " + view, "error"));
  } catch (err) {
    if (err.name === "AbortError") return;  // a newer view took over
    root.append(message(err.message, "error"));
  }
  root.dataset.ready = "1";
  root.dataset.view = view;
}
async function start() {
  try {
    const info = await api("/api/info");
    document.getElementById("source").textContent = (REPORT ? "report of " : "") + info.store + " · scaletrack " + info.version + (REPORT ? " · generated " + REPORT.generated_at.slice(0, 19).replace("T", " ") : " · read-only");
  } catch (err) { /* the views report their own errors */ }
  window.addEventListener("hashchange", route);
  await route();
}
start();
