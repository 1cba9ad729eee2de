"""A HubSpot admin's path in a real browser: install, connect QuickBooks, set up the company.

Headless Chromium from Debian's `chromium` package (scripts/test.sh installs it), driven by Playwright. The
test clicks through the simulators' own consent pages, and saves screenshots of our pages under docs/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from services.bootstrap import Services
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# The flags Chromium needs to run as root in a container with no network beyond loopback.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is missing: run the tests through `make test`, which installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


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
