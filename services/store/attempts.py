"""Attempts: every run of an execution's job, with how it ended and what the remote service said."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import AttemptRow
from services.store.records import Attempt, from_row

RUNNING, SUCCEEDED, FAILED, RETRYING, ABANDONED = "running", "succeeded", "failed", "retrying", "abandoned"
# held: the run failed for a reason the company holds for a person to fix
HELD = "held"
# batched: the run stopped at a document write, which waits for the company's next QuickBooks batch
BATCHED = "batched"


class AttemptRepository:
    """Reads and writes of the execution_attempts table."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def start(self, execution_id: str, number: int) -> int:
        """Record the start of a run and return the attempt's id."""
        with self.database.session() as session:
            row = AttemptRow(execution_id=execution_id, number=number, outcome=RUNNING)
            session.add(row)
            session.flush()
            return row.id

    def finish(self, attempt_id: int, outcome: str, *, error: Exception | None = None) -> None:
        """Record how a run ended, with the remote error's code and request id when there was one."""
        values: dict[str, Any] = {"outcome": outcome, "finished_at": utcnow()}
        if error is not None:
            values["message"] = str(error)[:2000]
            values["error_service"] = getattr(error, "service", None)
            values["error_code"] = getattr(error, "code", None) or getattr(error, "reason", None)
            values["http_status"] = getattr(error, "http_status", None)
            values["request_id"] = getattr(error, "request_id", None)
        with self.database.engine.begin() as conn:
            conn.execute(update(AttemptRow).where(AttemptRow.id == attempt_id).values(**values))

    def of(self, execution_id: str) -> list[Attempt]:
        """Return the runs of an execution, oldest first."""
        query = select(AttemptRow).where(AttemptRow.execution_id == execution_id).order_by(AttemptRow.id)
        with self.database.session() as session:
            return [from_row(Attempt, row) for row in session.scalars(query)]

    def trailing_retries(self, execution_id: str) -> int:
        """Return how many runs in a row, counting back from the newest finished one, ended in a retry."""
        query = (
            select(AttemptRow.outcome)
            .where(AttemptRow.execution_id == execution_id, AttemptRow.outcome != RUNNING)
            .order_by(AttemptRow.id.desc())
        )
        count = 0
        with self.database.engine.connect() as conn:
            for outcome in conn.execute(query).scalars():
                if outcome in (FAILED, SUCCEEDED, HELD):
                    break
                count += outcome == RETRYING
        return count

    def abandon_running(self, execution_id: str) -> None:
        """Mark runs that never reported back (their worker died) as abandoned."""
        stmt = (
            update(AttemptRow)
            .where(AttemptRow.execution_id == execution_id, AttemptRow.outcome == RUNNING)
            .values(outcome=ABANDONED, finished_at=utcnow())
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)
