"""`scaletrack demo`: a small real sweep, end to end, in a few minutes on two CPU cores.

Steps, each a plain function so they can be run (and rewired) one at a time:

1. `register_idea_step` — register a "not yet" idea (validation loss below a bar that only
   the largest cell clears), so the sweep re-checks it each time a larger checkpoint appears.
2. `train_step` — write the demo grid (4 GPT sizes x 5 token budgets as cooldown branches,
   on the synthetic Zipf-words corpus) into DIR, run it into DIR/scaletrack.db (resumable: a
   second call trains nothing); `floor_step` computes that corpus's best possible validation
   loss, the truth the fit's E should find.
3. `fit_step` — fit L(N, D) (Chinchilla form) and L(C) to the finished cells; store the fits.
4. `plot_step` — loss vs compute with the compute law, its extrapolation and bands, and
   the summary's predictions at 10x the largest compute marked on it, into DIR.
5. `ideas_step` — the idea's attempts, smallest checkpoint first, and its timeline plot.

A fit that cannot be made (too few finished cells, a degenerate surface) is reported in one
line and the other steps still run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.transforms import offset_copy
from rich.markup import escape
from rich.table import Table

from scaletrack.analysis.backtesting import backtest
from scaletrack.analysis.chinchilla import fit_chinchilla
from scaletrack.analysis.figures import save_figure
from scaletrack.analysis.isoflop import compute_frontier
from scaletrack.analysis.optimal import compute_optimal
from scaletrack.analysis.plots import FIT_COLOR, plot_loss_vs_compute
from scaletrack.analysis.powerlaw import fit_compute_law
from scaletrack.analysis.status import degenerate_message
from scaletrack.errors import ConfigError, ScaletrackError
from scaletrack.evals.ideas import add_idea, attempts_table, rerun_due
from scaletrack.evals.ideas_table import plot_ideas
from scaletrack.models.data import eval_batches, load_tokens
from scaletrack.models.zipf_words import BUILTIN
from scaletrack.number_format import fmt_number
from scaletrack.store import Store
from scaletrack.store.fit_points import sweep_points
from scaletrack.sweeps.runner import SweepDisplay, flops_spent
from scaletrack.workflows import load_grid, run_sweep

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from scaletrack.store.protocol import StoreLike

DEMO_GRID_TOML = """\
# The `scaletrack demo` grid: 4 GPT sizes x 5 token budgets on the Zipf-words corpus, a
# synthetic text of independent Zipf-distributed words whose best possible loss is known
# exactly, so the Chinchilla fit's E can be checked against the truth.
# Cooldown branches: one warmup + constant-lr trunk per size, each budget a 1-sqrt cooldown
# branching off it, so the 20 cells cost 0.6x the FLOPs of 20 cosine runs. Sized for about
# 3 minutes on 2 CPU cores.
name = "demo"
description = "4 GPT sizes x 5 token budgets (cooldown branches) on the Zipf-words corpus"

[data]
corpus = "zipf-words"
context = 32

[model]
family = "gpt"
sizes = [
  { n_layer = 1, n_head = 2, d_model = 16 },
  { n_layer = 1, n_head = 2, d_model = 32 },
  { n_layer = 2, n_head = 2, d_model = 48 },
  { n_layer = 2, n_head = 4, d_model = 96 },
]

[axes]
tokens = [200_000, 400_000, 800_000, 1_600_000, 3_200_000]
seeds = [0]
lrs = [1e-2]

[train]
batch_size = 32
device = "cpu"

[schedule]
kind = "wsd"
branches = true
cooldown = "1-sqrt"
decay_frac = 0.2
warmup_steps = 20
min_lr_frac = 0.1

[eval]
every = 50
batches = 8

[checkpoint]
every = 250

