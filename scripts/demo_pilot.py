"""LR pilot for the demo grid: which learning rate should `scaletrack demo` train with?

Trains a few of the demo's model sizes (by default its smallest and its largest) at each
candidate learning rate, at a pilot budget that is not one of the demo's reported budgets
(default 283,000 tokens, the geometric mean of its 200k and 400k budgets), with the demo's
own schedule (wsd, 1-sqrt cooldown over the last 20 %, the same warmup: a cooldown branch at
that budget takes the very same steps). The rule, fixed before any run: the LR with the
lowest final validation loss averaged over the pilot sizes (nats/token) wins; each size's
own best LR is printed too.

    .venv/bin/python scripts/demo_pilot.py                       # ~2 CPU-minutes unloaded
    .venv/bin/python scripts/demo_pilot.py --lrs 3e-3,1e-2,3e-2 --sizes 0,3 --tokens 283000

Prints a table (sizes x LRs), the pick and whether it is the demo's LR; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

LRS = (3e-3, 1e-2, 3e-2)  # candidates, a factor ~3 apart around the demo's 1e-2
PILOT_TOKENS = 283_000  # between the demo's 200k and 400k budgets; not a reported budget
PILOT_SIZES = (0, 3)  # indices into the demo grid's sizes: its smallest and its largest


def _toml_list(values: Sequence[float], fmt: str) -> str:
    return "[" + ", ".join(format(v, fmt) for v in values) + "]"


def pilot_grid_toml(demo_toml: str, sizes: Sequence[int], lrs: Sequence[float],
                    tokens: int) -> str:
    """The demo grid narrowed to `sizes` (indices), `lrs` and one budget of `tokens`, trained
    from scratch with the demo's wsd schedule (no trunk: one run per size x LR)."""
    shapes = re.findall(r"(?m)^  (\{ n_layer = .* \}),$", demo_toml)
    if not shapes:
        raise ValueError("demo grid: no model sizes found")
    bad = [i for i in sizes if not 0 <= i < len(shapes)]
    if bad or not sizes:
        raise ValueError(f"sizes: expected indices in 0..{len(shapes) - 1}, got {list(sizes)}")
    if any(t == tokens for t in demo_budgets(demo_toml)):
        raise ValueError(f"tokens: {tokens:,} is one of the demo's reported budgets")
    body = re.sub(r"(?ms)^sizes = \[\n.*?^\]$",
                  "sizes = [\n" + "".join(f"  {shapes[i]},\n" for i in sizes) + "]", demo_toml)
    body = re.sub(r"(?m)^tokens = \[.*\]$", f"tokens = [{int(tokens)}]", body)
    body = re.sub(r"(?m)^lrs = \[.*\]$", "lrs = " + _toml_list(lrs, "g"), body)
    body = re.sub(r"(?m)^branches = true\n", "", body)
    return re.sub(r'(?m)^name = ".*"$', 'name = "demo-pilot"', body)


def demo_budgets(demo_toml: str) -> list[int]:
    """The demo grid's token budgets."""
    found = re.search(r"(?m)^tokens = \[(.*)\]$", demo_toml)
    if found is None:
        raise ValueError("demo grid: no tokens axis found")
    return [int(v.strip().replace("_", "")) for v in found.group(1).split(",") if v.strip()]


def pick_lr(points: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """(winning LR, table N x lr of final losses plus a "mean" row) from rows N, lr, loss.

    The winner has the lowest loss averaged over sizes; a size missing an LR (diverged,
    failed) disqualifies that LR.
    """
    if points.empty:
        raise ValueError("no finished pilot runs")
    table = points.pivot_table(index="N", columns="lr", values="loss", aggfunc="mean")
    table = table.reindex(columns=sorted(table.columns))
    means = table.mean(axis=0, skipna=False)
    if means.isna().all():
        raise ValueError("no LR finished at every pilot size")
    table.loc["mean"] = means
    return float(means.idxmin()), table


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated indices, got {text!r}") from None


def run_pilot(toml: str, out: Path, workers: int) -> pd.DataFrame:
    """Train the pilot grid into `out`/pilot.db; rows N, lr, loss of its finished runs."""
    from scaletrack.store import Store
    from scaletrack.sweeps.grid import expand
    from scaletrack.sweeps.runner import run_sweep
    from scaletrack.sweeps.spec import parse_spec_text

    grid = expand(parse_spec_text(toml, "<pilot>"), "<pilot>")
    url = f"sqlite:///{(out / 'pilot.db').resolve()}"
    run_sweep(grid, url, workers=workers, checkpoint_dir=out / "ck")
    with Store.open(url) as store:
        runs = store.fit_runs(grid.name)
    return runs[["N", "lr", "final_loss"]].rename(columns={"final_loss": "loss"}).astype(float)


def main(argv: Sequence[str] | None = None) -> int:
    from scaletrack.demo import DEMO_GRID_TOML

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=_floats, default=LRS, help="candidate LRs, comma-separated")
    parser.add_argument("--sizes", type=_ints, default=PILOT_SIZES,
                        help="indices into the demo grid's sizes, comma-separated")
    parser.add_argument("--tokens", type=int, default=PILOT_TOKENS, help="pilot budget (tokens)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the pilot's store (default: a temporary one)")
    args = parser.parse_args(argv)
    try:
        toml = pilot_grid_toml(DEMO_GRID_TOML, args.sizes, args.lrs, args.tokens)
    except ValueError as exc:
        print(f"demo_pilot: {exc}", file=sys.stderr)
        return 2
    demo_lr = float(re.search(r"(?m)^lrs = \[(.*)\]$", DEMO_GRID_TOML).group(1))  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory(prefix="demo-pilot-") as tmp:
        out = args.out if args.out is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        points = run_pilot(toml, out, args.workers)
    try:
        best, table = pick_lr(points)
    except ValueError as exc:
        print(f"demo_pilot: {exc}", file=sys.stderr)
        return 1
    print(f"final validation loss (nats/token) at {args.tokens:,} tokens, wsd 1-sqrt:")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    sizes = table.drop(index="mean")
    print("best per size: " + ", ".join(f"N={int(n):,}: {row.idxmin():g}"
                                        for n, row in sizes.iterrows()))
    verdict = "kept" if math.isclose(best, demo_lr) else f"differs from the demo's {demo_lr:g}"
    print(f"pick (lowest mean loss): lr {best:g} ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
