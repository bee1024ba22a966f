"""Truncation back-test of the near / far call on every published source, against two
trivial rules, scored source by source.

PROTOCOL (written and committed before any outcome below was computed)

Question. A task has not yet cleared its bar at the scales tried. Will it clear it within
10x of the largest scale tried ("near"), or not ("far")?

Bar. chance + 0.25 * (1 - chance): a quarter of the way from chance to perfect.

Sources and series (x is the scale the classifier sees; y the accuracy; one series per
curve, points at equal x averaged):
- lm_eval_pythia: lm-evaluation-harness files read with the importer's own `parse_file`;
  N and tokens per step from examples/lm_eval/pythia_sizes.csv, as `scaletrack import
  lm-eval --sizes` reads them; x = 6 N tokens (FLOPs); step 0 dropped (x = 0). One series
  per (model, task, metric acc | acc_norm, shot count) along training. Chance: lambada 0;
  piqa, winogrande, wsc 0.5; arc_*, sciq, logiqa, hendrycksTest-* 0.25. crows_pairs (bias
  metrics) and perplexity are not accuracies and are not used.
- pythia_v1_zero_shot: (a) one series per (model, deduped, task, metric acc | acc_norm)
  along training, x = 6 * model_size_params * tokens_seen, step 0 dropped; (b) one series
  per (deduped, task, metric) across the 8 sizes at step 143000. Chance as above.
- ukp_on_emergence_bigbench_base_models: exact_match_accuracy only (bert_score and
  edit_distance are continuous companions of the same outputs), one series per (task,
  prompt_type, n_shots) across all 11 base models sorted by params_B; x = N (parameters;
  the file has no FLOPs). Chance 0 (exact match of a generated answer).
- obsscaling_emergent_tasks: one series per (model family with >= 4 sizes, task, metric),
  BLEU left out; x = train_flops; chance from the file.
- olmo_ladder_task_bpb_acc: (a) one series per (run, task) along training, x = flops_approx,
  y = task_acc_rc; (b) one series per task across the final checkpoints of the 16 ladder
  runs and the 13B target (the 7B file holds no steps), sorted by flops_approx. Chance from
  the file.
- wei2022_table1_emergence_scales, wei_blog_bigbench_emergent_tasks: they hold the scale at
  which an ability emerged, not values against scale; there is nothing to truncate, so they
  are listed as not scorable.

Truncation. For a series of n points sorted by x and every k = 3 .. n-1 the classifier
sees the k smallest-x points. Series of more than 30 points (training trajectories) are
cut only where x_max has grown by at least 0.1 decade since the previous cut; the
classifier still sees every point up to the cut.

Truth, from the hidden points: past if a visible point already reaches the bar (not
scored: every rule sees it); near if a hidden point with x <= 10 x_max reaches the bar;
far if none within 10x does and the hidden points reach at least 10 x_max, or one crosses
only beyond 10x; otherwise unknown (not scored).

Rules compared, on the near/far cases:
- classifier: `classify_task(x, y, chance=chance, threshold=bar, n_bootstrap=0)` with the
  library defaults; its label (near | far).
- always far.
- line through the last 2 points: the straight line through the last two visible points in
  (log10 x, y), extrapolated; near if it reaches the bar at x <= 10 x_max, far otherwise
  (flat or falling lines included).

Score per source: share of near/far cases labelled right (accuracy), for each rule; the
margin = classifier - the better of the two baselines, in points; target >= 15 points on
every source. Also printed: cases, series, near share, near recall, balanced accuracy, and
the breakdown by series kind. Every series is scored once; no source is pooled with
another.

Settings and how they are chosen. Each series is put in a half by the parity of
zlib.crc32 of its name (source/kind/keys): even = selection half, odd = scored half.
Any change to the classifier's settings (trend points 2, 3, 4, 6, 8; trend in logit
progress or in raw metric) is chosen on the selection halves only: the candidate with the
highest mean margin over the scorable sources wins; candidates within 1 point of the best
tie and go to the library's current default first, then fewer points, then logit.
The reported figures are the scored halves with the chosen setting (all series are also
printed, marked as including the selection half).

    .venv/bin/python bench/bench_emergence_sources.py [--data ../shared/data] [--select-only]

RESULTS (measured after the protocol above was committed; 2-core machine shared with other
work: 940 s wall, 171 s CPU)

Selection halves picked 6 trend points in logit progress (mean margin +2.9 points; 8 logit
+3.8 ties within 1 point and has more points; the earlier default 4 logit +1.7); it is now
the library default. Scored halves, accuracy on near/far cases (classifier / always far /
line through the last 2 points, margin over the better baseline):

    lm_eval_pythia        4758 cases,  92 near: 97.5 / 98.1 / 95.0  -0.6  MISSED
    pythia_v1_zero_shot   1095 cases, 138 near: 92.5 / 87.4 / 91.7  +0.8  MISSED
    ukp BIG-bench (EM)      80 cases,  43 near: 62.5 / 46.2 / 55.0  +7.5  MISSED
    obsscaling emergent     24 cases,  13 near: 62.5 / 45.8 / 66.7  -4.2  MISSED
    olmo ladder            315 cases, 141 near: 85.4 / 55.2 / 74.9 +10.5  MISSED
    wei2022 table 1, wei blog list: not scorable (no values against scale)

The 15-point target is missed on every source. On the two Pythia sources it cannot be met
under this score: "always far" is right on 98.1 % and 87.4 % of their cases, which leaves
at most 1.9 and 12.6 points of room.

SECOND DECLARED SCORE (added after the accuracy results above were seen, and before any
figure below was computed)

Accuracy rewards the majority label: where few cases are near, "always far" is nearly
always right. A second score is therefore declared now, knowing the accuracy outcomes:
balanced accuracy = (recall on near + recall on far) / 2, under which "always far" scores
50 % by construction; near recall and near precision (share of "near" calls that are near)
are printed beside it. The margin under this score is the classifier's balanced accuracy
minus the better of the two baselines' balanced accuracies, in points; target >= 15 points
on every source, as for accuracy. Both scores are reported for every source.

Settings for the second round, chosen on the selection halves only (the scored halves never
enter the choice; they are then run once with the chosen setting and both scores reported):
- trend points 3, 4, 6, 8; trend in logit progress or in raw progress;
- decision ratio r in 1, 2, 3, 5, 10: the trend crossing is calibrated against its own
  late bias, "near" when the trend's crossing lies within r x near_factor of the largest
  scale (r = 1 is the rule above). The crossing itself is reported unchanged.
Objective: the mean over the scorable sources of min(accuracy margin, balanced-accuracy
margin), so that neither score is traded away for the other. Candidates within 1 point of
the best tie and go to the current library default (6, logit, r = 1) first, then smaller r,
then fewer points, then logit. No information is pooled across tasks or sources; the
sigmoid fit is not used for the near/far call in this round (its fits over every cut are
the slow part of this bench). Near-call choices are made on trend_label, which is the
classifier's near/far rule for a not-yet-past task.

    .venv/bin/python bench/bench_emergence_sources.py --round 2 [--scored-only]

RESULTS OF THE SECOND ROUND (2-core machine shared with other work; selection 41 s wall,
scored halves with --scored-only 209 s wall)

Selection halves: the best objective was +2.8 points (4 or 6 points in raw progress, ratio
10); the declared tie rule picked 4 points in raw progress, ratio 1 (+2.0). That pick was
not adopted by the library: it breaks six behaviour tests of the classifier (a
multiplicative rise near chance read as near; crossing intervals that cover a simulated
sigmoid's crossing) and scores 77 % right / 40 % near recall in
bench/bench_emergence_backtest.py, below that bench's 81 % / 60 %. Among the logit
candidates the library default (6 points, ratio 1, +1.6) was best; every ratio above 1
lowered it. The scored halves were therefore run once with the unchanged default, so the
accuracy figures repeat the first round's; the balanced figures are new.

Scored halves (classifier / always far / line through the last 2 points, margin over the
better baseline, in points; near recall and near precision of the classifier):

    source               accuracy                    balanced accuracy           rec  prec
    lm_eval_pythia       97.5 / 98.1 / 95.0   -0.6   79.5 / 50.0 / 73.5   +6.0   61 %  40 %
    pythia_v1_zero_shot  92.5 / 87.4 / 91.7   +0.8   74.0 / 50.0 / 73.5   +0.5   49 %  85 %
    ukp BIG-bench (EM)   62.5 / 46.2 / 55.0   +7.5   64.4 / 50.0 / 57.0   +7.4   40 %  81 %
    obsscaling emergent  62.5 / 45.8 / 66.7   -4.2   65.4 / 50.0 / 69.2   -3.8   31 % 100 %
    olmo ladder          85.4 / 55.2 / 74.9  +10.5   85.3 / 50.0 / 74.1  +11.2   84 %  83 %

The 15-point target is missed on every source under both scores. Under balanced accuracy
"always far" drops to 50 %, but the line through the last 2 points scores 57-74 % and is
the baseline to beat everywhere; the classifier's lead over it is 0.5-11 points, and it
trails it on ObsScaling (24 cases).

Rounds 3 (bootstrap probability and a logistic model on the trajectory's shape) and 4
(slopes pooled across the tasks of a source): their declarations, verbatim, and results are
in bench/bench_emergence_shape.py (the declarations were first committed in this docstring,
1717a2d at 19:47 UTC and 07ddae9 at 19:55 UTC on 2026-12-07, each before its round ran).
"""

