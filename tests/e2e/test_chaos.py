"""Chaos: 200 executions from two portals sharing one company while everything that can fail fails.

While real workers book, the test kills a worker, restarts Redis empty, stops PostgreSQL for a few seconds,
makes QuickBooks throttle, fail and drop answers, and HubSpot redeliver execution requests. Then every
execution has ended, each invoice exists exactly once, and each portal's invoices bill its own customers.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import pytest

from services.store.records import Execution
from simulators.scenario import PORTAL_ID, Simulators, seed_deal
from tests.builders import execution_body, sales_inputs
from tests.conftest import connect_standard, wait_for
from tests.e2e.conftest import World

OTHER_PORTAL = 243199551
PER_PORTAL = 100
CUSTOMERS_PER_PORTAL = 4
DOMAINS = {PORTAL_ID: "alpha.example", OTHER_PORTAL: "beta.example"}
MARKER = re.compile(r"\((\w+)\)$")

pytestmark = pytest.mark.slow


def contact(portal_id: int, n: int) -> dict[str, Any]:
    number = n % CUSTOMERS_PER_PORTAL
    return {"firstname": f"Buyer{number}", "lastname": str(portal_id), "email": f"buyer{number}@{DOMAINS[portal_id]}"}


def executions(world: World) -> list[Execution]:
    try:
        return world.services.executions.newest(limit=1000)
    except Exception:  # the database is down for a moment, or the pool still holds a dead connection
        return []


def settled(world: World, expected: int) -> bool:
    found = executions(world)
    return (
        len(found) == expected
        and all(e.state in ("succeeded", "failed") for e in found)
        and all(e.callback_state != "pending" for e in found)
    )


def invoices_made(sims: Simulators) -> int:
    return len(sims.entities("Invoice"))


@pytest.mark.parametrize("write_mode", ["single", "batched"])
def test_two_portals_book_everything_exactly_once_through_every_kind_of_failure(world: World, write_mode: str) -> None:
    sims = world.sims
    sims.add_portal(OTHER_PORTAL)
    connect_standard(world.services, portal_id=OTHER_PORTAL)
    for name, sku in (("Consulting", "CONS-1"), ("Setup fee", "SETUP-1")):
        sims.add_entity("Item", {"Name": name, "Type": "Service", "Sku": sku, "IncomeAccountRef": {"value": "1"}})
    lines = [
        {"name": "Consulting", "quantity": "2", "price": "150", "hs_sku": "CONS-1", "hs_product_id": "501"},
        {"name": "Setup fee", "quantity": "1", "price": "99.5", "hs_sku": "SETUP-1", "hs_product_id": "502"},
    ]
    deals = {
        portal: [
            seed_deal(sims, contact=contact(portal, n), line_items=lines, portal_id=portal)["deal"]
            for n in range(PER_PORTAL)
        ]
        for portal in DOMAINS
    }
    # QuickBooks throttles, fails, and books without answering (the client sees a 500 after the write).
    writes = "/invoice$" if write_mode == "single" else "/batch$"
    sims.qbo_fault(status=429, method="POST", path=writes, count=3)
    sims.qbo_fault(status=500, method="POST", path=writes, count=3)
    sims.qbo_fault(status=500, method="POST", path=writes, count=3, after_commit=True)
    second_worker = world.start_worker()

    payloads = []
    for n in range(PER_PORTAL):
        for portal in DOMAINS:
            payload = execution_body(deals[portal][n], inputs=sales_inputs(), portal_id=portal)
            world.post(payload)
            payloads.append(payload)
    for payload in payloads[::10]:  # HubSpot delivers some requests again
        world.post(payload)

    wait_for(lambda: invoices_made(sims) >= 30, timeout=60)
    second_worker.kill()
    world.start_worker()

    wait_for(lambda: invoices_made(sims) >= 80, timeout=60)
    world.redis.stop()
    time.sleep(1)
    world.redis.start()  # empty: queued jobs, scheduled retries, locks and rate windows are gone

    wait_for(lambda: invoices_made(sims) >= 130, timeout=90)
    world.postgres.stop()
    time.sleep(3)
    world.postgres.start()

    try:
        wait_for(lambda: settled(world, 2 * PER_PORTAL), timeout=120, interval=0.5)
    except AssertionError:
        states = Counter((e.state, e.callback_state) for e in executions(world))
        raise AssertionError(f"not settled: {states}\n{world.workers[-1].log()[-3000:]}") from None

    found = executions(world)
    assert len(found) == 2 * PER_PORTAL, "each callbackId was recorded once, redeliveries included"
    assert {e.state for e in found} == {"succeeded"}, Counter(e.failure_reason for e in found)
    invoices = sims.entities("Invoice")
    by_marker = Counter(MARKER.search(invoice["PrivateNote"]).group(1) for invoice in invoices)  # type: ignore[union-attr]
    assert len(invoices) == 2 * PER_PORTAL and set(by_marker.values()) == {1}, "every invoice exists exactly once"
    assert set(by_marker) == {e.id for e in found}
    customers = {c["Id"]: c for c in sims.entities("Customer")}
    assert len(customers) == 2 * CUSTOMERS_PER_PORTAL
    portal_of = {e.id: e.portal_id for e in found}
    for invoice in invoices:
        email = customers[invoice["CustomerRef"]["value"]]["PrimaryEmailAddr"]["Address"]
        portal = portal_of[MARKER.search(invoice["PrivateNote"]).group(1)]  # type: ignore[union-attr]
        assert email.endswith("@" + DOMAINS[portal]), (invoice["Id"], email, portal)
    completed = Counter(c["callback_id"] for c in sims.callbacks())
    assert set(completed) == {p["callbackId"] for p in payloads}, "HubSpot heard about every execution"
