"""Document lines: tax codes, the sales line, discounts and the adjustment to what was paid."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.books.company import CompanyProfile
from services.books.failures import ActionFailure
from services.books.lines import (
    TaxCodes,
    adjusted_to,
    discount_line,
    is_taxable,
    item_ids,
    line_item_lines,
    lines_total,
    sales_line,
)
from services.books.money import CENT
from services.hubspot.client import CrmObject

US = CompanyProfile("US", "USD", False, False, {})
CANADA = CompanyProfile("CA", "CAD", False, False, {})


def us_tax() -> TaxCodes:
    return TaxCodes(US, {}, "9130355")


def line_item(line_id: str = "1", **props: Any) -> CrmObject:
    return CrmObject(line_id, {"name": f"Product {line_id}", "quantity": "1", "price": "10", **props})


def test_us_lines_are_tax_or_non() -> None:
    assert (us_tax().code(True), us_tax().code(False)) == ("TAX", "NON")


def test_outside_the_us_the_configured_codes_are_used_and_untaxed_lines_fall_back_to_the_default() -> None:
    assert TaxCodes(CANADA, {"default_tax_code": "5", "exempt_tax_code": "9"}, "r").code(False) == "9"
    assert TaxCodes(CANADA, {"default_tax_code": "5"}, "r").code(False) == "5"
    assert TaxCodes(CANADA, {"default_tax_code": 5}, "r").code(True) == "5"


def test_outside_the_us_a_missing_tax_code_fails_the_action_with_a_reason() -> None:
    with pytest.raises(ActionFailure) as failure:
        TaxCodes(CANADA, {}, "9130355").code(False)
    assert failure.value.reason == "TAX_CODE_NOT_SET"
    assert "9130355" in failure.value.message and "default_tax_code" in failure.value.message


@pytest.mark.parametrize(
    ("props", "taxable"),
    [({}, False), ({"hs_tax_rate": "8.5"}, True), ({"hs_tax_amount": "1"}, True), ({"hs_tax_rate": "0"}, False)],
)
def test_a_line_item_is_taxable_when_it_carries_a_rate_or_an_amount(props: dict[str, str], taxable: bool) -> None:
    assert is_taxable(line_item(**props)) is taxable


def test_the_sales_line_has_quickbooks_shape() -> None:
    line = sales_line(
        {"value": "7"},
        Decimal("25.00"),
        tax_code="NON",
        quantity=Decimal(2),
        unit_price=Decimal("12.5"),
        description=" Widgets ",
    )
    assert line == {
        "DetailType": "SalesItemLineDetail",
        "Amount": 25,
        "SalesItemLineDetail": {"ItemRef": {"value": "7"}, "Qty": 2, "UnitPrice": 12.5, "TaxCodeRef": {"value": "NON"}},
        "Description": "Widgets",
    }


def test_a_sales_line_without_a_unit_price_bills_its_amount_once_and_blank_descriptions_are_left_out() -> None:
    line = sales_line({"value": "7"}, Decimal("99.95"), tax_code="TAX", description="  ")
    assert line["SalesItemLineDetail"]["Qty"] == 1 and line["SalesItemLineDetail"]["UnitPrice"] == 99.95
    assert "Description" not in line


def test_line_items_become_lines_with_their_item_quantity_price_and_tax_code() -> None:
    items = [line_item("1", quantity="3", price="9.99"), line_item("2", hs_tax_rate="5", description="Setup")]
    lines = line_item_lines(items, {"1": "21", "2": "22"}, us_tax())
    assert [
        (li["Amount"], li["SalesItemLineDetail"]["ItemRef"]["value"], li["SalesItemLineDetail"]["TaxCodeRef"]["value"])
        for li in lines
    ] == [
        (29.97, "21", "NON"),
        (10, "22", "TAX"),
    ]
    assert [li["Description"] for li in lines] == ["Product 1", "Setup"]


def test_discounts_of_the_line_items_become_one_discount_line() -> None:
    items = [
        line_item("1", quantity="2", price="50", discount="5"),
        line_item("2", price="200", hs_discount_percentage="10"),
    ]
    lines = line_item_lines(items, {"1": "21", "2": "22"}, us_tax())
    assert lines[-1] == discount_line(Decimal(30), "Discounts from HubSpot line items")
    assert lines_total(lines) == Decimal(270)


def test_lines_that_add_up_to_what_was_paid_are_left_alone() -> None:
    lines = line_item_lines([line_item("1", price="100")], {"1": "21"}, us_tax())
    assert adjusted_to(lines, Decimal(100), us_tax()) == (lines, "")


def test_less_paid_than_the_lines_adds_a_discount_and_a_note() -> None:
    lines = line_item_lines([line_item("1", price="100")], {"1": "21"}, us_tax())
    adjusted, note = adjusted_to(lines, Decimal("90.50"), us_tax())
    assert adjusted[-1]["DetailType"] == "DiscountLineDetail" and adjusted[-1]["Amount"] == 9.5
    assert note == "The line items add up to 100.00 but 90.50 was paid; 90.50 was booked."


def test_more_paid_than_the_lines_adds_a_line_on_the_first_item() -> None:
    lines = line_item_lines([line_item("1", price="100"), line_item("2", price="1")], {"1": "21", "2": "22"}, us_tax())
    adjusted, _ = adjusted_to(lines, Decimal(120), us_tax())
    extra = adjusted[-1]
    assert extra["SalesItemLineDetail"]["ItemRef"] == {"value": "21"} and extra["Amount"] == 19
    assert item_ids(adjusted) == ["21", "22", "21"]


prices = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)
quantities = st.integers(min_value=1, max_value=50)


shares = st.integers(min_value=0, max_value=100)


@given(
    st.lists(st.tuples(prices, quantities, shares), min_size=1, max_size=8),
    st.decimals(min_value=0, max_value=500_000, places=2, allow_nan=False, allow_infinity=False),
)
def test_adjusted_lines_always_add_up_to_what_was_paid(rows: list[tuple[Decimal, int, int]], paid: Decimal) -> None:
    # Each line's discount per unit is a share (0 to 100 %) of its price, rounded down to the cent.
    items = [
        line_item(
            str(n),
            price=str(price),
            quantity=str(quantity),
            discount=str((price * share / 100).quantize(CENT, ROUND_DOWN)),
        )
        for n, (price, quantity, share) in enumerate(rows)
    ]
    lines = line_item_lines(items, {str(n): str(100 + n) for n in range(len(rows))}, us_tax())
    adjusted, note = adjusted_to(lines, paid, us_tax())
    assert lines_total(adjusted) == paid
    assert (note == "") == (lines_total(lines) == paid)


@pytest.mark.parametrize(
    ("props", "named"),
    [
        ({"quantity": "NaN"}, "quantity 'NaN' is not a finite number"),
        ({"quantity": "Infinity"}, "quantity 'Infinity' is not a finite number"),
        ({"quantity": "0"}, "quantity '0' must be above 0"),
        ({"quantity": "-2"}, "quantity '-2' must be above 0"),
        ({"quantity": "two"}, "quantity 'two' is not a number"),
        ({"price": "12,50"}, "price '12,50' is not a number"),
        ({"price": "-5"}, "price '-5' must be at least 0"),
        ({"price": "1e400"}, "price '1e400' is larger than"),
        ({"discount": "-1"}, "discount '-1' must be at least 0"),
        ({"hs_discount_percentage": "150"}, "hs_discount_percentage '150' must be at least 0 and at most 100"),
    ],
)
def test_a_line_item_quickbooks_cannot_take_fails_naming_the_line_and_the_number(
    props: dict[str, str], named: str
) -> None:
    with pytest.raises(ActionFailure) as failure:
        line_item_lines([line_item("7", name="Widget", **props)], {"7": "21"}, us_tax())
    assert failure.value.reason == "INVALID_LINE_ITEM"
    assert failure.value.message.startswith("Line item 7 (Widget): ") and named in failure.value.message
    assert failure.value.details == {"line_item_ids": ["7"]}


def test_discounts_larger_than_the_items_fail_before_quickbooks_refuses_the_total() -> None:
    with pytest.raises(ActionFailure) as failure:
        line_item_lines([line_item("1", price="10", discount="12")], {"1": "21"}, us_tax())
    assert failure.value.reason == "INVALID_LINE_ITEM" and "below zero" in failure.value.message


numberish = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["NaN", "-Infinity", "1e999", "-0", "0.000001", "  42 ", "٣", "²", "1_000"]),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
)


@given(
    st.lists(
        st.fixed_dictionaries(
            {"quantity": numberish, "price": numberish, "discount": numberish, "hs_discount_percentage": numberish}
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_line_item_becomes_lines_quickbooks_takes_or_a_named_failure(rows: list[dict[str, Any]]) -> None:
    items = [CrmObject(str(n), {"name": f"Item {n}", **row}) for n, row in enumerate(rows)]
    try:
        lines = line_item_lines(items, {str(n): str(100 + n) for n in range(len(rows))}, us_tax())
    except ActionFailure as failure:
        assert failure.reason == "INVALID_LINE_ITEM"
        return
    assert lines_total(lines) >= 0
    for line in lines:
        assert isinstance(line["Amount"], int | float) and math.isfinite(line["Amount"]) and line["Amount"] >= 0
        detail = line.get("SalesItemLineDetail")
        if detail:
            assert detail["Qty"] > 0 and detail["UnitPrice"] >= 0
