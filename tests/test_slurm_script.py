"""The Slurm batch script a sweep would submit, rendered by submitit's own code (no cluster).

A normal grid renders to the expected `#SBATCH` lines, read back the way sbatch reads them.
Every executor string that reaches the script refuses control characters: `sweep validate`
names the field in one line (exit 1, nothing stored), and the rendering itself refuses such a
value when it bypassed validation (an ExecutorSpec built with `model_construct`, a sweep name
or checkpoint folder from elsewhere). Values with spaces, `=`, `,` or quotes pass and come
back from the script unchanged.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import ConfigError
from scaletrack.sweeps.executors import SweepJob
from scaletrack.sweeps.executors.registry import make_executor
from scaletrack.sweeps.grid import load_grid
from scaletrack.sweeps.runner import cell_task
from scaletrack.sweeps.spec_sections import ExecutorSpec, control_character

submitit = pytest.importorskip("submitit")
from scaletrack.sweeps.executors.slurm import (  # noqa: E402
    SlurmExecutor,
    SlurmSettings,
    batch_script,
    check_batch_script,
)

HOSTILE = ["a\nsrun rm -rf /", "a\r", "a\x00", "\x1b[31m", "a\x85b"]
LEGIT = ["a100,80gb", "two words", "key=value", "x=1,y=2 z", "it's #1"]


def toml_string(value: str) -> str:
    """`value` as a TOML basic string: anything outside printable ASCII as a \\u escape."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04x}")
    return '"' + "".join(out) + '"'


def grid_text(executor: str, name: str = '"slurm-script"') -> str:
    return f"""
name = {name}
[data]
corpus = "stdlib"
options = {{ max_bytes = 20000 }}
context = 16
[model]
family = "gpt"
sizes = [{{ n_layer = 1, n_head = 1, d_model = 16 }}, {{ n_layer = 1, n_head = 2, d_model = 32 }}]
[axes]
tokens = [640, 1280]
[train]
batch_size = 4
[executor]
kind = "slurm"
{executor}
"""


def sbatch_arguments(line: str) -> list[str]:
    """The arguments sbatch reads from one `#SBATCH` line, by Slurm's rules (src/sbatch/opt.c,
    _get_argument): whitespace separates, '...' and "..." group, a backslash escapes the next
    character, an unquoted # ends the line; an unmatched quote is an error."""
    assert line.startswith("#SBATCH ")
    rest, i, args = line[len("#SBATCH"):], 0, []
    while True:
        while i < len(rest) and rest[i].isspace():
            i += 1
        arg: list[str] = []
        quote, escaped = "", False
        while i < len(rest) and (quote or not rest[i].isspace()):
            char = rest[i]
            i += 1
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
                continue
            elif quote:
                if char == quote:
                    quote = ""
                    continue
            elif char in "'\"":
                quote = char
                continue
            elif char == "#":
                break
            arg.append(char)
        assert not quote, f"sbatch: unmatched {quote} in {line!r}"
        if not arg:
            return args
        args.append("".join(arg))


def sbatch_options(script: str) -> dict[str, str | bool]:
    """option -> value (True for a bare flag) from the script's #SBATCH block, checking that
    the block is whole: after "# Parameters", only #SBATCH lines up to the first blank one,
    and no #SBATCH line anywhere else."""
    lines = script.split("\n")
    assert lines[:3] == ["#!/bin/bash", "", "# Parameters"], lines[:3]
    block = lines[3:lines.index("", 3)]
    assert block and all(ln.startswith("#SBATCH --") for ln in block), block
    assert sum(ln.startswith("#SBATCH") for ln in lines) == len(block)
    options: dict[str, str | bool] = {}
    for line in block:
        args = sbatch_arguments(line)
        assert len(args) == 1 and args[0].startswith("--"), (line, args)
        key, eq, value = args[0][2:].partition("=")
        assert key not in options, f"--{key} given twice"
        options[key] = value if eq else True
    return options


