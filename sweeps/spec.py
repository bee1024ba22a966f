"""The grid file: a TOML description of a sweep, validated with pydantic before anything runs.

A grid names the data, a model family with a list of sizes (explicit shapes or target
parameter counts), the axes to cross (token budgets, seeds, learning rates) and the settings
shared by every cell (batch, schedule, evaluation, checkpoints, executor). Unknown keys are
rejected. `load_spec` turns every problem — TOML syntax, a wrong type, a missing field — into
one `ConfigError` whose message names the file, the dotted field path and what was expected.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from scaletrack.errors import ConfigError
from scaletrack.sweeps.command import (
    PLACEHOLDERS,
    SHAPE_PLACEHOLDERS,
    check_placeholders,
    template_fields,
)
from scaletrack.sweeps.plan_spec import PlanSpec
from scaletrack.sweeps.spec_sections import (
    MAX_ERRORS_SHOWN,
    NAME_PATTERN,
    AxesSpec,
    CheckpointSpec,
    CustomModelSpec,
    DataSpec,
    EvalSpec,
    ExecutorSpec,
    GptModelSpec,
    LstmModelSpec,
    ModelSpec,
    ScheduleSpec,
    TrainSpec,
    _Section,
)

# Names a custom axis can never take: the axes and columns every grid has.
RESERVED_AXIS_NAMES = frozenset({"tokens", "seeds", "lrs", "seed", "lr", "params", "N", "C", "D",
                                 "sweep", "command", "device"})
# A built-in model's config keys (sweeps.train.TrainConfig's fields, kept in step by a test);
# with a built-in model these, like its placeholders, are taken.
BUILTIN_CONFIG_KEYS = frozenset({
    "family", "model", "data", "context", "batch_size", "tokens", "lr", "seed", "schedule",
    "warmup_frac", "decay_frac", "min_lr_frac", "weight_decay", "grad_clip", "eval_every",
    "eval_batches", "checkpoint_every", "device", "log_every", "cooldown", "warmup_steps",
    "checkpoint_at", "branch_from", "branch_step",
})
# Sections and [train] keys that only the built-in trainer reads
BUILTIN_SECTIONS = ("schedule", "eval", "checkpoint")
BUILTIN_TRAIN_KEYS = ("batch_size", "weight_decay", "grad_clip", "pack")
# how to give a built-in placeholder a value in a grid whose model is the program's own
PLACEHOLDER_HINTS = {
    "seed": "list the seeds: [axes] seeds = [0, 1]",
    "lr": "list the learning rates: [axes] lrs = [1e-3]",
    "params": "give an N ladder: [model] params = [1e6, 3e6]",
    "N": "give an N ladder: [model] params = [1e6, 3e6]",
    "C": "C = 6 N D needs N: [model] params = [1e6, 3e6]",
}


class GridSpec(_Section):
    """A whole grid file.

    With the built-in trainer it needs `[data]` and a `[model]` family (gpt or lstm). A grid
    with `[train] command` runs the user's program per cell instead and may stand alone: its
    `[model]` (no family) is an N ladder or named sizes, or is left out; it has no `[data]`,
    `[schedule]`, `[eval]` or `[checkpoint]` and no built-in `[train]` settings, and its
    placeholders are the values it gives (see `placeholders`). A grid with a built-in model and
    a command (the program builds that model) still works as before.
    """

    name: str = Field(pattern=NAME_PATTERN, description="sweep name (letters, digits, . _ -)")
    description: str | None = None
    data: DataSpec | None = None
    model: ModelSpec | None = None
    axes: AxesSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    plan: PlanSpec | None = None  # sweeps.plan_spec: planned cells, adaptive stop

    @model_validator(mode="before")
    @classmethod
    def _custom_family(cls, data: Any) -> Any:
        """A [model] table of params or sizes without family is the program's own model."""
        model = data.get("model") if isinstance(data, Mapping) else None
        if isinstance(model, Mapping) and "family" not in model and model and set(model) <= {
            "params", "sizes"
        }:
            data = {**data, "model": {"family": "custom", **model}}
        return data

    @property
    def builtin(self) -> bool:
        """Whether cells train (or describe) a built-in model family (gpt or lstm)."""
        return isinstance(self.model, GptModelSpec | LstmModelSpec)

    @property
    def standalone(self) -> bool:
        """A command grid whose model is the program's own (no [data], no built-in family)."""
        return self.train.command is not None and not self.builtin

    @model_validator(mode="after")
    def _sections(self) -> GridSpec:
        custom = self.axes.custom()
        if self.train.command is None:
            if custom:
                raise ValueError(f"@axes.{next(iter(custom))}: a custom axis is for a command "
                                 "cell's program ([train] command); the built-in trainer has "
                                 "no such setting")
            if self.model is None:
                raise ValueError("@model: required field is missing")
            if not self.builtin:
                raise ValueError("@model.family: the built-in trainer needs family 'gpt' or "
                                 "'lstm'; a model without one (params or sizes) is a command "
                                 "cell's own ([train] command)")
            if self.data is None:
                raise ValueError("@data: required field is missing")
            return self
        if self.builtin:
            if self.data is None:
                raise ValueError("@data: required with a built-in model family (gpt, lstm); "
                                 "for the program's own model leave family out and give "
                                 "[model] params (an N ladder) or sizes")
            taken = RESERVED_AXIS_NAMES | BUILTIN_CONFIG_KEYS | set(PLACEHOLDERS)
            why = "a built-in name of this grid"
        else:
            if self.data is not None:
                raise ValueError("@data: a command cell whose model is its own reads its own "
                                 "data; [data] is only for the built-in model families (gpt, "
                                 "lstm): remove it (a value the program needs goes into the "
                                 "command or a custom axis)")
            for section in BUILTIN_SECTIONS:
                if section in self.model_fields_set:
                    raise ValueError(f"@{section}: only the built-in trainer reads [{section}]; "
                                     "a command cell's program has its own (remove it)")
            for key in BUILTIN_TRAIN_KEYS:
                if key in self.train.model_fields_set:
                    raise ValueError(f"@train.{key}: a setting of the built-in trainer, which "
                                     "a command cell does not run; write the value into the "
                                     "command (or make it a custom axis)")
            sizes = self.model.size_keys() if isinstance(self.model, CustomModelSpec) else []
            taken = RESERVED_AXIS_NAMES | set(sizes)
            own_sizes = isinstance(self.model, CustomModelSpec) and self.model.sizes is not None
            why = "a built-in name" + (" or a key of [model] sizes" if own_sizes else "")
        for name in custom:
            if name in taken:
                raise ValueError(f"@axes.{name}: a custom axis cannot be named {name!r}, "
                                 f"{why} (choose another name)")
        try:
            self._check_command()
        except ValueError as exc:
            raise ValueError(f"@train.command: {exc}") from None
        return self

    def placeholders(self) -> list[str]:
        """The placeholders a command line of this grid may use (each has a value per cell)."""
        custom = list(self.axes.custom())
        if isinstance(self.model, GptModelSpec | LstmModelSpec):
            shape = SHAPE_PLACEHOLDERS[self.model.family]
            common = [p for p in PLACEHOLDERS if p not in
                      {n for names in SHAPE_PLACEHOLDERS.values() for n in names}]
            return [*shape, *common, *custom]
        out = ["tokens", "sweep"]
        given = self.axes.model_fields_set
        out += [name for axis, name in (("seeds", "seed"), ("lrs", "lr")) if axis in given]
        if isinstance(self.model, CustomModelSpec):
            keys = self.model.size_keys()
            if "params" in keys:
                out += ["params", "N", "C"]
            out += [k for k in keys if k != "params"]
        return [*out, *custom]

    def _check_command(self) -> None:
        assert self.train.command is not None
        allowed = self.placeholders()
        known = set(PLACEHOLDERS) | set(PLACEHOLDER_HINTS)
        hints = dict(PLACEHOLDER_HINTS)
        if self.standalone:
            for name in PLACEHOLDERS:
                hints.setdefault(name, "a setting of the built-in trainer; write the value "
                                 "into the command or make it a custom axis")
        elif isinstance(self.model, GptModelSpec | LstmModelSpec):
            for name in PLACEHOLDERS:
                hints.setdefault(name, f"not a setting of a model of family "
                                 f"{self.model.family!r}")
        check_placeholders(self.train.command, allowed, known - set(allowed), hints)
        used = set(template_fields(self.train.command))
        # an axis with several values that the line never uses would run one line many times
        ladders: list[tuple[str, int, set[str]]] = [
            (f"[axes] {name}", len(values), {name}) for name, values in self.axes.custom().items()
        ]
        if self.standalone:
            given = self.axes.model_fields_set
            ladders.append(("[axes] tokens", len(self.axes.tokens), {"tokens", "C"}))
            if "seeds" in given:
                ladders.append(("[axes] seeds", len(self.axes.seeds), {"seed"}))
            if "lrs" in given:
                ladders.append(("[axes] lrs", len(self.axes.lrs), {"lr"}))
            if isinstance(self.model, CustomModelSpec):
                keys = set(self.model.size_keys())
                if "params" in keys:
                    keys |= {"N", "C"}
                what = "[model] params" if self.model.params is not None else "[model] sizes"
                ladders.append((what, len(self.model.params or self.model.sizes or []), keys))
        for what, count, names in ladders:
            if count > 1 and not used & names:
                shown = " or ".join("{" + n + "}" for n in sorted(names))
                raise ValueError(f"{what} has {count} values but the command never uses "
                                 f"{shown}, so every value would run the same program line")

    def to_json_dict(self) -> dict[str, Any]:
        """The validated grid as plain JSON-able data (stored with the sweep); for a grid whose
        model is the program's own, only what the file sets (no built-in trainer defaults)."""
        return self.model_dump(mode="json", exclude_unset=self.standalone)



