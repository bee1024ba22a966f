"""lm-evaluation-harness results -> external checkpoints with their evals.

Two output formats are read:

- 0.3: `{"results": {task: {"acc": v, "acc_stderr": s, ...}}, "versions": ...,
  "config": {"model_args": "pretrained=org/name,revision=stepN", "num_fewshot": k, ...}}`;
- 0.4+: `results_<date>.json` with `{"results": {task: {"alias": ..., "acc,none": v,
  "acc_stderr,none": s}}, "n-shot": {task: k}, "config": {"model_args": ...},
  "model_name": ...}` (metric keys are `metric,filter`; the filter "none" is dropped, others
  are kept as `metric,filter`).

The model is the name after the last "/" of `pretrained=` (else of `model_name`), the step
comes from `revision=stepN`. N (parameters) and the tokens per step come from a sizes table
(`model,params,tokens_per_step`, optionally `tokens` for a model evaluated without a step
revision); a model missing from it is a one-line DataError naming it. Each file becomes one
external checkpoint (N, tokens = step × tokens_per_step, FLOPs = 6·N·tokens) of a run per
model (family "imported", named after the model), with one eval row per task × metric (value,
stderr, shot count). Importing the same file again changes nothing.

Every file is read and checked before anything is written, then all are written in one
transaction: a file over 256 MiB or nested deeper than 64 levels, an integer beyond 64 bits,
a step or token count beyond 64 bits, a shot count beyond 2^31 is a one-line error naming the
file and field. NaN and ±inf results are skipped and counted (a NaN stderr is stored as
missing).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from scaletrack.csv_table import read_csv_table
from scaletrack.errors import DataError
from scaletrack.store.importers import checks

if TYPE_CHECKING:
    from scaletrack.store.protocol import StoreLike

SIZES_COLUMNS = ("model", "params", "tokens_per_step")
_STEP = re.compile(r"^(?:step|global_step)[_-]?(\d+)$")


@dataclass(frozen=True)
class ModelSize:
    """N (parameters) of a model and the tokens it trains per step (tokens)."""

    model: str
    params: int
    tokens_per_step: int | None
    tokens: int | None = None  # tokens seen by the un-revisioned (final) model


@dataclass(frozen=True)
class EvalFile:
    """One lm-eval result file: model, step, shots and (task, metric, value, stderr) rows."""

    path: Path
    format: str  # "0.3" | "0.4"
    model: str
    step: int | None
    n_shot: int | None
    model_args: str
    rows: tuple[tuple[str, str, float, float | None, int | None], ...]
    sha256: str
    nonfinite: tuple[tuple[str, str], ...] = ()  # (task, metric) of NaN/inf results skipped


@dataclass(frozen=True)
class ImportReport:
    """What `import_lm_eval` did: files read, runs and checkpoints touched, eval rows written."""

    files: int
    models: tuple[str, ...]
    runs_new: int
    checkpoints: int
    evals: int
    nonfinite: int = 0
    nonfinite_cells: tuple[tuple[str, str], ...] = ()  # (file name, task/metric), first few


def read_sizes(path: str | Path) -> dict[str, ModelSize]:
    """The sizes table: columns model, params, tokens_per_step (and optionally tokens)."""
    path = checks.regular_file(path, "sizes file")
    df = read_csv_table(path, text=True)  # one-line errors; a row wider than the header too
    missing = [c for c in SIZES_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"sizes file {str(path)!r} lacks column(s) {missing}; it needs "
                        f"{', '.join(SIZES_COLUMNS)} (optional: tokens)")
    sizes: dict[str, ModelSize] = {}
    for i, row in df.iterrows():
        at = f"sizes file {path.name} line {int(i) + 2}"
        model = checks.text(str(row["model"]).strip(), f"{at}: model")
        params = checks.whole(row["params"], f"{at}: params of {model!r}", minimum=1,
                              required=True)
        per_step = checks.whole(row["tokens_per_step"], f"{at}: tokens_per_step", minimum=1)
        tokens = checks.whole(row["tokens"], f"{at}: tokens") if "tokens" in df.columns \
            else None
        if model in sizes:
            raise DataError(f"sizes file {path.name}: model {model!r} is listed twice")
        sizes[model] = ModelSize(model, int(params or 0), per_step, tokens)
    return sizes


def find_result_files(paths: Iterable[str | Path]) -> list[Path]:
    """JSON files named directly or found (recursively) in folders, sorted."""
    found: list[Path] = []
    for item in paths:
        p = Path(item)
        kind = checks.special_kind(p)
        if kind == "a folder":
            found.extend(sorted(q for q in p.rglob("*.json") if q.is_file()))
        else:
            found.append(checks.regular_file(p, "result file"))
    if not found:
        raise DataError("no .json result files in " + ", ".join(str(p) for p in paths))
    return found


def _model_args(config: Any) -> dict[str, str]:
    raw = config.get("model_args") if isinstance(config, Mapping) else None
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for part in str(raw or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _number(value: Any) -> float | None:
    """A number (NaN and ±inf included, counted by the caller); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def parse_file(path: str | Path) -> EvalFile:
    """Read one lm-eval result file (either format); DataError names the file on a problem."""
    path = Path(path)
    data, raw = checks.load_json(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), Mapping):
        raise DataError(f"{path}: not an lm-evaluation-harness result file (no 'results')")
    raw_config = data.get("config")
    config: Mapping[str, Any] = raw_config if isinstance(raw_config, Mapping) else {}
    args = _model_args(config)
    name = args.get("pretrained") or str(data.get("model_name") or "")
    if not name:
        raise DataError(f"{path}: no model name (no pretrained= in config.model_args, "
                        "no model_name)")
    model = checks.text(name.rstrip("/").rsplit("/", 1)[-1] or name, f"{path}: model name")
    revision = args.get("revision", "")
    match = _STEP.match(revision)
    step = checks.whole(match.group(1), f"{path}: revision {revision[:40]!r}") if match \
        else None
    if revision and match is None and revision not in ("main", "master"):
        raise DataError(f"{path}: revision {revision!r} is not of the form stepN")
    new_format = isinstance(data.get("n-shot"), Mapping) or any(
        isinstance(metrics, Mapping) and any("," in str(k) for k in metrics)
        for metrics in data["results"].values()
    )
    raw_shots = data.get("n-shot")
    shots_by_task: Mapping[str, Any] = raw_shots if isinstance(raw_shots, Mapping) else {}
    default_shots = checks.whole(config.get("num_fewshot"), f"{path}: config.num_fewshot",
                                 maximum=checks.INT32_MAX)
    rows: list[tuple[str, str, float, float | None, int | None]] = []
    nonfinite: list[tuple[str, str]] = []
    for task, metrics in data["results"].items():
        if not isinstance(metrics, Mapping):
            continue
        task = checks.text(task, f"{path}: task name")
        shots = shots_by_task.get(task, default_shots)
        shots = checks.whole(shots, f"{path}: n-shot of {task}", maximum=checks.INT32_MAX)
        values: dict[str, float] = {}
        stderrs: dict[str, float | None] = {}
        for key, value in metrics.items():
            base, _, filt = str(key).partition(",")
            metric = base if filt in ("", "none") else f"{base},{filt}"
            if base.endswith("_stderr"):
                stem = base[: -len("_stderr")]
                stderrs[stem if filt in ("", "none") else f"{stem},{filt}"] = checks.finite(value)
                continue
            number = _number(value)
            if number is None:
                continue
            checks.text(metric, f"{path}: metric name of {task}")
            if math.isfinite(number):
                values[metric] = number
            else:
                nonfinite.append((task, metric))
        for metric, value in values.items():
            rows.append((str(task), metric, value, stderrs.get(metric), shots))
    if not rows and not nonfinite:
        raise DataError(f"{path}: no numeric results")
    return EvalFile(
        path=path, format="0.4" if new_format else "0.3", model=model, step=step,
        n_shot=default_shots if default_shots is not None else (
            next(iter({r[4] for r in rows})) if len({r[4] for r in rows}) == 1 else None),
        model_args=str(config.get("model_args", "")), rows=tuple(rows),
        sha256=hashlib.sha256(raw).hexdigest(), nonfinite=tuple(nonfinite),
    )


