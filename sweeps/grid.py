"""Grid expansion: a validated `GridSpec` becomes a list of cells, one TrainConfig each.

A cell is one point of sizes x token budgets x seeds x learning rates (x a command grid's
custom axes). With cooldown branches
(``[schedule] kind = "wsd"``, ``branches = true``) each size x seed x lr also gets a trunk run
(warmup + constant lr up to the largest budget's branch point, role "trunk", never a point of
a fit), and each budget's cell is a branch (role "branch") that starts from the trunk's
checkpoint at its branch point. Trunk and branches share one warmup: ``warmup_steps`` if
given, else ``warmup_frac`` of the smallest budget's steps. Its run key is
`store.make_run_key` over the sweep name and the cell's train config (without the device, which
does not change what a run *is*), so the same grid gives the same keys every time whatever the
order of the axes in the file. `load_grid` validates completely — model shapes resolved through
`models.ladder`, data present, evaluation tasks known, at least one step per budget — without
touching any store, so a rejected grid writes nothing. Eval task names are checked by a
`check_task` function the evaluation layer passes in.

A command grid whose model is the program's own (`GridSpec.standalone`: no `[data]`, no
built-in family) expands without data or shapes: a cell's config is a `CommandConfig` holding
only what the grid gives it (its size values, tokens, seed and lr where listed, custom axes);
N comes from the grid's params ladder (or a `params` key of its sizes) and is otherwise
unknown, C = 6·N·D where N is known, and its run key is derived from that config and the
filled program line. Custom axes of a grid with a built-in model are added to its cells'
configs and run keys (grids without custom axes keep their keys).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scaletrack.errors import ConfigError, ScaletrackError
from scaletrack.number_format import fmt_number
from scaletrack.store import RunRecord, make_run_key
from scaletrack.sweeps.command import CommandConfig, fill
from scaletrack.sweeps.schedule import branch_point
from scaletrack.sweeps.spec import GridSpec, load_spec
from scaletrack.sweeps.spec_sections import CustomModelSpec, GptModelSpec, LstmModelSpec


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its key, its train config and what it is planned to cost."""

    run_key: str
    sweep: str
    family: str  # "gpt" | "lstm" | "custom" (a command cell's own model)
    config: Any  # sweeps.train.TrainConfig, or sweeps.command.CommandConfig (own model)
    size_label: str  # e.g. "L2-H2-D64" or "L2-H128"; "N=3M" or "width=256" for an own model
    N: int | None  # parameters used for fits (non-embedding), as planned; None: not known
    N_total: int | None
    D: int  # token budget (tokens)
    C: float | None  # planned training compute (FLOPs); None when N is not known
    steps: int | None  # None: the program's own business
    seed: int | None  # None: the grid lists no seeds (own-model command cells)
    lr: float | None  # None: the grid lists no lrs (own-model command cells)
    command: str | None = None  # a command cell's program line, placeholders filled
    workdir: str | None = None  # where a command cell's program runs (the grid's folder)
    role: str = "cell"  # "cell" | "trunk" | "branch" (store.RUN_ROLES)
    parent_run_key: str | None = None  # a branch's trunk
    branch_step: int | None = None  # trunk step a branch starts from
    axes: tuple[tuple[str, Any], ...] = ()  # custom axes' values of a command cell

    @property
    def spent_flops(self) -> float:
        """Training FLOPs this run itself spends (a branch only pays for its cooldown); 0 when
        not known."""
        if self.C is None:
            return 0.0
        if not self.steps:
            return self.C
        return self.C * (self.steps - (self.branch_step or 0)) / self.steps

    @property
    def label(self) -> str:
        """One line naming the cell: size, N, D, seed, lr and custom axes (what is known)."""
        parts = [self.size_label]
        if self.N is not None and not self.size_label.startswith("N="):
            parts.append(f"N={fmt_number(self.N)}")
        parts.append(f"D={fmt_number(self.D)}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        if self.lr is not None:
            parts.append(f"lr={self.lr:g}")
        parts += [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.axes]
        return " ".join(p for p in parts if p)

    def record(self) -> Any:
        """The store.RunRecord for this cell (status pending)."""
        config = self.config.to_dict()
        config.update(dict(self.axes))
        if self.command is not None:
            config["command"] = self.command
        return RunRecord(
            run_key=self.run_key,
            sweep=self.sweep,
            family=self.family,
            config=config,
            N=self.N,
            N_total=self.N_total,
            D=self.D,
            C=self.C,
            seed=self.seed,
            lr=self.lr,
            role=self.role,
            parent_run_key=self.parent_run_key,
            branch_step=self.branch_step,
        )


@dataclass(frozen=True)
class Grid:
    """A validated grid file and its cells, in the order they will be scheduled."""

    spec: GridSpec
    source: str  # the grid file path (or "<grid>")
    cells: tuple[Cell, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    def stored_spec(self) -> dict[str, Any]:
        """What `upsert_sweep` stores: the validated grid plus its source file."""
        return {"source": self.source, "grid": self.spec.to_json_dict()}


def cell_key_config(config: Any, sweep: str, command: str | None = None,
                    axes: Any = ()) -> dict[str, Any]:
    """The mapping a cell's run key is derived from (train config minus device, plus sweep;
    plus a command cell's custom axes values and program line)."""
    d = dict(config.to_dict())
    d.pop("device", None)
    d.update(dict(axes))
    if command is not None:
        d["command"] = command
    return {"sweep": sweep, "train": d}


def _fail(source: str, field: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {field}: {message}")


def _resolve_data(spec: GridSpec, source: str, base_dir: Path) -> dict[str, Any]:
    """The data dict for TrainConfig, with file paths made absolute and checked to exist."""
    assert spec.data is not None  # GridSpec checked it
    data = spec.data.source()
    for key, what in (("path", "text file or folder"), ("tokens", "token file")):
        if key in data:
            p = Path(str(data[key])).expanduser()
            if not p.is_absolute():
                p = (base_dir / p).resolve()
            if not p.exists():
                raise _fail(source, f"data.{key}", f"{what} {p} does not exist")
            if key == "tokens" and not p.is_file():
                raise _fail(source, f"data.{key}", f"expected a token file, {p} is not a file")
            data[key] = str(p)
    if "task" in data:
        from scaletrack.models.tasks import TASKS

        if data["task"] not in TASKS:
            raise _fail(
                source,
                "data.task",
                f"unknown synthetic task {data['task']!r} (expected one of {', '.join(TASKS)})",
            )
    return data


def _load_usable_data(data: dict[str, Any], context: int, source: str) -> Any:
    """Load the data now (cached), so an empty corpus or a too-long context is refused
    before the store is touched; returns models.data.TokenData."""
    from scaletrack.models.data import load_tokens

    try:
        tokens = load_tokens(data)
    except ScaletrackError as exc:
        raise _fail(source, "data", str(exc)) from None
    for split, ids in (("train", tokens.train), ("validation", tokens.val)):
        if ids.numel() < context + 2:
            raise _fail(
                source, "data.context",
                f"the {split} split holds {ids.numel():,} tokens, fewer than context + 2 = "
                f"{context + 2}; use a larger corpus or a shorter context",
            )
    return tokens


def _shapes(spec: GridSpec, source: str, vocab_size: int) -> list[tuple[str, dict[str, Any]]]:
    """(label, shape kwargs) for each size; target counts resolved with models.ladder."""
    from scaletrack.models.ladder import shape_for

    assert spec.data is not None and isinstance(spec.model, GptModelSpec | LstmModelSpec)
    family = spec.model.family
    context = spec.data.context
    out: list[tuple[str, dict[str, Any]]] = []
    keep = ("n_layer", "n_head", "d_model", "mlp_ratio") if family == "gpt" else (
        "n_layer",
        "d_hidden",
    )
    if spec.model.sizes is not None:
        for i, size in enumerate(spec.model.sizes):
            shape = size.model_dump(exclude_none=True)
            try:
                shape_for(family, shape, context=context, vocab_size=vocab_size)
            except ScaletrackError as exc:
                raise _fail(source, f"model.sizes[{i}]", str(exc)) from None
            out.append((_label(family, shape), shape))
    else:
        for i, target in enumerate(spec.model.target_params or []):
            try:
                cfg = shape_for(family, target, context=context, vocab_size=vocab_size)
            except ScaletrackError as exc:
                raise _fail(source, f"model.target_params[{i}]", str(exc)) from None
            full = cfg.to_dict()
            shape = {k: full[k] for k in keep if k in full}
            out.append((_label(family, shape), shape))
    seen: dict[str, int] = {}
    for i, (label, _) in enumerate(out):
        if label in seen:
            raise _fail(
                source,
                "model.target_params" if spec.model.sizes is None else "model.sizes",
                f"entries {seen[label]} and {i} resolve to the same shape {label}; "
                "expected distinct sizes",
            )
        seen[label] = i
    return out


def _label(family: str, shape: dict[str, Any]) -> str:
    if family == "gpt":
        return f"L{shape['n_layer']}-H{shape['n_head']}-D{shape['d_model']}"
    return f"L{shape['n_layer']}-H{shape['d_hidden']}"


TaskCheck = Callable[[str], object]


def expand(
    spec: GridSpec,
    source: str = "<grid>",
    base_dir: Path | None = None,
    *,
    check_task: TaskCheck | None = None,
) -> Grid:
    """Every cell of `spec`, fully resolved and checked, ordered per `spec.executor.order`.

    `check_task(name)` raises a ScaletrackError for an unknown eval task; the evaluation layer
    supplies it (`scaletrack.load_grid` does), since sweeps do not know the task registry.
    """
    base_dir = base_dir or Path.cwd()
    if spec.standalone:
        return _expand_own_model(spec, source, base_dir)
    from scaletrack.sweeps.train import TrainConfig, plan_run

    assert spec.data is not None and spec.model is not None  # GridSpec checked both
    data = _resolve_data(spec, source, base_dir)
    vocab = _load_usable_data(data, spec.data.context, source).vocab_size
    shapes = _shapes(spec, source, vocab)
    if check_task is not None:
        for i, name in enumerate(spec.eval.tasks):
            try:
                check_task(name)
            except ScaletrackError as exc:
                raise _fail(source, f"eval.tasks[{i}]", str(exc)) from None

    step_tokens = spec.train.batch_size * spec.data.context
    for i, budget in enumerate(spec.axes.tokens):
        if budget < step_tokens:
            raise _fail(
                source,
                f"axes.tokens[{i}]",
                f"budget {budget} tokens is less than one step "
                f"(batch_size {spec.train.batch_size} x context {spec.data.context} = "
                f"{step_tokens} tokens)",
            )

    device = spec.train.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"

    common: dict[str, Any] = {
        "family": spec.model.family, "data": dict(data), "context": spec.data.context,
        "batch_size": spec.train.batch_size, "schedule": spec.schedule.kind,
        "warmup_frac": spec.schedule.warmup_frac, "decay_frac": spec.schedule.decay_frac,
        "min_lr_frac": spec.schedule.min_lr_frac, "cooldown": spec.schedule.cooldown,
        "warmup_steps": spec.schedule.warmup_steps,
        "weight_decay": spec.train.weight_decay, "grad_clip": spec.train.grad_clip,
        "eval_every": spec.eval.every, "eval_batches": spec.eval.batches,
        "checkpoint_every": spec.checkpoint.every, "device": device,
    }

    def make_cell(label: str, shape: dict[str, Any], budget: int, seed: int, lr: float,
                  axes: tuple[tuple[str, Any], ...] = (), **extra: Any) -> Cell:
        role = extra.pop("role", "cell")
        try:
            cfg = TrainConfig(**{**common, "model": dict(shape), "tokens": budget, "lr": lr,
                                 "seed": seed, **extra})
            plan = plan_run(cfg)
        except ScaletrackError as exc:
            raise ConfigError(f"{source}: cell {label} D={budget}: {exc}") from None
        command = None
        if spec.train.command is not None:
            from scaletrack.sweeps.command import fill_template

            command = fill_template(spec.train.command, cfg, spec.name, plan, dict(axes))
        return Cell(
            run_key=make_run_key(cell_key_config(cfg, spec.name, command, axes)),
            sweep=spec.name,
            family=common["family"], config=cfg, size_label=label, N=int(plan.N),
            N_total=int(plan.N_total), D=int(budget), C=float(plan.C), steps=int(plan.steps),
            seed=seed, lr=lr, role=role, parent_run_key=cfg.branch_from,
            branch_step=cfg.branch_step if role == "branch" else None,
            command=command,
            workdir=str(base_dir.resolve()) if command is not None else None,
            axes=axes,
        )

    if spec.schedule.branches and spec.train.command is not None:
        raise _fail(source, "schedule.branches", "cooldown branches need the built-in trainer; "
                    "a command cell runs its own training loop")
    cells: list[Cell] = []
    for (label, shape), seed, lr, axes in itertools.product(
        shapes, spec.axes.seeds, spec.axes.lrs, _custom_points(spec)
    ):
        budgets = planned_budgets(spec, label)
        if not spec.schedule.branches:
            for budget in budgets:
                cells.append(make_cell(label, shape, budget, seed, lr, axes))
            continue
        if budgets:
            cells.extend(_branch_cells(spec, make_cell, label, shape, seed, lr, step_tokens,
                                       budgets))
    _check_planned(spec, source, [label for label, _ in shapes])
    return _ordered(spec, source, cells)


def planned_budgets(spec: GridSpec, size_label: str) -> list[int]:
    """The token budgets of a size that are cells of the grid: every budget, or with
    `[plan] cells` only those listed for that size (sweeps.plan_spec)."""
    if spec.plan is None or spec.plan.cells is None:
        return list(spec.axes.tokens)
    chosen = {c.tokens for c in spec.plan.cells if c.size == size_label}
    return [d for d in spec.axes.tokens if d in chosen]


def _check_planned(spec: GridSpec, source: str, labels: Sequence[str]) -> None:
    """Every `[plan] cells` entry names a size label and a budget of `[axes] tokens`."""
    if spec.plan is None or spec.plan.cells is None:
        return
    for i, c in enumerate(spec.plan.cells):
        if c.size not in labels:
            raise _fail(source, f"plan.cells[{i}].size", f"{c.size!r} is not a size of [model] "
                        f"(sizes: {', '.join(labels)})")
        if c.tokens not in spec.axes.tokens:
            raise _fail(source, f"plan.cells[{i}].tokens", f"{c.tokens} is not one of "
                        "[axes] tokens")


def _custom_points(spec: GridSpec) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of the grid's custom axes, as ((name, value), ...) in file order."""
    custom = spec.axes.custom()
    return [tuple(zip(custom, values, strict=True))
            for values in itertools.product(*custom.values())]


def _ordered(spec: GridSpec, source: str, cells: list[Cell]) -> Grid:
    """The grid with its cells in schedule order (compute order: smallest planned C first, a
    trunk just before its first branch; cells of unknown C after them, smallest D first)."""
    order: dict[str, tuple[Any, ...]] = {}  # run key -> schedule sort key (compute order)
    if spec.executor.order == "compute":
        for i, c in enumerate(cells):
            known = c.C is not None
            order[c.run_key] = ((0, c.C, c.N or 0, c.D, c.seed or 0, c.lr or 0.0, 0) if known
                                else (1, 0.0, 0, c.D, 0, 0.0, i), 1)
        for c in cells:  # a trunk goes just before its first branch
            if c.role == "trunk":
                kids = [order[k.run_key] for k in cells if k.parent_run_key == c.run_key]
                order[c.run_key] = (*min(kids)[:-1], 0) if kids else order[c.run_key]
        cells.sort(key=lambda c: order[c.run_key])
    return Grid(spec=spec, source=source, cells=tuple(cells))


def _human_count(n: int) -> str:
    """12_300 -> "12.3k", 3_000_000 -> "3M": a size label."""
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def _expand_own_model(spec: GridSpec, source: str, base_dir: Path) -> Grid:
    """The cells of a command grid whose model is the program's own (see the module doc)."""
    assert spec.train.command is not None
    sizes: list[tuple[str, dict[str, Any]]] = []
    if isinstance(spec.model, CustomModelSpec) and spec.model.params is not None:
        sizes = [(f"N={_human_count(n)}", {"params": n}) for n in spec.model.params]
    elif isinstance(spec.model, CustomModelSpec) and spec.model.sizes is not None:
        sizes = [(" ".join(f"{k}={v}" for k, v in size.items() if k != "params")
                  or f"N={_human_count(int(size['params']))}", dict(size))
                 for size in spec.model.sizes]
    else:
        sizes = [("", {})]
    given = spec.axes.model_fields_set
    seeds: list[int | None] = list(spec.axes.seeds) if "seeds" in given else [None]
    lrs: list[float | None] = list(spec.axes.lrs) if "lrs" in given else [None]
    device = spec.train.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    workdir = str(base_dir.resolve())
    cells: list[Cell] = []
    for (label, size), budget, seed, lr, axes in itertools.product(
        sizes, spec.axes.tokens, seeds, lrs, _custom_points(spec)
    ):
        if budget not in planned_budgets(spec, label):
            continue
        n = int(size["params"]) if "params" in size else None
        values: dict[str, Any] = {**size, "tokens": int(budget)}
        if seed is not None:
            values["seed"] = seed
        if lr is not None:
            values["lr"] = lr
        values.update(axes)
        C = 6.0 * n * budget if n is not None else None
        fills = {**values, "sweep": spec.name}
        if n is not None:
            fills.update(N=n, C=C)
        try:
            command = fill(spec.train.command, fills)
        except (KeyError, IndexError, ValueError) as exc:  # GridSpec checked the placeholders
            raise _fail(source, "train.command", f"cannot fill the command: {exc}") from None
        cfg = CommandConfig(values=values, device=device)
        cells.append(Cell(
            run_key=make_run_key(cell_key_config(cfg, spec.name, command)), sweep=spec.name,
            family="custom", config=cfg, size_label=label, N=n, N_total=None, D=int(budget),
            C=C, steps=None, seed=seed, lr=lr, command=command, workdir=workdir, axes=axes,
        ))
    _check_planned(spec, source, [label for label, _ in sizes])
    keys = [c.run_key for c in cells]
    if len(set(keys)) != len(keys):  # cannot happen with distinct axis values; say so if it does
        raise _fail(source, "axes", "two cells have the same settings")
    return _ordered(spec, source, cells)


def _branch_cells(spec: GridSpec, make_cell: Any, label: str, shape: dict[str, Any],
                  seed: int, lr: float, step_tokens: int,
                  chosen: Sequence[int] | None = None) -> list[Cell]:
    """One trunk and one branch per budget for a size x seed x lr (see the module docstring);
    with `chosen`, only those budgets (the trunk then ends at the largest one's branch point)."""
    budgets = sorted(spec.axes.tokens if chosen is None else chosen)
    steps = {d: -(-d // step_tokens) for d in budgets}  # ceil: as plan_run
    points = {d: branch_point(steps[d], spec.schedule.decay_frac) for d in budgets}
    warmup = spec.schedule.warmup_steps
    if warmup is None:
        first = -(-min(spec.axes.tokens) // step_tokens)  # the grid's smallest budget
        warmup = int(round(spec.schedule.warmup_frac * first))
    trunk_steps = max(points.values())
    out: list[Cell] = []
    trunk = None
    if trunk_steps > 0:
        trunk = make_cell(
            label, shape, trunk_steps * step_tokens, seed, lr, role="trunk",
            schedule="constant", warmup_steps=warmup,
            checkpoint_at=tuple(sorted({p for p in points.values() if 0 < p < trunk_steps})),
        )
        out.append(trunk)
    for d in budgets:
        if points[d] > 0 and trunk is not None:
            out.append(make_cell(label, shape, d, seed, lr, role="branch", warmup_steps=warmup,
                                 branch_from=trunk.run_key, branch_step=points[d]))
        else:  # the whole budget is cooldown: nothing to share
            out.append(make_cell(label, shape, d, seed, lr, role="branch", warmup_steps=warmup))
    return out


def load_grid(path: str | Path, *, check_task: TaskCheck | None = None) -> Grid:
    """Read, validate and expand a grid file; any problem is a ConfigError naming the field.

    Eval task names are checked only with `check_task`; `scaletrack.load_grid` passes the
    task registry's resolver.
    """
    path = Path(path)
    spec = load_spec(path)
    return expand(spec, str(path), path.resolve().parent, check_task=check_task)


def with_device(cells: Sequence[Cell], device: str) -> list[Cell]:
    """The same cells set to run on `device` (their run keys do not change)."""
    return [replace(c, config=replace(c.config, device=device)) for c in cells]
