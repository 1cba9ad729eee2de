"""Exactly once and retries: jobs run twice, uncertain outcomes, throttling, outages, expired tokens."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from services.bootstrap import Services
from services.work.jobs import run_execution
from simulators.scenario import REALM_ID, Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import only_callback, qbo_writes, set_execution


@pytest.fixture(params=["single", "batched"])
def write_mode(request: pytest.FixtureRequest) -> str:
    """Every test here runs with documents created one call each, and again in QuickBooks batches."""
    return str(request.param)


# Where an invoice is written in each mode: its own POST, or the company's POST /batch.
WRITE_PATH = {"single": "/invoice$", "batched": "/batch$"}
# How a run that writes the invoice ends: with it, or stopped until its batch is answered.
FIRST_RUN = {"single": "succeeded", "batched": "awaiting batch"}


def invoices(sims: Simulators) -> list[dict[str, Any]]:
    return sims.entities("Invoice")


def invoice_writes(sims: Simulators, write_mode: str) -> list[dict[str, Any]]:
    return qbo_writes(sims, "invoice" if write_mode == "single" else "batch")


def outcomes(services: Services, execution_id: str) -> list[str]:
    return [a.outcome for a in services.attempts.of(execution_id)]


def with_batch(write_mode: str, *single: str) -> list[str]:
    """Return a run's outcomes in a mode: in batches, the run that writes the invoice stops once more first."""
    if write_mode == "single":
        return list(single)
    *before, last = single
    return [*before, "batched", last]


def test_a_job_run_twice_creates_one_document(
    server: str, services: Services, sims: Simulators, settings: Any, run_jobs: Callable[..., None], write_mode: str
) -> None:
    body = execution_body(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    signed_post(server, "/actions/create_invoice", body)
    execution = services.executions.find(body["callbackId"])
    assert execution is not None

    assert run_execution(execution.id) == FIRST_RUN[write_mode]
    # Once done there is nothing to run; while its batch waits, a second job stops at the same place.
    assert run_execution(execution.id) == {"single": "not runnable", "batched": "awaiting batch"}[write_mode]
    run_jobs()

    assert len(invoices(sims)) == 1
    assert len(sims.entities("Customer")) == 1
    assert len(only_callback(sims, execution)) > 1


def test_a_run_that_lost_its_response_resumes_without_a_second_document(
    perform: Any, services: Services, sims: Simulators, settings: Any, write_mode: str
) -> None:
    """QuickBooks created the invoice but the answer was lost: the retry must not create another."""
    sims.qbo_fault(method="POST", path=WRITE_PATH[write_mode], status=500, after_commit=True)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert len(invoices(sims)) == 1
    # The retry looked the invoice up instead of sending it again.
    assert len(invoice_writes(sims, write_mode)) == 1
    lookups = [r for r in sims.qbo_requests() if "FROM Invoice" in str(r["query"].get("query"))]
    assert len(lookups) == 1
    # In batches the sender retried and looked up; the execution only waited.
    assert (
        outcomes(services, execution.id)
        == {"single": ["retrying", "succeeded"], "batched": ["batched", "succeeded"]}[write_mode]
    )


def test_an_interrupted_run_finds_the_document_it_created(
    services: Services, sims: Simulators, settings: Any, server: str, run_jobs: Callable[..., None]
) -> None:
    """A step marked as sent without a result is looked up in QuickBooks before anything is re-sent."""
    body = execution_body(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    signed_post(server, "/actions/create_invoice", body)
    execution = services.executions.find(body["callbackId"])
    assert execution is not None
    run_jobs()
    assert services.executions.get(execution.id).state == "succeeded"  # type: ignore[union-attr]
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
    perform: Any,
    services: Services,
    sims: Simulators,
    settings: Any,
    status: int,
    headers: dict[str, str],
    write_mode: str,
) -> None:
    sims.qbo_fault(method="POST", path=WRITE_PATH[write_mode], status=status, count=2, headers=headers)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert len(invoices(sims)) == 1
    assert only_callback(sims, execution)["hs_execution_state"] == "SUCCESS"
    writes = invoice_writes(sims, write_mode)
    assert [w["status"] for w in writes] == [status, status, 200]
    if write_mode == "single":
        attempts = services.attempts.of(execution.id)
        assert [a.outcome for a in attempts] == ["retrying", "retrying", "succeeded"]
        assert {a.http_status for a in attempts[:2]} == {status}
        assert all(a.request_id for a in attempts[:2]), "the intuit_tid of each failed call is recorded"
        return
    # The sender retried the batch; the execution waited for it.
    assert outcomes(services, execution.id) == ["batched", "succeeded"]
    requestids = {w["query"]["requestid"] for w in writes}
    if status == 429:
        # Refused before anything was done: its members went into a new batch each time.
        assert len(requestids) == 3
    else:
        # Its outcome unknown, it was looked up and then sent again as it was: same requestid, same items.
        assert len(requestids) == 1
        assert len({json.dumps(w["body"], sort_keys=True) for w in writes}) == 1


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
    perform: Any, services: Services, sims: Simulators, settings: Any, write_mode: str
) -> None:
    sims.qbo_fault(method="POST", path=WRITE_PATH[write_mode], status=401)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    writes = invoice_writes(sims, write_mode)
    assert [w["status"] for w in writes] == [401, 200]
    assert writes[0]["query"]["requestid"] == writes[1]["query"]["requestid"]
    assert len(invoices(sims)) == 1


def test_quickbooks_down_for_good_fails_the_action_after_the_retries(
    perform: Any, services: Services, sims: Simulators, settings: Any, write_mode: str
) -> None:
    sims.qbo_fault(method="POST", path=WRITE_PATH[write_mode], status=503, count=10)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "QUICKBOOKS_UNAVAILABLE"
    tries = 1 + len(services.config.retry_intervals)
    assert len(invoice_writes(sims, write_mode)) == tries
    if write_mode == "single":
        assert services.database.count("execution_attempts") == tries
    else:
        # The sender used up the retries on the batch; its member then failed with the last error.
        assert outcomes(services, execution.id) == ["batched", "failed"]
        assert services.database.count("quickbooks_batches") == 0
    assert only_callback(sims, execution)["failure_reason"] == "QUICKBOOKS_UNAVAILABLE"


def test_hubspot_throttling_is_retried(
    perform: Any, services: Services, sims: Simulators, settings: Any, write_mode: str
) -> None:
    sims.hs_fault(method="POST", path="/line_items/batch/read", status=429, count=1, headers={"Retry-After": "1"})
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert outcomes(services, execution.id) == with_batch(write_mode, "retrying", "succeeded")


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
    perform: Any,
    services: Services,
    sims: Simulators,
    settings: Any,
    env: dict[str, str],
    run_jobs: Any,
    write_mode: str,
) -> None:
    from actions.cli import cli

    retries = len(services.config.retry_intervals)
    sims.qbo_fault(method="POST", path=WRITE_PATH[write_mode], status=503, count=retries + 1)
    execution = perform(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    assert execution.failure_reason == "QUICKBOOKS_UNAVAILABLE"
    sims.qbo_fault(method="POST", path=WRITE_PATH[write_mode], status=503, count=1)

    assert CliRunner(env=env).invoke(cli, ["executions", "retry", execution.id]).exit_code == 0
    run_jobs()

    after = services.executions.get(execution.id)
    assert after is not None and after.state == "succeeded", after.failure_message if after else None
    assert len(invoices(sims)) == 1
    assert (
        outcomes(services, execution.id)[-2:]
        == {"single": ["retrying", "succeeded"], "batched": ["batched", "succeeded"]}[write_mode]
    )
