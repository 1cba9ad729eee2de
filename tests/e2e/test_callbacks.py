"""Completing HubSpot callbacks: refusals, outages and lost access never kill the flush or lose a completion."""

from __future__ import annotations

from typing import Any

from rq import Retry

from services.bootstrap import Services
from services.store.records import NewExecution
from services.work.callbacks import CallbackFlusher
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators
from tests.conftest import set_execution


def finished(services: Services, count: int) -> list[str]:
    """Record executions that finished and wait for their callbacks; return their callbackIds."""
    callback_ids = []
    for n in range(count):
        callback_id = f"ap-{PORTAL_ID}-cb-{n}-0"
        execution_id, _ = services.executions.accept(
            NewExecution(callback_id, "create_invoice", PORTAL_ID, REALM_ID, "DEAL", str(600 + n), {})
        )
        outputs = {"hs_execution_state": "SUCCESS", "quickbooks_id": str(100 + n)}
        set_execution(services, execution_id, state="succeeded", callback_state="pending", output_fields=outputs)
        callback_ids.append(callback_id)
    return callback_ids


def states(services: Services, callback_ids: list[str]) -> list[str]:
    return [services.executions.find(c).callback_state for c in callback_ids]  # type: ignore[union-attr]


def test_a_refused_batch_is_sent_one_by_one_and_only_the_refused_one_is_rejected(
    services: Services, sims: Simulators
) -> None:
    callback_ids = finished(services, 3)
    sims.hs_fault(method="POST", path="/callbacks/complete$", status=400)
    sims.hs_fault(method="POST", path=f"/callbacks/{callback_ids[1]}/complete", status=400)

    assert CallbackFlusher(services).flush(PORTAL_ID) == "sent 2"

    assert states(services, callback_ids) == ["sent", "rejected", "sent"]
    assert {c["callback_id"] for c in sims.callbacks()} == {callback_ids[0], callback_ids[2]}


def test_an_outage_while_sending_one_by_one_hands_the_flush_back_for_later(
    services: Services, sims: Simulators
) -> None:
    callback_ids = finished(services, 2)
    sims.hs_fault(method="POST", path="/callbacks/complete$", status=400)
    sims.hs_fault(method="POST", path=f"/callbacks/{callback_ids[0]}/complete", status=503)

    result = CallbackFlusher(services).flush(PORTAL_ID)

    assert isinstance(result, Retry)
    assert states(services, callback_ids) == ["pending", "pending"]
    assert CallbackFlusher(services).flush(PORTAL_ID) == "sent 2"


def test_lost_access_to_the_portal_keeps_every_completion_waiting(services: Services, sims: Simulators) -> None:
    callback_ids = finished(services, 2)
    # HubSpot answers 401 to the call and again after the token refresh.
    sims.hs_fault(method="POST", path="/callbacks/complete$", status=401, count=2)

    result: Any = CallbackFlusher(services).flush(PORTAL_ID)

    assert isinstance(result, str) and "wait for access" in result
    assert states(services, callback_ids) == ["pending", "pending"]
    assert CallbackFlusher(services).flush(PORTAL_ID) == "sent 2"


def test_a_bursts_callbacks_wait_a_moment_and_go_to_hubspot_together(
    services: Services, sims: Simulators, monkeypatch: Any
) -> None:
    from rq.registry import ScheduledJobRegistry

    from tests.conftest import drain

    monkeypatch.setattr(services.queue, "config", services.config.with_overrides(callback_flush_delay=1))
    callback_ids = finished(services, 30)

    for _ in callback_ids:
        # What the runner does after each success: one flush is asked for, later.
        services.queue.request_callback_flush(PORTAL_ID)

    assert services.queue.queue.count == 0, "nothing is sent at once"
    assert len(ScheduledJobRegistry(queue=services.queue.queue).get_job_ids()) == 1
    drain(services)
    assert states(services, callback_ids) == ["sent"] * 30
    completions = [r for r in sims.hs_requests() if r["path"].startswith("/automation/v4/actions/callbacks")]
    assert [r["path"] for r in completions] == ["/automation/v4/actions/callbacks/complete"]
