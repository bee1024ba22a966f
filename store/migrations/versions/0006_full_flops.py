"""FLOPs counted in full: built-in runs' compute gets the output layer's logit term.

Stores written before counted training FLOPs per token as 6N + attention (Kaplan et al.'s
convention), leaving out the output layer's matmul (6·d_model·vocab), which undercounts C
most for small models (2x for the demo's smallest). The built-in models now count it
(`models.accounting`, convention "full"). This upgrade rescales, for every run of a built-in
family (gpt, lstm) whose model config resolves, its planned compute C and its own
checkpoints' FLOPs by full / kaplan FLOPs per token, and appends a note to the run saying so.
Runs whose config cannot be resolved (e.g. a token file that is gone) keep their C and get a
note that it is the old count. Imported and command-cell runs carry their own FLOPs and are
left alone. Downgrade divides the same factors back out.

Revision ID: 0006_full_flops
Revises: 0005_branches
Create Date: 2026-12-07
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0006_full_flops"
down_revision = "0005_branches"
branch_labels = None
depends_on = None

NOTE = "C recomputed with output-layer FLOPs (convention 'full', migration 0006)"
NOTE_KEPT = "C is the old count without output-layer FLOPs (config not resolvable, 0006)"


def _ratio(family: str, config: str | dict) -> float | None:
    """full / kaplan FLOPs per token of a built-in run's model, or None if unresolvable."""
    from scaletrack.models.accounting import flops_per_token
    from scaletrack.sweeps.train import TrainConfig, model_config

    try:
        data = json.loads(config) if isinstance(config, str) else dict(config)
        mcfg = model_config(TrainConfig.from_dict({**data, "family": family}))
        return flops_per_token(mcfg, convention="full") / flops_per_token(
            mcfg, convention="kaplan")
    except Exception:  # noqa: BLE001 - any unresolvable config keeps its C, with a note
        return None


def _rescale(inverse: bool) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, family, config, \"C\", note FROM runs WHERE family IN ('gpt', 'lstm')"
    )).fetchall()
    for run_id, family, config, c, note in rows:
        ratio = _ratio(family, config)
        note = note or ""
        if ratio is None:
            if not inverse and NOTE_KEPT not in note:
                conn.execute(sa.text("UPDATE runs SET note = :n WHERE id = :i"),
                             {"n": (note + "; " if note else "") + NOTE_KEPT, "i": run_id})
            continue
        factor = 1.0 / ratio if inverse else ratio
        new_note = (note.replace("; " + NOTE, "").replace(NOTE, "") if inverse
                    else (note + "; " if note else "") + NOTE)
        conn.execute(sa.text('UPDATE runs SET "C" = "C" * :f, note = :n WHERE id = :i'),
                     {"f": factor, "n": new_note or None, "i": run_id})
        conn.execute(sa.text("UPDATE checkpoints SET flops = flops * :f "
                             "WHERE run_id = :i AND kind = 'own' AND flops IS NOT NULL"),
                     {"f": factor, "i": run_id})
        del c


def upgrade() -> None:
    _rescale(inverse=False)


def downgrade() -> None:
    _rescale(inverse=True)
