"""`scaletrack report`: the dashboard's views with their data in one offline HTML file.

The file inlines Plotly.js, the app and a JSON snapshot of every answer the views need
(runs, each run's curves downsampled and, when they are few, its evaluations; scaling fits
and adaptive decisions; emergence; ideas); its Content-Security-Policy forbids any
connection, so it opens, and keeps working, with the network off.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from scaletrack.errors import DataError
from scaletrack.store.exporters import write_atomically
from scaletrack.ui import assets, data, sweep_data

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

REPORT_POINTS = 600  # points per curve in a report (MinMax-LTTB), enough for a page width
REPORT_EVAL_ROWS = 20_000  # runs' evaluation curves are embedded up to this many eval rows


def report_data(store: StoreLike, sweep: str | None = None, *, points: int = REPORT_POINTS,
                max_runs: int = 2000) -> dict[str, Any]:
    """The snapshot a report embeds (the answers of the API routes the views call)."""
    from scaletrack import __version__
    from scaletrack.store.engine import redact_url

    runs = data.runs_page(store, sweep=sweep, limit=data.MAX_PAGE)["total"]
    if runs == 0 and sweep is not None:
        raise DataError(f"no runs in sweep {sweep!r}")
    if runs > max_runs:
        raise DataError(f"{runs} runs is more than a report holds ({max_runs}); pick --sweep")
    rows: list[dict[str, Any]] = []
    for offset in range(0, runs, data.MAX_PAGE):
        rows += data.runs_page(store, sweep=sweep, offset=offset, limit=data.MAX_PAGE)["rows"]
    created = {k: data.plain(v) for k, v in zip(
        *(lambda f: (f["run_key"], f["created_at"]))(store.runs(sweep=sweep)), strict=True)}
    details: dict[str, Any] = {}
    curves: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["run_key"]
        row["created_at"] = created.get(key)
        details[key] = data.run_detail(store, key)
        curves[key] = {
            m["name"]: data.metric_series(store, [key], m["name"], points=points)["series"][0]
            for m in details[key]["metrics"] if m["name"] != "spike"
        }
    if len(store.evals()) <= REPORT_EVAL_ROWS:  # evaluation curves of each run, when few
        evals = {key: sweep_data.run_evals(store, key)["series"] for key in details}
    else:
        evals = {}
    summary = data.sweeps_summary(store)
    # one scaling answer per sweep (mixing sweeps in one fit is left to the live app)
    names = [sweep] if sweep is not None else [
        s["name"] for s in summary["sweeps"] if s["name"] is not None and s["runs"] >= 3]
    # no sweep of 3 runs or more: one answer over all runs, under "" (it says why it is empty)
    chosen: dict[str, str | None] = {name: name for name in names} or {"": sweep}
    scaling = {key: data.scaling(store, name) for key, name in chosen.items()}
    optimal = {key: data.optimal(store, name) for key, name in chosen.items()}
    adaptive = {key: sweep_data.adaptive_steps(store, name) for key, name in chosen.items()}
    default = max(chosen, key=lambda k: scaling[k]["n"])
    if sweep is not None:
        summary = {"sweeps": [s for s in summary["sweeps"] if s["name"] == sweep],
                   "total_runs": runs}
    return {
        "info": {"store": redact_url(store.url), "version": __version__, "read_only": True},
        "generated_at": datetime.now(UTC).isoformat(),
        "sweeps": summary, "runs": rows, "details": details, "metrics": curves,
        "scaling": scaling, "optimal": optimal, "adaptive": adaptive, "evals": evals,
        "default_sweep": default,
        "emergence": data.emergence(store),
        "ideas": data.ideas(store),
    }


def build_report(store: StoreLike, sweep: str | None = None, *, points: int = REPORT_POINTS) -> str:
    """The report as HTML text."""
    return assets.page(report_data=report_data(store, sweep, points=points))


def write_report(store: StoreLike, path: str | Path, sweep: str | None = None, *,
                 points: int = REPORT_POINTS) -> Path:
    """Write the report to `path` atomically (`store.exporters.write_atomically`: a temporary
    file in the same folder, renamed over `path`; nothing is left behind on failure); returns
    it. A folder is refused before anything is computed."""
    target = Path(path)
    if target.is_dir():
        raise DataError(f"cannot write report {str(target)!r}: it is a folder; name a file in "
                        f"it, e.g. {str(target / 'report.html')!r}")
    if not target.parent.is_dir():
        raise DataError(f"cannot write report {str(target)!r}: its folder does not exist")
    html = build_report(store, sweep, points=points).encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(html)

    write_atomically(target, write)
    return target
