"""HubSpot waits CALLBACK_EXPIRATION for an action; after that nothing new is booked and nothing is sent late."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from click.testing import CliRunner

from actions.cli import cli
from services.bootstrap import Services
from services.clock import utcnow
from simulators.scenario import Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import set_execution


def accept(server: str, object_id: str) -> dict[str, Any]:
    payload = execution_body(object_id, inputs=sales_inputs(create_missing_products="yes"))
    response = signed_post(server, "/actions/create_invoice", payload)
    assert response.status_code == 200, response.text
    return payload


def test_each_execution_records_when_hubspot_stops_waiting(services: Services, server: str, sims: Simulators) -> None:
    payload = accept(server, seed_deal(sims)["deal"])
    execution = services.executions.find(payload["callbackId"])
    assert execution is not None and execution.expires_at is not None
    assert abs(execution.expires_at - (execution.created_at + timedelta(days=7))) < timedelta(seconds=5)


def test_an_execution_hubspot_gave_up_on_books_nothing_and_sends_nothing(
    services: Services, server: str, sims: Simulators, settings: Any, run_jobs: Any
) -> None:
    payload = accept(server, seed_deal(sims)["deal"])
    execution = services.executions.find(payload["callbackId"])
    assert execution is not None
    # The queue was stuck for longer than the expiration (a long outage).
    set_execution(services, execution.id, expires_at=utcnow() - timedelta(minutes=1))

    run_jobs()

    expired = services.executions.get(execution.id)
    assert expired is not None and (expired.state, expired.failure_reason) == ("failed", "EXPIRED")
    assert expired.callback_state == "expired"
    assert [r for r in sims.qbo_requests() if r["method"] == "POST"] == []
    assert sims.callbacks(payload["callbackId"]) == []


def test_an_operator_may_still_book_an_expired_execution_and_hubspot_is_not_told(
    services: Services, server: str, sims: Simulators, settings: Any, run_jobs: Any, env: dict[str, str]
) -> None:
    payload = accept(server, seed_deal(sims)["deal"])
    execution = services.executions.find(payload["callbackId"])
    assert execution is not None
    set_execution(services, execution.id, expires_at=utcnow() - timedelta(minutes=1))
    run_jobs()

    result = CliRunner(env=env).invoke(cli, ["executions", "retry", execution.id])
    assert result.exit_code == 0, result.output
    run_jobs()

    booked = services.executions.get(execution.id)
    assert booked is not None and booked.state == "succeeded", booked
    assert len(sims.entities("Invoice")) == 1
    assert booked.callback_state == "expired" and sims.callbacks(payload["callbackId"]) == []


def test_a_completion_that_would_arrive_after_the_expiry_is_not_sent(
    services: Services, server: str, sims: Simulators, settings: Any, run_jobs: Any
) -> None:
    payload = accept(server, seed_deal(sims)["deal"])
    execution = services.executions.find(payload["callbackId"])
    assert execution is not None
    # The job finished in time, but its callback waited (HubSpot was down) until after the expiry.
    services.queue.request_callback_flush = lambda portal_id, force=False: None  # type: ignore[method-assign]
    run_jobs()
    set_execution(services, execution.id, expires_at=utcnow() - timedelta(seconds=1))

    from services.work.callbacks import CallbackFlusher

    assert CallbackFlusher(services).flush(execution.portal_id) == "sent 0"
    done = services.executions.get(execution.id)
    assert done is not None and done.state == "succeeded" and done.callback_state == "expired"
    assert sims.callbacks(payload["callbackId"]) == []
