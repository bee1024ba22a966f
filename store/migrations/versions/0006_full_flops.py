"""FLOPs counted in full: built-in runs' compute gets the output layer's logit term.

Stores written before counted training FLOPs per token as 6N + attention (Kaplan et al.'s
convention), leaving out the output layer's matmul (6·d_model·vocab), which undercounts C
most for small models (2x for the demo's smallest). The built-in models now count it
(`models.accounting`, convention "full"). This upgrade rescales, for every run of a built-in
family (gpt, lstm) whose shape the store records, its planned compute C and its own
checkpoints' FLOPs by full / kaplan FLOPs per token (from the stored N, N_total, C, D and
the model config: `_logit_flops`), and appends a note to the run saying so. Other runs (a
shape given as a parameter-count target) keep their C and get a note that it is the old
count. Imported and command-cell runs carry their own FLOPs and are
left alone. Downgrade divides the same factors back out.

Revision ID: 0006_full_flops
Revises: 0005_branches
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006_full_flops"
down_revision = "0005_branches"
branch_labels = None
depends_on = None

NOTE = "C recomputed with output-layer FLOPs (convention 'full', migration 0006)"
NOTE_KEPT = "C is the old count without output-layer FLOPs (config not resolvable, 0006)"


def _logit_flops(family: str, config: str | dict[str, Any], n: int | None, n_total: int | None
                 ) -> float | None:
    """The output layer's training FLOPs per token of a built-in run, from what the store
    holds (a migration imports nothing of the package above the store): 6 · width · vocab,
    where width is the model config's d_model (gpt) or d_hidden (lstm) and vocab follows from
    the embedding parameters N_total - N (gpt: a token table vocab x d_model plus a position
    table context x d_model; lstm: vocab x d_hidden). None when any of it is missing or does
    not add up (a run given by a parameter-count target)."""
    try:
        data = json.loads(config) if isinstance(config, str) else dict(config)
        model = dict(data.get("model") or {})
        width = int(model["d_model"] if family == "gpt" else model["d_hidden"])
        embedding = int(n_total) - int(n)  # type: ignore[arg-type]  # None: TypeError, below
        if family == "gpt":
            context = int(data["context"])
            vocab, rest = divmod(embedding, width)
            vocab -= context
        else:
            vocab, rest = divmod(embedding, width)
        if rest or vocab <= 0 or width <= 0:
            return None
        return 6.0 * width * vocab
    except Exception:  # noqa: BLE001 - any unresolvable run keeps its C, with a note
        return None


def _rescale(inverse: bool) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, family, config, \"N\", \"N_total\", \"C\", \"D\", note FROM runs "
        "WHERE family IN ('gpt', 'lstm')"
    )).fetchall()
    for run_id, family, config, n, n_total, c, d, note in rows:
        note = note or ""
        logits = _logit_flops(family, config, n, n_total)
        per_token = float(c) / float(d) if c and d else None  # the stored count per token
        if inverse:
            if NOTE not in note or logits is None or per_token is None:
                continue
            factor = (per_token - logits) / per_token  # full -> kaplan
            new_note = note.replace("; " + NOTE, "").replace(NOTE, "")
        elif logits is None or per_token is None:
            if NOTE_KEPT not in note:
                conn.execute(sa.text("UPDATE runs SET note = :n WHERE id = :i"),
                             {"n": (note + "; " if note else "") + NOTE_KEPT, "i": run_id})
            continue
        else:
            factor = (per_token + logits) / per_token  # kaplan -> full
            new_note = (note + "; " if note else "") + NOTE
        conn.execute(sa.text('UPDATE runs SET "C" = "C" * :f, note = :n WHERE id = :i'),
                     {"f": factor, "n": new_note or None, "i": run_id})
        conn.execute(sa.text("UPDATE checkpoints SET flops = flops * :f "
                             "WHERE run_id = :i AND kind = 'own' AND flops IS NOT NULL"),
                     {"f": factor, "i": run_id})


def upgrade() -> None:
    _rescale(inverse=False)


def downgrade() -> None:
    _rescale(inverse=True)
