"""Ideas that did not work yet, and each attempt at one on a checkpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa

from scaletrack.store import schema
from scaletrack.store.base import StoreBase, typed_frame, utc_now
from scaletrack.store.engine import read_transaction, write_transaction
from scaletrack.store.errors import StoreError
from scaletrack.store.records import (
    IDEA_DIRECTIONS,
    IDEA_STATUSES,
    IdeaAttemptRecord,
    IdeaRecord,
)

IDEA_COLUMNS = tuple(f.name for f in dataclasses.fields(IdeaRecord))
IDEA_ATTEMPT_COLUMNS = tuple(f.name for f in dataclasses.fields(IdeaAttemptRecord))


class IdeaMethods(StoreBase):
    """The Store's methods for the ideas registry."""

    # ------------------------------------------------------------------ ideas
    @staticmethod
    def _check_idea_fields(fields: Mapping[str, Any]) -> None:
        if "direction" in fields and fields["direction"] not in IDEA_DIRECTIONS:
            raise StoreError(f"invalid idea direction {fields['direction']!r} ({IDEA_DIRECTIONS})")
        if "status" in fields and fields["status"] not in IDEA_STATUSES:
            raise StoreError(f"invalid idea status {fields['status']!r} ({IDEA_STATUSES})")

    def add_idea(self, idea: IdeaRecord) -> int:
        """Register an idea; returns its id."""
        values = {f.name: getattr(idea, f.name) for f in dataclasses.fields(IdeaRecord)}
        values.pop("id")
        self._check_idea_fields(values)
        now = utc_now()
        values["created_at"] = idea.created_at or now
        values["updated_at"] = idea.updated_at or now
        stmt = sa.insert(schema.ideas).values(**values).returning(schema.ideas.c.id)
        with write_transaction(self._engine) as conn:
            return int(conn.execute(stmt).scalar_one())

    def get_idea(self, idea_id: int) -> IdeaRecord | None:
        """The idea with this id, or None."""
        with read_transaction(self._engine) as conn:
            row = conn.execute(
                sa.select(schema.ideas).where(schema.ideas.c.id == idea_id)
            ).one_or_none()
        return None if row is None else IdeaRecord(**row._mapping)

    def update_idea(self, idea_id: int, **fields: Any) -> None:
        """Set some fields of an idea (any IdeaRecord field except id/created_at)."""
        allowed = set(IDEA_COLUMNS) - {"id", "created_at", "updated_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise StoreError(f"unknown idea fields {sorted(unknown)} (allowed: {sorted(allowed)})")
        self._check_idea_fields(fields)
        stmt = (
            sa.update(schema.ideas)
            .where(schema.ideas.c.id == idea_id)
            .values(**fields, updated_at=utc_now())
        )
        with write_transaction(self._engine) as conn:
            if conn.execute(stmt).rowcount != 1:
                raise StoreError(f"unknown idea id {idea_id}")

    def delete_idea(self, idea_id: int) -> None:
        """Delete an idea and its attempts (cascade)."""
        with write_transaction(self._engine) as conn:
            conn.execute(sa.delete(schema.idea_attempts)
                         .where(schema.idea_attempts.c.idea_id == idea_id))
            if conn.execute(sa.delete(schema.ideas)
                            .where(schema.ideas.c.id == idea_id)).rowcount != 1:
                raise StoreError(f"unknown idea id {idea_id}")

    def ideas(self) -> pd.DataFrame:
        """Columns: the IdeaRecord fields, ordered by id."""
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(
                sa.select(schema.ideas).order_by(schema.ideas.c.id))]
        return typed_frame(rows, IDEA_COLUMNS)

    def add_idea_attempt(self, attempt: IdeaAttemptRecord) -> int:
        """Record one evaluation of an idea on a checkpoint; returns its id."""
        values = {f.name: getattr(attempt, f.name) for f in dataclasses.fields(IdeaAttemptRecord)}
        values.pop("id")
        values["created_at"] = attempt.created_at or utc_now()
        values["passed"] = bool(values["passed"])
        stmt = sa.insert(schema.idea_attempts).values(**values).returning(
            schema.idea_attempts.c.id
        )
        try:
            with write_transaction(self._engine) as conn:
                return int(conn.execute(stmt).scalar_one())
        except sa.exc.IntegrityError:
            raise StoreError(
                f"unknown idea {attempt.idea_id} or checkpoint {attempt.checkpoint_id}"
            ) from None

    def idea_attempts(self, idea_id: int | None = None) -> pd.DataFrame:
        """Columns: the IdeaAttemptRecord fields, ordered by id."""
        t = schema.idea_attempts
        query = sa.select(t).order_by(t.c.id)
        if idea_id is not None:
            query = query.where(t.c.idea_id == idea_id)
        with read_transaction(self._engine) as conn:
            rows = [r._mapping for r in conn.execute(query)]
        frame = typed_frame(rows, IDEA_ATTEMPT_COLUMNS)
        frame["passed"] = frame["passed"].astype(bool)
        return frame

