"""Third round of the emergence source back-test: the near/far call from the bootstrap
probability of the trend or from a logistic model on the trajectory's shape.

The protocol (sources, halves, truth, baselines, candidates, scores, choice, abstention) is
declared in bench/bench_emergence_sources.py under "THIRD DECLARED ROUND"; this script is
its code and is run through that script:

    .venv/bin/python bench/bench_emergence_sources.py --round 3 --select-only   # choose
    .venv/bin/python bench/bench_emergence_sources.py --round 3 --scored-only   # score

The scored run uses the library's frozen choice (`NEAR_RULE`, `NEAR_TAU`,
`NEAR_BOOTSTRAP_POINTS` in scaletrack.analysis.classify and the shape model's constants in
scaletrack.analysis.emergence_shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bench_emergence_sources import NEAR_FACTOR, Case, bar_of, rule_labels, score

from scaletrack.analysis import emergence_shape as es

B_POINTS = (4, 6, 8)
B_TAUS = (0.2, 0.3, 0.5, 0.7)
C_TAUS = (0.3, 0.4, 0.5, 0.6, 0.7)
ABSTAIN_BAND = 0.15
TIE_POINTS = 1.0
IMPOSSIBLE = 0.85  # 'always far' right on more than this share: balanced accuracy is primary


def _progress(c: Case) -> tuple[np.ndarray, float]:
    ch = c.series.chance
    span = 1.0 - ch
    return (c.y - ch) / span, (bar_of(ch) - ch) / span


@dataclass
class SourceCases:
    cases: list[Case]
    features: np.ndarray
    truth_near: np.ndarray
    boot: dict[int, np.ndarray]
    trend: list[str]
    far: dict[str, float]
    line2: dict[str, float]
    line2_labels: list[str]


def prepare(cases: list[Case]) -> SourceCases:
    feats, boot = [], {m: [] for m in B_POINTS}
    for c in cases:
        p, target = _progress(c)
        feats.append(es.shape_features(c.x, p, target))
        for m in B_POINTS:
            boot[m].append(es.trend_near_probability(c.x, p, target, m, NEAR_FACTOR))
    line2 = rule_labels(cases, "line2")
    return SourceCases(
        cases, np.array(feats), np.array([c.truth == "near" for c in cases]),
        {m: np.array(v) for m, v in boot.items()}, rule_labels(cases, "trend", 6, "logit", 1.0),
        score(cases, rule_labels(cases, "far")), score(cases, line2), line2)


def primary(sc: SourceCases, labels: list[str]) -> tuple[float, float, float]:
    """(accuracy margin, balanced margin, primary margin) in points."""
    s = score(sc.cases, labels)
    acc = 100.0 * (s["acc"] - max(sc.far["acc"], sc.line2["acc"]))
    bal = 100.0 * (s["balanced"] - max(sc.far["balanced"], sc.line2["balanced"]))
    return acc, bal, bal if sc.far["acc"] > IMPOSSIBLE else min(acc, bal)


def _labels(p: np.ndarray, tau: float) -> list[str]:
    return ["near" if v >= tau else "far" for v in np.nan_to_num(p, nan=0.0)]


def fit_shape(sel: dict[str, SourceCases]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    xs, ts, ws = [], [], []
    for sc in sel.values():
        n_near = max(int(sc.truth_near.sum()), 1)
        n_far = max(int((~sc.truth_near).sum()), 1)
        w = np.where(sc.truth_near, 0.5 / n_near, 0.5 / n_far)  # each source and class equal
        xs.append(sc.features)
        ts.append(sc.truth_near)
        ws.append(w)
    return es.fit_shape_logistic(np.vstack(xs), np.concatenate(ts), np.concatenate(ws))


def select(by_source: dict[str, list[Case]]) -> None:
    sel = {k: prepare(v) for k, v in by_source.items() if v}
    print("== round 3, selection halves: 'always far' accuracy per source (primary = "
          f"balanced where > {IMPOSSIBLE:.0%})")
    for k, sc in sel.items():
        kind = "balanced" if sc.far["acc"] > IMPOSSIBLE else "min(acc, balanced)"
        print(f"  {k:<40} {len(sc.cases):>6} cases  always far {sc.far['acc']:.1%}  "
              f"primary: {kind}")
    model = fit_shape(sel)
    print("shape model (standardised features): intercept "
          f"{model[3]:+.4f}\n  " + "\n  ".join(
              f"{n:<18} mean {m:+.4f} scale {s:.4f} coef {c:+.4f}"
              for n, m, s, c in zip(es.FEATURE_NAMES, *model[:3], strict=True)))
    cands: list[tuple[str, str, float, float | None]] = [("A", "trend 6 logit r1", 0.0, None)]
    cands += [("B", f"bootstrap m={m}", float(m), t) for m in B_POINTS for t in B_TAUS]
    cands += [("C", "shape logistic", 0.0, t) for t in C_TAUS]
    print(f"\n{'rule':<4} {'setting':<18} {'tau':>4} {'objective':>9}  "
          + "  ".join(f"{k[:15]:>15}" for k in sel))
    rows = []
    for rule, name, m, tau in cands:
        per = []
        for sc in sel.values():
            if rule == "A":
                lab = sc.trend
            elif rule == "B":
                lab = _labels(sc.boot[int(m)], float(tau or 0))
            else:
                lab = _labels(es.shape_near_probability(sc.features, model), float(tau or 0))
            per.append(primary(sc, lab))
        obj = float(np.mean([p[2] for p in per]))
        rows.append((rule, name, m, tau, obj))
        print(f"{rule:<4} {name:<18} {'' if tau is None else tau:>4} {obj:>+9.1f}  "
              + "  ".join(f"{a:>+7.1f}/{b:>+6.1f}" for a, b, _ in per))
    best = max(r[4] for r in rows)
    tied = [r for r in rows if r[4] >= best - TIE_POINTS]
    order = {"A": 0, "B": 1, "C": 2}
    pick = min(tied, key=lambda r: (order[r[0]], r[3] != 0.5, r[3] or 0.0, r[2]))
    print(f"\nbest objective {best:+.1f}; chosen by the declared tie rule: {pick[0]} "
          f"{pick[1]} tau {pick[3]} (objective {pick[4]:+.1f})")


def _probabilities(sc: SourceCases, rule: str, points: int) -> np.ndarray:
    if rule == "bootstrap":
        return sc.boot.get(points, np.array([es.trend_near_probability(
            c.x, *_progress(c), points, NEAR_FACTOR) for c in sc.cases]))
    return es.shape_near_probability(sc.features)


def scored(by_source: dict[str, list[Case]], rule: str, tau: float, points: int) -> None:
    print(f"\n== round 3, scored halves: rule {rule} (tau {tau:g}"
          + (f", {points} points" if rule == "bootstrap" else "") + ")")
    print(f"{'source':<38} {'cases':>6} {'near':>5} | accuracy: {'rule':>6} {'far':>6} "
          f"{'line2':>6} {'margin':>7} | balanced: {'rule':>6} {'far':>6} {'line2':>6} "
          f"{'margin':>7} | primary {'':>6} | abstain: cover  acc  (l2)   bal  (l2)")
    for k, cases in by_source.items():
        if not cases:
            print(f"{k:<38} no near/far cases")
            continue
        sc = prepare(cases)
        if rule == "trend":
            lab, p = sc.trend, None
        else:
            p = _probabilities(sc, rule, points)
            lab = _labels(p, tau)
        s = score(cases, lab)
        acc_m, bal_m, prim = primary(sc, lab)
        kind = "bal" if sc.far["acc"] > IMPOSSIBLE else "min"
        verdict = "met" if prim >= 15.0 else "MISSED"
        line = (f"{k:<38} {len(cases):>6} {int(sc.truth_near.sum()):>5} | "
                f"{s['acc']:>16.1%} {sc.far['acc']:>6.1%} {sc.line2['acc']:>6.1%} "
                f"{acc_m:>+7.1f} | {s['balanced']:>16.1%} {sc.far['balanced']:>6.1%} "
                f"{sc.line2['balanced']:>6.1%} {bal_m:>+7.1f} | {kind} {prim:>+5.1f} "
                f"{verdict:<6} |")
        if p is not None:
            keep = np.abs(np.nan_to_num(p, nan=0.0) - tau) >= ABSTAIN_BAND
            sub = [c for c, kp in zip(cases, keep, strict=True) if kp]
            if sub:
                ks = score(sub, [lb for lb, kp in zip(lab, keep, strict=True) if kp])
                kl = score(sub, [lb for lb, kp in zip(sc.line2_labels, keep, strict=True)
                                 if kp])
                line += (f" {keep.mean():>5.0%} {ks['acc']:>5.1%} ({kl['acc']:.1%}) "
                         f"{ks['balanced']:>5.1%} ({kl['balanced']:.1%})")
        print(line)


def crossfit(by_source: dict[str, list[Case]], tau: float) -> None:
    """Diagnostic on the selection halves only (added after the round-3 scored run): the
    shape model refitted without each source in turn and scored on the source left out, so
    the figure is out of source, as for a user's new data."""
    sel = {k: prepare(v) for k, v in by_source.items() if v}
    print(f"\n== leave-one-source-out shape model on the selection halves (tau {tau:g}); "
          "acc / balanced / primary margin, points")
    prims = []
    for k, sc in sel.items():
        model = fit_shape({o: v for o, v in sel.items() if o != k})
        lab = _labels(es.shape_near_probability(sc.features, model), tau)
        a, b, p = primary(sc, lab)
        prims.append(p)
        print(f"  {k:<40} {a:>+6.1f} {b:>+6.1f} {p:>+6.1f}")
    print(f"  mean primary margin {np.mean(prims):+.1f}")
