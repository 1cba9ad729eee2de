"""Faults of the server's own infrastructure are transient: the run is handed back and tried again, never failed.

Stopping the database and Redis for real is in tests/e2e/test_outages.py; these tests make the other faults
happen in an in-process run: the job's time limit, and Redis locks not had in time or lost during a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis.exceptions

from services.bootstrap import Services
from simulators.scenario import Simulators, seed_deal
from tests.builders import sales_inputs
from tests.conftest import Perform, only_callback


def faulty_locks(services: Services, fault: Exception, *, on_exit: bool = False, times: int = 1) -> list[str]:
    """Make the next ``times`` customer locks fail with ``fault`` (when taken, or when released)."""
    real_lock, failed = services.lock, []

    @contextmanager
    def lock(name: str, timeout: int = 60) -> Iterator[object]:
        if name.startswith("customer:") and len(failed) < times:
            failed.append(name)
            if not on_exit:
                raise fault
            with real_lock(name, timeout):
                yield None
            raise fault
        with real_lock(name, timeout) as held:
            yield held

    services.lock = lock  # type: ignore[method-assign]
    return failed


@pytest.mark.parametrize(
    ("fault", "on_exit"),
    [
        (redis.exceptions.LockError("Unable to acquire lock within the time specified"), False),
        (redis.exceptions.LockNotOwnedError("Cannot release a lock that's no longer owned"), True),
        (redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused."), False),
    ],
    ids=["lock-not-had-in-time", "lock-expired-during-the-write", "redis-unreachable"],
)
def test_a_lock_fault_hands_the_run_back_and_the_retry_books_once(
    perform: Perform, services: Services, sims: Simulators, settings: Any, fault: Exception, on_exit: bool
) -> None:
    failed = faulty_locks(services, fault, on_exit=on_exit)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert failed, "the fault was injected"
    assert execution.state == "succeeded", execution.failure_message
    attempts = services.attempts.of(execution.id)
    assert [a.outcome for a in attempts] == ["retrying", "succeeded"]
    assert attempts[0].error_service == "redis" and attempts[0].error_code == type(fault).__name__
    assert len(sims.entities("Invoice")) == 1 and len(sims.entities("Customer")) == 1
    assert only_callback(sims, execution)["hs_execution_state"] == "SUCCESS"


def test_a_job_that_runs_out_of_time_is_tried_again_and_finds_what_it_wrote(
    perform: Perform, services: Services, sims: Simulators, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # QuickBooks books the invoice at once but answers after the job's time limit.
    # (Time limits with room for a busy machine: the second attempt must finish within one.)
    monkeypatch.setattr(services.queue, "config", services.config.with_overrides(job_timeout=3))
    sims.qbo_fault(status=None, method="POST", path="/invoice$", delay=4.5)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    attempts = services.attempts.of(execution.id)
    assert [a.outcome for a in attempts] == ["retrying", "succeeded"]
    assert (attempts[0].error_service, attempts[0].error_code) == ("worker", "JobTimeoutException")
    assert len(sims.entities("Invoice")) == 1


def test_a_fault_that_never_clears_fails_the_action_as_server_unavailable(
    perform: Perform, services: Services, sims: Simulators, settings: Any
) -> None:
    faulty_locks(services, redis.exceptions.LockError("Unable to acquire lock"), times=100)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "SERVER_UNAVAILABLE"
    outputs = only_callback(sims, execution)
    assert outputs["hs_execution_state"] == "FAIL_CONTINUE" and "LockError" in outputs["failure_message"]
    assert sims.entities("Invoice") == []
