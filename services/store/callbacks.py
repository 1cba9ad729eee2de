"""Callbacks: which finished executions HubSpot still has to be told about."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import ExecutionRow
from services.store.records import PendingCallback

# none: nothing to send yet; pending: to send; sent: HubSpot took it; rejected: HubSpot refused it;
# expired: HubSpot stopped waiting (hs_expiration_duration passed), so it is not sent.
NONE, PENDING, SENT, REJECTED, EXPIRED = "none", "pending", "sent", "rejected", "expired"


class CallbackRepository:
    """The callback columns of the executions table."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def pending(self, portal_id: int, limit: int = 100) -> list[PendingCallback]:
        """Return finished executions of a portal not yet reported, oldest first."""
        query = (
            select(ExecutionRow.id, ExecutionRow.callback_id, ExecutionRow.output_fields)
            .where(ExecutionRow.portal_id == portal_id, ExecutionRow.callback_state == PENDING)
            .order_by(ExecutionRow.finished_at)
            .limit(limit)
        )
        with self.database.engine.connect() as conn:
            return [PendingCallback(row.id, row.callback_id, row.output_fields or {}) for row in conn.execute(query)]

    def expire_overdue(self, portal_id: int) -> int:
        """Give up the pending callbacks of a portal that HubSpot no longer waits for; return how many."""
        now = utcnow()
        stmt = (
            update(ExecutionRow)
            .where(
                ExecutionRow.portal_id == portal_id,
                ExecutionRow.callback_state == PENDING,
                ExecutionRow.expires_at.is_not(None),
                ExecutionRow.expires_at <= now,
            )
            .values(callback_state=EXPIRED)
        )
        with self.database.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def portals_waiting(self, finished_before: datetime) -> list[int]:
        """Return portals with callbacks that should have been sent by now."""
        query = (
            select(ExecutionRow.portal_id)
            .where(ExecutionRow.callback_state == PENDING, ExecutionRow.finished_at < finished_before)
            .distinct()
        )
        with self.database.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def mark(self, execution_ids: Sequence[str], state: str = SENT) -> None:
        """Record that these callbacks were completed (or rejected) in HubSpot."""
        if not execution_ids:
            return
        stmt = (
            update(ExecutionRow)
            .where(ExecutionRow.id.in_(list(execution_ids)))
            .values(callback_state=state, callback_sent_at=utcnow())
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)
