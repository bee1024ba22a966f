// scaletrack dashboard: views over the JSON API (served) or over the embedded data (report).
// Every user string goes into the page through textContent or, for Plotly labels, through
// esc() (Plotly reads a few HTML-like tags in labels); nothing is ever assigned to innerHTML.
"use strict";

(function () {
  const reportNode = document.getElementById("report-data");
  const REPORT = reportNode ? JSON.parse(reportNode.textContent) : null;
  const STATUS_COLOURS = {
    finished: "#2e7d32", running: "#1565c0", pending: "#757575", failed: "#c62828",
    diverged: "#ef6c00",
  };
  const CLASS_COLOURS = { past: "#2e7d32", near: "#ef6c00", far: "#c62828" };
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const X_LABELS = { step: "step", tokens: "tokens", flops: "FLOPs", wall_time: "wall time (s)",
    N: "N (parameters)", D: "D (tokens)", C: "C (FLOPs)" };
  const PLOT_CONFIG = { displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["sendDataToCloud"] };
  let pollTimer = null;
  let viewAbort = new AbortController();  // aborted when the view changes: its requests stop
  const inflight = new Map();  // url -> the promise of its answer
  const compareSelection = new Set();

  // ------------------------------------------------------------------ small helpers
  function el(tag, attrs, ...children) {
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
  function esc(s) {  // for Plotly labels and hover text only
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function fmt(v) {  // scaletrack/number_format.py's rule, digit for digit: 2.211, 2500, 5.33e8, 4e-4
    if (v === null || v === undefined || Number.isNaN(v)) return "-";
    if (typeof v !== "number") return String(v);
    if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
    if (v === 0) return "0";
    const plain = Number(v.toPrecision(4));
    if (Math.abs(v) >= 1e-3 && Math.abs(plain) < 1e4) return String(plain);
    const [mantissa, exponent] = v.toExponential(2).split("e");
    return String(Number(mantissa)) + "e" + String(Number(exponent));
  }
  function option(value, label, selected) {
    return el("option", { value: value, selected: selected }, label);
  }
  function select(id, choices, current, onchange) {
    const s = el("select", { id: id, onchange: onchange });
    for (const [value, label] of choices) s.append(option(value, label, value === current));
    return s;
  }
  function checkbox(id, label, checked, onchange) {
    return el("label", { class: "toggle" },
      el("input", { type: "checkbox", id: id, checked: checked, onchange: onchange }), label);
  }
  function statusBadge(status) {
    return el("span", { class: "badge status-" + status,
      style: "background:" + (STATUS_COLOURS[status] || "#555") }, status);
  }
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { view: parts[0] || "runs", arg: parts[1] || null, params: params };
  }
  function setHash(view, arg, params) {
    let h = "#/" + view + (arg ? "/" + encodeURIComponent(arg) : "");
    const q = params ? params.toString() : "";
    if (q) h += "?" + q;
    if (location.hash !== h) history.replaceState(null, "", h);
  }
  function message(text, cls) { return el("p", { class: cls || "note" }, text); }
  function plot(div, traces, layout) {
    // titles sit at the left, under a top margin; the toolbar stands vertically at the right,
    // so it never covers a title; axes keep their labels apart (automargin, few ticks,
    // powers of ten on log axes)
    const base = { margin: { l: 64, r: 36, t: 44, b: 56 }, hovermode: "closest",
      legend: { orientation: "h", y: -0.3, yanchor: "top" }, font: { size: 12 }, modebar: { orientation: "v" } };
    const full = Object.assign(base, layout);
    if (full.title && full.title.text !== undefined) full.title = Object.assign({ x: 0.01, xanchor: "left", y: 0.98, yanchor: "top", font: { size: 13 } }, full.title);
    const width = div.clientWidth || 600;
    for (const ax of ["xaxis", "yaxis"]) {
      full[ax] = Object.assign({ automargin: true, nticks: 7 }, full[ax] || {});
      if (full[ax].type === "log") {
        // whole decades only (no crowded 2 and 5 between them), every other one when many
        const vals = traces.flatMap((t) => (ax === "xaxis" ? t.x : t.y) || []).filter((v) => typeof v === "number" && v > 0);
        let lo = Infinity, hi = -Infinity;
        for (const v of vals) { if (v < lo) lo = v; if (v > hi) hi = v; }
        const decades = vals.length ? Math.log10(hi) - Math.log10(lo) : 1;
        const room = (ax === "xaxis" ? width : (full.height || 400)) / 55;
        const tick = decades < 2.5 ? {} : { dtick: decades > room ? Math.ceil(decades / room) : 1 };  // short ranges: Plotly's own ticks
        full[ax] = Object.assign({ exponentformat: "power" }, tick, full[ax]);
      }
    }
    return Plotly.react(div, traces, full, PLOT_CONFIG).then(() => {
      div.dataset.drawn = String(Date.now());
    });
  }

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
  function configValue(config, path) {
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
  async function api(path, params, signal) {
    params = params || new URLSearchParams();
    if (REPORT) {
      if (path === "/api/info") return REPORT.info;
      if (path === "/api/sweeps") return REPORT.sweeps;
      if (path === "/api/runs") return localRuns(params);
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
    const signals = [viewAbort.signal].concat(signal ? [signal] : []);
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

  // ------------------------------------------------------------------ runs view
  async function viewRuns(root, params) {
    const sweeps = await api("/api/sweeps");
    const state = {
      sweep: params.get("sweep") || "", status: params.get("status") || "",
      tag: params.get("tag") || "", where: params.get("where") || "", q: params.get("q") || "",
      group: params.get("group") || "", sort: params.get("sort") || "created_at", cols: params.get("cols") || "",
      desc: params.get("desc") === "1", offset: Number(params.get("offset") || 0), limit: 50,
    };
    const bar = el("div", { class: "controls" });
    const table = el("div", { id: "runs-table" });
    const groupsBox = el("div", { id: "runs-groups" });
    const live = el("span", { id: "live", class: "live" });
    root.append(el("h1", {}, "Sweeps and runs"), bar, groupsBox, table);

    function query() {
      const p = new URLSearchParams();
      for (const k of ["sweep", "status", "tag", "q", "group", "sort"]) if (state[k]) p.set(k, state[k]);
      for (const w of state.where.split(/[,;]/).map((s) => s.trim()).filter(Boolean)) p.append("where", w);
      if (state.desc) p.set("desc", "1");
      if (state.offset) p.set("offset", String(state.offset));
      p.set("limit", String(state.limit));
      return p;
    }
    function hashParams() {
      const p = query(); p.delete("limit");
      if (state.where) { p.delete("where"); p.set("where", state.where); }
      if (state.cols) p.set("cols", state.cols);
      return p;
    }
    const sweepChoices = [["", "all sweeps (" + sweeps.total_runs + ")"]].concat(sweeps.sweeps.filter((s) => s.name !== null).map((s) =>
      [s.name, s.name + " (" + s.runs + ")"]));
    const statusChoices = [["", "any status"]].concat(Object.keys(STATUS_COLOURS).map((s) => [s, s]));
    const groupChoices = [["", "no grouping"], ["N", "group by N"], ["D", "group by D"], ["lr", "group by lr"], ["seed", "group by seed"], ["sweep", "group by sweep"], ["role", "group by role"]];
    const tagSelect = select("f-tag", [["", "any tag"]], state.tag, (e) => { state.tag = e.target.value; state.offset = 0; refresh(); });
    const whereInput = el("input", { id: "f-where", placeholder: "field=value, e.g. lr=0.003 or model.n_layer=2", value: state.where, size: 34 });
    const searchInput = el("input", { id: "f-search", placeholder: "run key, name or sweep", value: state.q, size: 18 });
    const colsInput = el("input", { id: "f-cols", placeholder: "config columns: auto (or e.g. model.n_layer, train.batch_size)", value: state.cols, size: 30 });
    colsInput.addEventListener("change", () => { state.cols = colsInput.value; refresh(); });
    whereInput.addEventListener("change", () => { state.where = whereInput.value; state.offset = 0; refresh(); });
    let typing = null;  // one request per pause in typing, not one per key
    searchInput.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { state.q = searchInput.value; state.offset = 0; refresh(); }, 250); });
    bar.append(
      select("f-sweep", sweepChoices, state.sweep, (e) => { state.sweep = e.target.value; state.offset = 0; refresh(); }),
      select("f-status", statusChoices, state.status, (e) => { state.status = e.target.value; state.offset = 0; refresh(); }),
      tagSelect, whereInput, searchInput, colsInput,
      select("f-group", groupChoices, state.group, (e) => { state.group = e.target.value; refresh(); }),
      el("button", { id: "compare-selected", onclick: () => {
        if (!compareSelection.size) return;
        location.hash = "#/compare?runs=" + encodeURIComponent([...compareSelection].join(","));
      } }, "Compare selected"),
      live);

    const baseColumns = [["run_key", "run"], ["sweep", "sweep"], ["status", "status"], ["role", "role"], ["N", "N"], ["D", "D"], ["C", "C"], ["lr", "lr"], ["seed", "seed"], ["final_loss", "final loss"], ["tags", "tags"], ["updated_at", "updated"]];
    const SHOWN = new Set(["N", "D", "seed", "lr", "name", "sweep"]);
    function leaves(obj, prefix, out) {
      for (const [k, v] of Object.entries(obj || {})) {
        const key = prefix ? prefix + "." + k : k;
        if (v !== null && typeof v === "object" && !Array.isArray(v)) leaves(v, key, out);
        else out[key] = Array.isArray(v) ? JSON.stringify(v) : v;
      }
      return out;
    }
    function configColumns(rows) {  // the named ones, or up to 6 config values that differ on this page
      if (state.cols.trim()) return state.cols.split(",").map((c) => c.trim()).filter(Boolean);
      const seen = new Map();
      for (const r of rows) for (const [k, v] of Object.entries(leaves(r.config, "", {}))) {
        if (SHOWN.has(k.split(".").pop())) continue;
        if (!seen.has(k)) seen.set(k, new Set());
        seen.get(k).add(String(v));
      }
      return [...seen.entries()].filter(([, vals]) => vals.size > 1).map(([k]) => k).slice(0, 6);
    }
    let columns = baseColumns;
    function render(page) {
      const configCols = configColumns(page.rows);
      columns = baseColumns.slice(0, 10).concat(configCols.map((c) => ["config:" + c, c])).concat(baseColumns.slice(10));
      const tags = [["", "any tag"]].concat(page.tags.map((t) => [t, t]));
      tagSelect.replaceChildren(...tags.map(([v, l]) => option(v, l, v === state.tag)));
      groupsBox.replaceChildren();
      if (page.groups) {
        const gt = el("table", { class: "grid groups", id: "groups-table" });
        gt.append(el("tr", {}, el("th", {}, state.group), el("th", {}, "runs"), el("th", {}, "statuses"), el("th", {}, "best final loss"), el("th", {}, "mean final loss")));
        for (const g of page.groups) {
          const st = el("td", {});
          for (const [s, n] of Object.entries(g.by_status)) st.append(statusBadge(s), " " + n + " ");
          gt.append(el("tr", {}, el("td", {}, fmt(g.value)), el("td", {}, g.count), st, el("td", {}, fmt(g.best_final_loss)), el("td", {}, fmt(g.mean_final_loss))));
        }
        groupsBox.append(gt);
      }
      const t = el("table", { class: "grid", id: "runs" });
      const head = el("tr", {}, el("th", {}, ""));
      for (const [key, label] of columns) {
        const arrow = state.sort === key ? (state.desc ? " ▼" : " ▲") : "";
        if (key.startsWith("config:")) { head.append(el("th", { class: "config-col", title: "config value " + label }, label)); continue; }
        head.append(el("th", { class: "sortable", "data-col": key, onclick: () => {
          if (state.sort === key) state.desc = !state.desc; else { state.sort = key; state.desc = false; }
          refresh();
        } }, label + arrow));
      }
      t.append(head);
      let lastGroup;
      for (const r of page.rows) {
        if (state.group && r[state.group] !== lastGroup) {
          lastGroup = r[state.group];
          t.append(el("tr", { class: "group-row" }, el("td", { colspan: columns.length + 1 }, state.group + " = " + fmt(lastGroup))));
        }
        const box = el("input", { type: "checkbox", class: "pick", "data-key": r.run_key, checked: compareSelection.has(r.run_key),
          onchange: (e) => { if (e.target.checked) compareSelection.add(r.run_key); else compareSelection.delete(r.run_key); } });
        const row = el("tr", { "data-key": r.run_key, "data-status": r.status }, el("td", {}, box));
        for (const [key] of columns) {
          let cell;
          if (key === "run_key") cell = el("td", { title: r.run_key }, el("a", { href: "#/run/" + encodeURIComponent(r.run_key) }, r.name || r.run_key.slice(0, 10)), r.name ? el("span", { class: "mono dim" }, " " + r.run_key.slice(0, 8)) : null);
          else if (key === "role") cell = el("td", { title: r.parent_run_key ? "branch of " + r.parent_run_key : "" }, r.role || "cell");
          else if (key.startsWith("config:")) { const v = configValue(r.config, key.slice(7)); cell = el("td", { class: typeof v === "number" ? "num" : "" }, v === null ? "-" : (typeof v === "object" ? JSON.stringify(v) : fmt(v))); }
          else if (key === "status") cell = el("td", {}, statusBadge(r.status));
          else if (key === "tags") cell = el("td", {}, (r.tags || []).join(", "));
          else if (key === "updated_at") cell = el("td", {}, r.updated_at ? r.updated_at.slice(0, 19).replace("T", " ") : "-");
          else cell = el("td", { class: typeof r[key] === "number" ? "num" : "" }, fmt(r[key]));
          row.append(cell);
        }
        t.append(row);
      }
      const pager = el("div", { class: "pager" },
        el("button", { id: "prev", disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); refresh(); } }, "◀ prev"),
        el("span", { id: "page-info" }, page.total ? (page.offset + 1) + "–" + Math.min(page.offset + page.limit, page.total) + " of " + page.total + " runs" : "no runs match"),
        el("button", { id: "next", disabled: page.offset + page.limit >= page.total, onclick: () => { state.offset += state.limit; refresh(); } }, "next ▶"));
      table.replaceChildren(t, pager);
      table.dataset.total = String(page.total);
    }
    let current = null;  // the request in flight: {key, ctrl}
    async function refresh() {
      setHash("runs", null, hashParams());
      const q = query(), key = q.toString();
      if (current && current.key === key) return;  // the same question is already being answered
      if (current) current.ctrl.abort();  // a newer question replaces it; the server stops too
      const mine = { key: key, ctrl: new AbortController() };
      current = mine;
      try {
        render(await api("/api/runs", q, mine.ctrl.signal));
        live.textContent = REPORT ? "report snapshot" : "live · updated " + new Date().toLocaleTimeString();
      } catch (err) {
        if (err.name !== "AbortError") table.replaceChildren(message(err.message, "error"));
      } finally {
        if (current === mine) current = null;
      }
    }
    const view = viewAbort.signal;
    function poll() {  // the next poll is asked only after the previous answer arrived
      pollTimer = setTimeout(async () => { if (view.aborted) return; await refresh(); if (!view.aborted) poll(); }, 2000);
    }
    await refresh();
    if (!REPORT) poll();
  }

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
    root.append(curveControls(state, names, redraw, refetch), chart, info);
    if (extra) root.append(extra);
    if (!names.length) { chart.replaceWith(message("no metrics logged")); return; }
    await refetch();
  }
  async function viewRun(root, key, params) {
    const d = await api("/api/runs/" + encodeURIComponent(key));
    const r = d.run;
    root.append(el("h1", {}, "Run ", el("span", { class: "mono", id: "run-key" }, r.run_key), " ", statusBadge(r.status)));
    root.append(el("p", { class: "note" }, "sweep " + (r.sweep === null ? "-" : r.sweep) + " · " + r.family + " · N " + fmt(r.N) + " · D " + fmt(r.D) + " tokens · C " + fmt(r.C) + " FLOPs · final loss " + fmt(r.final_loss) + (d.tags.length ? " · tags: " + d.tags.join(", ") : "")));
    if (d.error) root.append(message("error: " + d.error, "error"));
    const details = el("div", { class: "two-col" });
    const ck = el("table", { class: "grid", id: "checkpoints" }, el("tr", {}, ...["id", "kind", "step", "N", "tokens", "FLOPs", "path"].map((h) => el("th", {}, h))));
    for (const c of d.checkpoints) ck.append(el("tr", {}, el("td", {}, c.id), el("td", {}, c.kind), el("td", {}, fmt(c.step)), el("td", {}, fmt(c.N)), el("td", {}, fmt(c.tokens)), el("td", {}, fmt(c.flops)), el("td", { class: "mono" }, c.path)));
    details.append(el("div", {}, el("h2", {}, "Config"), el("pre", { id: "config" }, JSON.stringify(d.config, null, 2))),
      el("div", {}, el("h2", {}, "Checkpoints (" + d.checkpoints.length + ")"), ck));
    await curvesView(root, [key], params, "run " + key.slice(0, 10), d.metrics.map((m) => m.name), details);
  }
  async function viewCompare(root, params) {
    const keys = (params.get("runs") || "").split(",").filter(Boolean);
    root.append(el("h1", {}, "Compare runs"));
    if (!keys.length) {
      root.append(message("Tick runs in the Runs view and press “Compare selected”."));
      return;
    }
    const names = new Set();
    for (const k of keys) (await api("/api/runs/" + encodeURIComponent(k))).metrics.forEach((m) => names.add(m.name));
    await curvesView(root, keys, params, keys.length + " runs", [...names].sort());
  }

  // ------------------------------------------------------------------ scaling view
  function colourScale(values) {
    const positive = values.every((v) => typeof v !== "number" || v > 0);
    return { color: values.map((v) => (typeof v === "number" && positive ? Math.log10(v) : v)),
      colorscale: "Viridis", showscale: true };
  }
  async function viewScaling(root, params) {
    const sweeps = await api("/api/sweeps");
    const state = { sweep: params.get("sweep") || (REPORT ? REPORT.default_sweep || "" : ""), x: params.get("x") || "C", colour: params.get("colour") || "N",
      logx: params.get("logx") !== "0", logy: params.get("logy") === "1" };
    root.append(el("h1", {}, "Scaling"));
    const controls = el("div", { class: "controls" });
    const main = el("div", { id: "chart-scaling", class: "chart" });
    const fitBox = el("div", { id: "fit-summary" });
    const iso = el("div", { id: "chart-isoflop", class: "chart half" });
    const opt = el("div", { id: "chart-optimal", class: "chart half" });
    root.append(controls, main, fitBox, el("div", { class: "two-col" }, iso, opt));
    let data = null, optimal = null, predicted = null;
    const predictInput = el("input", { id: "s-predict", placeholder: "e.g. 1e22", size: 10 });
    const predictOut = el("span", { id: "s-predicted", class: "note" });
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
      // the Chinchilla fit behind compute-optimal N and D is slower: it arrives afterwards
      opt.replaceChildren(message("fitting L(N, D) for compute-optimal N and D…"));
      const wanted = state.sweep;
      const answer = await api("/api/optimal", p);
      if (wanted === state.sweep) { optimal = answer; drawOptimal(); }
    }
    function drawOptimal() {
      const o = optimal, isoData = data.isoflop;
      if (!o) return;
      if (o.status === "ok") {
        opt.replaceChildren();
        plot(opt, [
          { type: "scatter", mode: "lines", name: "N_opt (parameters)", x: o.C, y: o.N_opt },
          { type: "scatter", mode: "lines", name: "D_opt (tokens)", x: o.C, y: o.D_opt },
          ...(isoData && isoData.minima.length ? [{ type: "scatter", mode: "markers", name: "IsoFLOP N_opt", x: isoData.minima.map((m) => m.C), y: isoData.minima.map((m) => m.N_opt), marker: { symbol: "star", size: 10 } }] : []),
        ], { title: { text: "compute-optimal N and D (Chinchilla fit: E=" + fmt(o.params.E) + ", α=" + fmt(o.params.alpha) + ", β=" + fmt(o.params.beta) + ")" },
          xaxis: { type: "log", title: { text: "C (FLOPs)" } }, yaxis: { type: "log" }, height: 420 });
      } else opt.replaceChildren(message(o.reason || "no compute-optimal allocation"));
    }
    function redraw() {
      const hp = new URLSearchParams(); for (const k of ["sweep", "x", "colour"]) if (state[k]) hp.set(k, state[k]);
      hp.set("logx", state.logx ? "1" : "0"); hp.set("logy", state.logy ? "1" : "0");
      setHash("scaling", null, hp);
      const pts = data.points, x = state.x;
      const text = pts.run_key.map((k, i) => esc(k.slice(0, 10) + " · " + (pts.sweep[i] === null ? "" : pts.sweep[i])));
      const marker = state.colour === "none" ? { color: "#1f77b4", size: 8 } :
        Object.assign({ size: 8, colorbar: { title: { text: (["N", "D", "C"].includes(state.colour) ? "log10 " : "") + state.colour } } }, colourScale(pts[state.colour]));
      const traces = [{ type: "scatter", mode: "markers", name: "final loss", x: pts[x], y: pts.loss, text: text, marker: marker, meta: "points" }];
      const shapes = [], annotations = [];
      const fit = data.fits && data.fits[x];
      if (fit && fit.status === "ok") {
        const c = fit.curve;
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
        plot(iso, t2, { title: { text: "IsoFLOP profiles" }, xaxis: { type: "log", title: { text: "N (parameters)" } }, yaxis: { title: { text: "final loss" } }, height: 420 });
      } else iso.replaceChildren(message("IsoFLOP profiles need at least 3 runs per compute budget."));
      drawOptimal();
    }
    const sweepChoices = REPORT ? Object.keys(REPORT.scaling).map((s) => [s, s]) :
      [["", "all sweeps"]].concat(sweeps.sweeps.filter((s) => s.name !== null).map((s) => [s.name, s.name]));
    controls.append(
      select("s-sweep", sweepChoices, state.sweep, (e) => { state.sweep = e.target.value; refetch(); }),
      el("label", {}, "x ", select("s-x", [["N", "N (params)"], ["D", "D (tokens)"], ["C", "C (FLOPs)"]], state.x, (e) => { state.x = e.target.value; redraw(); })),
      el("label", {}, "colour ", select("s-colour", [["N", "N"], ["D", "D"], ["C", "C"], ["lr", "lr"], ["seed", "seed"], ["none", "none"]], state.colour, (e) => { state.colour = e.target.value; redraw(); })),
      checkbox("s-logx", "log x", state.logx, (e) => { state.logx = e.target.checked; redraw(); }),
      checkbox("s-logy", "log y", state.logy, (e) => { state.logy = e.target.checked; redraw(); }),
      el("label", {}, "predict at x = ", predictInput), el("button", { id: "s-predict-go", onclick: predictAt }, "predict"), predictOut);
    predictInput.addEventListener("change", predictAt);
    await refetch();
  }

  // ------------------------------------------------------------------ emergence view
  function curveName(t) { return t.task + " · " + t.metric + (t.shot === null || t.shot === undefined ? "" : " · " + t.shot + "-shot"); }
  async function viewEmergence(root, params) {
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
      info.textContent = data.total + " curves (one per task × metric × shot count) over " + tasks.size + " tasks; showing " + (data.offset + 1) + "–" + Math.min(data.offset + data.tasks.length, data.total) + ". Each curve is fitted and classified on its own: metrics and shot counts are never pooled.";
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
        plot(div, traces, { title: { text: esc(curveName(c) + " · " + c.label) }, xaxis: { type: "log", title: { text: "C (FLOPs)" } }, yaxis: { title: { text: esc(c.metric) } }, shapes: shapes, height: 320, showlegend: false });
      });
    }
    await load();
  }

  // ------------------------------------------------------------------ ideas view
  async function viewIdeas(root) {
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
    plot(chart, traces, { xaxis: { type: "log", title: { text: "checkpoint compute (FLOPs)" } }, yaxis: { title: { text: "value (dotted: each idea's bar; filled: passed)" } }, shapes: shapes, height: 420 });
  }

  // ------------------------------------------------------------------ router
  const VIEWS = { runs: viewRuns, compare: viewCompare, scaling: viewScaling, emergence: viewEmergence, ideas: viewIdeas };
  async function route() {
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
    viewAbort.abort();
    viewAbort = new AbortController();
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
})();
