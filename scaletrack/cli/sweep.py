"""CLI: `sweep run|status|validate`, `show RUN` and `demo`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import typer

from scaletrack.cli.common import StoreOption, console, fail, open_store_or_exit, print_table
from scaletrack.errors import ScaletrackError

F = TypeVar("F", bound=Callable[..., Any])

sweep_app = typer.Typer(help="Run, validate and inspect grid sweeps.", no_args_is_help=True)

CURVE_ROWS = 20  # rows of the loss-by-step table in `show`


def user_errors(fn: F) -> F:
    """Turn a ScaletrackError raised by a command into a one-line error and exit code 1.

    Done inside the command (within click's context) so the exit is clean wherever the app
    is invoked from.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ScaletrackError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


@sweep_app.command("run")
@user_errors
def run_command(
    file: Path = typer.Argument(..., help="Grid file (TOML)."),
    store: str | None = StoreOption,
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=1, help="Worker processes (default: the grid's executor)."
    ),
    executor: str | None = typer.Option(
        None, "--executor", help="local or ray (default: the grid's executor)."
    ),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster HOST:PORT for --executor ray (default: the "
        "grid's [executor] address, else $RAY_ADDRESS, else a private local Ray)."
    ),
    checkpoint_dir: Path | None = typer.Option(
        None, "--checkpoint-dir", help="Checkpoint root (default: beside the SQLite file)."
    ),
    stale_after: float = typer.Option(
        60.0,
        "--stale-after",
        min=1.0,
        help="Seconds without a heartbeat before a running cell is taken over.",
    ),
) -> None:
    """Train every cell of FILE that is not finished yet (resumes interrupted cells)."""
    from scaletrack.store import resolve_store_url
    from scaletrack.sweeps.grid import load_grid
    from scaletrack.sweeps.runner import SweepDisplay, run_sweep

    if executor is not None and executor not in ("local", "ray"):
        fail(f"--executor: expected 'local' or 'ray', got {executor!r}")
    grid = load_grid(file)  # validates completely before the store is opened
    try:
        report = run_sweep(
            grid,
            resolve_store_url(store),
            workers=workers,
            executor=executor,
            address=address,
            checkpoint_dir=checkpoint_dir,
            stale_after_s=stale_after,
            display=lambda g, todo, done: SweepDisplay(g, todo, done, console=console),
        )
    except KeyboardInterrupt:  # before or after the executor ran: nothing is half-written
        console.print("[yellow]interrupted[/]: run the same command again to resume")
        raise typer.Exit(130) from None
    counts = {s: report.count(s) for s in ("finished", "diverged", "failed", "crashed",
                                            "interrupted", "skipped")}
    parts = [f"{v} {k}" for k, v in counts.items() if v]
    console.print(
        f"sweep [bold]{report.sweep}[/]: {report.total} cells, {report.already_done} already done"
        + (f", this run: {', '.join(parts)}" if parts else ", nothing to train")
        + f" ({report.wall_s:.1f}s)"
    )
    if report.interrupted:
        console.print("[yellow]interrupted[/]: run the same command again to resume")
        raise typer.Exit(130)
    unfinished = (report.total - report.already_done - counts["finished"] - counts["diverged"]
                  - counts["skipped"])
    if unfinished > 0:
        fail(f"{unfinished} cell(s) did not finish; see `scaletrack sweep status "
             f"{report.sweep}`; run again to resume them")
    if counts["skipped"]:
        console.print(f"{counts['skipped']} cell(s) are held by other live workers; "
                      "left to them", soft_wrap=True)


@sweep_app.command("validate")
@user_errors
def validate_command(
    file: Path = typer.Argument(..., help="Grid file (TOML)."),
) -> None:
    """Check FILE completely (shapes, data, tasks) and list its cells; writes nothing."""
    from scaletrack.sweeps.grid import load_grid

    grid = load_grid(file)
    rows = [
        {"run_key": c.run_key, "role": c.role, "size": c.size_label, "N": c.N, "D": c.D,
         "C": c.C, "seed": c.seed, "lr": c.lr, "steps": c.steps}
        for c in grid.cells
    ]
    print_table(pd.DataFrame(rows), title=f"sweep {grid.name}: cells in schedule order")
    total_c = sum(c.spent_flops for c in grid.cells)  # a branch pays only for its cooldown
    console.print(f"[green]ok[/]: {file} is valid: {len(grid.cells)} cells, "
                  f"{total_c:.3g} FLOPs planned, executor {grid.spec.executor.kind} "
                  f"x{grid.spec.executor.workers}")


