"""lm-evaluation-harness import on the real Pythia result files (0.3 format), a 0.4 file built
from one of them (round trip), the sizes rule (N and D never guessed), and the "not yet"
registry judged on imported, file-less checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from scaletrack.cli.main import app
from scaletrack.errors import DataError
from scaletrack.evals.ideas import add_idea, due_ideas, rerun_due
from scaletrack.store import Store
from scaletrack.store.importers.lm_eval import import_lm_eval, parse_file, read_sizes

REPO = Path(__file__).resolve().parents[1]
SIZES = REPO / "examples" / "lm_eval" / "pythia_sizes.csv"
TOKENS_PER_STEP = 2_097_152


@pytest.fixture(scope="module")
def pythia(shared_data: Path) -> Path:
    folder = shared_data / "lm_eval_pythia"
    if not folder.is_dir():
        pytest.skip("published lm_eval_pythia data not present")
    return folder


def test_sizes_file_matches_the_published_parameter_counts(shared_data: Path) -> None:
    sizes = read_sizes(SIZES)
    table = pd.read_csv(SIZES)
    for row in table.itertuples():  # non-embedding N = L(12 d^2 + 13 d) + 2 d (Pythia configs)
        L, d = row.n_layer, row.d_model
        assert sizes[row.model].params == L * (12 * d * d + 13 * d) + 2 * d
        assert sizes[row.model].tokens_per_step == TOKENS_PER_STEP
    published = pd.read_csv(shared_data / "pythia_v1_zero_shot.csv")
    published = published[published["deduped"] == 0].groupby("hf_eval_model").first()
    for hf_name, row in published.iterrows():
        model = str(hf_name).rsplit("/", 1)[-1].removesuffix("-bf16")
        assert sizes[model].params == row["non_embedding_params"]


def test_import_all_pythia_files(pythia: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = CliRunner().invoke(app, ["import", "lm-eval", str(pythia), "--sizes", str(SIZES),
                                      "--store", url])
    assert result.exit_code == 0, result.output
    files = sorted(pythia.rglob("*.json"))
    n_rows = 0
    for f in files:
        data = json.loads(f.read_text())
        n_rows += sum(1 for metrics in data["results"].values() for k, v in metrics.items()
                      if not k.endswith("_stderr") and isinstance(v, (int, float)))
    assert f"imported {len(files)} files: 7 models (7 new runs), {len(files)} external " \
           f"checkpoints, {n_rows} eval rows" in result.output
    with Store.open(url) as store:
        assert len(store.checkpoints(kind="external")) == len(files) == 294
        evals = store.evals()
        assert len(evals) == n_rows
        runs = store.runs().set_index("name")
    assert sorted(runs.index) == sorted(f"pythia-v1.1-{s}" for s in
                                        ("70m", "160m", "410m", "1.4b", "2.8b", "6.9b", "12b"))
    n_410m = 24 * (12 * 1024**2 + 13 * 1024) + 2 * 1024
    assert runs.loc["pythia-v1.1-410m", "N"] == n_410m
    assert runs.loc["pythia-v1.1-410m", "D"] == 143_000 * TOKENS_PER_STEP

    # one value checked against its file: value, stderr, shots, N, tokens, FLOPs
    source = json.loads((pythia / "pythia-410m/zero-shot/410m_step143000.json").read_text())
    want = source["results"]["arc_challenge"]
    hit = evals[(evals["task"] == "arc_challenge") & (evals["metric"] == "acc")
                & (evals["N"] == n_410m) & (evals["tokens"] == 143_000 * TOKENS_PER_STEP)
                & (evals["n_shot"] == 0)]
    assert len(hit) == 1
    row = hit.iloc[0]
    assert row["value"] == want["acc"] and row["stderr"] == want["acc_stderr"]
    assert row["flops"] == 6.0 * n_410m * 143_000 * TOKENS_PER_STEP

    # importing again changes nothing
    again = CliRunner().invoke(app, ["import", "lm-eval", str(pythia), "--sizes", str(SIZES),
                                     "--store", url])
    assert "(0 new runs)" in again.output
    with Store.open(url) as store:
        assert len(store.evals()) == n_rows and len(store.checkpoints()) == 294

    emergence = CliRunner().invoke(app, ["emergence", "--store", url, "--task", "lambada_openai",
                                         "--bootstrap", "20", "--json"])
    assert emergence.exit_code == 0, emergence.output
    curves = json.loads(emergence.output)
    assert {(c["metric"], c["shot"]) for c in curves} >= {("acc", 0), ("acc", 5)}
    acc0 = next(c for c in curves if (c["metric"], c["shot"]) == ("acc", 0))
    assert acc0["label"] in ("past", "near", "far") and acc0["x_max"] == pytest.approx(
        6.0 * 11_327_027_200 * 143_000 * TOKENS_PER_STEP)


def test_model_missing_from_sizes_is_one_line_and_writes_nothing(pythia: Path,
                                                                 tmp_path: Path) -> None:
    sizes = tmp_path / "sizes.csv"
    table = pd.read_csv(SIZES)
    table[table["model"] != "pythia-v1.1-160m"].to_csv(sizes, index=False)
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = CliRunner().invoke(app, ["import", "lm-eval", str(pythia), "--sizes", str(sizes),
                                      "--store", url])
    assert result.exit_code == 1
    assert "error: model 'pythia-v1.1-160m'" in result.output
    lines = [line for line in result.output.splitlines()  # progress lines aside (stderr)
             if not line.startswith("reading result files: ")]
    assert "not in the sizes file" in result.output and len(lines) == 1
    with Store.open(url) as store:
        assert store.runs().empty and store.checkpoints().empty


def _as_v04(v03: dict) -> dict:
    """The same results written the way lm-evaluation-harness 0.4 writes them."""
    results = {}
    for task, metrics in v03["results"].items():
        entry: dict = {"alias": task}
        for key, value in metrics.items():
            if key.endswith("_stderr"):
                entry[f"{key[:-len('_stderr')]}_stderr,none"] = value
            else:
                entry[f"{key},none"] = value
        results[task] = entry
    args = dict(part.split("=", 1) for part in v03["config"]["model_args"].split(","))
    return {
        "results": results,
        "n-shot": {task: v03["config"]["num_fewshot"] for task in results},
        "higher_is_better": {task: {} for task in results},
        "config": {"model": "hf", "model_args": args, "batch_size": 8},
        "model_name": args["pretrained"],
        "lm_eval_version": "0.4.3",
    }


def test_v04_file_round_trip(pythia: Path, tmp_path: Path) -> None:
    original = pythia / "pythia-160m" / "five-shot"
    v03_file = sorted(original.glob("*.json"))[0]
    v03 = json.loads(v03_file.read_text())
    v04 = _as_v04(v03)
    v04["results"]["gsm8k"] = {"alias": "gsm8k", "exact_match,strict-match": 0.25,
                               "exact_match_stderr,strict-match": 0.01,
                               "exact_match,none": 0.5, "exact_match_stderr,none": "N/A"}
    v04["n-shot"]["gsm8k"] = 8
    v04_file = tmp_path / "results_2026-12-01T00-00-00.json"
    v04_file.write_text(json.dumps(v04))

    parsed = parse_file(v04_file)
    assert parsed.format == "0.4" and parsed.model == "pythia-v1.1-160m"
    assert parsed.step == parse_file(v03_file).step

    sizes = read_sizes(SIZES)
    with Store.open(f"sqlite:///{tmp_path / 'a.db'}") as a, \
            Store.open(f"sqlite:///{tmp_path / 'b.db'}") as b:
        import_lm_eval(a, [v03_file], sizes)
        import_lm_eval(b, [v04_file], sizes)
        ea, eb = a.evals(), b.evals()
    cols = ["task", "metric", "value", "stderr", "n_shot", "N", "tokens", "flops"]
    eb_same = eb[eb["task"] != "gsm8k"][cols].sort_values(["task", "metric"])
    pd.testing.assert_frame_equal(ea[cols].sort_values(["task", "metric"]).reset_index(drop=True),
                                  eb_same.reset_index(drop=True), check_exact=True)
    gsm = eb[eb["task"] == "gsm8k"].set_index("metric")
    assert gsm.loc["exact_match,strict-match", "value"] == 0.25
    assert gsm.loc["exact_match,strict-match", "stderr"] == 0.01
    assert gsm.loc["exact_match", "value"] == 0.5 and pd.isna(gsm.loc["exact_match", "stderr"])
    assert set(gsm["n_shot"]) == {8}


def test_not_a_result_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(DataError, match="not an lm-evaluation-harness result file"):
        parse_file(bad)
    bad.write_text(json.dumps({"results": {"t": {"acc": 0.5}},
                               "config": {"model_args": "pretrained=a/b,revision=v2"}}))
    with pytest.raises(DataError, match="revision 'v2' is not of the form stepN"):
        parse_file(bad)


@pytest.mark.slow
def test_not_yet_idea_rechecked_on_larger_imported_checkpoints(pythia: Path,
                                                               tmp_path: Path) -> None:
    sizes = read_sizes(SIZES)
    small = [pythia / f"pythia-{s}" for s in ("70m", "160m", "410m")]
    large = [pythia / f"pythia-{s}" for s in ("1.4b", "2.8b", "6.9b", "12b")]
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        import_lm_eval(store, small, sizes)
        idea = add_idea(store, "ARC emerges", "arc_challenge", "acc", 0.35)
        first = rerun_due(store)
        assert not first.errors and len(first.attempts) == 1
        tried = first.attempts[0]
        assert sizes["pythia-v1.1-410m"].params == tried.N and not tried.passed
        assert store.get_idea(idea).status == "not-yet" and not due_ideas(store)

        import_lm_eval(store, large, sizes)
        assert [i.id for i in due_ideas(store)] == [idea]
        second = rerun_due(store)
        assert not second.errors and len(second.attempts) == 1
        attempt = second.attempts[0]
        assert sizes["pythia-v1.1-12b"].params == attempt.N
        evals = store.evals(task="arc_challenge")
        recorded = evals[(evals["checkpoint_id"] == attempt.checkpoint_id)
                         & (evals["metric"] == "acc")]["value"].iloc[0]
        assert attempt.value == recorded and attempt.passed == (recorded >= 0.35)
        assert attempt.tokens == 143_000 * TOKENS_PER_STEP
        assert len(store.idea_attempts(idea)) == 2
        # no file is needed: the checkpoint is an import
        assert store.get_checkpoint(attempt.checkpoint_id).path.startswith("lm-eval:")

    result = CliRunner().invoke(app, ["ideas", "add", "x", "--task", "telepathy", "--metric",
                                      "acc", "--threshold", "1", "--store",
                                      f"sqlite:///{tmp_path / 's.db'}"])
    assert result.exit_code == 1 and "nor is telepathy/acc recorded" in result.output


@pytest.mark.slow
def test_two_step_prediction_runs_on_imported_checkpoints(pythia: Path, tmp_path: Path) -> None:
    from scaletrack.analysis import fit_two_step
    from scaletrack.store.importers.lm_eval import task_ladder

    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        import_lm_eval(store, [pythia], read_sizes(SIZES))
        ladder = task_ladder(store, "lambada_openai")
    assert ladder["run"].nunique() == 7
    assert (ladder["D"] == ladder["step"] * TOKENS_PER_STEP).all()
    fit = fit_two_step(ladder, task="lambada_openai", n_bootstrap=10)
    # step 1 fits one point per model: its final checkpoint (loss the mean of its last 5)
    assert fit.step1.n_points == 7 and 0 < fit.step1.params["alpha"] < 2
    # the fitted loss -> accuracy curve falls as the task loss (nats/token) rises
    a, k, b = (fit.step2.params[x] for x in ("a", "k", "b"))
    assert a > 0 and k > 0 and 0 <= b < 0.5