def _tokens(result: EvalFile, size: ModelSize) -> int:
    if result.step is not None:
        if size.tokens_per_step is None:
            raise DataError(f"{result.path}: model {result.model!r} has no tokens_per_step in "
                            "the sizes file")
        tokens = result.step * size.tokens_per_step
        if tokens > checks.INT64_MAX:
            raise DataError(f"{result.path}: step {result.step:,} x {size.tokens_per_step:,} "
                            "tokens per step is beyond the store's 64-bit integers")
        return tokens
    if size.tokens is None:
        raise DataError(f"{result.path}: no revision=stepN in model_args and no tokens for "
                        f"{result.model!r} in the sizes file; the tokens seen are unknown")
    return size.tokens


def import_lm_eval(store: StoreLike, paths: Iterable[str | Path], sizes: Mapping[str, ModelSize], *,
                   sweep: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import every result file under `paths` (see the module docstring).

    All files are read and checked against `sizes` before anything is written, then
    everything is written in one transaction, so any problem leaves the store untouched.
    `progress(files_read, files)` is called as files are read.
    """
    from scaletrack.store.importers.apply import (
        ImportPlan,
        PlannedCheckpoint,
        PlannedRun,
    )
    from scaletrack.store.records import CheckpointRecord, RunRecord, make_run_key

    files = find_result_files(paths)
    if sweep is not None:
        checks.text(sweep, "--sweep")
    parsed = []
    for i, path in enumerate(files):
        parsed.append(parse_file(path))
        if progress is not None:
            progress(i + 1, len(files))
    for result in parsed:
        if result.model not in sizes:
            raise DataError(f"model {result.model!r} ({result.path}) is not in the sizes file; "
                            "add a row: model,params,tokens_per_step")
    # A file whose every result is NaN/inf adds no checkpoint (an empty one would count as
    # "evaluated at this scale").
    planned = [(r, sizes[r.model], _tokens(r, sizes[r.model])) for r in parsed if r.rows]
    plan = ImportPlan(sweeps={} if sweep is None else {sweep: {"imported_from": "lm-eval"}})
    run_keys: dict[str, str] = {}
    max_tokens: dict[str, int] = {}
    for result, _, tokens in planned:
        max_tokens[result.model] = max(max_tokens.get(result.model, 0), tokens)
    for model in sorted(max_tokens):
        n = sizes[model].params
        key = make_run_key({"source": "lm-eval", "model": model, "sweep": sweep})
        existing = store.get_run(key)
        d = max(max_tokens[model], (existing.D or 0) if existing is not None else 0)
        c = 6.0 * n * d
        if not math.isfinite(c):
            raise DataError(f"model {model!r}: 6 x N x D overflows ({n:,} x {d:,})")
        plan.runs.append(PlannedRun(record=RunRecord(
            run_key=key, sweep=sweep, family="imported",
            config={"source": "lm-eval", "model": model}, N=n, N_total=n, D=d, C=c,
            status="finished", name=model,
            note=None if existing is None else existing.note,
        )))
        run_keys[model] = key
    for result, size, tokens in planned:
        where = f"step{result.step}" if result.step is not None else "final"
        shots = "" if result.n_shot is None else f"/{result.n_shot}-shot"
        plan.checkpoints.append(PlannedCheckpoint(record=CheckpointRecord(
            id=None, run_key=run_keys[result.model], kind="external", N=size.params,
            tokens=tokens, flops=6.0 * size.params * tokens, step=result.step,
            path=f"lm-eval:{result.model}@{where}{shots}:{result.sha256[:16]}", sha256=None,
            loader=None,
            meta={"source": str(result.path), "format": result.format, "model": result.model,
                  "model_args": result.model_args, "n_shot": result.n_shot,
                  "file_sha256": result.sha256},
        ), evals=result.rows))
    applied = store.apply_import(plan)
    cells = [(r.path.name, f"{task}/{metric}") for r in parsed for task, metric in r.nonfinite]
    return ImportReport(files=len(planned), models=tuple(sorted(max_tokens)),
                        runs_new=applied.runs_new, checkpoints=applied.checkpoints,
                        evals=applied.evals, nonfinite=len(cells),
                        nonfinite_cells=tuple(cells[:3]))


def task_ladder(store: StoreLike, task: str, *, acc_metric: str = "acc", loss_metric: str = "ppl",
                n_shot: int | None = 0) -> pd.DataFrame:
    """The two-step input (`analysis.fit_two_step`) from imported evals of one task: columns
    run, step, N (params), D (tokens seen), loss (nats/token: ln of a perplexity metric, else
    the metric itself), acc; checkpoints at 0 tokens are left out."""
    evals = store.evals(task=task)
    if n_shot is not None:
        evals = evals[evals["n_shot"] == n_shot]
    steps = store.checkpoints().set_index("id")["step"]
    evals = evals.assign(step=evals["checkpoint_id"].map(steps))
    wide = evals.pivot_table(index=["run_key", "step", "N", "tokens"], columns="metric",
                             values="value", aggfunc="last").reset_index()
    for metric in (acc_metric, loss_metric):
        if metric not in wide.columns:
            raise DataError(f"task {task!r} has no recorded metric {metric!r}")
    wide = wide[wide["tokens"] > 0]
    loss = wide[loss_metric].astype(float)
    if "ppl" in loss_metric or "perplexity" in loss_metric:
        loss = loss.map(math.log)
    return pd.DataFrame({
        "run": wide["run_key"].to_numpy(), "step": wide["step"].astype("int64").to_numpy(),
        "N": wide["N"].astype(float).to_numpy(), "D": wide["tokens"].astype(float).to_numpy(),
        "loss": loss.to_numpy(), "acc": wide[acc_metric].astype(float).to_numpy(),
    })
