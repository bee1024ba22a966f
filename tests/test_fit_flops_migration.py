"""Stores written before the full FLOP count get their built-in runs' C recomputed on
upgrade (migration 0006), with a note; imported runs keep theirs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from scaletrack.models.accounting import count_params, flops_per_token
from scaletrack.store import Store
from scaletrack.store.migrate import alembic_config
from scaletrack.sweeps.train import TrainConfig, model_config


def test_upgrade_recomputes_builtin_compute_with_a_note(store_url):
    Store.open(store_url).close()
    engine = sa.create_engine(store_url)
    cfg = TrainConfig(family="gpt", model={"n_layer": 1, "n_head": 2, "d_model": 16},
                      data={"corpus": "stdlib"}, context=8, tokens=1000)
    mcfg = model_config(cfg)
    counts = count_params(mcfg)
    kaplan = flops_per_token(mcfg, convention="kaplan") * 1000
    full = flops_per_token(mcfg) * 1000
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0005_branches")
        target = {**cfg.to_dict(), "model": {"params": 3000}}  # a shape the store cannot see
        for key, family, c, config in (("a" * 64, "gpt", kaplan, cfg.to_dict()),
                                       ("b" * 64, "imported", 123.0, cfg.to_dict()),
                                       ("c" * 64, "lstm", 456.0, target)):
            conn.execute(sa.text(
                "INSERT INTO runs (run_key, family, status, attempts, claim, \"N\", "
                "\"N_total\", \"D\", \"C\", config, created_at, updated_at, role) VALUES "
                "(:k, :f, 'finished', 1, 0, :n, :nt, 1000, :c, :cfg, :t, :t, 'cell')"),
                {"k": key, "f": family, "c": c, "cfg": json.dumps(config), "t": now,
                 "n": counts.non_embedding, "nt": counts.total})
        command.upgrade(alembic_config(conn), "head")
        rows = dict(conn.execute(sa.text('SELECT family, "C" FROM runs')).fetchall())
        notes = dict(conn.execute(sa.text("SELECT family, note FROM runs")).fetchall())
        command.downgrade(alembic_config(conn), "0005_branches")
        back = dict(conn.execute(sa.text('SELECT family, "C" FROM runs')).fetchall())
        command.upgrade(alembic_config(conn), "head")
    assert full > kaplan
    assert abs(rows["gpt"] - full) < 1e-9 * full  # exactly the accounting's full count
    assert rows["imported"] == 123.0 and notes["imported"] is None
    assert "output-layer FLOPs" in notes["gpt"]
    assert rows["lstm"] == 456.0 and "old count" in notes["lstm"]
    assert abs(back["gpt"] - kaplan) < 1e-9 * kaplan
    engine.dispose()
