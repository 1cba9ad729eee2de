"""Linking an invoice made in QuickBooks by hand to a HubSpot record, through the operations API and console."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.bootstrap import Services
from services.work import statuses
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal
from tests.builders import invoice_by_hand
from tests.e2e.ops.conftest import OpsClient
from tests.e2e.ops.test_console import Operator


@pytest.fixture
def console(server: str) -> Operator:
    return Operator(server)


@pytest.fixture
def hand_made_invoice(sims: Simulators) -> dict[str, Any]:
    """An invoice a bookkeeper made in QuickBooks, numbered 2001 and partly paid."""
    return invoice_by_hand(sims, 120, customer="Counter Sale", number="2001")


def link_body(deal: str, **overrides: Any) -> dict[str, Any]:
    return {
        "portal_id": PORTAL_ID,
        "object_type": "DEAL",
        "object_id": deal,
        "realm_id": REALM_ID,
        "invoice_number": "2001",
        **overrides,
    }


def test_an_operator_links_an_invoice_through_the_api(
    ops_api: Callable[..., OpsClient],
    mint: Callable[..., str],
    services: Services,
    sims: Simulators,
    hand_made_invoice: dict[str, Any],
) -> None:
    deal = seed_deal(sims)["deal"]
    assert ops_api("viewer").post("/documents/link", link_body(deal)).status_code == 403
    missing = ops_api().post("/documents/link", link_body(deal, invoice_number="9999"))
    assert missing.status_code == 404 and "9999" in missing.json()["message"]
    invalid = ops_api().post("/documents/link", link_body(deal, object_id="abc", extra="x"))
    assert invalid.status_code == 400 and "object_id" in invalid.json()["message"]

    linked = ops_api(token=mint("operator", subject="olga@example.com")).post("/documents/link", link_body(deal))

    assert linked.status_code == 201, linked.text
    assert linked.json() == {
        "portal_id": PORTAL_ID,
        "object_type": "deals",
        "object_id": deal,
        "realm_id": REALM_ID,
        "quickbooks_id": hand_made_invoice["Id"],
    }
    statuses.push_statuses(services, PORTAL_ID)
    shown = sims.hubspot_record("deals", deal)
    assert shown["qbo_invoice_number"] == "2001" and shown["qbo_invoice_status"] == "awaiting_payment"
    [entry] = [e for e in services.audit.newest() if e.action == "link_invoice"]
    assert entry.actor == "olga@example.com" and entry.after is not None and entry.after["invoice_number"] == "2001"


def test_an_operator_links_an_invoice_in_the_console(
    console: Operator, mint: Callable[..., str], sims: Simulators, hand_made_invoice: dict[str, Any]
) -> None:
    deal = seed_deal(sims)["deal"]
    viewer = console.sign_in(mint("viewer"))
    assert 'id="link-invoice"' not in viewer.text  # a viewer is not offered what it may not do
    assert console.get("/ops/documents/link").status_code == 403
    console.sign_in(mint("operator"))
    page = console.get("/ops/documents/link")
    assert page.status_code == 200 and 'id="link-form"' in page.text and REALM_ID in page.text

    wrong = console.post("/ops/documents/link", link_body(deal, invoice_number="77"), csrf_from="/ops/documents/link")
    assert wrong.status_code == 404 and "no invoice number 77" in wrong.text
    bad = console.post("/ops/documents/link", link_body(deal, object_id="abc"), csrf_from="/ops/documents/link")
    assert bad.status_code == 400 and "object_id" in bad.text
    done = console.post("/ops/documents/link", link_body(deal), csrf_from="/ops/documents/link")
    assert done.status_code == 200 and f"now shows on deals {deal}" in done.text
    unprotected = console.post("/ops/documents/link", link_body(deal), csrf_from=None)
    assert unprotected.status_code == 400  # no CSRF token
