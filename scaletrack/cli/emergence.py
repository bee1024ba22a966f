"""`scaletrack emergence`: classify tasks as past / near / far of their transition."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from scaletrack.cli.common import StoreOption, console, err_console, print_json, store_session
from scaletrack.errors import ConfigError, DataError
from scaletrack.number_format import fmt_number
from scaletrack.safe_text import shown

if TYPE_CHECKING:
    import pandas as pd

# largest metric value taken from a CSV (accuracies, losses and perplexities lie far below;
# beyond, the fit's squared residuals overflow)
METRIC_VALUE_LIMIT = 1e100


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """Compact text columns for the terminal: task, metric, shots (when known), class, bar
    (threshold), largest scale tried, crossing scale and its 95% interval, steepness k per
    decade, emergent."""
    import pandas as pd

    cols: dict[str, object] = {"task": table["task"].astype(str)}
    if table["metric"].nunique() > 1 or "shot" in table and table["shot"].notna().any():
        cols["metric"] = table["metric"].astype(str)
    if "shot" in table and table["shot"].notna().any():
        cols["shots"] = table["shot"].map(lambda v: "-" if v is None or v != v else str(int(v)))
    return pd.DataFrame({
        **cols,
        "class": table["label"],
        "bar": table["threshold"].map(fmt_number),
        "max x": table["x_max"].map(fmt_number),
        "crossing": table["crossing"].map(fmt_number),
        "95% CI": [f"{fmt_number(a)}-{fmt_number(b)}"
                   for a, b in zip(table["crossing_lo"], table["crossing_hi"], strict=True)],
        "k": table["suddenness"].map(fmt_number),
        "emerg.": table["emergent"].map(lambda v: "yes" if v else "no"),
    })


class _Progress:
    """Progress of the classification on stderr: a bar on a terminal, otherwise a line about
    every 5 s (so a log shows it is alive; none with --json)."""

    def __init__(self, *, lines: bool = True) -> None:
        self._lines = lines  # off for --json in a pipe: machine output stays clean
        self._time = time.monotonic
        self._start = self._last = self._time()
        self._bar: object | None = None
        self._task: object | None = None

    def __call__(self, done: int, total: int) -> None:
        if err_console.is_terminal:
            if self._bar is None:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TimeElapsedColumn,
                )

                self._bar = Progress("classifying (task, metric, shot) curves", BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=err_console, transient=True)
                self._bar.start()
                self._task = self._bar.add_task("", total=total)
            self._bar.update(self._task, completed=done)  # type: ignore[attr-defined]
            return
        now = self._time()
        if self._lines and (done in (0, total) or now - self._last >= 5.0):
            self._last = now
            err_console.print(f"classifying: {done}/{total} curves ({now - self._start:.0f} s)",
                              markup=False, highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()  # type: ignore[attr-defined]


def _print(df: pd.DataFrame, title: str) -> None:
    """A rich table whose long task names fold onto a second line instead of being cut."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(shown(title)), header_style="bold")
    for col in df.columns:
        text = col in ("task", "metric")
        widest = int(df[col].astype(str).str.len().max()) if len(df) else len(col)
        table.add_column(col, overflow="fold", no_wrap=col in ("class", "shots"),
                         min_width=min(max(widest, len(col)), 14 if col == "task" else 8)
                         if text else None,
                         justify="left" if text or col == "class" else "right")
    for row in df.itertuples(index=False):
        table.add_row(*(Text(shown(v)) for v in row))  # task names are user text, not markup
    if console.is_terminal:
        console.print(table)
    else:  # a pipe or a file has no width: the table whole rather than folded into 80 columns
        from rich.console import Console

        Console(width=max(console.width, 160), no_color=True, highlight=False).print(table)


