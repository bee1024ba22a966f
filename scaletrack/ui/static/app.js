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
  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (typeof v !== "number") return String(v);
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e6 || a < 1e-3) return v.toExponential(2).replace("e+", "e");
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(4)));
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
    const base = { margin: { l: 60, r: 20, t: 30, b: 50 }, hovermode: "closest",
      legend: { orientation: "h", y: -0.2 }, font: { size: 12 } };
    return Plotly.react(div, traces, Object.assign(base, layout), PLOT_CONFIG).then(() => {
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
  async function api(path, params) {
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
      if (path === "/api/emergence") return REPORT.emergence;
      if (path === "/api/ideas") return REPORT.ideas;
      throw new Error("not in this report: " + path);
    }
    const q = params.toString();
    const response = await fetch(path + (q ? "?" + q : ""), { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  // ------------------------------------------------------------------ runs view
  async function viewRuns(root, params) {
    const sweeps = await api("/api/sweeps");
    const state = {
      sweep: params.get("sweep") || "", status: params.get("status") || "",
      tag: params.get("tag") || "", where: params.get("where") || "", q: params.get("q") || "",
      group: params.get("group") || "", sort: params.get("sort") || "created_at",
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
      return p;
    }
    const sweepChoices = [["", "all sweeps"]].concat(sweeps.sweeps.map((s) =>
      [s.name === null ? "" : s.name, (s.name === null ? "(no sweep)" : s.name) + " (" + s.runs + ")"]));
    const statusChoices = [["", "any status"]].concat(Object.keys(STATUS_COLOURS).map((s) => [s, s]));
    const groupChoices = [["", "no grouping"], ["N", "group by N"], ["D", "group by D"], ["lr", "group by lr"], ["seed", "group by seed"], ["sweep", "group by sweep"]];
    const tagSelect = select("f-tag", [["", "any tag"]], state.tag, (e) => { state.tag = e.target.value; state.offset = 0; refresh(); });
    const whereInput = el("input", { id: "f-where", placeholder: "field=value, e.g. lr=0.003 or model.n_layer=2", value: state.where, size: 34 });
    const searchInput = el("input", { id: "f-search", placeholder: "run key or sweep", value: state.q, size: 16 });
    whereInput.addEventListener("change", () => { state.where = whereInput.value; state.offset = 0; refresh(); });
    searchInput.addEventListener("input", () => { state.q = searchInput.value; state.offset = 0; refresh(); });
    bar.append(
      select("f-sweep", sweepChoices, state.sweep, (e) => { state.sweep = e.target.value; state.offset = 0; refresh(); }),
      select("f-status", statusChoices, state.status, (e) => { state.status = e.target.value; state.offset = 0; refresh(); }),
      tagSelect, whereInput, searchInput,
      select("f-group", groupChoices, state.group, (e) => { state.group = e.target.value; refresh(); }),
      el("button", { id: "compare-selected", onclick: () => {
        if (!compareSelection.size) return;
        location.hash = "#/compare?runs=" + encodeURIComponent([...compareSelection].join(","));
      } }, "Compare selected"),
      live);

    const columns = [["run_key", "run"], ["sweep", "sweep"], ["status", "status"], ["N", "N"], ["D", "D"], ["C", "C"], ["lr", "lr"], ["seed", "seed"], ["final_loss", "final loss"], ["tags", "tags"], ["updated_at", "updated"]];
    function render(page) {
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
          if (key === "run_key") cell = el("td", {}, el("a", { href: "#/run/" + encodeURIComponent(r.run_key) }, r.run_key.slice(0, 10)));
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
    async function refresh() {
      setHash("runs", null, hashParams());
      try {
        render(await api("/api/runs", query()));
        live.textContent = REPORT ? "report snapshot" : "live · updated " + new Date().toLocaleTimeString();
      } catch (err) {
        table.replaceChildren(message(err.message, "error"));
      }
    }
    await refresh();
    if (!REPORT) pollTimer = setInterval(refresh, 2000);
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
      traces.push({ type: "scatter", mode: "lines", name: esc(s.label), x: x, y: smooth(s.y, state.smooth),
        line: { color: colour, width: 1.6 }, meta: s.run_key });
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
    let data = null, optimal = null;
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
      }
      if (data.frontier && x === "C") traces.push({ type: "scatter", mode: "lines+markers", name: "compute frontier", x: data.frontier.C, y: data.frontier.loss, line: { color: "#2ca02c", dash: "dash", shape: "hv" }, marker: { size: 5 } });
      const bt = data.backtest;
      if (bt && bt.status === "ok") {
        traces.push({ type: "scatter", mode: "markers", name: "back-test: predicted (fit on C < " + fmt(bt.threshold_C) + ")", x: bt[x], y: bt.predicted, marker: { symbol: "diamond-open", size: 11, color: "#d62728", line: { width: 2 } } });
      }
      plot(main, traces, { xaxis: { title: { text: X_LABELS[x] }, type: state.logx ? "log" : "linear" },
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
      checkbox("s-logy", "log y", state.logy, (e) => { state.logy = e.target.checked; redraw(); }));
    await refetch();
  }

  // ------------------------------------------------------------------ emergence view
  async function viewEmergence(root) {
    const data = await api("/api/emergence");
    root.append(el("h1", {}, "Emergence"));
    if (!data.tasks.length) { root.append(message("No evaluations in this store yet.")); return; }
    const summary = el("table", { class: "grid", id: "emergence-table" }, el("tr", {}, ...["task", "metric", "class", "threshold", "predicted crossing (FLOPs)", "95% interval", "points"].map((h) => el("th", {}, h))));
    const charts = el("div", { class: "grid-charts" });
    root.append(summary, charts);
    data.tasks.forEach((t, i) => {
      summary.append(el("tr", {}, el("td", {}, t.task), el("td", {}, t.metric),
        el("td", {}, el("span", { class: "badge", style: "background:" + (CLASS_COLOURS[t.label] || "#757575") }, t.label)),
        el("td", {}, fmt(t.threshold)), el("td", {}, fmt(t.crossing)), el("td", {}, t.crossing_lo === null ? "-" : "[" + fmt(t.crossing_lo) + ", " + fmt(t.crossing_hi) + "]"), el("td", {}, t.C.length)));
      const div = el("div", { class: "chart small", id: "chart-emergence-" + i });
      charts.append(div);
      const traces = [{ type: "scatter", mode: "markers", name: "measured", x: t.C, y: t.value, marker: { size: 7 } }];
      if (t.curve) traces.push({ type: "scatter", mode: "lines", name: "floored sigmoid fit", x: t.curve.C, y: t.curve.value });
      const shapes = [];
      if (t.threshold !== null) shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: t.threshold, y1: t.threshold, line: { dash: "dot", color: "#999" } });
      if (t.crossing !== null && t.crossing > 0) shapes.push({ type: "line", yref: "paper", y0: 0, y1: 1, x0: t.crossing, x1: t.crossing, line: { dash: "dash", color: CLASS_COLOURS[t.label] || "#555" } });
      plot(div, traces, { title: { text: esc(t.task + " · " + t.metric + " · " + t.label) }, xaxis: { type: "log", title: { text: "C (FLOPs)" } }, yaxis: { title: { text: esc(t.metric) } }, shapes: shapes, height: 320, showlegend: false });
    });
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
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
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
