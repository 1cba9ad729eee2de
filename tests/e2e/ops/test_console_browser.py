"""An operator's path in a real browser: sign in, filter the failures, open one, map its product and retry it.

Headless Chromium from Debian's `chromium` package, driven by Playwright; screenshots of the list and of the
execution page are saved under docs/screenshots/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page

from services.bootstrap import Services
from simulators.scenario import Simulators, seed_deal
from tests.builders import invoice_by_hand, sales_inputs
from tests.conftest import Perform, only_callback
from tests.e2e.conftest import SCREENSHOTS

pytestmark = pytest.mark.slow


def test_an_operator_finds_a_held_failure_maps_its_product_and_retries_it(
    page: Page,
    server: str,
    perform: Perform,
    held_unmatched: Any,
    mint: Callable[..., str],
    services: Services,
    sims: Simulators,
    run_jobs: Any,
) -> None:
    perform(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    held = held_unmatched()
    held_unmatched()
    item = sims.add_entity("Item", {"Name": "Gizmo Pro", "Type": "Service", "IncomeAccountRef": {"value": "1"}})

    # Sign in with a token minted by `qbo-actions ops token`.
    page.goto(server + "/ops")
    assert page.title().startswith("Sign in")
    page.fill("#token", mint("operator", subject="olga@example.com"))
    page.click("#sign-in")
    page.wait_for_selector("#executions")
    assert "olga@example.com" in page.inner_text("#operator")
    assert "Signed in as olga@example.com" in page.inner_text("#notice")

    # Filter: held failures for the reason that matters.
    page.click("#state-held")
    page.wait_for_url(lambda url: url.endswith("state=held"))
    page.select_option("#reason", "LINE_ITEM_NOT_MATCHED")
    page.click("#apply")
    page.wait_for_url(lambda url: "reason=LINE_ITEM_NOT_MATCHED" in url)
    rows = page.locator("#executions tbody tr")
    assert rows.count() == 2
    assert "LINE_ITEM_NOT_MATCHED 2" in page.inner_text("#reason-counts").replace("\n", " ")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ops-executions.png"), full_page=True)

    # Open the oldest one, map its product and retry.
    rows.nth(1).locator("a.open").click()
    page.wait_for_selector("#failure")
    assert held.id in page.inner_text("#execution-id")
    assert "Gizmo" in page.inner_text("#failure")
    page.click("#map")
    page.wait_for_selector("#map-form")
    page.select_option("#item-777", item["Id"])
    page.click("#map-and-retry")
    page.wait_for_selector("#notice")
    assert "Products mapped" in page.inner_text("#notice")
    assert page.inner_text("#state") == "waiting"

    # The worker books it; the page shows the document and the audit entry.
    run_jobs()
    page.reload()
    assert page.inner_text("#state") == "succeeded"
    assert page.locator("#quickbooks-link").is_visible()
    assert "map_and_retry" in page.inner_text("#audit") and "olga@example.com" in page.inner_text("#audit")
    page.screenshot(path=str(SCREENSHOTS / "ops-execution.png"), full_page=True)

    done = services.executions.get(held.id)
    assert done is not None
    assert only_callback(sims, done)["hs_execution_state"] == "SUCCESS"
    assert len(sims.entities("Invoice")) == 2


def test_an_operator_links_a_hand_made_invoice_and_the_deal_shows_it(
    page: Page, server: str, mint: Callable[..., str], services: Services, sims: Simulators, run_jobs: Any
) -> None:
    deal = seed_deal(sims)["deal"]
    invoice_by_hand(sims, 120, customer="Counter Sale", number="2001")

    page.goto(server + "/ops")
    page.fill("#token", mint("operator", subject="olga@example.com"))
    page.click("#sign-in")
    page.wait_for_selector("#executions")
    page.click("#link-invoice")
    page.wait_for_selector("#link-form")
    page.fill("#portal_id", str(services.connections.portals()[0]))
    page.select_option("#object_type", "DEAL")
    page.fill("#object_id", deal)
    page.fill("#invoice_number", "2001")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ops-link-invoice.png"), full_page=True)
    page.click("#link")
    page.wait_for_selector("#notice")
    assert f"now shows on deals {deal}" in page.inner_text("#notice")

    run_jobs()
    shown = sims.hubspot_record("deals", deal)
    assert shown["qbo_invoice_number"] == "2001" and shown["qbo_invoice_status"] == "awaiting_payment"
