// The runs view: filter, sort, group and page the runs; config columns; live updates.
import { REPORT, STATUS_COLOURS, compareSelection, el, fmt, option, select, statusBadge, setHash, message, session, clipped } from "./common.js";
import { configValue, api } from "./api.js";

// ------------------------------------------------------------------ runs view
export async function viewRuns(root, params) {
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
  // each box as wide as its placeholder; the longer help is in its tooltip
  const whereInput = el("input", { id: "f-where", placeholder: "where, e.g. lr=0.003", value: state.where, size: 22,
    title: "field=value filters, comma-separated; a field is a run column or a dotted config path, e.g. model.n_layer=2" });
  const searchInput = el("input", { id: "f-search", placeholder: "run key, name or sweep", value: state.q, size: 24 });
  const colsInput = el("input", { id: "f-cols", placeholder: "config columns: auto", value: state.cols, size: 22,
    title: "config values shown as columns, comma-separated dotted paths, e.g. model.n_layer, train.batch_size; empty: up to 6 that differ on this page" });
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
      if (key.startsWith("config:")) {  // the path's last part when no other column ends so; the whole path in the tooltip
        const tail = label.split(".").pop(), unique = columns.filter(([k, l]) => k.startsWith("config:") && l.split(".").pop() === tail).length === 1;
        head.append(el("th", { class: "config-col", title: "config value " + label }, unique ? tail : label)); continue;
      }
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
        if (key === "run_key") cell = el("td", { class: "clip run-col", title: (r.name ? r.name + " · " : "") + r.run_key }, el("a", { href: "#/run/" + encodeURIComponent(r.run_key) }, r.name || r.run_key.slice(0, 10)), r.name ? el("span", { class: "mono dim" }, " " + r.run_key.slice(0, 8)) : null);
        else if (key === "sweep") cell = clipped(r.sweep === null ? "-" : r.sweep);
        else if (key === "role") cell = el("td", { title: r.parent_run_key ? "branch of " + r.parent_run_key : "" }, r.role || "cell");
        else if (key.startsWith("config:")) { const v = configValue(r.config, key.slice(7)); cell = clipped(v === null ? "-" : (typeof v === "object" ? JSON.stringify(v) : fmt(v)), typeof v === "number" ? "num" : ""); }
        else if (key === "status") cell = el("td", {}, statusBadge(r.status));
        else if (key === "tags") cell = clipped((r.tags || []).join(", "));
        else if (key === "updated_at") cell = el("td", { class: "nowrap" }, r.updated_at ? r.updated_at.slice(0, 19).replace("T", " ") : "-");
        else cell = el("td", { class: typeof r[key] === "number" ? "num" : "" }, fmt(r[key]));
        row.append(cell);
      }
      t.append(row);
    }
    const pager = el("div", { class: "pager" },
      el("button", { id: "prev", disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - state.limit); refresh(); } }, "◀ prev"),
      el("span", { id: "page-info" }, page.total ? (page.offset + 1) + "–" + Math.min(page.offset + page.limit, page.total) + " of " + page.total + " runs" : "no runs match"),
      el("button", { id: "next", disabled: page.offset + page.limit >= page.total, onclick: () => { state.offset += state.limit; refresh(); } }, "next ▶"));
    table.replaceChildren(el("div", { class: "table-box" }, t), pager);  // a wide table scrolls in its box, not the page
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
  const view = session.viewAbort.signal;
  function poll() {  // the next poll is asked only after the previous answer arrived
    session.pollTimer = setTimeout(async () => { if (view.aborted) return; await refresh(); if (!view.aborted) poll(); }, 2000);
  }
  await refresh();
  if (!REPORT) poll();
}
