"""Exactly once and retries: jobs run twice, uncertain outcomes, throttling, outages, expired tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from services.bootstrap import Services
from services.work.jobs import run_execution
from simulators.scenario import REALM_ID, Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import only_callback, qbo_writes, set_execution


def invoices(sims: Simulators) -> list[dict[str, Any]]:
    return sims.entities("Invoice")


def test_a_job_run_twice_creates_one_document(
    server: str, services: Services, sims: Simulators, settings: Any, run_jobs: Callable[..., None]
) -> None:
    body = execution_body(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    signed_post(server, "/actions/create_invoice", body)
    execution = services.executions.find(body["callbackId"])
    assert execution is not None

    assert run_execution(execution.id) == "succeeded"
    assert run_execution(execution.id) == "not runnable"
    run_jobs()

    assert len(invoices(sims)) == 1
    assert len(sims.entities("Customer")) == 1
    assert len(only_callback(sims, execution)) > 1


def test_a_run_that_lost_its_response_resumes_without_a_second_document(
    perform: Any, services: Services, sims: Simulators, settings: Any
) -> None:
    """QuickBooks created the invoice but the answer was lost: the retry must not create another."""
    sims.qbo_fault(method="POST", path="/invoice$", status=500, after_commit=True)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert len(invoices(sims)) == 1
    # The retry looked the invoice up instead of sending it again.
    assert len(qbo_writes(sims, "invoice")) == 1
    lookups = [r for r in sims.qbo_requests() if "FROM Invoice" in str(r["query"].get("query"))]
    assert len(lookups) == 1
    outcomes = [a.outcome for a in services.attempts.of(execution.id)]
    assert outcomes == ["retrying", "succeeded"]


def test_an_interrupted_run_finds_the_document_it_created(
    services: Services, sims: Simulators, settings: Any, server: str
) -> None:
    """A step marked as sent without a result is looked up in QuickBooks before anything is re-sent."""
    body = execution_body(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    signed_post(server, "/actions/create_invoice", body)
    execution = services.executions.find(body["callbackId"])
    assert execution is not None
    assert run_execution(execution.id) == "succeeded"
    [invoice] = invoices(sims)
    # Make it look as if the worker died between sending the invoice and recording it.
    services.bookkeeping.save_step(
        execution.id,
        "document:Invoice",
        "started",
        {"customer_id": invoice["CustomerRef"]["value"], "txn_date": invoice["TxnDate"], "requestid": "lost"},
    )
    assert services.executions.requeue_failed(execution.id) is False
    set_execution(services, execution.id, state="queued")

    assert run_execution(execution.id) == "succeeded"

    assert [i["Id"] for i in invoices(sims)] == [invoice["Id"]]
    assert services.bookkeeping.steps(execution.id)["document:Invoice"].data["id"] == invoice["Id"]


@pytest.mark.parametrize(
    ("status", "headers"),
    [(429, {"Retry-After": "1"}), (500, {}), (503, {})],
)
def test_transient_quickbooks_errors_are_retried_then_succeed(
    perform: Any, services: Services, sims: Simulators, settings: Any, status: int, headers: dict[str, str]
) -> None:
    sims.qbo_fault(method="POST", path="/invoice$", status=status, count=2, headers=headers)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert len(invoices(sims)) == 1
    attempts = services.attempts.of(execution.id)
    assert [a.outcome for a in attempts] == ["retrying", "retrying", "succeeded"]
    assert {a.http_status for a in attempts[:2]} == {status}
    assert all(a.request_id for a in attempts[:2]), "the intuit_tid of each failed call is recorded"
    assert only_callback(sims, execution)["hs_execution_state"] == "SUCCESS"


def test_an_expired_access_token_is_refreshed_and_the_call_repeated_with_the_same_requestid(
    perform: Any, services: Services, sims: Simulators, settings: Any
) -> None:
    sims.qbo("POST", "tokens/expire", json={"access_token": f"qbo-access-demo-{REALM_ID}"})
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    refreshes = [r for r in sims.qbo_requests() if r["path"].startswith("/oauth2")]
    assert len(refreshes) == 1
    first_call = sims.qbo_requests()[0]
    assert first_call["status"] == 401
    [connection] = services.connections.quickbooks_of()
    tokens = services.connections.quickbooks_tokens(connection.id)
    assert tokens.access_token != f"qbo-access-demo-{REALM_ID}"
    assert tokens.refresh_token != f"qbo-refresh-demo-{REALM_ID}", "the rotated refresh token is stored"


def test_an_invoice_create_answered_401_is_repeated_with_the_same_requestid(
    perform: Any, services: Services, sims: Simulators, settings: Any
) -> None:
    sims.qbo_fault(method="POST", path="/invoice$", status=401)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    writes = qbo_writes(sims, "invoice")
    assert [w["status"] for w in writes] == [401, 200]
    assert writes[0]["query"]["requestid"] == writes[1]["query"]["requestid"]
    assert len(invoices(sims)) == 1


def test_quickbooks_down_for_good_fails_the_action_after_the_retries(
    perform: Any, services: Services, sims: Simulators, settings: Any
) -> None:
    sims.qbo_fault(method="POST", path="/invoice$", status=503, count=10)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "QUICKBOOKS_UNAVAILABLE"
    assert services.database.count("execution_attempts") == 1 + len(services.config.retry_intervals)
    assert only_callback(sims, execution)["failure_reason"] == "QUICKBOOKS_UNAVAILABLE"


def test_hubspot_throttling_is_retried(perform: Any, services: Services, sims: Simulators, settings: Any) -> None:
    sims.hs_fault(method="POST", path="/line_items/batch/read", status=429, count=1, headers={"Retry-After": "1"})
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert [a.outcome for a in services.attempts.of(execution.id)] == ["retrying", "succeeded"]


@pytest.mark.slow
def test_a_callback_hubspot_failed_to_take_is_sent_again(
    perform: Any, services: Services, sims: Simulators, settings: Any
) -> None:
    sims.hs_fault(method="POST", path="/automation/v4/actions/callbacks", status=502, count=1)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded"
    assert only_callback(sims, execution)["hs_execution_state"] == "SUCCESS"
    refreshed = services.executions.get(execution.id)
    assert refreshed is not None and refreshed.callback_state == "sent"
    assert len(invoices(sims)) == 1


def test_an_operator_retry_runs_a_failed_execution_exactly_once(
    perform: Any, services: Services, sims: Simulators, settings: Any, env: dict[str, str], run_jobs: Any
) -> None:
    from actions.cli import cli

    settings(default_income_account="")
    execution = perform(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    assert execution.failure_reason == "SETTINGS_INCOMPLETE"
    settings()

    runner = CliRunner(env=env)
    first = runner.invoke(cli, ["executions", "retry", execution.id])
    second = runner.invoke(cli, ["executions", "retry", execution.id])
    run_jobs()

    assert first.exit_code == 0, first.output
    assert second.exit_code != 0 and "not failed" in second.output
    after = services.executions.get(execution.id)
    assert after is not None and after.state == "succeeded"
    assert len(invoices(sims)) == 1
    assert len(sims.callbacks(execution.callback_id)) == 1, "HubSpot already heard about the failure"


class TestRetryDelay:
    """One retry rule: the configured intervals, never sooner than the server asked."""

    def runner(self, services: Services, **config: Any) -> Any:
        from services.work.runner import ExecutionRunner

        services.config = services.config.with_overrides(retry_intervals=(10, 30, 60), **config)
        return ExecutionRunner(services)

    def test_intervals_follow_the_attempt_number(self, services: Services) -> None:
        from services.transport.errors import TransientError

        runner = self.runner(services)
        error = TransientError("down", service="quickbooks", http_status=503)

        assert [runner._retry_delay(error, n) for n in (1, 2, 3, 4)] == [10, 30, 60, 60]

    def test_retry_after_wins(self, services: Services) -> None:
        from services.transport.errors import RateLimitedError

        runner = self.runner(services)

        assert runner._retry_delay(RateLimitedError("slow down", service="hubspot", retry_after=2.2), 1) == 3

    def test_a_quickbooks_throttle_without_retry_after_waits_a_minute(self, services: Services) -> None:
        from services.transport.errors import RateLimitedError

        runner = self.runner(services, quickbooks_throttle_backoff=60)

        assert runner._retry_delay(RateLimitedError("throttled", service="quickbooks"), 1) == 60
        assert runner._retry_delay(RateLimitedError("throttled", service="hubspot"), 1) == 10


def test_throttling_does_not_use_up_the_retries(
    perform: Any, services: Services, sims: Simulators, settings: Any
) -> None:
    """More 429s in a row than there are retry intervals still end in success."""
    retries = len(services.config.retry_intervals)
    sims.hs_fault(
        method="POST", path="/line_items/batch/read", status=429, count=retries + 2, headers={"Retry-After": "1"}
    )
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert [a.outcome for a in services.attempts.of(execution.id)].count("retrying") == retries + 2


def test_an_operator_retry_gets_a_fresh_set_of_retries(
    perform: Any, services: Services, sims: Simulators, settings: Any, env: dict[str, str], run_jobs: Any
) -> None:
    from actions.cli import cli

    retries = len(services.config.retry_intervals)
    sims.qbo_fault(method="POST", path="/invoice$", status=503, count=retries + 1)
    execution = perform(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    assert execution.failure_reason == "QUICKBOOKS_UNAVAILABLE"
    sims.qbo_fault(method="POST", path="/invoice$", status=503, count=1)

    assert CliRunner(env=env).invoke(cli, ["executions", "retry", execution.id]).exit_code == 0
    run_jobs()

    after = services.executions.get(execution.id)
    assert after is not None and after.state == "succeeded", after.failure_message if after else None
    assert [a.outcome for a in services.attempts.of(execution.id)][-2:] == ["retrying", "succeeded"]
