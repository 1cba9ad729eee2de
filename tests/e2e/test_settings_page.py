"""A company's settings page: the settings as a form, testing a contact, product mappings, warnings."""

from __future__ import annotations

import re

import pytest

from services.bootstrap import Services
from services.store.records import Tenant
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal
from tests.e2e.conftest import Admin, run_invoice

PAGE = f"/settings/companies/{REALM_ID}"


@pytest.fixture
def admin(site: str, bare: Services, sims: Simulators) -> Admin:
    """An admin signed in to the standard portal, with the standard company connected."""
    signed_in = Admin(site, sims)
    signed_in.install()
    signed_in.connect()
    return signed_in


def form(**fields: str) -> dict[str, str]:
    """The settings form with no filter rows, plus ``fields``."""
    return {"mode": "legacy", "rows": "0", **fields}


def test_the_settings_form_saves_filters_and_accounts_and_actions_follow_them(
    admin: Admin, bare: Services, sims: Simulators, site: str
) -> None:
    services_account = sims.account_id("Services")
    page = admin.get(PAGE)
    assert page.status_code == 200
    assert f'<option value="{services_account}"' in page.text, "the income accounts come from the company"

    saved = admin.post(
        PAGE,
        form(
            mode="filters",
            rows="2",
            **{"filters-0-group": "1", "filters-0-property": "lifecyclestage", "filters-0-operator": "EQ"},
            **{"filters-0-value": "customer", "filters-1-group": "2", "filters-1-property": "email"},
            **{"filters-1-operator": "CONTAINS_TOKEN", "filters-1-value": "*@vip.example"},
            default_income_account=services_account,
        ),
    )

    assert saved.status_code == 200 and "Settings saved." in saved.text
    assert bare.companies.settings(REALM_ID) == {
        "contact_sync": {
            "mode": "filters",
            "filter_groups": [
                {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]},
                {"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@vip.example"}]},
            ],
        },
        "default_income_account": services_account,
    }
    outsider = seed_deal(sims, contact={"firstname": "Olly", "email": "olly@else.example", "lifecyclestage": "lead"})
    from tests.builders import execution_body, sales_inputs, signed_post
    from tests.conftest import drain

    payload = execution_body(outsider["deal"], inputs=sales_inputs(create_missing_products="yes"))
    signed_post(site, "/actions/create_invoice", payload)
    drain(bare)
    assert bare.executions.find(payload["callbackId"]).failure_reason == "CONTACT_NOT_ELIGIBLE"  # type: ignore[union-attr]
    assert run_invoice(site, bare, sims).state == "succeeded", "the default contact is a customer: group 1 matches"


def test_settings_that_would_not_work_are_shown_and_not_saved(admin: Admin, bare: Services) -> None:
    before = bare.companies.settings(REALM_ID)
    for rows in ("9999999999", "²", "-1"):
        assert admin.post(PAGE, form(mode="filters", rows=rows)).status_code == 400

    refused = admin.post(PAGE, form(mode="filters", rows="0"))

    assert (
        refused.status_code == 400
        and "Not saved: contact_sync in filters mode needs at least one filter group" in refused.text
    )
    assert bare.companies.settings(REALM_ID) == before


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        ("ann@acme.example", "eligible (matches filter group 1)"),
        ("zed@else.example", "not eligible: group 1: lifecyclestage EQ 'customer' is not true of 'lead'"),
        ("nobody@nowhere.example", "No contact 'nobody@nowhere.example' was found"),
    ],
)
def test_a_contact_can_be_tested_against_the_saved_filters(
    admin: Admin, bare: Services, sims: Simulators, contact: str, expected: str
) -> None:
    seed_deal(sims)
    seed_deal(sims, contact={"firstname": "Zed", "email": "zed@else.example", "lifecyclestage": "lead"})
    bare.companies.save_settings(
        REALM_ID,
        {
            "contact_sync": {
                "mode": "filters",
                "filter_groups": [
                    {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]}
                ],
            }
        },
    )
    writes_before = len([r for r in sims.qbo_requests() if r["method"] == "POST"])

    result = admin.post(f"{PAGE}/test-contact", {"contact": contact})

    assert result.status_code == 200
    assert expected in re.sub(r"&#39;", "'", result.text)
    assert len([r for r in sims.qbo_requests() if r["method"] == "POST"]) == writes_before


def test_a_contact_is_also_found_by_its_id(admin: Admin, bare: Services, sims: Simulators) -> None:
    contact_id = seed_deal(sims)["contacts"][0]
    result = admin.post(f"{PAGE}/test-contact", {"contact": contact_id})
    assert f"Contact {contact_id}: eligible: in legacy mode" in result.text