# ---------------------------------------------------------------------------------------------
# Error formatting


def _dotted(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
            continue
        # the discriminated union adds the tag ("gpt"/"lstm"/"custom") after "model": drop it
        if i == 1 and loc[0] == "model" and item in ("gpt", "lstm", "custom"):
            continue
        # field validators on a whole model add no loc; skip pydantic's internal tags
        if "[" in str(item) or str(item).startswith("function-"):
            continue
        parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _describe(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown key (not part of the grid format)"
    if kind == "union_tag_invalid":
        return ("expected family 'gpt' or 'lstm' (or none: a command cell's own model, "
                "given by params or sizes)")
    if kind == "union_tag_not_found":
        return "required field is missing (expected 'gpt' or 'lstm')"
    if kind == "string_pattern_mismatch" and err.get("loc") == ("name",):
        msg = "expected a name of letters, digits, '.', '_' or '-' (at most 100 characters)"
    msg = re.sub(r" or instance of \w+", "", msg)
    text = msg[0].lower() + msg[1:] if msg else msg
    if "input" in err and not (kind == "value_error" and isinstance(err["input"], dict)):
        shown = repr(err["input"])
        if len(shown) > 40:
            shown = shown[:37] + "..."
        text = f"{text} (got {shown})"
    return text


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem (at most a few): `FILE: field.path: what was expected (got X)`."""
    errors = exc.errors(include_url=False)
    lines = []
    for e in errors:
        path = _dotted(tuple(e["loc"]))
        if e.get("type", "").startswith("union_tag_"):
            path += ".family"
        text = _describe(e)
        refined = re.match(r"@([\w.\[\]]+): (.*)", text)
        if refined:  # a whole-table validator naming the exact field: "@options.x: ..."
            inner = refined.group(1)
            path = inner if path == "(top level)" else f"{path}.{inner}"
            text = refined.group(2)
        lines.append(f"{source}: {path}: {text}")
    shown = lines[:MAX_ERRORS_SHOWN]
    if len(lines) > MAX_ERRORS_SHOWN:
        shown.append(f"{source}: ... and {len(lines) - MAX_ERRORS_SHOWN} more problem(s)")
    return "\n".join(shown)


# ---------------------------------------------------------------------------------------------
# Loading


def parse_spec(data: Mapping[str, Any], source: str = "<grid>") -> GridSpec:
    """Validate already-parsed grid data; raise ConfigError naming `source` and the field."""
    try:
        return GridSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def parse_spec_text(text: str, source: str = "<grid>") -> GridSpec:
    """Parse TOML text and validate it (TOML syntax errors name the line and column)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: TOML syntax error: {exc}") from None
    return parse_spec(data, source)


def load_spec(path: str | Path) -> GridSpec:
    """Read and validate a grid file; every problem is a one-line-per-field ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: grid file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a grid .toml file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read grid file ({exc.strerror})") from None
    return parse_spec_text(text, str(path))
