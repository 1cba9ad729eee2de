"""One QuickBooks company connected to two HubSpot portals whose record ids repeat: each portal books its own."""

from __future__ import annotations

from typing import Any

import pytest

from services.bootstrap import Services
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal, seed_payment
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import connect_standard, only_callback

OTHER_PORTAL = 243199551
ANN = {"firstname": "Ann", "lastname": "O'Brien", "email": "ann@acme.example", "company": "Acme Inc"}
BOB = {"firstname": "Bob", "lastname": "Stone", "email": "bob@quarry.example", "company": "Quarry Ltd"}


@pytest.fixture
def two_portals(services: Services, sims: Simulators, settings: Any) -> Services:
    """The standard company connected to the standard portal and to a second one."""
    sims.add_portal(OTHER_PORTAL)
    connect_standard(services, portal_id=OTHER_PORTAL)
    return services


def send(
    server: str,
    run_jobs: Any,
    services: Services,
    portal_id: int,
    object_id: str,
    action: str = "create_invoice",
    **body: Any,
) -> Any:
    """Send a signed execution from a portal, run the jobs, and return the recorded execution."""
    payload = execution_body(object_id, portal_id=portal_id, **body)
    response = signed_post(server, f"/actions/{action}", payload)
    assert response.status_code == 200, response.text
    run_jobs()
    execution = services.executions.find(payload["callbackId"])
    assert execution is not None
    return execution


def customer_named(sims: Simulators, customer_id: str) -> str:
    return next(c["DisplayName"] for c in sims.entities("Customer") if c["Id"] == customer_id)


def test_records_with_the_same_ids_in_two_portals_are_billed_to_their_own_customers(
    two_portals: Services, sims: Simulators, server: str, run_jobs: Any
) -> None:
    ours = seed_deal(sims, contact=ANN)
    theirs = seed_deal(sims, contact=BOB, portal_id=OTHER_PORTAL)
    assert (ours["deal"], ours["contacts"]) == (theirs["deal"], theirs["contacts"])  # HubSpot ids repeat per portal

    inputs = sales_inputs(create_missing_products="yes")
    first = send(server, run_jobs, two_portals, PORTAL_ID, ours["deal"], inputs=inputs)
    second = send(server, run_jobs, two_portals, OTHER_PORTAL, theirs["deal"], inputs=inputs)

    assert first.state == second.state == "succeeded", (first.failure_message, second.failure_message)
    invoices = {invoice["Id"]: invoice for invoice in sims.entities("Invoice")}
    assert len(invoices) == 2
    ours_invoice = invoices[only_callback(sims, first)["quickbooks_id"]]
    theirs_invoice = invoices[only_callback(sims, second)["quickbooks_id"]]
    assert customer_named(sims, ours_invoice["CustomerRef"]["value"]) == "Ann O'Brien"
    assert customer_named(sims, theirs_invoice["CustomerRef"]["value"]) == "Bob Stone"


def test_the_same_payment_id_in_two_portals_books_two_documents(
    two_portals: Services, sims: Simulators, server: str, run_jobs: Any
) -> None:
    ours = seed_payment(sims, contact=ANN)
    theirs = seed_payment(sims, contact=BOB, portal_id=OTHER_PORTAL)
    assert ours["payment"] == theirs["payment"]
    inputs = {"quickbooks_account": REALM_ID, "create_missing_products": "yes"}

    first = send(
        server,
        run_jobs,
        two_portals,
        PORTAL_ID,
        ours["payment"],
        object_type="0-101",
        inputs=inputs,
        action="create_payment_sales_receipt",
    )
    second = send(
        server,
        run_jobs,
        two_portals,
        OTHER_PORTAL,
        theirs["payment"],
        object_type="0-101",
        inputs=inputs,
        action="create_payment_sales_receipt",
    )

    assert first.state == second.state == "succeeded", (first.failure_message, second.failure_message)
    assert "duplicate_of" not in only_callback(sims, second)
    receipts = sims.entities("SalesReceipt")
    assert len(receipts) == 2
    assert sorted(customer_named(sims, r["CustomerRef"]["value"]) for r in receipts) == ["Ann O'Brien", "Bob Stone"]
    # Neither portal's write was answered with the other's: each carries its own requestid.
    requestids = [
        r["query"].get("requestid")
        for r in sims.qbo_requests()
        if r["method"] == "POST" and r["path"].endswith("/salesreceipt")
    ]
    assert len(set(requestids)) == 2


def test_mappings_and_claims_are_kept_per_portal(two_portals: Services) -> None:
    from services.store.records import Tenant

    books = two_portals.bookkeeping
    ours, theirs = Tenant(PORTAL_ID, REALM_ID), Tenant(OTHER_PORTAL, REALM_ID)
    books.save_customer_mapping(ours, "51", "58")
    books.save_product_mapping(ours, "501", "21")
    assert books.customer_mapping(theirs, "51") is None
    assert books.product_mappings(theirs, ["501"]) == {}
    assert books.customer_mapping(ours, "51") == "58"