@pytest.fixture(autouse=True)
def srun_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's SlurmExecutor refuses to exist where `srun` is not on PATH; its rendering
    needs no Slurm at all."""
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))


def slurm_job(tmp_path: Path, executor: str, sweep: str | None = None) -> tuple[Path, Any]:
    """Write and load the grid; return (grid path, (SlurmExecutor, SweepJob)) for it."""
    path = tmp_path / "grid.toml"
    path.write_text(grid_text(executor))
    grid = load_grid(path)
    slurm = make_executor("slurm", workers=1, spec=grid.spec.executor)
    job = SweepJob(sweep=sweep or grid.name, store_url=f"sqlite:///{tmp_path / 's.db'}",
                   checkpoint_root=str(tmp_path / "ck"),
                   cells=tuple(cell_task(c) for c in grid.cells))
    return path, (slurm, job)


def validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[int, list[str]]:
    """`scaletrack sweep validate grid.toml` in tmp_path: (exit code, non-blank output lines);
    checks no store was created."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "store.db"
    monkeypatch.setenv("SCALETRACK_STORE", f"sqlite:///{db}")
    (tmp_path / "grid.toml").write_text(text)
    result = CliRunner().invoke(app, ["sweep", "validate", "grid.toml"])
    assert "Traceback" not in result.output
    assert not db.exists() and not (tmp_path / "scaletrack.db").exists()  # nothing stored
    return result.exit_code, [ln for ln in result.output.splitlines() if ln.strip()]


# ----------------------------------------------------------------------------- a normal grid


def test_normal_grid_renders_the_expected_sbatch_lines(tmp_path: Path) -> None:
    _, (slurm, job) = slurm_job(tmp_path, """partition = "gpu"
time = 30
cpus_per_task = 2
mem = "8G"
array_parallelism = 2
sbatch = { account = "lab", qos = "high", exclusive = true, constraint = "a100,80gb" }
""")
    executor = slurm._executor(job)
    script = batch_script(executor, len(job.cells))
    folder = tmp_path / "ck" / ".slurm" / "slurm-script" / "%A_%a"
    assert sbatch_options(script) == {
        "account": "lab", "array": "0-3%2", "constraint": "a100,80gb", "cpus-per-task": "2",
        "error": f"{folder}/%A_%a_0_log.err", "exclusive": True,
        "job-name": "scaletrack-slurm-script", "mem": "8G", "nodes": "1",
        "open-mode": "append", "output": f"{folder}/%A_%a_0_log.out", "partition": "gpu",
        "qos": "high", "requeue": True, "signal": "USR2@90", "time": "30",
        "wckey": "submitit",
    }
    assert all(control_character(line) is None for line in script.split("\n"))
    assert "\n# command\nexport SUBMITIT_EXECUTOR=slurm\nsrun " in script
    # one cell (a resubmission): no array, and exactly the file submitit itself would write
    single = batch_script(executor, 1)
    assert "array" not in sbatch_options(single)
    assert single == executor._make_submission_file_text(executor._submitit_command_str, "u")


def test_normal_grid_validates_through_the_cli(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines = validate(tmp_path, monkeypatch, grid_text(
        'partition = "gpu"\nsbatch = { account = "lab", constraint = "a100,80gb" }\n'))
    assert code == 0 and lines[-1].startswith("ok: grid.toml is valid: 4 cells"), lines


@pytest.mark.parametrize("value", LEGIT)
def test_values_with_spaces_equals_and_commas_pass_and_come_back_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    executor_block = (f"partition = {toml_string(value)}\n"
                      f"sbatch = {{ comment = {toml_string(value)}, "
                      f"constraint = {toml_string(value)} }}\n")
    code, lines = validate(tmp_path, monkeypatch, grid_text(executor_block))
    assert code == 0, lines
    _, (slurm, job) = slurm_job(tmp_path, executor_block)
    options = sbatch_options(batch_script(slurm._executor(job), len(job.cells)))
    assert options["partition"] == options["comment"] == options["constraint"] == value


# ----------------------------------------------------------------------------- sweep validate


@pytest.mark.parametrize("value", HOSTILE, ids=ascii)
@pytest.mark.parametrize(("field", "block"), [
    ("executor.partition", "partition = {v}\n"),
    ("executor.mem", "mem = {v}\n"),
    ("executor.sbatch.account", "sbatch = {{ account = {v} }}\n"),
    ("executor.sbatch.mail-type", "sbatch = {{ qos = \"high\", mail-type = {v} }}\n"),
    ("executor.sbatch", "sbatch = {{ {v} = \"lab\" }}\n"),  # the option name itself
])
def test_sweep_validate_refuses_control_characters_naming_the_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, block: str,
        value: str) -> None:
    code, lines = validate(tmp_path, monkeypatch, grid_text(block.format(v=toml_string(value))))
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: grid.toml: {field}: "), lines[0]
    assert "control character" in lines[0] and "batch script" in lines[0], lines[0]
    bad = next(c for c in value if unicodedata.category(c) == "Cc")
    assert ascii(bad)[1:-1] in lines[0]  # the character, escaped
    assert all(control_character(ln) is None for ln in lines)  # shown escaped, not raw


