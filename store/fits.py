"""Stored fit results (a fit's `to_dict()` payload by form, sweep and label)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from scaletrack.store import schema
from scaletrack.store.base import StoreBase, typed_frame, utc_now
from scaletrack.store.engine import read_transaction, write_transaction

FIT_COLUMNS = ("id", "form", "sweep", "label", "payload", "created_at")


class FitMethods(StoreBase):
    """The Store's methods for fit results."""

    # ------------------------------------------------------------------ fits
    def save_fit(
        self, form: str, payload: dict[str, Any], *, sweep: str | None = None,
        label: str | None = None,
    ) -> int:
        """Store a fit result (payload: its to_dict()); returns its id."""
        stmt = sa.insert(schema.fits).values(
            form=form, payload=payload, sweep=sweep, label=label, created_at=utc_now()
        ).returning(schema.fits.c.id)
        with write_transaction(self._engine) as conn:
            return int(conn.execute(stmt).scalar_one())

    def fits(self, form: str | None = None) -> pd.DataFrame:
        """Columns: id, form, sweep, label, payload (dict), created_at; ordered by id."""
        t = schema.fits
        query = sa.select(t).order_by(t.c.id)
        if form is not None:
            query = query.where(t.c.form == form)
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(query)]
        return typed_frame(rows, FIT_COLUMNS)

