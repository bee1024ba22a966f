"""Hugging Face Trainer and Lightning integrations: real tiny models trained on the CPU on data
the tests make; every logged value, N, D, C, checkpoints, final status and a resumed run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scaletrack.store import Store

REPO = Path(__file__).resolve().parents[1]
HF_EXAMPLE = REPO / "examples" / "hf_trainer" / "train.py"
PL_EXAMPLE = REPO / "examples" / "lightning" / "train.py"
pytestmark = pytest.mark.slow


def _run(argv: list[str], url: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALETRACK_")}
    env.update(SCALETRACK_STORE=url, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, *argv], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def _only_run(url: str):
    with Store.open(url) as store:
        (key,) = store.runs()["run_key"]
        return store.get_run(key), store.metrics([key]), store.checkpoints(run_key=key)


def _gpt2_counts(n_embd: int) -> tuple[int, int]:
    """(non-embedding, total) parameters of the example's GPT-2, counted by transformers."""
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=n_embd, n_layer=2,
                                       n_head=2))
    return model.num_parameters(exclude_embeddings=True), model.num_parameters()


def test_hf_trainer_example_records_n_d_c_rows_and_checkpoints(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hf.db'}"
    _run([str(HF_EXAMPLE), "--n_embd", "16", "--steps", "20", "--out", "out"], url, tmp_path)
    run, rows, ckpts = _only_run(url)
    n, total = _gpt2_counts(16)
    # by hand: 2 blocks x (2 LayerNorms 64 + qkv 816 + proj 272 + mlp 1088 + 1040) + final LN 32
    assert (n, total) == (6592, 6592 + 64 * 16 + 32 * 16) == (run.N, run.N_total)
    assert run.D == 20 * 8 * 32  # steps x sequences x tokens: every token is a real one
    assert run.C == 6.0 * 6592 * 20 * 8 * 32
    assert run.status == "finished" and run.name == "gpt2-16" and run.family == "transformers"
    assert run.lr == 3e-3 and run.seed == 0 and run.config["model"]["n_embd"] == 16
    loss = rows[rows["name"] == "train/loss"].sort_values("step")
    assert loss["step"].tolist() == [5, 10, 15, 20]
    assert loss["tokens"].tolist() == [s * 8 * 32 for s in (5, 10, 15, 20)]
    assert run.final_loss == pytest.approx(loss["value"].iloc[-1])
    assert {"train/learning_rate", "train/grad_norm", "summary/train_loss"} <= set(rows["name"])
    assert ckpts["step"].tolist() == [20] and ckpts["tokens"].tolist() == [20 * 8 * 32]
    assert ckpts["path"].iloc[0].endswith("checkpoint-20/model.safetensors")


HF_CRASH = """
    import runpy, sys
    from transformers import TrainerCallback
    import transformers

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 27:
                raise RuntimeError("node lost")

    real = transformers.Trainer.__init__
    def patched(self, *a, callbacks=None, **kw):
        real(self, *a, callbacks=[*(callbacks or []), Crash()], **kw)
    if "--crash" in sys.argv:
        sys.argv.remove("--crash")
        transformers.Trainer.__init__ = patched
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_hf_trainer_resumed_run_equals_uninterrupted(tmp_path: Path) -> None:
    wrapper = tmp_path / "wrap.py"
    wrapper.write_text(textwrap.dedent(HF_CRASH))
    ref_url, url = f"sqlite:///{tmp_path / 'ref.db'}", f"sqlite:///{tmp_path / 'r.db'}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _run([str(wrapper), str(HF_EXAMPLE), "--steps", "40", "--out", "out"], ref_url,
         tmp_path / "a")
    crashed = _run([str(wrapper), str(HF_EXAMPLE), "--steps", "40", "--out", "out", "--crash"],
                   url, tmp_path / "b", ok=False)
    assert crashed.returncode != 0 and "node lost" in crashed.stderr
    run, _, _ = _only_run(url)
    assert run.status == "failed"
    _run([str(wrapper), str(HF_EXAMPLE), "--steps", "40", "--out", "out", "--resume"], url,
         tmp_path / "b")
    want, want_rows, _ = _only_run(ref_url)
    got, got_rows, ckpts = _only_run(url)
    assert got.status == "finished" and got.attempts == 2 and got.run_key == want.run_key
    assert (got.N, got.D, got.C) == (want.N, want.D, want.C) == (6592, 40 * 256, got.C)
    train = ["train/loss", "train/grad_norm", "train/learning_rate"]
    w, g = (r[r["name"].isin(train)].sort_values(["name", "step"], ignore_index=True)
            for r in (want_rows, got_rows))
    assert g[["name", "step", "tokens"]].equals(w[["name", "step", "tokens"]])
    assert g["value"].to_numpy() == pytest.approx(w["value"].to_numpy(), rel=1e-4)
    assert sorted(ckpts["step"]) == [20, 40]


def test_lightning_example_records_n_d_c_rows_and_checkpoints(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pl.db'}"
    _run([str(PL_EXAMPLE), "--d_model", "16", "--steps", "40", "--out", "out"], url, tmp_path)
    run, rows, ckpts = _only_run(url)
    # by hand: GRU 3 x (16x16 + 16x16 + 16 + 16) = 1632, head 16x64 + 64 = 1088; table 64x16
    assert (run.N, run.N_total) == (1632 + 1088, 1632 + 1088 + 64 * 16)
    assert run.D == 40 * 8 * 32 and run.C == 6.0 * 2720 * 40 * 8 * 32
    assert run.status == "finished" and run.family == "lightning" and run.name == "gru-16"
    assert run.config == {"vocab": 64, "d_model": 16, "lr": 3e-3, "model_class": "CharLM"}
    loss = rows[rows["name"] == "train/loss"].sort_values("step")
    assert len(loss) == 8 and loss["tokens"].tolist() == [(s + 1) * 256 for s in loss["step"]]
    assert run.final_loss == pytest.approx(loss["value"].iloc[-1])
    assert sorted(ckpts["step"]) == [32, 40]  # the epoch end, then the last step
    assert all(f"/pl-ladder/{run.run_key}/checkpoints/" in p for p in ckpts["path"])


PL_CRASH = """
    import runpy, sys
    import lightning as L

    class Crash(L.Callback):
        def on_train_batch_end(self, trainer, *a):
            if trainer.global_step == 36:
                raise RuntimeError("node lost")

    real = L.Trainer.__init__
    def patched(self, *a, callbacks=None, **kw):
        real(self, *a, callbacks=[*(callbacks or []), Crash()], **kw)
    if "--crash" in sys.argv:
        sys.argv.remove("--crash")
        L.Trainer.__init__ = patched
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_lightning_failed_fit_fails_and_resume_counts_tokens_on(tmp_path: Path) -> None:
    wrapper = tmp_path / "wrap.py"
    wrapper.write_text(textwrap.dedent(PL_CRASH))
    url = f"sqlite:///{tmp_path / 'pl.db'}"
    crashed = _run([str(wrapper), str(PL_EXAMPLE), "--steps", "40", "--out", "out", "--crash"],
                   url, tmp_path, ok=False)
    assert crashed.returncode != 0 and "node lost" in crashed.stderr
    run, _, ckpts = _only_run(url)
    assert run.status == "failed" and run.error == "lightning fit failed"
    (path,) = ckpts["path"]  # the epoch-end checkpoint at step 32
    _run([str(wrapper), str(PL_EXAMPLE), "--steps", "40", "--out", "out", "--ckpt_path", path],
         url, tmp_path)
    run, rows, ckpts = _only_run(url)
    assert run.status == "finished" and run.attempts == 2
    assert run.D == 40 * 256  # the count went on from the checkpoint's 32 x 256 tokens
    loss = rows[rows["name"] == "train/loss"].sort_values("step")
    assert loss["step"].tolist() == [4, 9, 14, 19, 24, 29, 34, 39]