def emergence(
    csv: Path | None = typer.Option(None, "--csv", help="Long table: one row per (task, scale)."),
    task_col: str = typer.Option("task", "--task-col", help="Column naming the task."),
    metric_col: str | None = typer.Option(
        None, "--metric-col", help="Column naming the metric (optional; groups by it too)."
    ),
    x_col: str = typer.Option("flops", "--x-col", help="Scale column: FLOPs (or N). With "
                              "--store: C, the checkpoint's FLOPs (6 N D where not recorded)."),
    value_col: str = typer.Option("value", "--value-col", help="Metric value column."),
    chance_col: str | None = typer.Option(
        None, "--chance-col", help="Column with each task's chance level (floor)."
    ),
    chance: float | None = typer.Option(None, "--chance", help="One chance level for all."),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Bar to reach (metric units); default the sigmoid midpoint."
    ),
    near_factor: float = typer.Option(10.0, "--near-factor", help="'near' = crossing within "
                                      "this factor of the largest scale tried."),
    n_bootstrap: int | None = typer.Option(
        None, "--bootstrap", min=0, help="Bootstrap refits for intervals (default 200, as in "
        "the library and the dashboard)."),
    lower_is_better: list[str] = typer.Option(
        None, "--lower-is-better", help="A metric where lower is better (a loss) to classify "
        "inverted; repeatable. Losses are left out otherwise."),
    higher_is_better: list[str] = typer.Option(
        None, "--higher-is-better", help="A metric to classify as higher-is-better although "
        "its name reads as lower-is-better or two-sided; repeatable."),
    near_rule: str = typer.Option(
        "shape", "--near-rule", help="How a task below the bar is called near or far: "
        "'shape' (the trajectory-shape model) or 'trend' (the straight trend's crossing)."),
    store: str | None = StoreOption,
    task: str | None = typer.Option(None, "--task", help="With --store: only this task."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG+SVG grid of the fits."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    cache: bool = typer.Option(
        True, "--cache/--no-cache", help="With --store and default options: save each curve's "
        "result in the store's fit cache, which the dashboard's emergence view reads."),
) -> None:
    """Fit a floored sigmoid per task and say past / near / far, with the predicted compute
    at which the threshold is crossed and its 95% bootstrap interval."""
    import pandas as pd

    from scaletrack.analysis.classify import NEAR_RULE, NEAR_RULES, classify_groups
    from scaletrack.analysis.emergence import N_BOOTSTRAP
    from scaletrack.csv_table import read_csv_table

    if n_bootstrap is None:
        n_bootstrap = N_BOOTSTRAP
    shot_col: str | None = None
    version: str | None = None
    if csv is not None:
        df = read_csv_table(csv)
        source = str(csv)
    else:
        from scaletrack.analysis.classify import eval_points

        with store_session(store, create=False) as st:
            version = st.evals_version()  # before the rows: a cache never outdates its rows
            df = eval_points(st.evals(task=task))
            source = st.url
        # one curve per (task, metric, shot count); C: the checkpoint's FLOPs, else 6 N D
        x_col = x_col if x_col in df.columns else "C"
        metric_col, shot_col = metric_col or "metric", "n_shot"
    if df.empty:
        raise DataError(f"no evaluation rows in {source}" + (f" for task {task!r}" if task else ""))
    for col in (task_col, x_col, value_col):
        if col not in df.columns:
            have = ", ".join(map(str, df.columns))
            raise DataError(f"column {col!r} not in {source} (have: {have})")
    if metric_col is not None and metric_col not in df.columns:
        raise ConfigError(f"metric column {metric_col!r} not in {source}")
    if csv is not None:  # a CSV is checked as `fit --csv` checks one: no value dropped silently
        _check_csv_values(df, x_col, value_col, csv)
    df = df.assign(**{x_col: pd.to_numeric(df[x_col], errors="coerce"),
                      value_col: pd.to_numeric(df[value_col], errors="coerce")})
    if near_rule not in NEAR_RULES:
        raise ConfigError(f"--near-rule must be one of {', '.join(NEAR_RULES)}, got {near_rule!r}")
    both = sorted(set(lower_is_better or []) & set(higher_is_better or []))
    if both:
        raise ConfigError(f"metric {both[0]!r} given to both --lower-is-better and "
                          "--higher-is-better")
    directions = {**dict.fromkeys(lower_is_better or [], True),
                  **dict.fromkeys(higher_is_better or [], False)}
    progress = _Progress(lines=not as_json)
    try:
        results = classify_groups(
            df, task_col=task_col, metric_col=metric_col, x_col=x_col, value_col=value_col,
            chance=chance, chance_col=chance_col, threshold=threshold,
            near_factor=near_factor, n_bootstrap=n_bootstrap,
            lower_is_better=directions or None, near_rule=near_rule,
            shot_col=shot_col, progress=progress,
        )
    finally:
        progress.close()
    note = results.direction_note()
    if results.left_out:
        note += ("; name a metric with --lower-is-better or --higher-is-better to classify it "
                 "that way")
    if note and not as_json:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    table = pd.DataFrame([r.to_row() for r in results.values()])
    dashboard_options = (n_bootstrap == N_BOOTSTRAP and chance is None and chance_col is None
                         and threshold is None and near_factor == 10.0 and not directions
                         and near_rule == NEAR_RULE
                         and (task_col, x_col, value_col, metric_col)
                         == ("task", "C", "value", "metric"))
    if cache and version is not None and dashboard_options:
        _save_view_cache(store, version, df, results, complete=task is None, quiet=as_json)
    if plot is not None:
        from scaletrack.analysis.emergence_plots import plot_tasks_emergence
        from scaletrack.analysis.figures import save_figure

        figure = plot_tasks_emergence(df, results, task_col=task_col, x_col=x_col,
                                      value_col=value_col, x_label=x_col,
                                      metric_col=metric_col, shot_col=shot_col)
        written = save_figure(figure, plot)
        if not as_json:
            console.print("wrote " + ", ".join(str(p) for p in written))
    if as_json:
        print_json(table.to_dict(orient="records"))
    else:
        _print(_display(table),
               title=f"emergence vs {x_col} (near = crossing within {near_factor:g}x)")


def _save_view_cache(store: str | None, version: str, points: pd.DataFrame,
                     results: Mapping[tuple[Any, ...], Any], *, complete: bool,
                     quiet: bool) -> None:
    """Save every curve's answer for the dashboard's emergence view (`ui.emergence_data`) in
    the store's fit cache; a store that refuses the write only gets a note."""
    from scaletrack.errors import ScaletrackError
    from scaletrack.ui.emergence_data import cache_emergence_view

    try:
        with store_session(store, create=False) as st:
            saved = cache_emergence_view(st, version, points, results, complete=complete)
    except (ScaletrackError, OSError) as exc:
        err_console.print(f"note: the dashboard's emergence cache was not saved: {exc}",
                          markup=False, highlight=False, soft_wrap=True)
        return
    if saved and not quiet:
        err_console.print(f"saved {saved} curve(s) to the store's fit cache for the dashboard",
                          markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `scaletrack emergence` to the main app."""
    app.command(name="emergence")(emergence)


def _check_csv_values(df: Any, x_col: str, value_col: str, path: Path) -> None:
    """One line naming the first file line whose scale is not a positive number or whose
    value is not a finite number (missing, text, NaN or inf) of plausible size (at most
    METRIC_VALUE_LIMIT: beyond, squares overflow and the fit means nothing)."""
    from scaletrack.analysis.io import check_column
    from scaletrack.csv_table import line_label

    where = line_label(path)
    check_column(df, x_col, positive=True, where=where)
    check_column(df, value_col, limit=METRIC_VALUE_LIMIT, where=where)