[executor]
kind = "local"
workers = 2
"""

IDEA_TITLE = "demo: validation loss below 0.65 nats/token on the Zipf-words corpus"
IDEA_BAR = 0.65  # nats/token; of the 20 cells only the largest gets there


@dataclass
class DemoOutcome:
    """What the demo produced: the store, the sweep report, fits and files written."""

    out: Path
    store_url: str
    sweep: str = "demo"  # the grid's name
    report: Any = None  # sweeps.runner.SweepReport
    points: pd.DataFrame | None = None  # N, D, C, loss of finished cells
    fits: dict[str, Any] = field(default_factory=dict)  # form -> analysis FitResult
    files: list[Path] = field(default_factory=list)
    idea: str | None = None
    backtest: Any = None  # analysis.backtesting.BacktestResult for the largest cell
    attempts: pd.DataFrame | None = None  # the demo idea's attempts, smallest compute first
    skipped: list[str] = field(default_factory=list)  # one line per step that could not run
    wall_s: float = 0.0
    flops_planned: float = 0.0  # FLOPs of one from-scratch run per cell (what fits use as C)
    flops_spent: float = 0.0  # FLOPs actually trained: trunks once, each branch's cooldown
    loss_floor: float | None = None  # best possible validation loss (nats/token), where known


def store_url_for(out: Path) -> str:
    """The demo's SQLite store inside `out`."""
    return f"sqlite:///{(out / 'scaletrack.db').resolve()}"


def train_step(
    out: Path, outcome: DemoOutcome, *, workers: int, console: Any, grid_toml: str
) -> None:
    """Write the grid to DIR/demo.toml and run it into the demo store."""
    grid_file = out / "demo.toml"
    grid_file.write_text(grid_toml, encoding="utf-8")
    grid = load_grid(grid_file)
    outcome.sweep = grid.name
    display = (
        (lambda g, todo, done: SweepDisplay(g, todo, done, console=console))
        if console is not None
        else None
    )
    outcome.report = run_sweep(grid, outcome.store_url, workers=workers, display=display)
    outcome.files.append(grid_file)
    floor_step(outcome, grid)


def floor_step(outcome: DemoOutcome, grid: Any) -> None:
    """The best possible validation loss on the grid's own evaluation windows, when its
    corpus is the synthetic Zipf-words one (whose source is known); else nothing."""
    cfg = grid.cells[0].config if grid.cells else None
    if cfg is None or cfg.data.get("corpus") != "zipf-words":
        return
    val = load_tokens(cfg.data).val
    windows = eval_batches(val, cfg.eval_batches, cfg.batch_size, cfg.context)
    outcome.loss_floor = BUILTIN.bayes_floor(windows)


def fit_step(outcome: DemoOutcome, store: StoreLike) -> None:
    """Fit L(N, D) (Chinchilla form) and L(C) on the compute-efficient frontier; store both.

    Also back-tests the Chinchilla form: fit on every cell below the largest compute and
    predict the largest cell's final loss.
    """
    try:
        outcome.points = sweep_points(store, outcome.sweep).reset_index(drop=True)
    except ScaletrackError as exc:
        outcome.skipped.append(f"fit: {exc}")
        return
    runs = store.runs(sweep=outcome.sweep)
    outcome.flops_spent = flops_spent(runs)
    outcome.flops_planned = float(runs.loc[runs["role"] != "trunk", "C"].sum())
    if len(outcome.points) < 5:
        outcome.skipped.append(f"fit: only {len(outcome.points)} finished cells (need 5)")
        return
    trained_nothing = outcome.report is not None and outcome.report.trained == 0
    fits = store.fits()
    saved = set(fits["label"]) if not fits.empty else set()
    frontier = compute_frontier(outcome.points)
    for form, fit_fn, data in (
        ("chinchilla", fit_chinchilla, outcome.points),
        ("compute", fit_compute_law, frontier),
    ):
        try:
            fit = fit_fn(data, n_bootstrap=200)
        except ScaletrackError as exc:
            outcome.skipped.append(f"fit {form}: {exc}")
            continue
        outcome.fits[form] = fit
        label = f"{outcome.sweep} {form}"
        if not (trained_nothing and label in saved):  # a re-run adds no duplicates
            store.save_fit(fit.form, fit.to_dict(), sweep=outcome.sweep, label=label)
    try:
        outcome.backtest = backtest(outcome.points, "chinchilla", float(outcome.points["C"].max()))
    except ScaletrackError as exc:
        outcome.skipped.append(f"back-test: {exc}")


def plot_step(outcome: DemoOutcome) -> None:
    """Write `loss_vs_compute_figure` to DIR/loss_vs_compute.png and .svg."""
    if outcome.points is None or outcome.points.empty:
        outcome.skipped.append("plot: no finished cells to plot")
        return
    figure = loss_vs_compute_figure(outcome)
    outcome.files.extend(save_figure(figure, outcome.out / "loss_vs_compute"))