def test_product_mappings_are_listed_edited_removed_and_imported(
    admin: Admin, bare: Services, sims: Simulators
) -> None:
    item = sims.add_entity("Item", {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    other = sims.add_entity("Item", {"Name": "Setup fee", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    tenant = Tenant(PORTAL_ID, REALM_ID)

    admin.post(f"{PAGE}/mappings", {"product_id": "501", "item_id": item["Id"]})
    admin.post(f"{PAGE}/mappings", {"product_id": "501", "item_id": other["Id"]})
    listed = admin.get(PAGE)
    assert bare.bookkeeping.product_mappings(tenant, ["501"]) == {"501": other["Id"]}
    assert 'data-product="501"' in listed.text and "Setup fee" in listed.text
    assert f'<option value="{other["Id"]}" selected>Setup fee</option>' in listed.text, (
        "each row can be edited in place"
    )

    csv_text = f"hubspot_product_id,quickbooks_item_id\n502,{item['Id']}\n503,{other['Id']}\nnot-a-product,7\n"
    imported = admin.http.post(
        admin.site + f"{PAGE}/mappings/import",
        data={"csrf_token": admin.csrf_token()},
        files={"file": ("mappings.csv", csv_text.encode(), "text/csv")},
        timeout=10,
    )
    assert imported.status_code == 400 and "Imported 2 mappings." in imported.text and "line 4" in imported.text
    assert bare.bookkeeping.product_mappings(tenant, ["502", "503"]) == {"502": item["Id"], "503": other["Id"]}

    searched = admin.get(PAGE, params={"q": "503"})
    assert 'data-product="503"' in searched.text and 'data-product="501"' not in searched.text

    assert admin.post(f"{PAGE}/mappings/501/remove").status_code == 200
    assert bare.bookkeeping.product_mappings(tenant, ["501"]) == {}
    assert admin.post(f"{PAGE}/mappings/501/remove").status_code == 404
    assert admin.post(f"{PAGE}/mappings", {"product_id": "abc", "item_id": "1"}).status_code == 400


def test_warnings_name_the_settings_that_will_make_actions_fail(admin: Admin, bare: Services, sims: Simulators) -> None:
    page = admin.get(PAGE)
    assert "No default income account" in page.text

    bare.companies.save_settings(REALM_ID, {"default_income_account": "999999"})
    assert "The default income account (999999) no longer exists in QuickBooks" in admin.get(PAGE).text

    connection = bare.connections.quickbooks(PORTAL_ID, REALM_ID)
    assert connection is not None
    bare.connections.mark_quickbooks_revoked(connection.id)
    assert "The connection needs reconnecting" in admin.get(PAGE).text


def test_a_company_outside_the_us_is_warned_to_set_a_tax_code(site: str, bare: Services, sims: Simulators) -> None:
    sims.add_company("5550003", name="Maple Books", country="CA", home_currency="CAD")
    canadian = Admin(site, sims)
    canadian.install()
    canadian.connect("5550003")

    page = canadian.get("/settings/companies/5550003")

    assert "outside the US (CA)" in page.text and "Choose a default tax code" in page.text


def test_the_action_cards_defaults_are_chosen_on_the_page_and_used_when_a_workflow_leaves_them_empty(
    admin: Admin, bare: Services, sims: Simulators, site: str
) -> None:
    from simulators.scenario import seed_payment
    from tests.builders import execution_body, signed_post
    from tests.conftest import drain

    checking, fees = sims.account_id("Checking"), sims.account_id("Bank Charges & Fees")
    page = admin.get(PAGE)
    assert 'id="default_payment_account"' in page.text and f'<option value="{checking}"' in page.text

    admin.post(
        PAGE, form(default_payment_account=checking, default_expense_account=fees, default_deposit_account=checking)
    )
    assert bare.companies.settings(REALM_ID)["default_expense_account"] == fees

    payment = seed_payment(sims)
    payload = execution_body(payment["payment"], inputs={"quickbooks_account": REALM_ID}, object_type="0-101")
    assert signed_post(site, "/actions/create_fee_expense", payload).status_code == 200
    drain(bare)

    execution = bare.executions.find(payload["callbackId"])
    assert execution is not None and execution.state == "succeeded", execution
    [expense] = sims.entities("Purchase")
    assert expense["AccountRef"]["value"] == checking
    assert expense["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"] == fees


def test_a_fee_with_no_account_in_the_action_or_the_settings_fails_before_writing(
    admin: Admin, bare: Services, sims: Simulators, site: str
) -> None:
    from simulators.scenario import seed_payment
    from tests.builders import execution_body, signed_post
    from tests.conftest import drain

    payment = seed_payment(sims)
    payload = execution_body(payment["payment"], inputs={"quickbooks_account": REALM_ID}, object_type="0-101")
    signed_post(site, "/actions/create_fee_expense", payload)
    drain(bare)

    execution = bare.executions.find(payload["callbackId"])
    assert execution is not None and execution.failure_reason == "SETTINGS_INCOMPLETE"
    assert "default_payment_account" in (execution.failure_message or "")
    writes = [r for r in sims.qbo_requests() if r["method"] == "POST" and r["path"].startswith("/v3/")]
    assert writes == [], "nothing was written to the books (only the admin's OAuth calls went to Intuit)"


def test_failures_to_hold_and_for_how_long_are_chosen_on_the_page(admin: Admin, bare: Services) -> None:
    page = admin.get(PAGE)
    assert 'name="hold_failures" value="LINE_ITEM_NOT_MATCHED"' in page.text

    saved = admin.post(PAGE, form(hold_failures=["LINE_ITEM_NOT_MATCHED", "QUICKBOOKS_NOT_CONNECTED"], hold_hours="12"))  # type: ignore[arg-type]

    assert "Settings saved." in saved.text
    settings = bare.companies.settings(REALM_ID)
    assert settings["hold_failures"] == ["LINE_ITEM_NOT_MATCHED", "QUICKBOOKS_NOT_CONNECTED"]
    assert settings["hold_hours"] == 12
    too_long = admin.post(PAGE, form(hold_failures="NO_CONTACT", hold_hours="500"))
    assert too_long.status_code == 400 and "must not outlast HubSpot&#39;s wait" in too_long.text
