"""`sweep run`: validate a grid, record its cells in the store, train those not yet done.

Packing: where it pays (``[train] pack``: "auto" = on CUDA, where the stacked trainer is
2-3x faster; on the CPU it measured no faster, so only "always" packs there), cells that share
everything but seed and lr — seeds x lrs of one size and budget, or the trunks of one size —
go to one worker as a group and train stacked (sweeps.multi). Cooldown branches and LSTMs are
never packed. Only the local executor packs.

Order of work: the grid is validated and expanded completely before the store is opened (a
rejected grid writes nothing); then the sweep is upserted and `ensure_run` records every cell.
Finished and diverged cells are skipped; pending, failed (crashed or interrupted) and running
cells go to the executor, whose workers claim them in the store — so a cell held by a live
worker elsewhere is left alone and a stale one is taken over and resumed from its checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from scaletrack.number_format import fmt_number
from scaletrack.store import RUN_STATUSES, Store, StoreError, resolve_store_url, sqlite_file
from scaletrack.sweeps.executors import (
    CellDone,
    CellProgress,
    CellStarted,
    CellTask,
    CheckpointHook,
    EventSink,
    Executor,
    ExecutorNote,
    SweepEvent,
    SweepJob,
    WorkerLost,
)
from scaletrack.sweeps.executors.registry import make_executor
from scaletrack.sweeps.grid import Cell, Grid
from scaletrack.sweeps.liveness import holder_is_dead

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

DONE_STATUSES = ("finished", "diverged")
CHECKPOINT_DIRNAME = "scaletrack-checkpoints"


def default_checkpoint_root(store_url: str) -> Path:
    """Beside the SQLite file (<dir>/scaletrack-checkpoints), else ./scaletrack-checkpoints."""
    try:
        db_file = sqlite_file(store_url)
    except StoreError:  # an in-memory or odd URL just gets the working-directory default
        db_file = None
    return db_file.parent / CHECKPOINT_DIRNAME if db_file else Path.cwd() / CHECKPOINT_DIRNAME


def cell_task(cell: Cell) -> CellTask:
    """The picklable form of a cell that executors send to workers."""
    return CellTask(
        run_key=cell.run_key,
        label=cell.label,
        config=cell.config.to_dict(),
        N=cell.N,
        D=cell.D,
        C=cell.C,
        steps=cell.steps,
        command=cell.command,
        workdir=cell.workdir,
        after=(cell.parent_run_key, int(cell.branch_step))
        if cell.parent_run_key is not None and cell.branch_step else None,
    )


_MEMBER_FIELDS = ("seed", "lr", "weight_decay", "grad_clip")


def should_pack(pack: str, device: str, executor: str) -> bool:
    """Whether cells are packed: "always", or "auto" on CUDA; never "never", never off-local."""
    if executor != "local" or pack == "never":
        return False
    return pack == "always" or str(device).startswith("cuda")


def pack_tasks(cells: Sequence[Cell]) -> list[CellTask]:
    """Tasks for `cells` in their order, same-shape cells (all but seed/lr) as one group task
    at the place of its first member; branches, command cells and non-GPT cells stay single."""
    groups: dict[str, list[Cell]] = {}
    order: list[str | Cell] = []
    for cell in cells:
        if cell.role == "branch" or cell.family != "gpt" or cell.command is not None:
            order.append(cell)
            continue
        shared = {k: v for k, v in cell.config.to_dict().items() if k not in _MEMBER_FIELDS}
        key = json.dumps([cell.role, shared], sort_keys=True)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(cell)
    tasks: list[CellTask] = []
    for item in order:
        if isinstance(item, Cell):
            tasks.append(cell_task(item))
            continue
        members = groups[item]
        if len(members) == 1:
            tasks.append(cell_task(members[0]))
            continue
        first = cell_task(members[0])
        tasks.append(replace(first, label=f"{len(members)} packed: {first.label}",
                             members=tuple(cell_task(m) for m in members)))
    return tasks


@dataclass(frozen=True)
class SweepReport:
    """What one `run_sweep` call did."""

    sweep: str
    total: int  # cells in the grid
    already_done: int  # finished or diverged before this call
    results: tuple[CellDone, ...]  # one per cell handed to the executor that came back
    lost_workers: int
    interrupted: bool
    wall_s: float
    notes: tuple[str, ...] = ()
    # cells of the grid not finished/diverged after this call: "run_key (status[, holder])"
    unfinished: tuple[str, ...] = ()
    store_error: str | None = None  # the store failed (full disk...): its one-line error

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def trained(self) -> int:
        """Cells that trained in this call (whatever their outcome)."""
        return sum(1 for r in self.results if r.status != "skipped")

    @property
    def ok(self) -> bool:
        """True when every cell of the grid is now finished or diverged."""
        return not self.unfinished and not self.interrupted


@dataclass
class _Collector:
    """Collects events for the report and forwards them to a display."""

    forward: EventSink | None
    results: list[CellDone] = field(default_factory=list)
    lost: int = 0
    notes: list[str] = field(default_factory=list)
    store_error: str | None = None

    after_cell: Callable[[], list[str]] | None = None  # run after each finished cell

    def __call__(self, event: SweepEvent) -> None:
        if isinstance(event, CellDone):
            self.results.append(event)
        elif isinstance(event, WorkerLost):
            self.lost += 1
        elif isinstance(event, ExecutorNote):
            self.notes.append(event.message)
            if event.store_error and self.store_error is None:
                self.store_error = event.message
        if self.forward is not None:
            self.forward(event)
        if (
            isinstance(event, CellDone)
            and event.status == "finished"
            and self.after_cell is not None
        ):
            for line in self.after_cell():
                self(ExecutorNote(line))


def prepare_sweep(grid: Grid, store: StoreLike) -> tuple[list[Cell], int]:
    """Upsert the sweep, ensure a run row per cell; return (cells to run, cells already done)."""
    store.upsert_sweep(grid.name, grid.stored_spec())
    todo: list[Cell] = []
    done = 0
    for cell in grid.cells:
        run = store.ensure_run(cell.record())
        if run.status in DONE_STATUSES:
            done += 1
        else:
            todo.append(cell)
    return todo, done


def run_sweep(
    grid: Grid,
    store_url: str | None = None,
    *,
    workers: int | None = None,
    executor: str | Executor | None = None,
    address: str | None = None,
    checkpoint_dir: str | Path | None = None,
    stale_after_s: float = 60.0,
    display: Callable[[Grid, list[Cell], int], Any] | None = None,
    after_checkpoint: CheckpointHook | None = None,
    after_cell: Callable[[str], Callable[[], list[str]]] | None = None,
) -> SweepReport:
    """Train every cell of `grid` that is not finished; resumable, idempotent.

    `workers`, `executor` and `address` (a Ray cluster) override the grid's [executor] table.
    `display(grid, todo, done)` returns a context manager that is also an event sink (see
    `SweepDisplay`); None = silent.

    Hooks from the layers above (`scaletrack.run_sweep` supplies both): `after_checkpoint`
    runs in the worker on each checkpoint a cell registers (see `SweepJob.after_checkpoint`);
    `after_cell(store_url)` returns a callable run in this process after each finished cell,
    whose lines are reported as notes (e.g. ideas re-checked on the new checkpoint).
    Without them, cells train and nothing else happens.
    """
    t0 = time.monotonic()
    url = resolve_store_url(store_url)
    spec = grid.spec.executor
    n_workers = int(workers) if workers is not None else spec.workers
    if isinstance(executor, str) or executor is None:
        executor = make_executor(
            executor or spec.kind, workers=n_workers, address=address or spec.address, spec=spec
        )
    root = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_root(url)
    preflight = getattr(executor, "preflight", None)
    if preflight is not None:  # refuse before the store is touched (e.g. SQLite on Slurm)
        preflight(url)

    with Store.open(url) as store:
        todo, already_done = prepare_sweep(grid, store)

    packed = bool(todo) and should_pack(grid.spec.train.pack, todo[0].config.device,
                                        getattr(executor, "name", ""))
    job = SweepJob(
        sweep=grid.name,
        store_url=url,
        checkpoint_root=str(root.expanduser().resolve()),
        cells=tuple(pack_tasks(todo) if packed else (cell_task(c) for c in todo)),
        workers=n_workers,
        stale_after_s=stale_after_s,
        eval_tasks=tuple(grid.spec.eval.tasks),
        eval_on=grid.spec.eval.tasks_on,
        after_checkpoint=after_checkpoint,
    )
    collector = _Collector(None)
    if after_cell is not None:
        collector.after_cell = after_cell(url)
    interrupted = False
    if todo:
        if display is not None:
            with display(grid, todo, already_done) as sink:
                collector.forward = sink
                interrupted = executor.run(job, collector).interrupted
        else:
            interrupted = executor.run(job, collector).interrupted
    unfinished: tuple[str, ...] = ()
    if todo:
        try:
            with Store.open(url) as store:
                unfinished = unfinished_cells(store, [c.run_key for c in todo])
        except StoreError as exc:  # the store fails to read now: count what the workers said
            collector.store_error = collector.store_error or str(exc)
            done = {r.run_key for r in collector.results if r.status in DONE_STATUSES}
            unfinished = tuple(f"{c.run_key} (unknown)" for c in todo if c.run_key not in done)
    return SweepReport(
        sweep=grid.name,
        total=len(grid.cells),
        already_done=already_done,
        results=tuple(collector.results),
        lost_workers=collector.lost,
        interrupted=interrupted,
        wall_s=time.monotonic() - t0,
        notes=tuple(collector.notes),
        unfinished=unfinished,
        store_error=collector.store_error,
    )


def unfinished_cells(store: StoreLike, run_keys: Sequence[str]) -> tuple[str, ...]:
    """The cells among `run_keys` that are not finished or diverged, as the store says now:
    "run_key (status)" or "run_key (running, held by WORKER)". A cell still marked running by
    a worker of this host that is gone (its store write failed, so did its release) is
    released now that every worker has exited."""
    out = []
    for key in run_keys:
        run = store.get_run(key)
        if (run is not None and run.status == "running"
                and holder_is_dead(run.worker, run.heartbeat_at)
                and store.release_after_failure(key, run.worker)):
            run = store.get_run(key)
        if run is None:
            out.append(f"{key} (missing)")
        elif run.status == "running":
            out.append(f"{key} (running, held by {run.worker})")
        elif run.status not in DONE_STATUSES:
            out.append(f"{key} ({run.status})")
    return tuple(out)


def sweep_runs(store: StoreLike, name: str) -> pd.DataFrame:
    """The sweep's runs as a table: key, family, N, D, C, seed, lr, status, loss, attempts."""
    runs = store.runs(sweep=name)
    cols = ["run_key", "family", "role", "N", "D", "C", "seed", "lr", "status", "final_loss",
            "attempts", "error", "parent_run_key", "branch_step", "config"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    return runs.sort_values(["C", "N", "D", "seed", "lr"], kind="stable")[cols].reset_index(
        drop=True
    )


def flops_spent(runs: pd.DataFrame) -> float:
    """Training FLOPs the runs themselves spent (a branch pays only for its cooldown; its C,
    which fits use, is that of a from-scratch run of its budget)."""
    total = 0.0
    for row in runs.itertuples(index=False):
        if pd.isna(row.C) or pd.isna(row.D) or not row.D:
            continue
        start = 0 if pd.isna(row.branch_step) else int(row.branch_step)
        cfg = row.config if isinstance(row.config, dict) else {}
        tps = int(cfg.get("batch_size", 1)) * int(cfg.get("context", 1))
        steps = max(1, -(-int(row.D) // tps))
        total += float(row.C) * (steps - start) / steps
    return total


def status_counts(runs: pd.DataFrame) -> dict[str, int]:
    """Number of runs in each status (every status listed, zeros included)."""
    counts = runs["status"].value_counts() if not runs.empty else pd.Series(dtype="int64")
    return {s: int(counts.get(s, 0)) for s in RUN_STATUSES}


# ----------------------------------------------------------------------------- display


class SweepDisplay:
    """Rich progress: one bar for the sweep, one per running cell, a table of finished cells.

    On a terminal this is a live view; otherwise (logs, tests) it prints one line per event
    that matters (a cell started, finished, failed; a worker lost).
    """

    def __init__(self, grid: Grid, todo: Sequence[Cell], already_done: int,
                 console: Any = None, max_rows: int = 12) -> None:
        self.console = console or Console()
        self.grid = grid
        self.cells = {c.run_key: c for c in todo}
        self.already_done = already_done
        self.max_rows = max_rows
        self.live_mode = self.console.is_terminal
        self._live: Any = None
        self._progress: Any = None
        self._overall: Any = None
        self._bars: dict[str, Any] = {}
        self._finished: list[CellDone] = []

    # context manager -------------------------------------------------------------------
    def __enter__(self) -> SweepDisplay:
        total = len(self.cells) + self.already_done
        trunks = sum(1 for c in self.grid.cells if c.role == "trunk")
        what = (f"{total} runs ({total - trunks} cells + {trunks} cooldown trunks)" if trunks
                else f"{total} cell{'' if total == 1 else 's'}")
        self.console.print(
            f"sweep [bold]{escape(self.grid.name)}[/]: {what}, "
            f"{self.already_done} already done, "
            f"{len(self.cells)} to run"
        )
        if self.live_mode:
            from rich.live import Live

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._overall = self._progress.add_task(
                f"[bold]{escape(self.grid.name)}", total=total, completed=self.already_done
            )
            self._live = Live(self._render(), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    # events -------------------------------------------------------------------------------
    def __call__(self, event: SweepEvent) -> None:
        cell = self.cells.get(getattr(event, "run_key", None) or "")
        if isinstance(event, CellStarted):
            self._start(event, cell)
        elif isinstance(event, CellProgress):
            bar = self._bars.get(event.run_key)
            if bar is not None and self._progress is not None:
                self._progress.update(bar, completed=event.step, total=event.total)
        elif isinstance(event, CellDone):
            self._done(event, cell)
        elif isinstance(event, WorkerLost):
            where = f" while training {event.run_key}" if event.run_key else ""
            self._line(f"[red]worker {escape(event.worker)} died[/] (exit code {event.exitcode})"
                       f"{escape(where)}")
        elif isinstance(event, ExecutorNote):
            self._line(f"[yellow]{escape(event.message)}[/]")
        if self._live is not None:
            self._live.update(self._render())

    def _start(self, event: CellStarted, cell: Cell | None) -> None:
        label = _label(cell, event.run_key)
        if self._progress is not None:
            self._bars[event.run_key] = self._progress.add_task(
                f"  {escape(label)}", total=cell.steps if cell else None
            )
        else:
            self._line(escape(f"start  {event.run_key}  {label}  ({event.worker})"))

    def _done(self, event: CellDone, cell: Cell | None) -> None:
        bar = self._bars.pop(event.run_key, None)
        if bar is not None and self._progress is not None:
            self._progress.remove_task(bar)
        if event.status == "skipped":
            self._line(escape(f"skip   {event.run_key}  {_label(cell, event.run_key)}: "
                              f"{event.message}"))
            return
        self._finished.append(event)
        if self._progress is not None and self._overall is not None and event.status in (
            "finished", "diverged"
        ):
            self._progress.advance(self._overall)
        loss = fmt_number(event.final_loss)
        style = {"finished": "green", "diverged": "yellow"}.get(event.status, "red")
        extra = f": {event.message}" if event.message else ""
        for task, err in event.eval_errors.items():
            extra += f"; eval {task}: {err}"
        text = (f"[{style}]{event.status:<8}[/] "
                + escape(f"{event.run_key}  {_label(cell, event.run_key)}  "
                         f"loss {loss}  {event.wall_s:.1f}s{extra}"))
        if self._live is None or event.status not in ("finished", "diverged"):
            self._line(text)

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def _render(self) -> Any:
        table = Table(title="finished cells", header_style="bold", title_justify="left")
        for col, justify in (("run", "left"), ("cell", "left"), ("N", "right"), ("D", "right"),
                             ("status", "left"), ("final loss", "right"), ("wall s", "right")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for ev in self._finished[-self.max_rows:]:
            cell = self.cells.get(ev.run_key)
            table.add_row(
                ev.run_key,
                escape(cell.size_label) if cell else "?",
                fmt_number(cell.N if cell else None),
                fmt_number(cell.D if cell else None),
                ev.status,
                fmt_number(ev.final_loss),
                f"{ev.wall_s:.1f}",
            )
        parts: list[Any] = [self._progress] if self._progress is not None else []
        if self._finished:
            parts.append(table)
        return Group(*parts)


def _label(cell: Cell | None, run_key: str) -> str:
    if cell is None:
        return run_key
    return cell.label