def loss_vs_compute_figure(outcome: DemoOutcome) -> Figure:
    """Loss vs compute of the finished cells with the compute law (the law fitted on this
    axis), its extrapolation and bands, and each prediction the summary quotes at 10x the
    largest compute marked with its 95% prediction interval, so figure and text agree."""
    figure = plot_loss_vs_compute(
        outcome.points, fit=outcome.fits.get("compute"), floor=outcome.loss_floor,
        title="scaletrack demo: loss vs training compute",
    )
    predictions = ten_x_predictions(outcome)
    if not predictions:
        return figure
    ax = figure.axes[0]  # the loss axes (the colour bar's comes after it)
    for i, p in enumerate(predictions):
        has_band = bool(np.isfinite(p.lo) and np.isfinite(p.hi))
        around = has_band and p.lo <= p.pred <= p.hi
        # same compute, set 7 points apart on screen so neither interval hides the other
        dodge = offset_copy(ax.transData, fig=figure, units="points",
                            x=7.0 * (i - (len(predictions) - 1) / 2))
        ax.errorbar(
            [p.compute], [p.pred], transform=dodge,
            yerr=[[p.pred - p.lo], [p.hi - p.pred]] if around else None,
            fmt=_MARKERS[p.law], ms=7, color=_MARKER_COLORS[p.law], mec="white", mew=0.8,
            capsize=4, lw=1.4, zorder=7,
            label=f"10x prediction, {_LAW_NAMES[p.law]}: {_value_text(p)}",
        )
        if has_band and not around:  # a drifting band that leaves the law's own value out
            ax.vlines([p.compute], p.lo, p.hi, colors=_MARKER_COLORS[p.law], lw=1.4,
                      transform=dodge, zorder=7)
    # keep the marks in view when no law is drawn out to them
    ax.update_datalim([(p.compute, v) for p in predictions for v in (p.pred, p.lo, p.hi)
                       if np.isfinite(v)])
    ax.autoscale_view()
    ax.legend(loc="upper right", frameon=True, framealpha=0.9, fontsize=9)
    return figure


def register_idea_step(outcome: DemoOutcome, store: StoreLike) -> None:
    """Register the demo's "not yet" idea once, before training, so the sweep re-checks it."""
    ideas = store.ideas()
    if ideas.empty or IDEA_TITLE not in set(ideas["title"]):
        add_idea(store, IDEA_TITLE, "val_loss", "loss", IDEA_BAR, direction="below",
                 hypothesis="small models cannot get there; a larger one might")


def ideas_step(outcome: DemoOutcome, store: StoreLike) -> None:
    """Report the idea's attempts (made by the sweep as cells finished) and plot its timeline."""
    ideas = store.ideas()
    if ideas.empty or IDEA_TITLE not in set(ideas["title"]):
        return
    rerun_due(store)  # a no-op unless a checkpoint appeared that the sweep did not re-check
    row = store.ideas().set_index("title").loc[IDEA_TITLE]
    outcome.attempts = attempts_table(store, int(row["id"]))
    best = row.get("best_value")
    best_text = f", best {fmt_number(best)}" if best is not None and pd.notna(best) else ""
    outcome.idea = f"{IDEA_TITLE!r}: {row['status']}{best_text}"
    outcome.files.extend(save_figure(plot_ideas(store), outcome.out / "ideas_timeline"))


def run_demo(
    out: Path, *, workers: int = 2, console: Any = None, grid_toml: str = DEMO_GRID_TOML
) -> DemoOutcome:
    """Run every step into `out`; print a summary when a console is given.

    `grid_toml` replaces the demo grid, e.g. for a quick test or `sweeps/examples/demo-long.toml`
    (a longer grid: 5 sizes x 5 budgets); fits are stored under the grid's name.
    """
    t0 = time.monotonic()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the demo folder {out}: {exc.strerror or exc}") from None
    outcome = DemoOutcome(out=out, store_url=store_url_for(out))
    with Store.open(outcome.store_url) as store:
        register_idea_step(outcome, store)
    train_step(out, outcome, workers=workers, console=console, grid_toml=grid_toml)
    with Store.open(outcome.store_url) as store:
        fit_step(outcome, store)
        plot_step(outcome)
        ideas_step(outcome, store)
    outcome.wall_s = time.monotonic() - t0
    if console is not None:
        print_summary(outcome, console)
    return outcome


