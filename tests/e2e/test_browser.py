"""A HubSpot admin's path in a real browser: install, connect QuickBooks, set up the company.

Headless Chromium from Debian's `chromium` package (scripts/test.sh installs it), driven by Playwright. The
test clicks through the simulators' own consent pages, and saves screenshots of our pages under docs/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from services.bootstrap import Services
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators
from tests.e2e.conftest import SCREENSHOTS

pytestmark = pytest.mark.slow


def test_an_admin_installs_connects_and_sets_up_a_company(
    page: Page, site: str, bare: Services, sims: Simulators
) -> None:
    page.goto(site + "/settings")

    # HubSpot's consent page (the simulator's): choose the account and connect the app.
    assert page.title() == "Choose an account"
    page.select_option("#portal", str(PORTAL_ID))
    page.click("#allow")
    page.wait_for_url(f"{site}/settings")
    assert page.locator("#no-companies").is_visible()
    assert f"HubSpot account {PORTAL_ID}" in page.inner_text("header")

    # Intuit's consent page (the simulator's): choose the company.
    page.click("#connect")
    assert page.title() == "Connect to QuickBooks"
    page.select_option("#company", REALM_ID)
    page.click("#connect")
    page.wait_for_url(f"{site}/settings/companies/{REALM_ID}")
    assert page.inner_text("#company-name") == "Sim Co"
    assert "No default income account" in page.inner_text("#warnings")

    # The settings: only customers become QuickBooks customers; products book to the Services account.
    page.check("input[name=mode][value=filters]")
    page.fill("input[name='filters-0-property']", "lifecyclestage")
    page.select_option("select[name='filters-0-operator']", "EQ")
    page.fill("input[name='filters-0-value']", "customer")
    page.select_option("#default_income_account", sims.account_id("Services"))
    page.click("#save")
    page.wait_for_selector("#notice")
    assert page.inner_text("#notice") == "Settings saved."
    warnings = page.locator("#warnings")
    assert warnings.count() == 0 or "income account" not in warnings.inner_text(), "the income-account warning is gone"
    settings = bare.companies.settings(REALM_ID)
    assert settings["default_income_account"] == sims.account_id("Services")
    assert settings["contact_sync"]["filter_groups"][0]["filters"][0]["value"] == "customer"

    page.fill("#test-contact input[name=contact]", "nobody@nowhere.example")
    page.click("#test-contact button")
    assert "was found" in page.inner_text("#contact-result")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "company-settings.png"), full_page=True)
    page.goto(site + "/settings")
    assert page.locator(f"tr[data-realm='{REALM_ID}']").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "companies.png"), full_page=True)
