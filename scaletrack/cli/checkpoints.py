"""`scaletrack checkpoints ...`: register external checkpoints, list them, evaluate tasks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from scaletrack.cli.common import (
    StoreOption,
    console,
    print_json,
    print_table,
    store_session,
    writing_session,
)
from scaletrack.counts import whole_count
from scaletrack.errors import ConfigError
from scaletrack.number_format import fmt_number

checkpoints_app = typer.Typer(
    help="Checkpoints: trained here or registered from elsewhere; task evaluations on them.",
    no_args_is_help=True,
)


@checkpoints_app.command("add")
def add(
    path: Path = typer.Argument(..., help="Checkpoint file or directory."),
    params: str = typer.Option(..., "--params", help="N: parameters used for fits (e.g. 5e7)."),
    tokens: str = typer.Option(..., "--tokens", help="D: training tokens (e.g. 1e9)."),
    flops: float | None = typer.Option(None, "--flops", help="C: training compute in FLOPs "
                                       "(default: 6·N·D from --params and --tokens)."),
    loader: str | None = typer.Option(None, "--loader", help="gpt, lstm or "
                                      "package.module:function returning the model."),
    meta: str | None = typer.Option(
        None, "--meta", help="JSON object stored with the checkpoint. Built-in loaders and "
        "tasks read 'model' (the shape, e.g. {\"n_layer\": 2, \"n_head\": 2, \"d_model\": 64}) and "
        "'data' (what to evaluate on, e.g. {\"corpus\": \"stdlib\"})."),
    store_url: str | None = StoreOption,
) -> None:
    """Register a checkpoint not trained here (kind 'external'); ideas it out-scales become due.

    C (FLOPs) is --flops, else 6·N·D (`register_external_checkpoint`'s default): the rule
    ideas compare checkpoints by.
    """
    from scaletrack.evals.evaluate import CheckpointExists, register_external_checkpoint
    from scaletrack.evals.ideas import refresh_idea_statuses

    n, d = _count("--params", params, minimum=1), _count("--tokens", tokens, minimum=0)
    if flops is not None and not (math.isfinite(flops) and flops > 0):
        raise ConfigError(f"--flops must be a positive number of FLOPs, got {flops}")
    details = _parse_meta(meta)
    with writing_session(store_url) as store:  # a failed check leaves no new store
        try:
            ckpt_id = register_external_checkpoint(
                store, path, params=n, tokens=d, flops=flops, loader=loader, meta=details)
        except CheckpointExists as exc:
            if not exc.identical:
                raise
            console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
            return
        record = store.get_checkpoint(ckpt_id)
        assert record is not None and record.sha256 is not None  # registered with its hash
        console.print(
            f"registered checkpoint {ckpt_id} (external, N={fmt_number(record.N)}, "
            f"D={fmt_number(record.tokens)}, {_compute_text(record.flops, flops is None, d)}, "
            f"sha256 {record.sha256[:12]}...)",
            highlight=False, soft_wrap=True,
        )
        due = refresh_idea_statuses(store)
        if due:
            console.print(
                f"ideas now due: {', '.join(map(str, due))} (run `scaletrack ideas rerun`)"
            )


def _compute_text(c: float | None, derived: bool, d: int) -> str:
    """How the recorded compute reads in the confirmation line."""
    if c is None:
        return "C=0 (D=0 tokens: no training compute)" if d == 0 else "C=-"
    return f"C={fmt_number(c)}" + (" (6·N·D; --flops states it exactly)" if derived else "")


def _count(option: str, text: str, *, minimum: int) -> int:
    """A whole count written as 50000000, 50_000_000 or 5e7, from `minimum` to 2**63 - 1."""
    digits = text.strip().replace("_", "")
    try:
        value: int | float = int(digits) if digits.lstrip("+-").isdigit() else float(digits)
    except ValueError:
        raise ConfigError(f"{option} must be a number such as 5e7, got {text!r}") from None
    return whole_count(value, option, minimum=minimum)


def _parse_meta(text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--meta is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"--meta must be a JSON object, got {type(value).__name__}")
    return value


@checkpoints_app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    kind: str | None = typer.Option(None, "--kind", help="Only 'own' or 'external'."),
    run_key: str | None = typer.Option(None, "--run", help="Only this run's checkpoints."),
    store_url: str | None = StoreOption,
) -> None:
    """List checkpoints with N (params), tokens, FLOPs, kind, loader and path."""
    with store_session(store_url, create=False) as store:
        df = store.checkpoints(run_key=run_key, kind=kind)
        if as_json:
            print_json(df.to_dict(orient="records"))
            return
        if df.empty:
            console.print("no checkpoints")
            return
        shown = df.copy()
        shown["run_key"] = [k[:8] if isinstance(k, str) else None for k in shown["run_key"]]
        cols = ["id", "kind", "run_key", "step", "N", "tokens", "flops", "loader", "path"]
        print_table(shown, title="checkpoints", columns=cols)


@checkpoints_app.command("eval")
def eval_(
    checkpoint_id: int = typer.Argument(..., help="Checkpoint id (see `checkpoints list`)."),
    task: list[str] = typer.Option(..., "--task", help="Task name; repeat for several."),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
    store_url: str | None = StoreOption,
) -> None:
    """Evaluate tasks on a checkpoint and store the results in the evals table."""
    from scaletrack.evals.evaluate import evaluate_checkpoint

    with store_session(store_url, create=False) as store:
        results = evaluate_checkpoint(store, checkpoint_id, task, device=device)
        for task_name, metrics in results.items():
            shown = ", ".join(f"{m}={fmt_number(v)}" for m, v in metrics.items())
            console.print(f"checkpoint {checkpoint_id} {task_name}: {shown}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `scaletrack checkpoints ...` to the main app."""
    app.add_typer(checkpoints_app, name="checkpoints")