@dataclass(frozen=True)
class TenXPrediction:
    """One law's final-loss prediction at 10x the largest compute trained: `pred` with its 95%
    prediction interval [lo, hi] (nats/token; NaN without bootstrap refits), at `compute`
    FLOPs. `N` and `D` (parameters, tokens): the Chinchilla fit's compute-optimal allocation
    (6·N·D = compute); None for the compute law, which predicts loss from C alone."""

    law: str  # "compute" (drawn in loss_vs_compute) or "chinchilla"
    compute: float
    pred: float
    lo: float
    hi: float
    N: float | None = None
    D: float | None = None


_LAW_NAMES = {"compute": "compute law L(C)", "chinchilla": "Chinchilla fit L(N, D)"}
_MARKERS = {"compute": "o", "chinchilla": "D"}
_MARKER_COLORS = {"compute": FIT_COLOR, "chinchilla": "#6a3d9a"}


def ten_x_predictions(outcome: DemoOutcome) -> list[TenXPrediction]:
    """Each fit that holds, predicting at 10x the largest compute of the finished cells: the
    compute law (the law the loss-vs-compute plot draws) first, then the Chinchilla fit at its
    compute-optimal N and D. Intervals: `FitResult.predict_interval`, 95% prediction."""
    if outcome.points is None or outcome.points.empty:
        return []
    compute = 10 * float(outcome.points["C"].max())
    out = []
    law = outcome.fits.get("compute")
    if law is not None and not law.degenerate:
        band = law.predict_interval(compute).iloc[0]
        out.append(TenXPrediction("compute", compute, float(band["pred"]), float(band["lo"]),
                                  float(band["hi"])))
    chinchilla = outcome.fits.get("chinchilla")
    if chinchilla is not None and not chinchilla.degenerate:
        best = compute_optimal(chinchilla, compute).iloc[0]
        band = chinchilla.predict_interval(best["N_opt"], best["D_opt"]).iloc[0]
        out.append(TenXPrediction("chinchilla", compute, float(band["pred"]), float(band["lo"]),
                                  float(band["hi"]), float(best["N_opt"]), float(best["D_opt"])))
    return out


def _value_text(p: TenXPrediction) -> str:
    """'0.61 [0.6, 0.63]', or the bare value when there is no interval."""
    if not (np.isfinite(p.lo) and np.isfinite(p.hi)):
        return f"{fmt_number(p.pred)} (no interval: no bootstrap refits)"
    return f"{fmt_number(p.pred)} [{fmt_number(p.lo)}, {fmt_number(p.hi)}]"


def _prediction_lines(outcome: DemoOutcome) -> list[str]:
    """One line per law predicting at 10x the largest compute, each naming its law and where
    loss_vs_compute shows it (the compute law's curve and dotted band; the Chinchilla fit's
    diamond, its curve not drawn)."""
    lines = []
    for p in ten_x_predictions(outcome):
        head = f"predicted at 10x the largest compute ({fmt_number(p.compute)} FLOPs) by the "
        if p.law == "compute":
            lines.append(f"{head}{_LAW_NAMES['compute']}: {_value_text(p)} nats/token (95% "
                         "prediction interval; the curve, dotted band and circle in "
                         "loss_vs_compute)")
        else:
            lines.append(f"{head}{_LAW_NAMES['chinchilla']} at its compute-optimal N = "
                         f"{fmt_number(p.N)} parameters and D = {fmt_number(p.D)} tokens "
                         f"(6·N·D = C): {_value_text(p)} nats/token (95% prediction interval; "
                         "the diamond in loss_vs_compute, its curve not drawn)")
    return lines


