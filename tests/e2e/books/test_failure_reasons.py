"""The failure reasons not covered with their action's own tests: each one ends the execution with it."""

from __future__ import annotations

from typing import Any

from services.bootstrap import Services
from services.store.records import NewExecution, Tenant
from services.work.jobs import run_execution
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal, seed_payment
from tests.builders import sales_inputs
from tests.conftest import Perform, only_callback

TENANT = Tenant(PORTAL_ID, REALM_ID)


def test_hubspot_access_lost_fails_with_hubspot_not_connected(
    perform: Perform, sims: Simulators, services: Services, settings: Any
) -> None:
    deal = seed_deal(sims)
    # The stored access token expired and HubSpot no longer knows the refresh token.
    services.connections.save_portal(PORTAL_ID, "forgotten-refresh-token", None, None)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "HUBSPOT_NOT_CONNECTED"
    assert sims.entities("Invoice") == []


def test_a_chosen_product_on_a_record_without_amount_fails(perform: Perform, sims: Simulators, settings: Any) -> None:
    item = sims.add_entity("Item", {"Name": "Subscription", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    deal = seed_deal(sims, line_items=[], deal={"amount": ""})

    execution = perform(deal["deal"], inputs=sales_inputs(products=item["Id"]))

    assert execution.failure_reason == "AMOUNT_MISSING"
    assert only_callback(sims, execution)["failure_reason"] == "AMOUNT_MISSING"


def test_hubspot_refusing_a_read_fails_with_hubspot_rejected(perform: Perform, sims: Simulators, settings: Any) -> None:
    sims.hs_fault(
        method="POST",
        path="/line_items/batch/read",
        status=400,
        body={
            "status": "error",
            "message": "Invalid input JSON",
            "category": "VALIDATION_ERROR",
            "correlationId": "c-1",
        },
    )
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "HUBSPOT_REJECTED"
    assert "Invalid input JSON" in execution.failure_message


def test_hubspot_down_for_good_fails_with_hubspot_unavailable(
    perform: Perform, sims: Simulators, services: Services, settings: Any
) -> None:
    # Every read of the deal, alone or in a batch with its neighbours.
    sims.hs_fault(path="/crm/v3/objects/deals/", status=503, count=10)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "HUBSPOT_UNAVAILABLE"
    assert len(services.attempts.of(execution.id)) == 1 + len(services.config.retry_intervals)


def test_an_action_without_a_handler_fails_with_internal_error(services: Services, sims: Simulators) -> None:
    execution_id, _ = services.executions.accept(
        NewExecution("ap-internal-1", "create_spaceship", PORTAL_ID, REALM_ID, "DEAL", "614", {})
    )

    assert run_execution(execution_id) == "failed"

    execution = services.executions.get(execution_id)
    assert execution is not None and execution.failure_reason == "INTERNAL_ERROR"


def test_a_document_another_execution_never_finishes_fails_with_document_in_progress(
    perform: Perform, sims: Simulators, services: Services, settings: Any
) -> None:
    payment = seed_payment(sims)
    stuck_id, _ = services.executions.accept(
        NewExecution("ap-stuck-1", "create_paid_invoice", PORTAL_ID, REALM_ID, "0-101", payment["payment"], {})
    )
    assert services.executions.acquire_lease(stuck_id, 3600) is not None
    services.bookkeeping.claim_payment_document(TENANT, payment["payment"], "paid_invoice", stuck_id)

    execution = perform(
        payment["payment"],
        action="create_paid_invoice",
        object_type="0-101",
        inputs={"quickbooks_account": REALM_ID, "create_missing_products": "yes"},
    )

    assert execution.failure_reason == "DOCUMENT_IN_PROGRESS"
    assert sims.entities("Invoice") == []


def test_an_expired_hubspot_token_is_refreshed_and_the_action_succeeds(
    perform: Perform, sims: Simulators, services: Services, settings: Any
) -> None:
    sims.hs("POST", "tokens/expire", json={"access_token": f"hs-access-demo-{PORTAL_ID}"})
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    tokens = services.connections.portal_tokens(PORTAL_ID)
    assert tokens is not None and tokens.access_token != f"hs-access-demo-{PORTAL_ID}"
    assert only_callback(sims, execution)["hs_execution_state"] == "SUCCESS"
