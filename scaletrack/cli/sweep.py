"""CLI: `sweep run|status|validate`, `show RUN` and `demo`."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import typer

from scaletrack.cli.common import (
    StoreOption,
    console,
    echo,
    fail,
    literal,
    open_store_or_exit,
    print_table,
    runs_for_display,
    store_session,
    to_json,
)
from scaletrack.cli.runs import page_footer
from scaletrack.errors import ConfigError, DataError
from scaletrack.number_format import MISSING, fmt_number
from scaletrack.safe_text import LINE_BREAKS

sweep_app = typer.Typer(help="Run, validate and inspect grid sweeps.", no_args_is_help=True)

CURVE_ROWS = 20  # rows of the loss-by-step table in `show`
PAGE_ROWS = 50  # cells listed by `sweep status` by default
UNFINISHED_SHOWN = 5  # unfinished cells named in `sweep run`'s error line


@sweep_app.command("run")
def run_command(
    file: Path = typer.Argument(..., help="Grid file (TOML)."),
    store: str | None = StoreOption,
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=1, help="Worker processes (default: the grid's executor)."
    ),
    executor: str | None = typer.Option(
        None, "--executor", help="local, ray or slurm (default: the grid's executor)."
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
    force: bool = typer.Option(False, "--force", help="Run cells estimated to train longer "
                               "than the time limit (memory limits still apply)."),
    until_width: str | None = typer.Option(None, "--until-width", help="Adaptive: train cells "
                                           "in the planner's order, refit after each, stop once "
                                           "the 95 % band at the target is this narrow (2%)."),
    target_compute: str | None = typer.Option(None, "--target-compute", help="Adaptive: FLOPs "
                                              "of the target (default: the grid's [plan])."),
    budget: str | None = typer.Option(None, "--budget", help="Adaptive: FLOPs it may spend "
                                      "(default: the grid's [plan] budget, else every cell)."),
) -> None:
    """Train every cell of FILE that is not finished yet (resumes interrupted cells); with
    --until-width or a [plan] until_width, adaptively (see `scaletrack plan`)."""
    from scaletrack.store import resolve_store_url
    from scaletrack.sweeps.runner import SweepDisplay
    from scaletrack.workflows import load_grid, run_sweep

    if executor is not None and executor not in ("local", "ray", "slurm"):
        fail(f"--executor: expected 'local', 'ray' or 'slurm', got {executor!r}")
    grid = load_grid(file)  # validates completely before the store is opened
    _check_budget(grid, force)
    from scaletrack.cli.plan import adaptive_settings, run_adaptive_command

    adaptive = adaptive_settings(grid, until_width, target_compute, budget)
    terminated = False

    def on_sigterm(_signum: int, _frame: Any) -> None:
        # `scancel`, `docker stop`, `kill`: stop like Ctrl-C (checkpoint, release), exit 143
        nonlocal terminated
        terminated = True
        raise KeyboardInterrupt

    def train(grid: Any) -> Any:
        return run_sweep(
            grid,
            resolve_store_url(store),
            workers=workers,
            executor=executor,
            address=address,
            checkpoint_dir=checkpoint_dir,
            stale_after_s=stale_after,
            display=lambda g, todo, done: SweepDisplay(g, todo, done, console=console),
        )

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if adaptive is not None:  # cell by cell in the planner's order (scaletrack.adaptive)
            return run_adaptive_command(grid, adaptive, resolve_store_url(store), train)
        report = train(grid)
    except KeyboardInterrupt:  # before or after the executor ran: nothing is half-written
        console.print("[yellow]interrupted[/]: run the same command again to resume")
        raise typer.Exit(143 if terminated else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = {s: report.count(s) for s in ("finished", "diverged", "failed", "crashed",
                                            "interrupted", "skipped")}
    parts = [f"{v} {k}" for k, v in counts.items() if v]
    console.print(
        f"sweep [bold]{literal(report.sweep)}[/]: {report.total} cells, "
        f"{report.already_done} already done"
        + (f", this run: {', '.join(parts)}" if parts else ", nothing to train")
        + f" ({report.wall_s:.1f}s)"
    )
    if report.interrupted:
        console.print("[yellow]interrupted[/]: run the same command again to resume")
        raise typer.Exit(143 if terminated else 130)
    if report.store_error:  # a full disk, an I/O error: that is the one error to report
        fail(f"{report.store_error}; {len(report.unfinished)} of {report.total} cells not "
             "finished (fix the store, then run again to resume)")
    if report.unfinished:  # held by live workers elsewhere, failed or crashed
        shown = ", ".join(report.unfinished[:UNFINISHED_SHOWN])
        more = len(report.unfinished) - UNFINISHED_SHOWN
        fail(f"{len(report.unfinished)} of {report.total} cells are not finished: {shown}"
             + (f" and {more} more" if more > 0 else "")
             + f"; see `scaletrack sweep status {report.sweep}`; run again to resume them")


@sweep_app.command("validate")
def validate_command(
    file: Path = typer.Argument(..., help="Grid file (TOML)."),
    force: bool = typer.Option(False, "--force", help="Accept cells estimated to train longer "
                               "than the time limit (memory limits still apply)."),
) -> None:
    """Check FILE completely (shapes, data, tasks, memory and time per cell) and list its
    cells; writes nothing."""
    import pandas as pd

    from scaletrack.workflows import load_grid

    grid = load_grid(file)
    _check_budget(grid, force)
    rows = [
        {"run_key": c.run_key, "role": c.role, "size": c.size_label, "N": c.N, "D": c.D,
         "C": c.C, "seed": c.seed, "lr": c.lr, "steps": c.steps}
        for c in grid.cells
    ]
    print_table(pd.DataFrame(rows), title=f"sweep {grid.name}: cells in schedule order")
    total_c = sum(c.spent_flops for c in grid.cells)  # a branch pays only for its cooldown
    from scaletrack.cli.fit import counting_note

    families = {"command" if c.command is not None else c.family for c in grid.cells}
    console.print(f"counting: {counting_note(families)}", markup=False, highlight=False,
                  soft_wrap=True)
    console.print(f"[green]ok[/]: {literal(file)} is valid: {len(grid.cells)} cells, "
                  f"{fmt_number(total_c)} FLOPs planned, executor {grid.spec.executor.kind} "
                  f"x{grid.spec.executor.workers}")


def _check_budget(grid: Any, force: bool) -> None:
    """Refuse cells that cannot fit in memory or (without --force) train too long."""
    from scaletrack.sweeps.budget import check_budget

    for warning in check_budget(grid.cells, source=grid.source, force=force):
        console.print(f"[yellow]warning[/]: {literal(warning)}", soft_wrap=True)


@sweep_app.command("status")
def status_command(
    name: str = typer.Argument(..., help="Sweep name."),
    store: str | None = StoreOption,
    limit: int = typer.Option(PAGE_ROWS, "--limit", min=0, help="Cells to list (0 = all)."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many cells first."),
) -> None:
    """Counts by status (aggregated in the database) and a page of the sweep's cells; for
    cooldown branches, the FLOPs actually trained."""
    from scaletrack.sweeps.runner import flops_spent

    st = open_store_or_exit(store, create=False)
    try:
        known = st.sweeps()
        if known.empty or name not in set(known["name"]):
            fail(f"no sweep named {name!r} in {st.url}")
        counts = st.run_status_counts(sweep=name)
        runs = st.runs(sweep=name, order="compute", limit=limit or None, offset=offset)
        trunks = st.runs(sweep=name, role="trunk", limit=1)
        branched = None if trunks.empty else st.runs(sweep=name)
        from scaletrack.cli.slurm import slurm_task_table

        slurm = slurm_task_table(st, name)
        from scaletrack.adaptive import decisions

        decided = decisions(st, name)  # an adaptive run's steps, recorded in the fits table
    finally:
        st.close()
    console.print(f"sweep [bold]{literal(name)}[/]: "
                  + ", ".join(f"{v} {k}" for k, v in counts.items()), highlight=False)
    columns = ["run", "N", "D", "C", "seed", "lr", "status", "loss", "tries"]
    if branched is not None:  # cooldown branches: say which run is which
        columns.insert(1, "role")
        cells = branched[branched["role"] != "trunk"]
        console.print(f"FLOPs trained {fmt_number(flops_spent(branched))} (one from-scratch "
                      f"run per cell: {fmt_number(cells['C'].sum())})")
    if runs["error"].notna().any():
        columns.append("error")
    print_table(runs_for_display(runs), title=f"cells of {name}", columns=columns)
    footer = page_footer(len(runs), offset, sum(counts.values()), "cells")
    if footer:
        echo(footer)
    if decided:
        from scaletrack.cli.plan import print_decisions

        print_decisions(decided, name)
    if not slurm.empty:
        from scaletrack.cli.slurm import print_slurm_tasks

        print_slurm_tasks(slurm, name)


def show_command(
    run: str = typer.Argument(..., help="Run key (or a unique prefix of one)."),
    store: str | None = StoreOption,
    plot: Path | None = typer.Option(None, "--plot", help="Write a loss-curve figure here."),
) -> None:
    """A run's config and its loss curves (train and validation loss by step)."""
    from scaletrack.analysis.curves import (
        CURVE_METRICS,
        loss_curves,
        plot_loss_curves,
        thin_curves,
    )

    with store_session(store, create=False) as st:
        record = st.get_run(run)
        if record is None:
            matches = st.find_run_keys(run, limit=2)
            if len(matches) != 1:
                why = "no run" if not matches else "more than one run"
                raise ConfigError(f"{why} with key {run!r} in {st.url}")
            record = st.get_run(matches[0])
        assert record is not None
        metrics = st.metrics([record.run_key], names=list(CURVE_METRICS))
    console.print(f"run [bold]{record.run_key}[/]  sweep {literal(record.sweep)}  "
                  f"family {literal(record.family)}  "
                  f"status {record.status}  attempts {record.attempts}", soft_wrap=True,
                  highlight=False)
    console.print(f"N {fmt_number(record.N)}  N_total {fmt_number(record.N_total)}  "
                  f"D {fmt_number(record.D)}  C {fmt_number(record.C)}  "
                  f"seed {MISSING if record.seed is None else record.seed}  "
                  f"lr {fmt_number(record.lr)}  final loss {fmt_number(record.final_loss)}",
                  soft_wrap=True)
    from scaletrack.cli.fit import counting_note

    console.print(f"counting: {counting_note([record.family])}", markup=False,
                  highlight=False, soft_wrap=True)
    if record.note:
        console.print(f"note: {record.note}", markup=False, highlight=False, soft_wrap=True)
    if record.error:
        console.print(f"[red]error[/]: {literal(record.error, keep=LINE_BREAKS)}",
                      soft_wrap=True, highlight=False)
    typer.echo(to_json(record.config))
    curves = loss_curves(metrics)
    if curves.empty:
        console.print("no metrics logged yet")
    else:
        print_table(thin_curves(curves, CURVE_ROWS), title="loss by step (nats/token)")
    if plot is not None:
        if curves.empty:
            raise DataError("nothing to plot: the run has no loss metrics")
        from scaletrack.analysis.figures import save_figure

        figure = plot_loss_curves(curves, title=f"{record.run_key} ({record.sweep})")
        written = save_figure(figure, plot)
        console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)


def demo_command(
    out: Path = typer.Option(Path("scaletrack-demo"), "--out", help="Folder for store + figures."),
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="Worker processes."),
) -> None:
    """Train a small grid on the Zipf-words corpus (~3 min on 2 cores), fit it, plot it."""
    from scaletrack.demo import run_demo

    run_demo(out, workers=workers, console=console)


def register(app: typer.Typer) -> None:
    """Add `sweep`, `show` and `demo` to the main app."""
    from scaletrack.cli.slurm import cancel_command

    sweep_app.command("cancel")(cancel_command)
    app.add_typer(sweep_app, name="sweep")
    app.command("show")(show_command)
    app.command("demo")(demo_command)
