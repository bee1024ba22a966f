"""The public API: `import scaletrack as st` is lazy, complete and documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import scaletrack

HEAVY = ("torch", "pandas", "sqlalchemy", "scipy", "matplotlib")


def _imported_after(code: str) -> list[str]:
    """Heavy top-level modules in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    last = out.splitlines()[-1] if out else ""  # `--help` prints its text before the probe
    return [m for m in last.split(",") if m in HEAVY]


def test_import_scaletrack_and_the_cli_load_no_heavy_module() -> None:
    assert _imported_after("import scaletrack; import scaletrack.cli.main") == []


def test_cli_help_and_version_load_no_heavy_module() -> None:
    for args in (["--help"], ["version"]):
        code = ("import sys\nfrom scaletrack.cli.main import main\n"
                f"sys.argv = ['scaletrack', *{args!r}]\n"
                "try:\n    main()\nexcept SystemExit:\n    pass")
        assert _imported_after(code) == [], args


def test_touching_a_fit_imports_what_it_needs() -> None:
    assert "pandas" in _imported_after("import scaletrack as st; st.fit_chinchilla")


def test_every_public_name_resolves_and_is_documented() -> None:
    assert {"Store", "open_store", "fit_chinchilla", "fit_compute_law", "fit_power_law",
            "fit_isoflop", "backtest", "classify_emergence", "fit_two_step",
            "predict_two_step", "plot_loss_vs_compute", "add_idea", "rerun_due", "load_grid",
            "run_sweep", "ScaletrackError", "ConfigError", "DataError"} <= set(scaletrack.__all__)
    doc = scaletrack.__doc__ or ""
    for name in scaletrack.__all__:
        value = getattr(scaletrack, name)
        assert value is not None, name
        if not name.startswith("__") and name not in ("StoreLike", "FitResult", "Store"):
            assert name in doc, f"{name} is not listed in scaletrack's docstring"
    assert set(scaletrack.__all__) <= set(dir(scaletrack))
    assert scaletrack.Store.open.__func__ is scaletrack.open_store.__func__


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        scaletrack.no_such_name  # noqa: B018


def test_public_run_sweep_wires_the_evaluation_hooks() -> None:
    from scaletrack.evals.hooks import evaluate_new_checkpoint

    # the hook goes to workers by pickling: it must be a top-level function
    assert evaluate_new_checkpoint.__qualname__ == "evaluate_new_checkpoint"
    params = inspect.signature(scaletrack.run_sweep).parameters
    assert "recheck_ideas" in params and "after_checkpoint" not in params
