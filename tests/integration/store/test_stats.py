"""The statistics repository on SQLite and PostgreSQL: counts by state, the oldest waiting work, start times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from services.clock import utcnow
from services.store.models import ExecutionRow
from services.store.records import NewExecution
from services.store.repositories import Repositories
from services.store.stats import ExecutionStart


def execution(repos: Repositories, number: int, action: str = "create_invoice", **columns: Any) -> str:
    """Record an execution and set its columns; return its id."""
    new = NewExecution(f"ap-1-{number}-0", action, 102670506, "9130355", "DEAL", str(number), {})
    execution_id, _ = repos.executions.accept(new)
    if columns:
        with repos.database.engine.begin() as conn:
            conn.execute(update(ExecutionRow).where(ExecutionRow.id == execution_id).values(**columns))
    return execution_id


@pytest.fixture
def ago() -> Callable[[int], datetime]:
    """Return moments some minutes before one fixed moment of the test."""
    now = utcnow().replace(microsecond=0)
    return lambda minutes: now - timedelta(minutes=minutes)


def test_an_empty_table_reports_every_state_at_zero_and_nothing_waiting(repos: Repositories) -> None:
    stats = repos.stats.executions()

    assert stats.by_state == dict.fromkeys(("queued", "running", "retrying", "succeeded", "failed", "held"), 0)
    assert (stats.oldest_waiting_since, stats.oldest_unsent_callback_since) == (None, None)


def test_counts_by_state_and_the_oldest_waiting_execution_and_unsent_callback(
    repos: Repositories, ago: Callable[[int], datetime]
) -> None:
    execution(repos, 1, created_at=ago(30))
    execution(repos, 2, state="retrying", created_at=ago(45))
    execution(repos, 3, state="running", created_at=ago(20))
    execution(repos, 4, state="held", created_at=ago(90))
    execution(repos, 5, state="succeeded", callback_state="pending", finished_at=ago(7), created_at=ago(60))
    execution(repos, 6, state="failed", callback_state="pending", finished_at=ago(4))
    execution(repos, 7, state="succeeded", callback_state="sent", finished_at=ago(120))

    stats = repos.stats.executions()

    assert stats.by_state == {"queued": 1, "running": 1, "retrying": 1, "succeeded": 2, "failed": 1, "held": 1}
    # Held executions wait for a person, not for a worker.
    assert stats.oldest_waiting_since == ago(45)
    assert stats.oldest_unsent_callback_since == ago(7)


def test_starts_name_the_action_and_the_acceptance_time_of_each_execution(
    repos: Repositories, ago: Callable[[int], datetime]
) -> None:
    first = execution(repos, 1, created_at=ago(3))
    second = execution(repos, 2, action="create_estimate", created_at=ago(1))

    starts = repos.stats.starts([first, second, "gone"])

    assert sorted(starts, key=lambda s: s.created_at) == [
        ExecutionStart("create_invoice", ago(3)),
        ExecutionStart("create_estimate", ago(1)),
    ]
    assert repos.stats.starts([]) == []