from __future__ import annotations

import argparse
import math
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaletrack.analysis.classify import classify_task
from scaletrack.analysis.emergence_trend import (
    DECISION_RATIO,
    TREND_POINTS,
    TREND_SPACE,
    trend_crossing,
    trend_label,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NEAR_FACTOR = 10.0
MIN_K = 3
LONG = 30  # series longer than this are cut every CUT_DECADES of x_max
CUT_DECADES = 0.1
CHANCE = {"lambada_openai": 0.0, "piqa": 0.5, "winogrande": 0.5, "wsc": 0.5,
          "arc_easy": 0.25, "arc_challenge": 0.25, "sciq": 0.25, "logiqa": 0.25}
ACC_METRICS = ("acc", "acc_norm")
SOURCES = ("lm_eval_pythia", "pythia_v1_zero_shot", "ukp_on_emergence_bigbench_base_models",
           "obsscaling_emergent_tasks", "olmo_ladder_task_bpb_acc")
NOT_SCORABLE = ("wei2022_table1_emergence_scales", "wei_blog_bigbench_emergent_tasks")
# (trend points, space) in the tie-break order: the library default when the protocol was
# declared (4, logit) first, then fewer points, then logit before raw
DECLARED_DEFAULT = (4, "logit")
CANDIDATES: tuple[tuple[int, str], ...] = (DECLARED_DEFAULT,) + tuple(
    (p, s) for p in (2, 3, 4, 6, 8) for s in ("logit", "raw") if (p, s) != DECLARED_DEFAULT)
TIE = 0.01
# second round: (points, space, decision ratio), in the tie-break order: the library default
# when the second score was declared first, then smaller ratio, fewer points, logit
ROUND2_DEFAULT = (6, "logit", 1.0)
ROUND2_CANDIDATES: tuple[tuple[int, str, float], ...] = (ROUND2_DEFAULT,) + tuple(
    (p, s, r) for r in (1.0, 2.0, 3.0, 5.0, 10.0) for p in (3, 4, 6, 8)
    for s in ("logit", "raw") if (p, s, r) != ROUND2_DEFAULT)


@dataclass(frozen=True)
class Series:
    source: str
    kind: str
    name: str
    x: np.ndarray  # sorted ascending, unique
    y: np.ndarray
    chance: float

    @property
    def half(self) -> str:
        return "selection" if zlib.crc32(self.name.encode()) % 2 == 0 else "scored"


def _chance(task: str) -> float | None:
    return 0.25 if task.startswith("hendrycksTest-") else CHANCE.get(task)


def _series(source: str, kind: str, name: str, x: np.ndarray, y: np.ndarray,
            chance: float) -> Series | None:
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    g = pd.DataFrame({"x": x[keep], "y": y[keep]}).groupby("x", as_index=False)["y"].mean()
    if len(g) <= MIN_K:
        return None
    return Series(source, kind, f"{source}/{kind}/{name}", g["x"].to_numpy(float),
                  g["y"].to_numpy(float), float(chance))


def lm_eval_pythia(data: Path) -> Iterator[Series]:
    from scaletrack.store.importers.lm_eval import find_result_files, parse_file, read_sizes

    sizes = read_sizes(ROOT / "examples" / "lm_eval" / "pythia_sizes.csv")
    rows = []
    for path in find_result_files([data / "lm_eval_pythia"]):
        ev = parse_file(path)
        size = sizes[ev.model]
        if ev.step is None or size.tokens_per_step is None:
            continue
        c = 6.0 * size.params * ev.step * size.tokens_per_step
        for task, metric, value, _stderr, shot in ev.rows:
            if metric in ACC_METRICS and _chance(task) is not None:
                rows.append((ev.model, task, metric, shot, c, value))
    df = pd.DataFrame(rows, columns=["model", "task", "metric", "shot", "C", "value"])
    for (model, task, metric, shot), g in df.groupby(["model", "task", "metric", "shot"]):
        s = _series("lm_eval_pythia", "training", f"{model}/{task}/{metric}/{shot}-shot",
                    g["C"].to_numpy(float), g["value"].to_numpy(float), _chance(task))
        if s is not None:
            yield s


def pythia_v1_zero_shot(data: Path) -> Iterator[Series]:
    df = pd.read_csv(data / "pythia_v1_zero_shot.csv")
    df = df[df["metric"].isin(ACC_METRICS)]
    df = df.assign(C=6.0 * df["model_size_params"].astype(float) * df["tokens_seen"])
    for (model, dedup, task, metric), g in df.groupby(["model", "deduped", "task", "metric"]):
        s = _series("pythia_v1_zero_shot", "training",
                    f"{model}{'-dedup' if dedup else ''}/{task}/{metric}",
                    g["C"].to_numpy(float), g["value"].to_numpy(float), _chance(task))
        if s is not None:
            yield s
    final = df[df["step"] == 143000]
    for (dedup, task, metric), g in final.groupby(["deduped", "task", "metric"]):
        s = _series("pythia_v1_zero_shot", "sizes",
                    f"{'dedup' if dedup else 'standard'}/{task}/{metric}",
                    g["C"].to_numpy(float), g["value"].to_numpy(float), _chance(task))
        if s is not None:
            yield s


def ukp(data: Path) -> Iterator[Series]:
    df = pd.read_csv(data / "ukp_on_emergence_bigbench_base_models.csv")
    df = df[df["metric"] == "exact_match_accuracy"]
    for (task, prompt, shots), g in df.groupby(["task", "prompt_type", "n_shots"]):
        s = _series("ukp_on_emergence_bigbench_base_models", "sizes",
                    f"{task}/{prompt}/{shots}-shot", g["params_B"].to_numpy(float) * 1e9,
                    g["value"].to_numpy(float), 0.0)
        if s is not None:
            yield s


def obsscaling(data: Path) -> Iterator[Series]:
    df = pd.read_csv(data / "obsscaling_emergent_tasks.csv")
    df = df[~df["metric"].str.startswith("bleu")]
    sizes = df.groupby("model_family")["model"].nunique()
    df = df[df["model_family"].isin(sizes[sizes >= 4].index)]
    for (fam, task, metric), g in df.groupby(["model_family", "task", "metric"]):
        s = _series("obsscaling_emergent_tasks", "sizes", f"{fam}/{task}/{metric}",
                    g["train_flops"].to_numpy(float), g["value"].to_numpy(float),
                    float(g["chance"].iloc[0]))
        if s is not None:
            yield s


def olmo(data: Path) -> Iterator[Series]:
    df = pd.read_csv(data / "olmo_ladder_task_bpb_acc.csv")
    for col in ("task_acc_rc", "flops_approx", "chance"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df = df[np.isfinite(df["task_acc_rc"]) & np.isfinite(df["flops_approx"])]
    for (run, task), g in df.groupby(["run", "task"]):
        s = _series("olmo_ladder_task_bpb_acc", "training", f"{run}/{task}",
                    g["flops_approx"].to_numpy(float), g["task_acc_rc"].to_numpy(float),
                    float(g["chance"].iloc[0]))
        if s is not None:
            yield s
    final = df[df["step"].notna()].sort_values("step").groupby(["run", "task"]).tail(1)
    for task, g in final.groupby("task"):
        s = _series("olmo_ladder_task_bpb_acc", "ladder", str(task),
                    g["flops_approx"].to_numpy(float), g["task_acc_rc"].to_numpy(float),
                    float(g["chance"].iloc[0]))
        if s is not None:
            yield s


READERS: dict[str, Callable[[Path], Iterator[Series]]] = {
    "lm_eval_pythia": lm_eval_pythia, "pythia_v1_zero_shot": pythia_v1_zero_shot,
    "ukp_on_emergence_bigbench_base_models": ukp, "obsscaling_emergent_tasks": obsscaling,
    "olmo_ladder_task_bpb_acc": olmo}


def cuts(x: np.ndarray) -> list[int]:
    """The k (points seen) at which a series is cut."""
    ks = list(range(MIN_K, x.size))
    if x.size <= LONG:
        return ks
    out, last = [], -math.inf
    for k in ks:
        if math.log10(x[k - 1]) >= last + CUT_DECADES:
            out.append(k)
            last = math.log10(x[k - 1])
    return out


def bar_of(chance: float) -> float:
    return chance + 0.25 * (1.0 - chance)


def truth(x: np.ndarray, y: np.ndarray, k: int, bar: float) -> str:
    if y[:k].max() >= bar:
        return "past"
    x_max = x[k - 1]
    hidden_x, hidden_y = x[k:], y[k:]
    if np.any((hidden_y >= bar) & (hidden_x <= NEAR_FACTOR * x_max)):
        return "near"
    if np.any(hidden_y >= bar) or hidden_x.max() >= NEAR_FACTOR * x_max:
        return "far"
    return "unknown"


def two_point_line(x: np.ndarray, y: np.ndarray, bar: float) -> str:
    """Baseline: the line through the last two points in (log10 x, y), extrapolated."""
    lx0, lx1 = math.log10(x[-2]), math.log10(x[-1])
    slope = (y[-1] - y[-2]) / (lx1 - lx0)
    if not slope > 0:
        return "far"
    return "near" if lx1 + (bar - y[-1]) / slope <= lx1 + math.log10(NEAR_FACTOR) else "far"


@dataclass(frozen=True)
class Case:
    series: Series
    k: int
    truth: str  # near | far

    @property
    def x(self) -> np.ndarray:
        return self.series.x[: self.k]

    @property
    def y(self) -> np.ndarray:
        return self.series.y[: self.k]


def cases_of(series: list[Series]) -> list[Case]:
    out = []
    for s in series:
        bar = bar_of(s.chance)
        for k in cuts(s.x):
            t = truth(s.x, s.y, k, bar)
            if t in ("near", "far"):
                out.append(Case(s, k, t))
    return out


def score(cases: list[Case], labels: list[str]) -> dict[str, float]:
    t = np.array([c.truth for c in cases])
    lab = np.array(labels)
    near, far = t == "near", t == "far"
    rec_near = float((lab[near] == "near").mean()) if near.any() else math.nan
    rec_far = float((lab[far] == "far").mean()) if far.any() else math.nan
    called = lab == "near"
    prec = float((t[called] == "near").mean()) if called.any() else math.nan
    return {"acc": float((lab == t).mean()) if t.size else math.nan, "near_recall": rec_near,
            "near_precision": prec,
            "balanced": float(np.nanmean([rec_near, rec_far])) if t.size else math.nan}


def rule_labels(cases: list[Case], rule: str, points: int = TREND_POINTS,
                space: str = TREND_SPACE, ratio: float = DECISION_RATIO) -> list[str]:
    out = []
    for c in cases:
        bar = bar_of(c.series.chance)
        if rule == "far":
            out.append("far")
        elif rule == "line2":
            out.append(two_point_line(c.x, c.y, bar))
        elif rule == "trend":
            out.append(trend_label(c.x, c.y, threshold=bar, chance=c.series.chance,
                                   near_factor=NEAR_FACTOR, trend_points=points,
                                   trend_space=space, decision_ratio=ratio)[0])
        else:  # the classifier as a user calls it
            out.append(classify_task(c.x, c.y, chance=c.series.chance, threshold=bar,
                                     near_factor=NEAR_FACTOR, n_bootstrap=0).label)
    return out


def margins(cases: list[Case], labels: list[str]) -> tuple[float, float, float]:
    """(rule accuracy, better baseline accuracy, margin in points)."""
    acc = score(cases, labels)["acc"]
    base = max(score(cases, rule_labels(cases, "far"))["acc"],
               score(cases, rule_labels(cases, "line2"))["acc"])
    return acc, base, 100.0 * (acc - base)


def select(by_source: dict[str, list[Case]]) -> tuple[int, str]:
    print("== selection halves: mean margin over sources (points) per candidate")
    print(f"{'points':>6} {'space':>6} {'mean margin':>11}  " + "  ".join(
        f"{s[:12]:>12}" for s in by_source))
    rows = []
    for points, space in CANDIDATES:
        per = [margins(cs, rule_labels(cs, "trend", points, space))[2]
               for cs in by_source.values() if cs]
        mean = float(np.mean(per))
        rows.append((points, space, mean))
        print(f"{points:>6} {space:>6} {mean:>11.1f}  " + "  ".join(f"{m:>12.1f}" for m in per))
    best = max(r[2] for r in rows)
    pick = next(r for r in rows if r[2] >= best - 100.0 * TIE)
    print(f"chosen: trend points {pick[0]}, {pick[1]} (library: {TREND_POINTS}, {TREND_SPACE})")
    return pick[0], pick[1]


def trend_ratios(cases: list[Case], points: int, space: str) -> np.ndarray:
    """Each case's trend crossing / x_max (inf: no rising trend), the quantity the decision
    ratio is applied to (as in trend_label)."""
    out = np.empty(len(cases))
    for i, c in enumerate(cases):
        ch, bar = c.series.chance, bar_of(c.series.chance)
        span = 1.0 - ch
        cross = trend_crossing(c.x, (c.y - ch) / span, (bar - ch) / span,
                               min(points, c.k), space=space)
        out[i] = cross / float(c.x[-1])
    return out


def both_margins(cases: list[Case], labels: list[str]) -> tuple[float, float]:
    """(accuracy margin, balanced-accuracy margin) over the better baseline, in points."""
    sc = score(cases, labels)
    far, line = score(cases, rule_labels(cases, "far")), score(cases, rule_labels(cases, "line2"))
    return (100.0 * (sc["acc"] - max(far["acc"], line["acc"])),
            100.0 * (sc["balanced"] - max(far["balanced"], line["balanced"])))


def select_round2(by_source: dict[str, list[Case]]) -> tuple[int, str, float]:
    print("== round 2, selection halves: per candidate, mean over sources of min(accuracy "
          "margin, balanced margin); per source acc/bal margins (points)")
    print(f"{'points':>6} {'space':>6} {'ratio':>5} {'objective':>9}  " + "  ".join(
        f"{s[:13]:>13}" for s in by_source))
    srcs = {k: v for k, v in by_source.items() if v}
    ratios = {(p, sp): {k: trend_ratios(cs, p, sp) for k, cs in srcs.items()}
              for p, sp, _ in ROUND2_CANDIDATES}
    rows = []
    for points, space, r in ROUND2_CANDIDATES:
        per = []
        for k, cs in srcs.items():
            near = ratios[(points, space)][k] <= r * NEAR_FACTOR
            per.append(both_margins(cs, ["near" if n else "far" for n in near]))
        obj = float(np.mean([min(a, b) for a, b in per]))
        rows.append((points, space, r, obj))
        print(f"{points:>6} {space:>6} {r:>5g} {obj:>9.1f}  " + "  ".join(
            f"{a:>+6.1f}/{b:>+6.1f}" for a, b in per))
    best = max(row[3] for row in rows)
    pick = next(row for row in rows if row[3] >= best - 100.0 * TIE)
    print(f"chosen: trend points {pick[0]}, {pick[1]}, decision ratio {pick[2]:g} (library: "
          f"{TREND_POINTS}, {TREND_SPACE}, {DECISION_RATIO:g})")
    return pick[0], pick[1], pick[2]


def report(title: str, by_source: dict[str, list[Case]]) -> None:
    print(f"\n== {title}")
    head = (f"{'source':<40} {'series':>6} {'cases':>6} {'near':>5} {'classifier':>10} "
            f"{'always far':>10} {'line 2 pts':>10} {'margin':>7} {'near rec':>8} "
            f"{'bal acc':>7}  target  | balanced: {'classifier':>10} {'always far':>10} "
            f"{'line 2 pts':>10} {'margin':>7} {'near prec':>9}  target")
    print(head)
    for source, cs in by_source.items():
        if not cs:
            print(f"{source:<40} no near/far cases")
            continue
        for kind in [None, *sorted({c.series.kind for c in cs})]:
            sub = [c for c in cs if kind is None or c.series.kind == kind]
            if kind is not None and len({c.series.kind for c in cs}) == 1:
                continue
            lab = rule_labels(sub, "classifier")
            sc, far, line = score(sub, lab), score(sub, rule_labels(sub, "far")), score(
                sub, rule_labels(sub, "line2"))
            margin = 100.0 * (sc["acc"] - max(far["acc"], line["acc"]))
            bmargin = 100.0 * (sc["balanced"] - max(far["balanced"], line["balanced"]))
            bverdict = ("met" if bmargin >= 15.0 else "MISSED") if kind is None else ""
            name = source if kind is None else f"  {kind}"
            near = sum(c.truth == "near" for c in sub)
            verdict = ("met" if margin >= 15.0 else "MISSED") if kind is None else ""
            print(f"{name:<40} {len({c.series.name for c in sub}):>6} {len(sub):>6} "
                  f"{near:>5} {sc['acc']:>10.1%} {far['acc']:>10.1%} {line['acc']:>10.1%} "
                  f"{margin:>+7.1f} {sc['near_recall']:>8.1%} {sc['balanced']:>7.1%}  "
                  f"{verdict:<6}  | {'':>9} {sc['balanced']:>10.1%} {far['balanced']:>10.1%} "
                  f"{line['balanced']:>10.1%} {bmargin:>+7.1f} {sc['near_precision']:>9.1%}  "
                  f"{bverdict}")
    for name in NOT_SCORABLE:
        print(f"{name:<40} not scorable: emergence scales only, no values against scale")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--select-only", action="store_true")
    ap.add_argument("--round", type=int, choices=(1, 2, 3, 4), default=2,
                    help="1: the accuracy-only trend search; 2: the declared second round; "
                    "3 and 4: the declared third and fourth rounds (bench_emergence_shape.py)")
    ap.add_argument("--crossfit", action="store_true",
                    help="round 3: leave-one-source-out shape model on the selection halves")
    ap.add_argument("--scored-only", action="store_true",
                    help="skip the all-series table (the selection halves again)")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"skip: {args.data} is absent")
        return
    t0 = time.perf_counter()
    series = {src: list(READERS[src](args.data)) for src in SOURCES}
    halves = {h: {src: cases_of([s for s in ss if s.half == h]) for src, ss in series.items()}
              for h in ("selection", "scored")}
    if args.round == 4:
        import bench_emergence_shape as round4

        m = round4.round4(series, halves["selection"])
        if not args.select_only:
            round4.round4(series, halves["scored"], m)
        print(f"({time.perf_counter() - t0:.0f} s)")
        return
    if args.round == 3:
        import bench_emergence_shape as round3

        from scaletrack.analysis import classify

        if args.crossfit:
            round3.crossfit(halves["selection"], getattr(classify, "NEAR_TAU", 0.5))
        elif args.select_only:
            round3.select(halves["selection"])
        else:
            round3.scored(halves["scored"], getattr(classify, "NEAR_RULE", "trend"),
                          getattr(classify, "NEAR_TAU", 0.5),
                          getattr(classify, "NEAR_BOOTSTRAP_POINTS", 6))
        print(f"({time.perf_counter() - t0:.0f} s)")
        return
    if args.round == 1:
        select(halves["selection"])
    else:
        select_round2(halves["selection"])
    if args.select_only:
        return
    from scaletrack.analysis.classify import NEAR_RULE, NEAR_TAU

    report(f"scored halves, classify_task with the library defaults (near rule {NEAR_RULE}, "
           f"tau {NEAR_TAU:g}; trend points {TREND_POINTS}, {TREND_SPACE}, decision ratio "
           f"{DECISION_RATIO:g})", halves["scored"])
    if not args.scored_only:
        report("all series (includes the selection halves)",
               {src: cases_of(ss) for src, ss in series.items()})
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
