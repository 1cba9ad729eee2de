"""Matching HubSpot line items to QuickBooks items, and creating the missing ones, over recording fakes."""

from __future__ import annotations

from typing import Any

import pytest

from services.books.failures import ActionFailure
from services.books.items import item_name, match_line_items
from services.hubspot.client import CrmObject
from tests.fakes import FakeLedger, FakeLocks, FakeQuickBooks
from tests.unit.books.conftest import TENANT, MakeRun


def line_item(line_id: str, name: str, **props: Any) -> CrmObject:
    return CrmObject(line_id, {"name": name, "price": "10", **props})


def item(item_id: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"Id": item_id, "Name": name, "Type": "Service", "Active": True, **fields}


def test_a_known_product_needs_no_query(make_run: MakeRun, ledger: FakeLedger, qbo: FakeQuickBooks) -> None:
    ledger.products[(TENANT, "p-1")] = "21"
    matched = match_line_items(make_run(), [line_item("1", "Consulting", hs_product_id="p-1")], create_missing=False)
    assert matched == {"1": "21"}
    assert qbo.queries == [] and qbo.created == []


def test_items_are_found_by_sku_then_by_name_in_one_query_each(make_run: MakeRun, qbo: FakeQuickBooks) -> None:
    qbo.entities["Item"] = [item("21", "Consulting", Sku="CON-1"), item("22", "Setup fee")]
    line_items = [line_item("1", "Anything", hs_sku="CON-1"), line_item("2", "setup FEE")]

    assert match_line_items(make_run(), line_items, create_missing=False) == {"1": "21", "2": "22"}
    assert qbo.queries == [
        "SELECT * FROM Item WHERE Sku IN ('CON-1') MAXRESULTS 1000",
        "SELECT * FROM Item WHERE Name IN ('setup FEE') MAXRESULTS 1000",
    ]


def test_what_a_look_up_found_is_remembered_for_the_product(
    make_run: MakeRun, ledger: FakeLedger, qbo: FakeQuickBooks
) -> None:
    qbo.entities["Item"] = [item("22", "Setup fee")]
    match_line_items(make_run(), [line_item("2", "Setup fee", hs_product_id="p-2")], create_missing=False)
    assert ledger.products == {(TENANT, "p-2"): "22"}


def test_unmatched_line_items_fail_the_action_naming_each_one(make_run: MakeRun, qbo: FakeQuickBooks) -> None:
    with pytest.raises(ActionFailure) as failure:
        match_line_items(make_run(), [line_item("1", "Gadget"), line_item("2", "Gizmo")], create_missing=False)
    assert failure.value.reason == "LINE_ITEM_NOT_MATCHED"
    assert "'Gadget' (line item 1)" in failure.value.message and "'Gizmo' (line item 2)" in failure.value.message
    assert failure.value.details["line_item_ids"] == ["1", "2"]
    assert qbo.created == []


def test_a_missing_item_is_created_once_under_a_lock_as_a_service_booking_to_the_income_account(
    make_run: MakeRun, qbo: FakeQuickBooks, locks: FakeLocks, ledger: FakeLedger
) -> None:
    run = make_run(settings={"default_income_account": "79"})
    matched = match_line_items(run, [line_item("1", "Gad:get", hs_sku="G-1", description="Small")], create_missing=True)

    [(entity, body, requestid)] = qbo.created
    assert entity == "Item" and matched == {"1": qbo.entities["Item"][0]["Id"]}
    assert body == {
        "Name": "Gad-get",
        "Type": "Service",
        "IncomeAccountRef": {"value": "79"},
        "Sku": "G-1",
        "Description": "Small",
        "UnitPrice": 10.0,
    }
    assert locks.taken == [f"item:{TENANT}:gad-get"]
    assert (
        ledger.steps("e-1")["item:1"].data == {"id": matched["1"], "requestid": requestid}
        or ledger.steps("e-1")["item:1"].status == "done"
    )


def test_creating_a_missing_item_without_an_income_account_fails_before_any_write(
    make_run: MakeRun, qbo: FakeQuickBooks
) -> None:
    with pytest.raises(ActionFailure) as failure:
        match_line_items(make_run(), [line_item("1", "Gadget")], create_missing=True)
    assert failure.value.reason == "SETTINGS_INCOMPLETE" and "default_income_account" in failure.value.message
    assert qbo.created == []


def test_an_item_another_execution_just_created_is_used_instead_of_failing(
    make_run: MakeRun, qbo: FakeQuickBooks
) -> None:
    qbo.refuse["Item"] = "6240"
    run = make_run(settings={"default_income_account": "79"})
    qbo.entities["Item"] = []

    def appear_then_query(statement: str, original: Any = qbo.query) -> list[dict[str, Any]]:
        # The name look-up finds nothing; by the time the create is refused, the other execution's item exists.
        if not qbo.entities["Item"] and "Name =" in statement:
            qbo.entities["Item"].append(item("30", "Gadget"))
        return original(statement)  # type: ignore[no-any-return]

    qbo.query = appear_then_query  # type: ignore[method-assign]
    assert match_line_items(run, [line_item("1", "Gadget")], create_missing=True) == {"1": "30"}


def test_item_names_are_cleaned_and_fall_back_to_the_line_item() -> None:
    assert item_name(CrmObject("9", {"name": "  A:B  "})) == "A-B"
    assert item_name(CrmObject("9", {})) == "HubSpot line item 9"
    assert len(item_name(CrmObject("9", {"name": "x" * 300}))) == 100