@sweep_app.command("status")
@user_errors
def status_command(
    name: str = typer.Argument(..., help="Sweep name."),
    store: str | None = StoreOption,
) -> None:
    """Counts by status and the table of the sweep's cells."""
    from scaletrack.sweeps.runner import flops_spent, status_counts, sweep_runs

    st = open_store_or_exit(store)
    try:
        known = st.sweeps()
        if known.empty or name not in set(known["name"]):
            fail(f"no sweep named {name!r} in {st.url}")
        runs = sweep_runs(st, name)
    finally:
        st.close()
    counts = status_counts(runs)
    console.print(f"sweep [bold]{name}[/]: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    columns = ["run_key", "N", "D", "seed", "lr", "status", "final_loss", "attempts"]
    if (runs["role"] != "cell").any():  # cooldown branches: say which run is which
        columns.insert(1, "role")
        cells = runs[runs["role"] != "trunk"]
        console.print(f"FLOPs trained {flops_spent(runs):.3g} (one from-scratch run per cell: "
                      f"{cells['C'].sum():.3g})")
    if runs["error"].notna().any():
        columns.append("error")
    print_table(runs, title=f"cells of {name}", columns=columns)


@user_errors
def show_command(
    run: str = typer.Argument(..., help="Run key (or a unique prefix of one)."),
    store: str | None = StoreOption,
    plot: Path | None = typer.Option(None, "--plot", help="Write a loss-curve figure here."),
) -> None:
    """A run's config and its loss curves (train and validation loss by step)."""
    from scaletrack.cli.common import to_json

    st = open_store_or_exit(store)
    try:
        record = st.get_run(run)
        if record is None:
            keys = st.runs()["run_key"]
            matches = [k for k in keys if str(k).startswith(run)]
            if len(matches) != 1:
                why = "no run" if not matches else f"{len(matches)} runs"
                fail(f"{why} with key {run!r} in {st.url}")
            record = st.get_run(matches[0])
        metrics = st.metrics([record.run_key], names=["train/loss", "val/loss", "tokens"])
    finally:
        st.close()
    assert record is not None
    loss = f"{record.final_loss:.4f}" if record.final_loss is not None else "-"
    compute = f"{record.C:.3g}" if record.C is not None else "-"
    console.print(f"run [bold]{record.run_key}[/]  sweep {record.sweep}  family {record.family}  "
                  f"status {record.status}  attempts {record.attempts}", soft_wrap=True)
    console.print(f"N {record.N}  N_total {record.N_total}  D {record.D}  C {compute}  "
                  f"seed {record.seed}  lr {record.lr}  final loss {loss}", soft_wrap=True)
    if record.error:
        console.print(f"[red]error[/]: {record.error}", soft_wrap=True, highlight=False)
    typer.echo(to_json(record.config))
    curves = loss_curves(metrics)
    if curves.empty:
        console.print("no metrics logged yet")
    else:
        print_table(_thin(curves, CURVE_ROWS), title="loss by step (nats/token)")
    if plot is not None:
        if curves.empty:
            fail("nothing to plot: the run has no loss metrics")
        plot_curves(curves, plot, title=f"{record.run_key} ({record.sweep})")
        console.print(f"wrote {plot}")


def loss_curves(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wide table step | tokens | train/loss | val/loss from the long metrics frame."""
    if metrics.empty:
        return pd.DataFrame(columns=["step", "tokens", "train/loss", "val/loss"])
    wide = metrics.pivot_table(index="step", columns="name", values="value", aggfunc="last")
    wide = wide.reset_index()
    for col in ("tokens", "train/loss", "val/loss"):
        if col not in wide.columns:
            wide[col] = float("nan")
    out = wide[["step", "tokens", "train/loss", "val/loss"]].copy()
    out["tokens"] = out["tokens"].astype("Float64").round().astype("Int64")
    return out.sort_values("step").reset_index(drop=True)


def _thin(curves: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At most `rows` rows: every row with a val loss preferred, always the last step."""
    with_val = curves[curves["val/loss"].notna()]
    base = with_val if len(with_val) >= 2 else curves
    if len(base) <= rows:
        return base
    idx = sorted({int(round(i * (len(base) - 1) / (rows - 1))) for i in range(rows)})
    return base.iloc[idx]


def plot_curves(curves: pd.DataFrame, path: Path, title: str) -> None:
    """Train and validation loss against step, saved to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    train = curves[curves["train/loss"].notna()]
    val = curves[curves["val/loss"].notna()]
    ax.plot(train["step"], train["train/loss"], label="train", alpha=0.7)
    if not val.empty:
        ax.plot(val["step"], val["val/loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        fail(f"--plot {path}: cannot write the figure ({exc})")
    finally:
        plt.close(fig)


@user_errors
def demo_command(
    out: Path = typer.Option(Path("scaletrack-demo"), "--out", help="Folder for store + figures."),
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="Worker processes."),
) -> None:
    """Train a small grid on the stdlib corpus (~3 min on 2 cores), fit it, plot it."""
    from scaletrack.demo import run_demo

    run_demo(out, workers=workers, console=console)


def register(app: typer.Typer) -> None:
    """Add `sweep`, `show` and `demo` to the main app."""
    app.add_typer(sweep_app, name="sweep")
    app.command("show")(show_command)
    app.command("demo")(demo_command)
