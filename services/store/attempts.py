"""Attempts: every run of an execution's job, with how it ended and what the remote service said."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update

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
        # Built once: every run starts and finishes an attempt.
        table = cast(Table, AttemptRow.__table__)
        c = table.c
        self._start_statement = (
            table.insert()
            .values(
                execution_id=bindparam("b_execution_id"),
                number=bindparam("b_number"),
                outcome=RUNNING,
                started_at=bindparam("now"),
            )
            .returning(c.id)
        )
        self._abandon_statement = (
            update(table)
            .where(c.execution_id == bindparam("b_execution_id"), c.outcome == RUNNING)
            .values(outcome=ABANDONED, finished_at=bindparam("now"))
        )
        self._finish_statement = (
            update(table)
            .where(c.id == bindparam("attempt_id"))
            .values(outcome=bindparam("b_outcome"), finished_at=bindparam("now"))
        )
        self._finish_with_error_statement = self._finish_statement.values(
            message=bindparam("b_message"),
            error_service=bindparam("b_service"),
            error_code=bindparam("b_code"),
            http_status=bindparam("b_status"),
            request_id=bindparam("b_request_id"),
        )

    def start(self, execution_id: str, number: int) -> int:
        """Record the start of a run and return the attempt's id.

        Runs before it that never reported back (their worker died) are marked abandoned first, in the same
        transaction; the first run of an execution has none before it, and is a single round trip.
        """
        parameters = {"b_execution_id": execution_id, "b_number": number, "now": utcnow()}
        if number <= 1:
            row = self.database.row(self._start_statement, parameters)
            assert row is not None
            return int(row.id)
        with self.database.engine.begin() as conn:
            conn.execute(self._abandon_statement, parameters)
            return int(conn.execute(self._start_statement, parameters).scalar_one())

    def finish(self, attempt_id: int, outcome: str, *, error: Exception | None = None) -> None:
        """Record how a run ended, with the remote error's code and request id when there was one."""
        parameters: dict[str, Any] = {"attempt_id": attempt_id, "b_outcome": outcome, "now": utcnow()}
        if error is None:
            self.database.write(self._finish_statement, parameters)
            return
        parameters["b_message"] = str(error)[:2000]
        parameters["b_service"] = getattr(error, "service", None)
        parameters["b_code"] = getattr(error, "code", None) or getattr(error, "reason", None)
        parameters["b_status"] = getattr(error, "http_status", None)
        parameters["b_request_id"] = getattr(error, "request_id", None)
        self.database.write(self._finish_with_error_statement, parameters)

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