def _floor_line(outcome: DemoOutcome) -> str:
    """The known loss floor, set against the E of each fit that holds (Chinchilla, compute
    law); a fit whose E interval excludes the floor is labelled as not identifying it."""
    floor = outcome.loss_floor
    line = (f"loss floor: no model can score below {fmt_number(floor)} nats/token on these "
            "validation windows (exact for the Zipf-words source)")
    for form, name in (("chinchilla", "the Chinchilla fit"), ("compute", "the compute law")):
        fit = outcome.fits.get(form)
        if fit is None or fit.degenerate or "E" not in fit.ci95:
            continue
        lo, hi = fit.ci95["E"]
        line += (f"; {name}'s E = {fmt_number(fit.params['E'])} [{fmt_number(lo)}, "
                     f"{fmt_number(hi)}] estimates it: "
                 f"the floor is {'inside' if lo <= floor <= hi else 'outside'} that interval")
        if not lo <= floor <= hi:
            line += (f", so {name} does not identify the floor (its E is an asymptote of the "
                     "range fitted, not the best possible loss)")
    return line


def print_summary(outcome: DemoOutcome, console: Any) -> None:
    """A short account of what the demo trained, fitted and wrote."""
    report = outcome.report
    if outcome.points is not None and not outcome.points.empty:
        table = Table(title=f"{outcome.sweep} cells (final validation loss, nats/token)",
                      header_style="bold")
        table.add_column("N \\ D", justify="right")
        budgets = sorted(outcome.points["D"].unique())
        for d in budgets:
            table.add_column(fmt_number(d), justify="right")
        for n, rows in outcome.points.groupby("N"):
            by_d = dict(zip(rows["D"], rows["loss"], strict=True))
            table.add_row(fmt_number(n), *(fmt_number(by_d[d]) if d in by_d else "-"
                                           for d in budgets))
        console.print(table)
    if outcome.flops_spent:
        console.print(
            f"compute: {fmt_number(outcome.flops_spent)} FLOPs trained; one from-scratch run per "
            f"cell would take {fmt_number(outcome.flops_planned)} "
            f"({outcome.flops_planned / outcome.flops_spent:.2f}x)", soft_wrap=True)
    for form, fit in outcome.fits.items():
        message = degenerate_message(fit)
        if message:  # its numbers do not identify the law: only the reason and the remedy
            console.print(f"fit {form}: {message}", soft_wrap=True, markup=False)
            continue
        params = ", ".join(
            f"{k}={fmt_number(v)} [{fmt_number(fit.ci95[k][0])}, {fmt_number(fit.ci95[k][1])}]"
            if k in fit.ci95 else f"{k}={fmt_number(v)}"
            for k, v in fit.params.items()
        )
        console.print(f"fit {form} (95% intervals): {params}", soft_wrap=True, markup=False)
    if outcome.loss_floor is not None:
        console.print(_floor_line(outcome), soft_wrap=True, markup=False)
    if outcome.backtest is not None:
        row = outcome.backtest.frame.iloc[-1]
        console.print(
            f"back-test: Chinchilla fit on the {outcome.backtest.summary['n_train']} smaller "
            f"cells predicts the largest at {fmt_number(row['predicted'])} nats/token; "
            f"measured {fmt_number(row['loss'])} ({100 * row['rel_error']:+.1f}%)", soft_wrap=True)
    for line in _prediction_lines(outcome):
        console.print(line, soft_wrap=True, markup=False)
    if outcome.attempts is not None and not outcome.attempts.empty:
        table = Table(title="the demo idea, re-checked as larger checkpoints appeared",
                      header_style="bold")
        for col in ("checkpoint", "N", "tokens", "FLOPs", "val loss", "passed"):
            table.add_column(col, justify="right")
        for a in outcome.attempts.sort_values("flops").itertuples(index=False):
            table.add_row(str(a.checkpoint_id), fmt_number(a.N), fmt_number(a.tokens),
                          fmt_number(a.flops), fmt_number(a.value),
                          "yes" if a.passed else "not yet")
        console.print(table)
    if outcome.idea:
        console.print(f"idea {outcome.idea}", soft_wrap=True, markup=False)
    for line in outcome.skipped:
        console.print(f"[yellow]skipped[/] {escape(line)}", soft_wrap=True)
    trained = report.trained if report is not None else 0
    console.print(
        f"demo done in {outcome.wall_s:.0f}s: trained {trained} cells this time; store "
        f"{outcome.store_url}; files: " + ", ".join(str(p) for p in outcome.files),
        soft_wrap=True, markup=False,
    )
    console.print(f"next: scaletrack sweep status {outcome.sweep} --store {outcome.store_url}",
                  soft_wrap=True, markup=False)
