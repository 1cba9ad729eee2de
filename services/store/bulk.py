"""Bulk operations: the executions a bulk retry will go through, and how far it got."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import update

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import BulkOperationRow
from services.store.records import BulkOperation, from_row

QUEUED, RUNNING, FINISHED = "queued", "running", "finished"


class BulkRepository:
    """Reads and writes of the bulk_operations table."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def create(self, *, kind: str, actor: str, filters: dict[str, Any], execution_ids: Sequence[str]) -> BulkOperation:
        """Record a bulk operation over a fixed list of executions (chosen now, so the count never drifts)."""
        now = utcnow()
        with self.database.session() as session:
            row = BulkOperationRow(
                id=uuid.uuid4().hex,
                kind=kind,
                actor=actor[:255],
                filters=filters,
                execution_ids=list(execution_ids),
                total=len(execution_ids),
                done=0,
                skipped=0,
                state=QUEUED if execution_ids else FINISHED,
                created_at=now,
                updated_at=now,
                finished_at=None if execution_ids else now,
            )
            session.add(row)
            session.flush()
            return from_row(BulkOperation, row)

    def get(self, bulk_id: str) -> BulkOperation | None:
        """Return a bulk operation by id."""
        with self.database.session() as session:
            row = session.get(BulkOperationRow, bulk_id)
            return from_row(BulkOperation, row) if row else None

    def progress(self, bulk_id: str, *, done: int, skipped: int, finished: bool = False) -> None:
        """Record how many executions were handled so far (absolute figures, so a re-run never double counts)."""
        now = utcnow()
        values: dict[str, Any] = {"done": done, "skipped": skipped, "state": FINISHED if finished else RUNNING}
        if finished:
            values["finished_at"] = now
        with self.database.engine.begin() as conn:
            conn.execute(
                update(BulkOperationRow).where(BulkOperationRow.id == bulk_id).values(updated_at=now, **values)
            )
