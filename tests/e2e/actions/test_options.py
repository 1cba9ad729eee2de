"""The options endpoints behind the action card's dropdowns."""

from __future__ import annotations

from typing import Any

import requests

from services.bootstrap import Services
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators
from tests.builders import signed_post


def options_request(
    field: str, *, portal_id: int = PORTAL_ID, q: str = "", after: str = "", **inputs: Any
) -> dict[str, Any]:
    fetch = {k: v for k, v in (("q", q), ("after", after)) if v}
    return {
        "origin": {"portalId": portal_id, "actionDefinitionId": 10860211, "actionDefinitionVersion": 1},
        "objectTypeId": "0-3",
        "inputFieldName": field,
        "inputFields": {"quickbooks_account": REALM_ID, **inputs},
        "fetchOptions": fetch,
    }


def ask(server: str, field: str, **kwargs: Any) -> requests.Response:
    return signed_post(server, f"/options/{field}", options_request(field, **kwargs))


def test_companies_are_those_of_the_calling_portal_only(server: str, services: Services, sims: Simulators) -> None:
    services.connections.save_quickbooks(PORTAL_ID + 1, "5550001", "other-refresh", None, None, "Other Co")

    mine = ask(server, "quickbooks_account").json()
    theirs = ask(server, "quickbooks_account", portal_id=PORTAL_ID + 1).json()

    assert [o["value"] for o in mine["options"]] == [REALM_ID]
    assert mine["options"][0]["label"] == "Sim Co"
    assert [o["value"] for o in theirs["options"]] == ["5550001"]


def test_payment_terms_come_from_the_chosen_company(server: str, services: Services, sims: Simulators) -> None:
    answer = ask(server, "payment_terms").json()

    labels = {o["label"]: o["value"] for o in answer["options"]}
    assert labels["Net 30"] == "3"
    assert any(o.get("description") == "Due in 30 days" for o in answer["options"])


def test_customers_are_searchable_and_paged(server: str, services: Services, sims: Simulators) -> None:
    for n in range(105):
        sims.add_entity("Customer", {"DisplayName": f"Customer {n:03d}"})
    sims.add_entity("Customer", {"DisplayName": "O'Brien Holdings"})

    first = ask(server, "customer").json()
    second = ask(server, "customer", after=first["after"]).json()
    searched = ask(server, "customer", q="O'Brien").json()

    assert first["searchable"] is True
    assert len(first["options"]) == 100 and first["after"] == "101"
    assert len(second["options"]) == 6 and "after" not in second
    assert [o["label"] for o in searched["options"]] == ["O'Brien Holdings"]


def test_products_list_sellable_items(server: str, services: Services, sims: Simulators) -> None:
    sims.add_entity("Item", {"Name": "Consulting", "Type": "Service", "Sku": "C-1", "IncomeAccountRef": {"value": "1"}})
    sims.add_entity("Item", {"Name": "Hardware", "Type": "Category"})

    answer = ask(server, "products").json()

    assert [o["label"] for o in answer["options"]] == ["Consulting"]
    assert answer["options"][0]["description"] == "Service · C-1"


def test_account_dropdowns_offer_the_right_account_types(server: str, services: Services, sims: Simulators) -> None:
    types = {a["Id"]: a["AccountType"] for a in sims.entities("Account")}

    deposit = {types[o["value"]] for o in ask(server, "deposit_account").json()["options"]}
    fee_from = {types[o["value"]] for o in ask(server, "payment_account").json()["options"]}
    expense = {types[o["value"]] for o in ask(server, "expense_account").json()["options"]}

    assert deposit == {"Bank", "Other Current Asset"}
    assert fee_from == {"Bank", "Credit Card"}
    assert expense == {"Expense"}


def test_payment_methods_and_payees(server: str, services: Services, sims: Simulators) -> None:
    methods = {o["label"] for o in ask(server, "payment_method").json()["options"]}
    payees = {o["label"] for o in ask(server, "payee").json()["options"]}

    assert {"Cash", "Visa"} <= methods
    assert "Stripe" in payees


def test_a_company_of_another_portal_gives_no_options(server: str, services: Services, sims: Simulators) -> None:
    answer = ask(server, "customer", portal_id=PORTAL_ID + 7).json()

    assert answer["options"] == []
    assert sims.qbo_requests() == []


def test_options_need_a_chosen_company(server: str, services: Services, sims: Simulators) -> None:
    answer = ask(server, "payment_terms", quickbooks_account="").json()

    assert answer["options"] == []


def test_options_requests_must_be_signed(server: str, services: Services) -> None:
    response = requests.post(f"{server}/options/customer", json=options_request("customer"), timeout=5)

    assert response.status_code == 401


def test_an_unknown_field_answers_404_with_a_reason(server: str, services: Services) -> None:
    response = ask(server, "favourite_colour")

    assert response.status_code == 404
    assert "favourite_colour" in response.json()["message"]


def test_quickbooks_trouble_answers_502_with_a_reason(server: str, services: Services, sims: Simulators) -> None:
    sims.qbo_fault(method="GET", path="/query", status=503, count=1)

    response = ask(server, "customer")

    assert response.status_code == 502
    assert "QuickBooks" in response.json()["message"]
