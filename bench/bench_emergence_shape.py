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

import math
from dataclasses import dataclass

import numpy as np
from bench_emergence_sources import (
    MIN_K,
    NEAR_FACTOR,
    Case,
    Series,
    bar_of,
    rule_labels,
    score,
)
from scipy.special import logit

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


# ---- round 4: slopes pooled across the tasks of a source (empirical Bayes) ----
D_POINTS = (4, 6, 8)
D_MIN_SIBLINGS = 3
D_T2_FLOOR = 0.01


def _group(s: Series) -> str:
    """The series' name without its task: its siblings share it."""
    parts = s.name.split("/")
    src, kind, rest = parts[0], parts[1], parts[2:]
    i = 0 if src.startswith("ukp") or kind == "ladder" else 1
    return "/".join([src, kind, *rest[:i], *rest[i + 1:]])


def _ols(lx: np.ndarray, z: np.ndarray) -> tuple[float, float, float]:
    """(slope, value at the last x, squared standard error of the slope)."""
    xm = lx - lx.mean()
    sxx = float(xm @ xm)
    if sxx == 0:
        return 0.0, float(z[-1]), math.inf
    slope = float(xm @ (z - z.mean())) / sxx
    resid = z - z.mean() - slope * xm
    dof = max(lx.size - 2, 1)
    return slope, float(z.mean() + slope * xm[-1]), float(resid @ resid) / dof / sxx


def _z_of(s: Series) -> np.ndarray:
    span = 1.0 - s.chance
    return np.asarray(logit(np.clip((s.y - s.chance) / span, 0.01, 0.99)), float)


def sibling_slopes(series: list[Series], m: int) -> dict[tuple[str, float], list[tuple]]:
    """(group, log10 x_max) -> [(series name, slope, se^2)] over every cut of 3+ points."""
    out: dict[tuple[str, float], list[tuple]] = {}
    for s in series:
        lx, z, g = np.log10(s.x), _z_of(s), _group(s)
        for k in range(MIN_K, s.x.size + 1):
            lo = max(0, k - m)
            slope, _, se2 = _ols(lx[lo:k], z[lo:k])
            out.setdefault((g, round(float(lx[k - 1]), 6)), []).append((s.name, slope, se2))
    return out


def pooled_labels(cases: list[Case], sib: dict[tuple[str, float], list[tuple]],
                  m: int) -> list[str]:
    labels = []
    for c in cases:
        lx, z = np.log10(c.x), _z_of(c.series)[: c.k]
        lo = max(0, c.k - m)
        slope, at_max, se2 = _ols(lx[lo:], z[lo:])
        others = [(sl, e) for name, sl, e in sib.get((_group(c.series), round(float(lx[-1]),
                                                                              6)), [])
                  if name != c.series.name and math.isfinite(e)]
        if len(others) >= D_MIN_SIBLINGS and math.isfinite(se2):
            sl = np.array([o[0] for o in others])
            t2 = max(float(np.var(sl)) - float(np.mean([o[1] for o in others])), D_T2_FLOOR)
            w = t2 / (t2 + se2)
            slope = w * slope + (1.0 - w) * float(np.median(sl))
        goal = float(logit(0.25))  # the bar is a quarter of the way from chance
        near = slope > 0 and (goal - at_max) / slope <= math.log10(NEAR_FACTOR)
        labels.append("near" if near else "far")
    return labels


def round4(series: dict[str, list[Series]], by_source: dict[str, list[Case]],
           m_fixed: int | None = None) -> int:
    """Selection (m_fixed None) or scored run of rule D; returns the m used."""
    srcs = {k: v for k, v in by_source.items() if v}
    prepared = {k: prepare(v) for k, v in srcs.items()}
    half = "selection" if m_fixed is None else "scored"
    rows = []
    for m in (D_POINTS if m_fixed is None else (m_fixed,)):
        per = {}
        for k, cs in srcs.items():
            sib = sibling_slopes([s for s in series[k] if s.half == half], m)
            per[k] = (primary(prepared[k], pooled_labels(cs, sib, m)), prepared[k])
        obj = float(np.mean([p[0][2] for p in per.values()]))
        rows.append((m, obj, per))
    print(f"\n== round 4 ({half} halves): rule D, pooled slope; per source acc / balanced / "
          "primary margin (points), accuracy and balanced accuracy of D, far, line2")
    for m, obj, per in rows:
        print(f"m = {m}: objective {obj:+.1f}")
        for k, ((a, b, p), sc) in per.items():
            print(f"  {k:<40} {a:>+6.1f} {b:>+6.1f} {p:>+6.1f}   far {sc.far['acc']:.1%}/"
                  f"{sc.far['balanced']:.1%}  line2 {sc.line2['acc']:.1%}/"
                  f"{sc.line2['balanced']:.1%}")
    best = max(r[1] for r in rows)
    pick = min((r for r in rows if r[1] >= best - TIE_POINTS),
               key=lambda r: (r[0] != 6, r[0]))
    print(f"chosen m = {pick[0]} (objective {pick[1]:+.1f}; adopted as the default only "
          "above +3.8)")
    return pick[0]
