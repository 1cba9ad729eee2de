"""The invoice, estimate and sales receipt actions end to end: HTTP in, real Redis, simulators over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from services.bootstrap import Services
from services.store.records import Tenant
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal
from tests.builders import sales_inputs
from tests.conftest import Perform, only_callback, qbo_writes

TENANT = Tenant(PORTAL_ID, REALM_ID)


def test_invoice_is_created_with_matched_items_terms_and_a_new_customer(
    perform: Perform, sims: Simulators, settings: Any
) -> None:
    consulting = sims.add_entity(
        "Item", {"Name": "Consulting", "Type": "Service", "Sku": "CONS-1", "IncomeAccountRef": {"value": "1"}}
    )
    setup = sims.add_entity("Item", {"Name": "Setup fee", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(payment_terms="3"))

    assert execution.state == "succeeded"
    [invoice] = sims.entities("Invoice")
    [customer] = sims.entities("Customer")
    assert customer["DisplayName"] == "Ann O'Brien"
    assert customer["PrimaryEmailAddr"]["Address"] == "ann@acme.example"
    assert invoice["CustomerRef"]["value"] == customer["Id"]
    assert invoice["SalesTermRef"]["value"] == "3"
    assert invoice["DueDate"] > invoice["TxnDate"]
    lines = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [(line["SalesItemLineDetail"]["ItemRef"]["value"], line["Amount"]) for line in lines] == [
        (consulting["Id"], 300),
        (setup["Id"], 99.5),
    ]
    assert {line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in lines} == {"NON"}
    assert invoice["TotalAmt"] == 399.5
    outputs = only_callback(sims, execution)
    assert outputs["hs_execution_state"] == "SUCCESS"
    assert outputs["quickbooks_id"] == invoice["Id"]
    assert outputs["quickbooks_number"] == invoice["DocNumber"]
    assert outputs["quickbooks_total"] == 399.5
    assert outputs["quickbooks_url"].endswith(f"/app/invoice?txnId={invoice['Id']}")
    assert outputs["quickbooks_customer_id"] == customer["Id"]


@pytest.mark.parametrize(
    ("action", "entity"), [("create_estimate", "Estimate"), ("create_sales_receipt", "SalesReceipt")]
)
def test_estimate_and_sales_receipt_are_created(
    perform: Perform, sims: Simulators, settings: Any, action: str, entity: str
) -> None:
    deal = seed_deal(sims)

    execution = perform(deal["deal"], action=action, inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    [document] = sims.entities(entity)
    assert document["TotalAmt"] == 399.5
    assert sims.entities("Invoice") == []
    outputs = only_callback(sims, execution)
    assert outputs["quickbooks_document_type"] == entity
    assert outputs["quickbooks_id"] == document["Id"]


def test_a_quote_becomes_an_invoice_with_its_line_items(perform: Perform, sims: Simulators, settings: Any) -> None:
    contact = sims.add_object("contacts", {"firstname": "Bo", "lastname": "Li", "email": "bo@li.example"})
    item = sims.add_object("line_items", {"name": "Widget", "quantity": "3", "price": "10"})
    quote = sims.add_object(
        "quotes", {"hs_title": "Q-1", "hs_currency": "USD"}, associations={"contacts": [contact], "line_items": [item]}
    )

    execution = perform(quote, object_type="QUOTE", inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    [invoice] = sims.entities("Invoice")
    assert invoice["TotalAmt"] == 30


def test_discounts_and_taxable_lines_are_carried_over(perform: Perform, sims: Simulators, settings: Any) -> None:
    deal = seed_deal(
        sims,
        line_items=[
            {"name": "Licence", "quantity": "2", "price": "100", "discount": "5", "hs_tax_rate": "8.25"},
            {"name": "Support", "quantity": "1", "price": "50", "hs_discount_percentage": "10", "description": "1 yr"},
        ],
    )

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    [invoice] = sims.entities("Invoice")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for line in invoice["Line"]:
        by_type.setdefault(line["DetailType"], []).append(line)
    sales = by_type["SalesItemLineDetail"]
    assert [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in sales] == ["TAX", "NON"]
    assert sales[1]["Description"] == "1 yr"
    assert by_type["DiscountLineDetail"][0]["Amount"] == 15
    assert invoice["TotalAmt"] == 235


def test_a_chosen_product_bills_the_record_amount_on_one_line(
    perform: Perform, sims: Simulators, settings: Any
) -> None:
    item = sims.add_entity("Item", {"Name": "Subscription", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    deal = seed_deal(sims, line_items=[], deal={"amount": "1200"})

    execution = perform(deal["deal"], inputs=sales_inputs(products=item["Id"]))

    assert execution.state == "succeeded", execution.failure_message
    [invoice] = sims.entities("Invoice")
    [line] = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert line["SalesItemLineDetail"]["ItemRef"]["value"] == item["Id"]
    assert line["Amount"] == 1200
    assert line["Description"] == "Acme renewal"


def test_a_chosen_customer_is_used_without_reading_the_contact(
    perform: Perform, sims: Simulators, settings: Any
) -> None:
    customer = sims.add_entity("Customer", {"DisplayName": "Chosen Ltd"})
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(customer=customer["Id"], create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert sims.entities("Invoice")[0]["CustomerRef"]["value"] == customer["Id"]
    assert len(sims.entities("Customer")) == 1
    # No contact is read (which contacts the deal has may be: the associations are read with the record).
    assert not any(r["path"].startswith("/crm/v3/objects/contacts") for r in sims.hs_requests())


def test_an_existing_customer_is_found_by_email_before_anything_is_created(
    perform: Perform, sims: Simulators, settings: Any
) -> None:
    existing = sims.add_entity(
        "Customer", {"DisplayName": "A. O'Brien", "PrimaryEmailAddr": {"Address": "ann@acme.example"}}
    )
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    assert [c["Id"] for c in sims.entities("Customer")] == [existing["Id"]]
    assert qbo_writes(sims, "customer") == []


def test_a_display_name_collision_is_resolved_not_failed(perform: Perform, sims: Simulators, settings: Any) -> None:
    vendor = sims.add_entity("Vendor", {"DisplayName": "Ann O'Brien"})
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    [customer] = sims.entities("Customer")
    assert customer["DisplayName"] == "Ann O'Brien (ann@acme.example)"
    assert vendor["DisplayName"] == "Ann O'Brien"


def test_filters_mode_refuses_a_contact_outside_the_sync_filters_and_creates_nothing(
    perform: Perform, sims: Simulators, settings: Any
) -> None:
    settings(
        contact_sync={
            "mode": "filters",
            "filter_groups": [{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]}],
        }
    )
    deal = seed_deal(sims, contact={"firstname": "Lee", "email": "lee@x.example", "lifecyclestage": "lead"})

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert (execution.state, execution.failure_reason) == ("failed", "CONTACT_NOT_ELIGIBLE")
    outputs = only_callback(sims, execution)
    assert outputs["hs_execution_state"] == "FAIL_CONTINUE"
    assert outputs["failure_reason"] == "CONTACT_NOT_ELIGIBLE"
    assert "sync filters" in outputs["failure_message"]
    assert [r for r in sims.qbo_requests() if r["method"] == "POST"] == []


def test_filters_mode_accepts_a_matching_contact(perform: Perform, sims: Simulators, settings: Any) -> None:
    settings(
        contact_sync={
            "mode": "filters",
            "filter_groups": [
                {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]},
                {
                    "filters": [
                        {"propertyName": "lifecyclestage", "operator": "IN", "values": ["customer", "evangelist"]}
                    ]
                },
            ],
        }
    )
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message


def test_unmatched_line_items_fail_naming_each_one(perform: Perform, sims: Simulators, settings: Any) -> None:
    sims.add_entity("Item", {"Name": "Consulting", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    deal = seed_deal(
        sims,
        line_items=[
            {"name": "Consulting", "quantity": "1", "price": "10"},
            {"name": "Gadget", "quantity": "1", "price": "10"},
            {"name": "Gizmo", "quantity": "1", "price": "10", "hs_sku": "GZ-9"},
        ],
    )

    execution = perform(deal["deal"])

    assert execution.failure_reason == "LINE_ITEM_NOT_MATCHED"
    assert "'Gadget'" in execution.failure_message and "'Gizmo'" in execution.failure_message
    assert "Consulting" not in execution.failure_message
    assert sims.entities("Invoice") == []
    assert only_callback(sims, execution)["failure_reason"] == "LINE_ITEM_NOT_MATCHED"


def test_missing_products_are_created_once_and_remembered(
    perform: Perform, sims: Simulators, settings: Any, services: Services
) -> None:
    line = {"name": "Gadget", "quantity": "2", "price": "10", "hs_sku": "GD-1", "hs_product_id": "900"}
    first = perform(seed_deal(sims, line_items=[line])["deal"], inputs=sales_inputs(create_missing_products="yes"))
    second = perform(seed_deal(sims, line_items=[line])["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert (first.state, second.state) == ("succeeded", "succeeded")
    [item] = sims.entities("Item")
    assert (item["Name"], item["Type"], item["Sku"]) == ("Gadget", "Service", "GD-1")
    assert item["IncomeAccountRef"]["value"] == sims.account_id("Services")
    assert services.bookkeeping.product_mappings(TENANT, ["900"]) == {"900": item["Id"]}
    assert len(qbo_writes(sims, "item")) == 1


def test_creating_products_needs_a_default_income_account(perform: Perform, sims: Simulators, settings: Any) -> None:
    settings(default_income_account="")
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "SETTINGS_INCOMPLETE"
    assert "default_income_account" in execution.failure_message


def test_a_record_without_line_items_fails(perform: Perform, sims: Simulators, settings: Any) -> None:
    execution = perform(seed_deal(sims, line_items=[])["deal"])

    assert execution.failure_reason == "NO_LINE_ITEMS"
    assert only_callback(sims, execution)["failure_reason"] == "NO_LINE_ITEMS"


def test_a_record_without_contact_fails(perform: Perform, sims: Simulators, settings: Any) -> None:
    execution = perform(seed_deal(sims, contact={})["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "NO_CONTACT"


def test_a_company_of_another_portal_is_never_reached(perform: Perform, sims: Simulators, services: Services) -> None:
    sims.add_company("5550001")
    services.connections.save_quickbooks(PORTAL_ID + 1, "5550001", "other-refresh", "other-access", None)
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(quickbooks_account="5550001"))

    assert execution.failure_reason == "QUICKBOOKS_NOT_CONNECTED"
    assert "not connected to this HubSpot account" in execution.failure_message
    assert sims.qbo_requests() == []


def test_a_revoked_connection_says_to_reconnect(perform: Perform, sims: Simulators, services: Services) -> None:
    sims.qbo("POST", "revoke", json={"realm_id": REALM_ID})
    deal = seed_deal(sims)

    execution = perform(deal["deal"])

    assert execution.failure_reason == "QUICKBOOKS_NOT_CONNECTED"
    assert "Reconnect" in execution.failure_message
    [connection] = services.connections.quickbooks_of(PORTAL_ID)
    assert connection.status == "revoked"


def test_a_deleted_record_fails_clearly(perform: Perform, sims: Simulators, settings: Any) -> None:
    execution = perform("999999")

    assert execution.failure_reason == "RECORD_NOT_FOUND"


def test_unknown_payment_terms_fail(perform: Perform, sims: Simulators, settings: Any) -> None:
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(payment_terms="77", create_missing_products="yes"))

    assert execution.failure_reason == "PAYMENT_TERM_NOT_FOUND"


def test_a_foreign_currency_needs_multicurrency(perform: Perform, sims: Simulators, settings: Any) -> None:
    deal = seed_deal(sims, deal={"deal_currency_code": "EUR"})

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "CURRENCY_MISMATCH"
    assert "EUR" in execution.failure_message


def test_quickbooks_validation_faults_are_reported_with_their_code(
    perform: Perform, sims: Simulators, settings: Any
) -> None:
    sims.qbo_fault(
        method="POST",
        path="/invoice$",
        status=400,
        body={
            "Fault": {
                "Error": [
                    {"Message": "A business validation error has occurred", "Detail": "Period closed", "code": "6210"}
                ],
                "type": "ValidationFault",
            }
        },
    )
    deal = seed_deal(sims)

    execution = perform(deal["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.failure_reason == "QUICKBOOKS_REJECTED"
    assert "6210" in execution.failure_message and "Period closed" in execution.failure_message
    assert sims.entities("Invoice") == []


class TestNonUsCompany:
    @pytest.fixture
    def uk_realm(self, sims: Simulators, services: Services) -> str:
        sims.add_company("7770001", country="GB", home_currency="GBP")
        services.connections.save_quickbooks(
            PORTAL_ID, "7770001", "qbo-refresh-demo-7770001", "qbo-access-demo-7770001", None
        )
        return "7770001"

    def test_without_a_tax_code_setting_it_fails_clearly(
        self, perform: Perform, sims: Simulators, uk_realm: str
    ) -> None:
        deal = seed_deal(sims, deal={"deal_currency_code": "GBP"})

        execution = perform(deal["deal"], inputs=sales_inputs(quickbooks_account=uk_realm, customer="1"))

        assert execution.failure_reason == "TAX_CODE_NOT_SET"

    def test_every_line_carries_the_configured_tax_codes(
        self, perform: Perform, sims: Simulators, services: Services, uk_realm: str
    ) -> None:
        codes = {c["Name"]: c["Id"] for c in sims.entities("TaxCode", uk_realm)}
        standard, exempt = codes["20.0% S"], codes["Exempt"]
        income = sims.account_id("Services", uk_realm)
        services.companies.save_settings(
            uk_realm, {"default_tax_code": standard, "exempt_tax_code": exempt, "default_income_account": income}
        )
        deal = seed_deal(
            sims,
            deal={"deal_currency_code": "GBP"},
            line_items=[
                {"name": "Taxed", "quantity": "1", "price": "100", "hs_tax_rate": "20"},
                {"name": "Untaxed", "quantity": "1", "price": "40"},
            ],
        )

        execution = perform(
            deal["deal"], inputs=sales_inputs(quickbooks_account=uk_realm, create_missing_products="yes")
        )

        assert execution.state == "succeeded", execution.failure_message
        [invoice] = sims.entities("Invoice", uk_realm)
        codes_on_lines = [
            line["SalesItemLineDetail"]["TaxCodeRef"]["value"]
            for line in invoice["Line"]
            if line["DetailType"] == "SalesItemLineDetail"
        ]
        assert codes_on_lines == [standard, exempt]
        assert invoice["GlobalTaxCalculation"] == "TaxExcluded"


def test_the_first_associated_contact_is_the_customer(perform: Perform, sims: Simulators, settings: Any) -> None:
    first = sims.add_object("contacts", {"firstname": "First", "lastname": "Person", "email": "first@x.example"})
    second = sims.add_object("contacts", {"firstname": "Second", "lastname": "Person", "email": "second@x.example"})
    item = sims.add_object("line_items", {"name": "Widget", "quantity": "1", "price": "10"})
    deal = sims.add_object(
        "deals", {"dealname": "Two contacts"}, associations={"contacts": [first, second], "line_items": [item]}
    )

    execution = perform(deal, inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    [customer] = sims.entities("Customer")
    assert customer["PrimaryEmailAddr"]["Address"] == "first@x.example"
    # The order comes from the v4 associations API (one read, or the batch read of the waiting records).
    v4_reads = [
        r
        for r in sims.hs_requests()
        if r["path"]
        in (f"/crm/v4/objects/deals/{deal}/associations/contacts", "/crm/v4/associations/deals/contacts/batch/read")
    ]
    assert len(v4_reads) == 1


def test_a_mapping_to_a_deleted_item_is_forgotten_so_a_retry_matches_again(
    perform: Perform, sims: Simulators, settings: Any, services: Services
) -> None:
    item = sims.add_entity(
        "Item", {"Name": "Consulting", "Type": "Service", "Sku": "CONS-1", "IncomeAccountRef": {"value": "1"}}
    )
    services.bookkeeping.save_product_mapping(TENANT, "501", "9999")
    line = {"name": "Consulting", "quantity": "1", "price": "150", "hs_sku": "CONS-1", "hs_product_id": "501"}

    first = perform(seed_deal(sims, line_items=[line])["deal"])
    second = perform(seed_deal(sims, line_items=[line])["deal"])

    assert first.failure_reason == "QUICKBOOKS_REJECTED"
    assert second.state == "succeeded", second.failure_message
    assert services.bookkeeping.product_mappings(TENANT, ["501"]) == {"501": item["Id"]}
