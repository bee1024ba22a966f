"""The tables of a grid file (`[data]`, `[model]`, `[axes]`, `[train]`, `[schedule]`, `[eval]`,
`[checkpoint]`, `[executor]`), each a strict, frozen pydantic model; `sweeps.spec.GridSpec`
puts them together and checks what spans several tables.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from scaletrack.safe_text import first_unsafe

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
TASK_REF_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
MAX_ERRORS_SHOWN = 3
# keyword options each data source accepts, see models.data.load_tokens
DATA_OPTIONS: dict[str, tuple[str, ...]] = {
    "corpus": ("max_bytes",),
    "path": ("max_bytes",),
    "tokens": ("vocab_size",),
    "task": ("n_examples", "seed"),
}

INT64_MAX = 2**63 - 1  # what the store's integer columns hold
SEED_LIMIT = 2**32  # seeds must fit the 32-bit generators (numpy) as well as torch's
PositiveInt = Annotated[int, Field(gt=0, le=INT64_MAX)]


def _whole_float_as_int(value: Any) -> Any:
    """A float that is a whole number (TOML's 2e7) as that int; a non-whole one is refused.

    Anything else passes through unchanged, so the int check after it reports it.
    """
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise ValueError("expected a whole number")
        return int(value)
    return value


# A count a researcher may write as 1e6 (tokens, parameters, bytes): a whole float becomes the
# int it equals, so `2e7` and `20000000` give the same value, config and run key.
PositiveCount = Annotated[int, BeforeValidator(_whole_float_as_int), Field(gt=0, le=INT64_MAX)]
NonNegativeInt = Annotated[int, Field(ge=0, le=INT64_MAX)]
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    """Base for every table in the grid: strict types, unknown keys rejected, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataOptions(_Section):
    """Keyword options of a data source (which ones apply depends on the source)."""

    max_bytes: PositiveCount | None = Field(None, description="cap on corpus size (bytes = tokens)")
    vocab_size: PositiveInt | None = Field(None, description="vocabulary of a token file")
    n_examples: PositiveCount | None = Field(None, description="synthetic task examples")
    seed: Seed | None = Field(None, description="synthetic task generator seed")


class DataSpec(_Section):
    """Where training tokens come from: exactly one of corpus, path, tokens or task."""

    corpus: Literal["stdlib", "zipf-words"] | None = Field(
        None, description="built-in corpus: Python's stdlib source, or Zipf-distributed words "
        "(a synthetic corpus whose best possible loss is known)"
    )
    path: str | None = Field(None, min_length=1, description="text file or folder of text files")
    tokens: str | None = Field(None, min_length=1, description="pre-tokenised token file")
    task: str | None = Field(None, min_length=1, description="synthetic task name")
    options: DataOptions = Field(default_factory=DataOptions)
    context: PositiveInt = Field(128, description="sequence length in tokens")

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [k for k in ("corpus", "path", "tokens", "task") if getattr(self, k) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"expected exactly one of corpus, path, tokens, task (found {found})"
            )
        allowed = DATA_OPTIONS[given[0]]
        for key in self.options.model_dump(exclude_none=True):
            if key not in allowed:
                raise ValueError(
                    f"@options.{key}: not an option of a {given[0]} source "
                    f"(expected {', '.join(allowed)})"
                )
        return self

    def source(self) -> dict[str, Any]:
        """The `data` dict a TrainConfig expects (paths as written; resolved by the grid)."""
        out: dict[str, Any] = {}
        for key in ("corpus", "path", "tokens", "task"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.options.model_dump(exclude_none=True))
        return out


class GptShape(_Section):
    """An explicit GPT decoder shape."""

    n_layer: PositiveInt
    n_head: PositiveInt
    d_model: PositiveInt
    mlp_ratio: PositiveInt | None = Field(None, description="MLP width / d_model (default 4)")

    @model_validator(mode="after")
    def _heads_divide(self) -> GptShape:
        if self.d_model % self.n_head:
            raise ValueError(
                f"expected d_model divisible by n_head "
                f"(d_model={self.d_model}, n_head={self.n_head})"
            )
        return self


class LstmShape(_Section):
    """An explicit LSTM shape."""

    n_layer: PositiveInt
    d_hidden: PositiveInt


class _ModelCommon(_Section):
    target_params: list[PositiveCount] | None = Field(
        None, min_length=1, description="target parameter counts, resolved by models.ladder"
    )

    def _check_sizes(self, sizes: list[Any] | None) -> None:
        if (sizes is None) == (self.target_params is None):
            raise ValueError("expected exactly one of sizes (explicit shapes) or target_params")
        if self.target_params is not None and len(set(self.target_params)) != len(
            self.target_params
        ):
            raise ValueError("expected distinct target_params (found a duplicate)")
        if sizes is not None and len({s.model_dump_json() for s in sizes}) != len(sizes):
            raise ValueError("expected distinct sizes (found a duplicate shape)")


class GptModelSpec(_ModelCommon):
    """GPT decoder sizes."""

    family: Literal["gpt"]
    sizes: list[GptShape] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _sizes(self) -> GptModelSpec:
        self._check_sizes(self.sizes)
        return self


class LstmModelSpec(_ModelCommon):
    """Character-level LSTM sizes."""

    family: Literal["lstm"]
    sizes: list[LstmShape] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _sizes(self) -> LstmModelSpec:
        self._check_sizes(self.sizes)
        return self


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # a custom axis or size key
SCALAR_TYPES = (bool, int, float, str)


def _scalar_problem(value: Any) -> str | None:
    """Why `value` cannot be a grid value filled into a command line, or None."""
    if not isinstance(value, SCALAR_TYPES):
        return f"expected a number, string or boolean, got {type(value).__name__} {value!r}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        return f"expected an integer that fits 64 bits, got {value}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    if isinstance(value, str) and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        return f"expected a string without control characters, got {value!r}"
    return None


def _whole_positive(value: Any) -> int | None:
    """A positive whole number (int, or a float such as 1e6 that is one), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    number = int(value)
    return number if 0 < number <= INT64_MAX else None


def _value_key(value: Any) -> str:
    """A key telling values apart the way a run key does (1 and 1.0 and true differ)."""
    return f"{type(value).__name__}:{value!r}"


class CustomModelSpec(_Section):
    """The program's own model, for a command cell: an N ladder (`params`) or named sizes
    (`sizes`, tables of values its command line uses; a `params` key in them is N).

    Written as a `[model]` table without `family` (or with family = "custom")."""

    family: Literal["custom"]
    params: list[Any] | None = Field(
        None, min_length=1, description="N ladder: non-embedding parameter counts, one per size"
    )
    sizes: list[dict[str, Any]] | None = Field(
        None, min_length=1, description="named values per size, e.g. { width = 256, depth = 4 }"
    )

    @field_validator("params")
    @classmethod
    def _params(cls, v: list[Any] | None) -> list[int] | None:
        if v is None:
            return None
        out = []
        for value in v:
            number = _whole_positive(value)
            if number is None:
                raise ValueError(f"expected positive whole parameter counts ({value!r} is not "
                                 "one)")
            out.append(number)
        return _distinct(out, "parameter counts")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if v is None:
            return None
        first = list(v[0])
        for i, size in enumerate(v):
            if not size:
                raise ValueError(f"sizes[{i}] is empty (expected named values, e.g. "
                                 "{ width = 256, depth = 4 })")
            for key, value in size.items():
                if not IDENTIFIER.fullmatch(key):
                    raise ValueError(f"sizes[{i}]: key {key!r} is not a name of letters, "
                                     "digits and _ (not starting with a digit)")
                problem = _scalar_problem(value)
                if problem:
                    raise ValueError(f"sizes[{i}].{key}: {problem}")
                if key == "params" and _whole_positive(value) is None:
                    raise ValueError(f"sizes[{i}].params: expected a positive whole parameter "
                                     f"count, got {value!r}")
            if sorted(size) != sorted(first):
                raise ValueError(f"sizes[{i}] has keys {', '.join(size)}; expected the keys of "
                                 f"sizes[0] ({', '.join(first)})")
        normal = [{k: (_whole_positive(x) if k == "params" else x) for k, x in size.items()}
                  for size in v]
        keys = [json_key(size) for size in normal]
        if len(set(keys)) != len(keys):
            raise ValueError("expected distinct sizes (found a duplicate)")
        return normal

    @model_validator(mode="after")
    def _one_of(self) -> CustomModelSpec:
        if (self.params is None) == (self.sizes is None):
            raise ValueError("expected exactly one of params (an N ladder, e.g. params = [1e6, "
                             "3e6]) or sizes (named values per size)")
        return self

    def size_keys(self) -> list[str]:
        """The placeholder names its sizes give ("params" for a ladder)."""
        return list(self.sizes[0]) if self.sizes else ["params"]


def json_key(value: Any) -> str:
    """A canonical text of a value (sorted keys), to tell entries apart."""
    return json.dumps(value, sort_keys=True)


ModelSpec = Annotated[GptModelSpec | LstmModelSpec | CustomModelSpec,
                      Field(discriminator="family")]


def _distinct(values: list[Any], what: str) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError(f"expected distinct {what} (found a duplicate)")
    return values


class AxesSpec(_Section):
    """The axes crossed with the model sizes: one cell per combination.

    Besides tokens, seeds and lrs, a command cell's grid may name custom axes (`dropout =
    [0.0, 0.1]`): any name of letters, digits and _, a list of distinct numbers, strings or
    booleans; crossed into the grid, part of each run's key and config, and a placeholder.
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    tokens: list[PositiveCount] = Field(min_length=1, description="token budgets D (tokens)")
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    lrs: list[Annotated[float, Field(gt=0.0, le=10.0)]] = Field(
        default_factory=lambda: [1e-3], min_length=1, description="peak learning rates"
    )

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, v: list[int]) -> list[int]:
        return _distinct(v, "token budgets")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return _distinct(v, "seeds")

    @field_validator("lrs")
    @classmethod
    def _lrs(cls, v: list[float]) -> list[float]:
        if not all(math.isfinite(x) for x in v):
            raise ValueError("expected finite learning rates")
        return _distinct(v, "learning rates")

    @model_validator(mode="after")
    def _custom_axes(self) -> AxesSpec:
        for name, values in (self.model_extra or {}).items():
            if not IDENTIFIER.fullmatch(name):
                raise ValueError(f"@{name}: a custom axis needs a name of letters, digits and _ "
                                 "(not starting with a digit, at most 64 characters)")
            if not isinstance(values, list):
                raise ValueError(f"@{name}: expected a list of values, e.g. {name} = [0.0, 0.1] "
                                 f"(got {type(values).__name__} {values!r})"[:300])
            if not values:
                raise ValueError(f"@{name}: expected at least one value (the list is empty)")
            for value in values:
                problem = _scalar_problem(value)
                if problem:
                    raise ValueError(f"@{name}: {problem}"[:300])
            keys = [_value_key(v) for v in values]
            if len(set(keys)) != len(keys):
                raise ValueError(f"@{name}: expected distinct values (found a duplicate)")
        return self

    def custom(self) -> dict[str, list[Any]]:
        """The custom axes, in file order: name -> values."""
        return dict(self.model_extra or {})


class TrainSpec(_Section):
    """Optimiser settings shared by every cell."""

    batch_size: PositiveInt = Field(16, description="sequences per step")
    weight_decay: Annotated[float, Field(ge=0.0, le=10.0)] = 0.1
    grad_clip: Annotated[float, Field(ge=0.0)] = 1.0
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    command: str | None = Field(
        None, min_length=1,
        description="run this program per cell instead of the built-in trainer; "
        "placeholders such as {n_layer} {d_model} {tokens} {lr} {seed} (see sweeps.command)",
    )

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | None) -> str | None:
        if v is not None:
            from scaletrack.sweeps.command import check_template

            check_template(v)
        return v

    pack: Literal["auto", "always", "never"] = Field(
        "auto",
        description="train same-shape cells (seeds x lrs) stacked in one process: 'auto' on "
        "CUDA only (where it pays), 'always' also on CPU, 'never'",
    )


class ScheduleSpec(_Section):
    """Learning-rate schedule: cosine, warmup-stable-decay (wsd) or constant.

    With ``kind = "wsd"`` and ``branches = true``, each size x seed x lr trains one warmup +
    constant-lr trunk, and every token budget is a cooldown branch leaving it at
    (1 - decay_frac) of its own steps (Hägele et al. 2024).
    """

    kind: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup_frac: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    warmup_steps: NonNegativeInt | None = Field(
        None, description="warmup steps of every cell (replaces warmup_frac)"
    )
    decay_frac: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2
    min_lr_frac: Fraction = 0.1
    cooldown: Literal["linear", "1-sqrt"] = Field("linear", description="wsd cooldown shape")
    branches: bool = Field(False, description="wsd only: budgets branch off one trunk")

    @model_validator(mode="after")
    def _fractions(self) -> ScheduleSpec:
        if self.kind == "wsd" and self.warmup_frac + self.decay_frac > 1.0:
            raise ValueError(
                f"expected warmup_frac + decay_frac <= 1 for wsd "
                f"(got {self.warmup_frac} + {self.decay_frac})"
            )
        if self.branches and self.kind != "wsd":
            raise ValueError(
                f"@branches: cooldown branches need kind = \"wsd\" (got kind {self.kind!r})"
            )
        return self


class EvalSpec(_Section):
    """Validation loss cadence, and evaluation tasks run on the cell's checkpoints."""

    every: PositiveInt = Field(50, description="steps between validation-loss evaluations")
    batches: PositiveInt = Field(8, description="held-out batches per validation loss")
    tasks: list[str] = Field(
        default_factory=list, description="built-in task names or module:function references"
    )
    tasks_on: Literal["final", "checkpoints"] = Field(
        "final", description="evaluate tasks on the final checkpoint only, or on every one"
    )

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list[str]) -> list[str]:
        for name in v:
            if not (re.fullmatch(r"[A-Za-z_][\w-]*", name) or TASK_REF_PATTERN.fullmatch(name)):
                raise ValueError(
                    f"expected a task name or module:function reference, got {name!r}"
                )
        return _distinct(v, "tasks")


class CheckpointSpec(_Section):
    """How often a cell saves a checkpoint (it always saves one at the end)."""

    every: PositiveInt = Field(200, description="steps between checkpoints")


SBATCH_FLAG_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")
SLURM_ONLY = ("partition", "time", "cpus_per_task", "gpus_per_task", "mem",
              "array_parallelism", "sbatch", "same_node", "max_retries")


def control_character(text: str) -> str | None:
    """Why `text` cannot go into a Slurm batch script, or None when it can.

    Refused: every unsafe character (`scaletrack.safe_text`): C0 controls (NUL, tab,
    newline, CR, ESC, ...), DEL, C1 controls (e.g. NEL U+0085), the Unicode line/paragraph
    separators and invisible formatting (bidirectional overrides, zero-width marks). A line
    break would end the `#SBATCH` line it sits on (whatever the quoting: submitit quotes
    for the shell, and bash does not read quotes in a comment), turning the rest of the
    value into script lines; the others garble the line or the terminal showing it.
    """
    found = first_unsafe(text)
    if found is None:
        return None
    i, char = found
    what = {"Cc": "a control character", "Zl": "a line separator",
            "Zp": "a line separator"}.get(unicodedata.category(char), "a formatting character")
    return (f"contains {what} ({char!r} at position {i + 1}), which would break the "
            "Slurm batch script")


def _batch_safe(value: Any) -> Any:
    """Before-validator of every executor string that reaches a batch script."""
    if isinstance(value, str):
        reason = control_character(value)
        if reason:
            raise ValueError(reason)
    return value


BatchString = Annotated[str, BeforeValidator(_batch_safe)]
SbatchValue = Annotated[str | int | bool, BeforeValidator(_batch_safe)]


class ExecutorSpec(_Section):
    """Where cells run: a local process pool, a Ray cluster or Slurm job arrays."""

    kind: Literal["local", "ray", "slurm"] = "local"
    workers: PositiveInt = Field(1, le=1024)
    address: str | None = Field(None, description="Ray cluster address (ray only)")
    order: Literal["compute", "file"] = Field(
        "compute", description="'compute': smallest planned FLOPs first; 'file': as written"
    )
    # slurm only
    partition: BatchString | None = Field(None, min_length=1, description="Slurm partition")
    time: PositiveInt | None = Field(None, description="time limit per task (minutes)")
    cpus_per_task: PositiveInt | None = Field(None, description="CPUs per task (torch threads)")
    gpus_per_task: NonNegativeInt | None = Field(None, description="GPUs per task")
    mem: BatchString | None = Field(None, pattern=r"^[0-9]+[KMGT]?$",
                                    description="memory per node")
    array_parallelism: PositiveInt | None = Field(None, description="array tasks run at once")
    sbatch: dict[str, SbatchValue] | None = Field(
        None, description="extra sbatch flags, e.g. { qos = \"high\", account = \"lab\" }"
    )
    same_node: bool | None = Field(
        None, description="run every task on the submitting node (allows a SQLite store)"
    )
    max_retries: NonNegativeInt | None = Field(
        None, le=100, description="resubmissions of a cell whose task died without a result"
    )

    @model_validator(mode="after")
    def _slurm_fields(self) -> ExecutorSpec:
        if self.kind != "slurm":
            given = [k for k in SLURM_ONLY if getattr(self, k) is not None]
            if given:
                raise ValueError(f"@{given[0]}: only for kind = \"slurm\" (kind is {self.kind!r})")
        for flag in self.sbatch or {}:
            reason = control_character(flag)
            if reason:
                raise ValueError(f"@sbatch: option name {flag!r} {reason}")
            if not SBATCH_FLAG_PATTERN.fullmatch(flag):
                raise ValueError(
                    f"@sbatch: expected long sbatch option names without the leading dashes "
                    f"(e.g. qos, account, constraint), got {flag!r}"
                )
        return self