@pytest.mark.parametrize("value", HOSTILE, ids=ascii)
def test_sweep_validate_refuses_a_sweep_name_that_would_break_the_job_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    code, lines = validate(tmp_path, monkeypatch, grid_text("", name=toml_string(value)))
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: grid.toml: name: "), \
        lines


def test_line_separators_are_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    code, lines = validate(tmp_path, monkeypatch,
                           grid_text('sbatch = { comment = "a\\u2028b" }\n'))
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("error: grid.toml: executor.sbatch.comment: contains a line "
                               "separator"), lines[0]


# ----------------------------------------------------------------------------- second guard


def constructed(**fields: object) -> SlurmExecutor:
    """A Slurm executor from an ExecutorSpec that skipped validation (model_construct)."""
    given = dict.fromkeys(("partition", "time", "cpus_per_task", "gpus_per_task", "mem",
                           "array_parallelism", "sbatch", "same_node", "max_retries"))
    spec = ExecutorSpec.model_construct(kind="slurm", **{**given, **fields})
    return SlurmExecutor(1, SlurmSettings.from_spec(spec))


@pytest.mark.parametrize("value", HOSTILE, ids=ascii)
@pytest.mark.parametrize(("field", "fields"), [
    ("executor.partition", lambda v: {"partition": v}),
    ("executor.mem", lambda v: {"mem": v}),
    ("executor.sbatch.account", lambda v: {"sbatch": {"qos": "high", "account": v}}),
    ("executor.sbatch", lambda v: {"sbatch": {v: "lab"}}),
])
def test_rendering_refuses_a_value_that_bypassed_validation(
        tmp_path: Path, field: str, fields: Any, value: str) -> None:
    _, (_, job) = slurm_job(tmp_path, "")
    slurm = constructed(**fields(value))
    with pytest.raises(ConfigError) as info:
        slurm._executor(job)
    message = str(info.value)
    assert message.startswith(f"slurm batch script: {field}: contains a control character"), \
        message
    assert "\n" not in message and control_character(message) is None
    assert not (tmp_path / "ck").exists()  # refused before anything was written


@pytest.mark.parametrize(("job_fields", "field"), [
    ({"sweep": "s\nsrun rm -rf /"}, "sweep name (the job name)"),
    ({"checkpoint_root": "/tmp/a\rb"}, "checkpoint folder"),
])
def test_rendering_refuses_a_job_name_or_folder_with_control_characters(
        tmp_path: Path, job_fields: dict[str, str], field: str) -> None:
    _, (slurm, job) = slurm_job(tmp_path, "")
    job = replace(job, **job_fields)
    with pytest.raises(ConfigError) as info:
        slurm._executor(job)
    assert str(info.value).startswith(f"slurm batch script: {field}: contains a control"), \
        str(info.value)


def test_rendering_checks_parameters_changed_after_the_executor_was_made(tmp_path: Path
                                                                         ) -> None:
    _, (slurm, job) = slurm_job(tmp_path, 'sbatch = { account = "lab" }\n')
    executor = slurm._executor(job)
    executor.parameters["additional_parameters"]["account"] = "a\nsrun rm -rf /"
    with pytest.raises(ConfigError, match=r"^slurm batch script: sbatch option --account: "):
        batch_script(executor, 2)


def test_a_rendered_script_with_a_stray_line_is_refused() -> None:
    good = "#!/bin/bash\n\n# Parameters\n#SBATCH --account=lab\n\n# command\nsrun x\n"
    check_batch_script(good)
    with pytest.raises(ConfigError, match="not an #SBATCH option"):
        check_batch_script(good.replace("lab\n", "lab\nsrun rm -rf /\n"))
    with pytest.raises(ConfigError, match="line 4: contains a control character"):
        check_batch_script(good.replace("lab", "lab\x1b[31m"))


def test_sbatch_reader_follows_slurms_quoting() -> None:
    """The test's own sbatch reader, on lines whose reading Slurm's parser fixes."""
    assert sbatch_arguments("#SBATCH --comment='two words'") == ["--comment=two words"]
    assert sbatch_arguments("#SBATCH --x='it'\"'\"'s #1'") == ["--x=it's #1"]
    assert sbatch_arguments("#SBATCH --a=b # note") == ["--a=b"]
    assert sbatch_arguments("#SBATCH --a=b --c") == ["--a=b", "--c"]
