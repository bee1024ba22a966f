"""`scaletrack emergence`: classify tasks as past / near / far of their transition."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from scaletrack.cli.common import StoreOption, console, err_console, print_json, store_session
from scaletrack.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd


def _sci(v: float) -> str:
    if v is None or v != v:  # NaN
        return "-"
    if v == float("inf"):
        return "inf"
    return f"{v:.2g}"


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """Compact text columns for the terminal: task, class, bar (threshold), largest scale
    tried, crossing scale and its 95% interval, steepness k per decade, emergent."""
    import pandas as pd

    task = table["task"].astype(str)
    if table["metric"].nunique() > 1:
        task = task + " [" + table["metric"].astype(str) + "]"
    return pd.DataFrame({
        "task": task,
        "class": table["label"],
        "bar": table["threshold"].map(lambda v: f"{v:.3g}"),
        "max x": table["x_max"].map(_sci),
        "crossing": table["crossing"].map(_sci),
        "95% CI": [f"{_sci(a)}-{_sci(b)}"
                   for a, b in zip(table["crossing_lo"], table["crossing_hi"], strict=True)],
        "k": table["suddenness"].map(lambda v: f"{v:.2g}"),
        "emerg.": table["emergent"].map(lambda v: "yes" if v else "no"),
    })


def _print(df: pd.DataFrame, title: str) -> None:
    """A rich table whose long task names fold onto a second line instead of being cut."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), header_style="bold")
    for col in df.columns:
        table.add_column(col, overflow="fold", no_wrap=col != "task",
                         justify="left" if col in ("task", "class") else "right")
    for row in df.itertuples(index=False):
        table.add_row(*(Text(str(v)) for v in row))  # task names are user text, not markup
    console.print(table)


def emergence(
    csv: Path | None = typer.Option(None, "--csv", help="Long table: one row per (task, scale)."),
    task_col: str = typer.Option("task", "--task-col", help="Column naming the task."),
    metric_col: str | None = typer.Option(
        None, "--metric-col", help="Column naming the metric (optional; groups by it too)."
    ),
    x_col: str = typer.Option("flops", "--x-col", help="Scale column: FLOPs (or N)."),
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
    n_bootstrap: int = typer.Option(200, "--bootstrap", min=0,
                                    help="Bootstrap refits for intervals."),
    lower_is_better: list[str] = typer.Option(
        None, "--lower-is-better", help="A metric where lower is better (a loss) to classify "
        "inverted; repeatable. Losses are refused otherwise."),
    store: str | None = StoreOption,
    task: str | None = typer.Option(None, "--task", help="With --store: only this task."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG+SVG grid of the fits."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Fit a floored sigmoid per task and say past / near / far, with the predicted compute
    at which the threshold is crossed and its 95% bootstrap interval."""
    import pandas as pd

    from scaletrack.analysis.classify import classify_groups
    from scaletrack.store.csv_import import read_csv_table

    if csv is not None:
        df = read_csv_table(csv)
        source = str(csv)
    else:
        with store_session(store, create=False) as st:
            df = st.evals(task=task)
            source = st.url
        if x_col not in df.columns:
            x_col = "flops"
        metric_col = metric_col or "metric"
        if not df.empty and df["n_shot"].dropna().nunique() > 1:
            # imported results at several shot counts: one curve per task x metric x shots
            shots = df["n_shot"].map(lambda k: "" if pd.isna(k) else f" {int(k)}-shot")
            df = df.assign(metric=df["metric"].astype(str) + shots)
        if x_col == "flops" and not df.empty:
            # checkpoints registered without FLOPs: use C = 6 N D
            approx = 6.0 * df["N"].astype(float) * df["tokens"].astype(float)
            df = df.assign(flops=df["flops"].astype(float).fillna(approx))
    if df.empty:
        raise DataError(f"no evaluation rows in {source}" + (f" for task {task!r}" if task else ""))
    for col in (task_col, x_col, value_col):
        if col not in df.columns:
            have = ", ".join(map(str, df.columns))
            raise DataError(f"column {col!r} not in {source} (have: {have})")
    if metric_col is not None and metric_col not in df.columns:
        raise ConfigError(f"metric column {metric_col!r} not in {source}")
    df = df.assign(**{x_col: pd.to_numeric(df[x_col], errors="coerce"),
                      value_col: pd.to_numeric(df[value_col], errors="coerce")})
    results = classify_groups(
        df, task_col=task_col, metric_col=metric_col, x_col=x_col, value_col=value_col,
        chance=chance, chance_col=chance_col, threshold=threshold,
        near_factor=near_factor, n_bootstrap=n_bootstrap,
        lower_is_better=dict.fromkeys(lower_is_better or [], True) or None,
    )
    left_out = results.left_out
    if left_out and not as_json:
        shown = ", ".join(f"{t}/{m}" for t, m in left_out[:5])
        more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
        err_console.print(f"note: left out {len(left_out)} loss-like metric(s) ({shown}{more}); "
                          "name them with --lower-is-better to classify them inverted",
                          markup=False, highlight=False, soft_wrap=True)
    table = pd.DataFrame([r.to_row() for r in results.values()])
    if plot is not None:
        from scaletrack.analysis.emergence_plots import plot_tasks_emergence

        panels = {name: r for (name, _metric), r in results.items()}
        written = plot_tasks_emergence(df, panels, plot, task_col=task_col, x_col=x_col,
                                       value_col=value_col, x_label=x_col)
        if not as_json:
            console.print("wrote " + ", ".join(str(p) for p in written))
    if as_json:
        print_json(table.to_dict(orient="records"))
    else:
        _print(_display(table),
               title=f"emergence vs {x_col} (near = crossing within {near_factor:g}x)")


def register(app: typer.Typer) -> None:
    """Add `scaletrack emergence` to the main app."""
    app.command(name="emergence")(emergence)
