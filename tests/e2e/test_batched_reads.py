"""HubSpot is read for many executions at once: a burst costs a few calls per hundred executions, not per one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from services.bootstrap import Services
from simulators.scenario import Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import drain

CALLBACKS = "/automation/v4/actions/callbacks"


def _burst(server: str, sims: Simulators, count: int) -> list[tuple[str, dict[str, Any]]]:
    """Post ``count`` invoices, each deal with its own contact, amount and two line items."""
    sent = []
    for number in range(count):
        contact = {"firstname": f"Buyer{number}", "lastname": "Batch", "email": f"buyer{number}@x.example"}
        lines = [
            {"name": "Widget", "quantity": str(number % 3 + 1), "price": "10", "hs_product_id": "555"},
            {"name": "Gadget", "quantity": "1", "price": str(number + 1), "hs_product_id": "556"},
        ]
        seeded = seed_deal(sims, contact=contact, line_items=lines)
        payload = execution_body(seeded["deal"], inputs=sales_inputs())
        assert signed_post(server, "/actions/create_invoice", payload).status_code == 200
        sent.append((payload["callbackId"], {"email": contact["email"], "total": (number % 3 + 1) * 10 + number + 1}))
    return sent


def is_record_read(path: str) -> bool:
    """Tell a read of a record from callbacks, tokens and the documents' statuses written back."""
    writes = ("/batch/update", "/crm/v3/properties/", "/notes", "/timeline/")
    return not path.startswith(CALLBACKS) and "/oauth/" not in path and not any(w in path for w in writes)


@pytest.fixture
def products(sims: Simulators, settings: Any, services: Services, monkeypatch: Any) -> None:
    for name in ("Widget", "Gadget"):
        sims.add_entity("Item", {"Name": name, "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    # Not about the rate limits (tested on their own): let the burst run at full speed.
    sims.hubspot_settings(limit_per_10s=100000)
    sims.quickbooks_config(throttle_per_minute=100000)
    unlimited = services.config.with_overrides(hubspot_calls_per_10s=100000, quickbooks_calls_per_minute=100000)
    monkeypatch.setattr(services, "config", unlimited)


@pytest.mark.parametrize("write_mode", ["single", "batched"])
def test_a_burst_reads_hubspot_in_batches_and_books_each_record_right(
    server: str, services: Services, sims: Simulators, products: None
) -> None:
    sent = _burst(server, sims, 120)

    drain(services, timeout=120)

    reads = [r for r in sims.hs_requests() if is_record_read(r["path"])]
    assert len(reads) / len(sent) <= 0.2, [r["path"] for r in reads]
    customers = {c["Id"]: c["PrimaryEmailAddr"]["Address"] for c in sims.entities("Customer")}
    invoices = {i["Id"]: i for i in sims.entities("Invoice")}
    states = [services.executions.find(c) for c, _ in sent]
    assert len(invoices) == len(sent), {(e.state, e.failure_reason, e.failure_message) for e in states if e}
    for callback_id, expected in sent:
        execution = services.executions.find(callback_id)
        assert execution is not None and execution.state == "succeeded", execution
        invoice = invoices[execution.output_fields["quickbooks_id"]]  # type: ignore[index]
        assert customers[invoice["CustomerRef"]["value"]] == expected["email"]
        assert Decimal(str(invoice["TotalAmt"])) == expected["total"]


def test_without_snapshots_each_execution_reads_its_own_record(
    server: str, services: Services, sims: Simulators, products: None, monkeypatch: Any
) -> None:
    monkeypatch.setattr(services, "config", services.config.with_overrides(record_snapshot_seconds=0))
    sent = _burst(server, sims, 5)

    drain(services)

    singles = [r for r in sims.hs_requests() if r["method"] == "GET" and r["path"].startswith("/crm/v3/objects/deals/")]
    assert len(singles) == len(sent)
    assert {services.executions.find(c).state for c, _ in sent} == {"succeeded"}  # type: ignore[union-attr]


def test_a_run_asking_for_a_property_no_snapshot_holds_reads_hubspot_again(
    server: str, services: Services, sims: Simulators, products: None
) -> None:
    from services.work.prefetch import SnapshotReader, Snapshots

    sent = _burst(server, sims, 3)
    drain(services)
    execution = services.executions.find(sent[0][0])
    assert execution is not None
    portal = execution.portal_id
    reader = SnapshotReader(
        services.hubspot(portal),
        Snapshots(services.redis, portal, seconds=60),
        waiting_objects=lambda types, limit: [],
        lock=services.lock,
        contact_properties=["email"],
    )
    before = len(sims.hs_requests())

    served = reader.read_object("deals", execution.object_id, ["dealname"], ("contacts", "line_items"))
    assert len(sims.hs_requests()) == before, "the snapshot answered"
    asked_more = reader.read_object("deals", execution.object_id, ["dealname", "hs_priority"], ("contacts",))

    assert served.properties == {"dealname": "Acme renewal"} and asked_more.properties["dealname"] == "Acme renewal"
    assert len(sims.hs_requests()) > before, "a property the snapshot lacks is read from HubSpot, never guessed"
