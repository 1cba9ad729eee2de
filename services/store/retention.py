"""Retention: finished executions, with their attempts and steps, are deleted once they are old enough."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select

from services.store.callbacks import PENDING
from services.store.engine import Database
from services.store.models import AttemptRow, ExecutionRow, PaymentDocumentRow, StepRow
from services.store.records import FINAL_STATES


class RetentionRepository:
    """Deletes what the books no longer need, in batches, never anything still in progress."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def purge_finished(self, finished_before: datetime, *, batch: int = 500) -> int:
        """Delete executions finished before a moment, with their attempts and steps; return how many.

        Never one that is waiting, running or retrying, one whose callback is still to be sent, or one that
        holds a payment's document: that claim is what keeps the payment from being booked twice.
        """
        holds_a_payment = exists().where(PaymentDocumentRow.execution_id == ExecutionRow.id)
        old_enough = (
            select(ExecutionRow.id)
            .where(
                ExecutionRow.state.in_(FINAL_STATES),
                ExecutionRow.finished_at < finished_before,
                ExecutionRow.callback_state != PENDING,
                ~holds_a_payment,
            )
            .limit(batch)
        )
        deleted = 0
        while True:
            with self.database.engine.begin() as conn:
                ids = list(conn.execute(old_enough).scalars())
                if not ids:
                    return deleted
                conn.execute(delete(StepRow).where(StepRow.execution_id.in_(ids)))
                conn.execute(delete(AttemptRow).where(AttemptRow.execution_id.in_(ids)))
                conn.execute(delete(ExecutionRow).where(ExecutionRow.id.in_(ids)))
            deleted += len(ids)
