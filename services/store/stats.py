"""Statistics of the executions table for the metrics: counts by state, the oldest waiting work, durations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from services.store.callbacks import PENDING
from services.store.engine import Database
from services.store.models import ExecutionRow
from services.store.records import FAILED, HELD, QUEUED, RETRYING, RUNNING, SUCCEEDED

# Every state is reported, at 0 when no execution is in it, so a series never disappears.
STATES = (QUEUED, RUNNING, RETRYING, SUCCEEDED, FAILED, HELD)
# Accepted and not finished: somebody (a worker, a retry) still owes these an outcome.
WAITING_STATES = (QUEUED, RETRYING, RUNNING)


@dataclass(frozen=True)
class ExecutionStats:
    """How many executions are in each state, and since when the oldest waiting ones wait."""

    by_state: Mapping[str, int]
    # created_at of the oldest execution queued, retrying or running (None: none).
    oldest_waiting_since: datetime | None
    # finished_at of the oldest execution whose callback is still to be sent (None: none).
    oldest_unsent_callback_since: datetime | None


@dataclass(frozen=True)
class ExecutionStart:
    """Which action an execution runs and when it was accepted."""

    action: str
    created_at: datetime


class StatsRepository:
    """Read-only aggregates of the executions table."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def executions(self) -> ExecutionStats:
        """Count the executions by state and find the oldest waiting execution and unsent callback."""
        by_state = select(ExecutionRow.state, func.count()).group_by(ExecutionRow.state)
        oldest_waiting = select(func.min(ExecutionRow.created_at)).where(ExecutionRow.state.in_(WAITING_STATES))
        oldest_unsent = select(func.min(ExecutionRow.finished_at)).where(ExecutionRow.callback_state == PENDING)
        with self.database.engine.connect() as conn:
            counts = {state: 0 for state in STATES}
            counts.update({state: int(count) for state, count in conn.execute(by_state)})
            return ExecutionStats(
                by_state=counts,
                oldest_waiting_since=conn.execute(oldest_waiting).scalar_one_or_none(),
                oldest_unsent_callback_since=conn.execute(oldest_unsent).scalar_one_or_none(),
            )

    def starts(self, execution_ids: Sequence[str]) -> list[ExecutionStart]:
        """Return the action and acceptance time of each of these executions that still exists."""
        if not execution_ids:
            return []
        query = select(ExecutionRow.action, ExecutionRow.created_at).where(ExecutionRow.id.in_(list(execution_ids)))
        with self.database.engine.connect() as conn:
            return [ExecutionStart(row.action, row.created_at) for row in conn.execute(query)]
