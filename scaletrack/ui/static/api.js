// Data access: the JSON API when served, the embedded snapshot in a report (the same
// answers, computed in the page); never two identical requests in flight.
import { REPORT, session } from "./common.js";

const inflight = new Map();  // url -> the promise of its answer
// ------------------------------------------------------------------ data access
function matches(value, wanted) {
  if (value === null || value === undefined) return ["", "none", "null"].includes(wanted);
  if (Array.isArray(value)) return value.some((v) => matches(v, wanted));
  if (typeof value === "number") {
    const w = Number(wanted);
    return wanted !== "" && !Number.isNaN(w) && Math.abs(value - w) <= 1e-9 * Math.max(Math.abs(value), Math.abs(w));
  }
  return String(value) === wanted;
}
export function configValue(config, path) {
  let v = config;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object" || !(part in v)) return null;
    v = v[part];
  }
  return v;
}
function compareValues(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  return a < b ? -1 : 1;
}
// The report answers the same questions as the server, from the embedded data.
function localRuns(p) {
  let rows = REPORT.runs.slice();
  const where = p.getAll("where").map((w) => { const i = w.indexOf("="); return [w.slice(0, i).trim(), w.slice(i + 1).trim()]; });
  rows = rows.filter((r) => {
    if (p.get("sweep") && r.sweep !== p.get("sweep")) return false;
    if (p.get("status") && r.status !== p.get("status")) return false;
    if (p.get("tag") && !(r.tags || []).includes(p.get("tag"))) return false;
    for (const [field, wanted] of where) {
      const v = field in r ? r[field] : configValue(REPORT.details[r.run_key].config, field);
      if (!matches(v, wanted)) return false;
    }
    const q = (p.get("q") || "").toLowerCase();
    if (q && !(r.run_key.toLowerCase().includes(q) || String(r.sweep).toLowerCase().includes(q))) return false;
    return true;
  });
  const sort = p.get("sort") || "created_at", desc = p.get("desc") === "1", group = p.get("group");
  rows.sort((a, b) => {
    if (group) { const g = compareValues(a[group], b[group]); if (g) return g; }
    const c = compareValues(a[sort], b[sort]);
    return desc && a[sort] !== null && b[sort] !== null ? -c : c;
  });
  let groups = null;
  if (group) {
    const byValue = new Map();
    for (const r of rows) {
      const k = r[group];
      if (!byValue.has(k)) byValue.set(k, []);
      byValue.get(k).push(r);
    }
    groups = [...byValue.entries()].map(([value, part]) => {
      const losses = part.map((r) => r.final_loss).filter((v) => v !== null);
      const byStatus = {};
      for (const r of part) byStatus[r.status] = (byStatus[r.status] || 0) + 1;
      return { value: value, count: part.length, by_status: byStatus,
        best_final_loss: losses.length ? Math.min(...losses) : null,
        mean_final_loss: losses.length ? losses.reduce((s, v) => s + v, 0) / losses.length : null };
    });
  }
  const offset = Number(p.get("offset") || 0), limit = Number(p.get("limit") || 100);
  const statuses = {}, tags = new Set();
  for (const r of REPORT.runs) { statuses[r.status] = (statuses[r.status] || 0) + 1; (r.tags || []).forEach((t) => tags.add(t)); }
  return { total: rows.length, offset: offset, limit: limit, rows: rows.slice(offset, offset + limit),
    group: group, groups: groups, statuses: statuses, tags: [...tags].sort() };
}
export async function api(path, params, signal) {
  params = params || new URLSearchParams();
  if (REPORT) {
    if (path === "/api/info") return REPORT.info;
    if (path === "/api/sweeps") return REPORT.sweeps;
    if (path === "/api/runs") return localRuns(params);
    if (path.startsWith("/api/runs/") && path.endsWith("/evals")) {
      const key = decodeURIComponent(path.slice("/api/runs/".length, -"/evals".length));
      if (!REPORT.evals || !(key in REPORT.evals)) return { run_key: key, series: [], note: REPORT.details[key] && Object.keys(REPORT.evals || {}).length === 0 ? "evaluation curves are left out of this report (too many eval rows); scaletrack ui shows them" : null };
      return { run_key: key, series: REPORT.evals[key] };
    }
    if (path === "/api/adaptive") {
      const sweep = params.get("sweep") || REPORT.default_sweep;
      return (REPORT.adaptive || {})[sweep] || { sweep: sweep, steps: [] };
    }
    if (path.startsWith("/api/runs/")) {
      const key = decodeURIComponent(path.slice("/api/runs/".length));
      if (!(key in REPORT.details)) throw new Error("run " + key + " is not in this report");
      return REPORT.details[key];
    }
    if (path === "/api/metrics") {
      const name = params.get("name");
      const series = params.getAll("run").map((k) => (REPORT.metrics[k] || {})[name]).filter(Boolean);
      return { name: name, series: series };
    }
    if (path === "/api/scaling" || path === "/api/optimal") {
      const table = path === "/api/scaling" ? REPORT.scaling : REPORT.optimal;
      const sweep = params.get("sweep") || REPORT.default_sweep;
      if (!(sweep in table)) throw new Error("sweep " + sweep + " is not in this report");
      return table[sweep];
    }
    if (path === "/api/emergence") {
      const q = (params.get("q") || "").toLowerCase();
      const all = REPORT.emergence.tasks.filter((t) => !q || t.task.toLowerCase().includes(q));
      const offset = Number(params.get("offset") || 0), limit = Number(params.get("limit") || 12);
      return { total: all.length, offset: offset, limit: limit,
        groups: all.map((t) => ({ task: t.task, metric: t.metric, shot: t.shot, points: t.C.length })),
        tasks: all.slice(offset, offset + limit) };
    }
    if (path === "/api/predict") throw new Error("predictions need the live dashboard (scaletrack ui)");
    if (path === "/api/ideas") return REPORT.ideas;
    throw new Error("not in this report: " + path);
  }
  const q = params.toString();
  const url = path + (q ? "?" + q : "");
  // never two identical requests in flight: a second asker shares the first one's answer
  if (inflight.has(url)) return inflight.get(url);
  const signals = [session.viewAbort.signal].concat(signal ? [signal] : []);
  const combined = signals.length > 1 && AbortSignal.any ? AbortSignal.any(signals) : signals[signals.length - 1];
  const request = (async () => {
    const response = await fetch(url, { headers: { Accept: "application/json" }, signal: combined });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  })();
  inflight.set(url, request);
  try { return await request; } finally { inflight.delete(url); }
}
