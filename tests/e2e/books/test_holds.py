"""Failures a person can fix are held: HubSpot keeps waiting, an operator fixes and retries, the workflow goes on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from click.testing import CliRunner

from actions.cli import cli
from services.bootstrap import Services
from services.clock import utcnow
from services.store.records import Tenant
from services.work.callbacks import CallbackFlusher
from services.work.sweeper import sweep
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import Perform, only_callback, set_execution

UNKNOWN_PRODUCT = [{"name": "Gizmo", "quantity": "2", "price": "25", "hs_product_id": "777"}]


def hold_unmatched(settings: Any, sims: Simulators, **more: Any) -> None:
    settings(hold_failures=["LINE_ITEM_NOT_MATCHED"], **more)


def test_a_held_failure_waits_and_an_operators_fix_and_retry_completes_the_workflow_with_success(
    perform: Perform, services: Services, sims: Simulators, settings: Any, env: dict[str, str], run_jobs: Any
) -> None:
    hold_unmatched(settings, sims)
    deal = seed_deal(sims, line_items=UNKNOWN_PRODUCT)

    held = perform(deal["deal"], inputs=sales_inputs())

    assert (held.state, held.failure_reason) == ("held", "LINE_ITEM_NOT_MATCHED")
    assert held.held_until is not None and held.held_until > utcnow() + timedelta(hours=23)
    assert held.callback_state == "none" and sims.callbacks(held.callback_id) == [], "HubSpot keeps waiting"
    assert [a.outcome for a in services.attempts.of(held.id)] == ["held"]

    # The operator maps the product to an item and retries.
    item = sims.add_entity("Item", {"Name": "Gizmo (QBO)", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    services.bookkeeping.save_product_mapping(Tenant(PORTAL_ID, REALM_ID), "777", item["Id"])
    retried = CliRunner(env=env).invoke(cli, ["executions", "retry", held.id])
    assert retried.exit_code == 0, retried.output
    run_jobs()

    done = services.executions.get(held.id)
    assert done is not None and done.state == "succeeded"
    outputs = only_callback(sims, done)
    assert outputs["hs_execution_state"] == "SUCCESS" and outputs["quickbooks_id"] == sims.entities("Invoice")[0]["Id"]


def test_a_hold_that_runs_out_reports_the_failure(
    perform: Perform, services: Services, sims: Simulators, settings: Any
) -> None:
    hold_unmatched(settings, sims, hold_hours=2)
    held = perform(seed_deal(sims, line_items=UNKNOWN_PRODUCT)["deal"], inputs=sales_inputs())
    assert held.state == "held" and held.held_until is not None
    assert held.held_until < utcnow() + timedelta(hours=2, minutes=1)
    set_execution(services, held.id, held_until=utcnow() - timedelta(seconds=1))

    sweep(services)
    CallbackFlusher(services).flush(PORTAL_ID)

    reported = services.executions.get(held.id)
    assert reported is not None and (reported.state, reported.callback_state) == ("failed", "sent")
    outputs = only_callback(sims, reported)
    assert outputs["hs_execution_state"] == "FAIL_CONTINUE" and outputs["failure_reason"] == "LINE_ITEM_NOT_MATCHED"


def test_a_hold_never_outlasts_hubspots_wait(
    server: str, services: Services, sims: Simulators, settings: Any, run_jobs: Any
) -> None:
    hold_unmatched(settings, sims)
    payload = execution_body(seed_deal(sims, line_items=UNKNOWN_PRODUCT)["deal"], inputs=sales_inputs())
    assert signed_post(server, "/actions/create_invoice", payload).status_code == 200
    accepted = services.executions.find(payload["callbackId"])
    assert accepted is not None
    # HubSpot stops waiting in an hour (as with CALLBACK_EXPIRATION=PT1H); the company holds for 24.
    set_execution(services, accepted.id, expires_at=utcnow() + timedelta(hours=1))

    run_jobs()

    held = services.executions.get(accepted.id)
    assert held is not None and held.state == "held"
    assert held.held_until == held.expires_at


def test_reasons_that_are_not_held_are_reported_at_once(perform: Perform, sims: Simulators, settings: Any) -> None:
    settings(hold_failures=["QUICKBOOKS_NOT_CONNECTED"])
    failed = perform(seed_deal(sims, line_items=UNKNOWN_PRODUCT)["deal"], inputs=sales_inputs())
    assert failed.state == "failed" and only_callback(sims, failed)["failure_reason"] == "LINE_ITEM_NOT_MATCHED"
