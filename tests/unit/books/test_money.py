"""Money and text as the rules read them from HubSpot and write them to QuickBooks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.books.money import NotAnAmountError, cents, money, number, strict_money
from services.books.text import clean_name, text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12.5", "12.5"), (" 7 ", "7"), (None, "0"), ("", "0"), ("abc", "0"), (3, "3"), ("1e2", "100")],
)
def test_hubspot_numbers_are_read_as_decimals_and_garbage_as_the_default(raw: object, expected: str) -> None:
    assert money(raw) == Decimal(expected)


def test_the_default_of_a_missing_number_can_be_chosen() -> None:
    assert money(None, "1") == Decimal(1)


@pytest.mark.parametrize(
    ("value", "expected"), [("0.005", "0.01"), ("0.004", "0.00"), ("2.675", "2.68"), ("-1.005", "-1.01")]
)
def test_cents_round_half_up_as_invoices_do(value: str, expected: str) -> None:
    assert cents(Decimal(value)) == Decimal(expected)


def test_whole_amounts_are_json_integers_and_others_floats() -> None:
    assert number(Decimal("12.00")) == 12 and isinstance(number(Decimal("12.00")), int)
    assert number(Decimal("12.50")) == 12.5


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_a_cent_amount_survives_the_trip_to_json(value: Decimal) -> None:
    assert Decimal(str(number(value))) == value


def test_text_strips_and_reads_null_as_empty() -> None:
    assert text("  Ann ") == "Ann" and text(None) == "" and text(0) == "0"


def test_names_lose_colons_and_extra_spaces_and_are_cut_to_the_limit() -> None:
    assert clean_name("Acme:  West\tCoast ", 100) == "Acme- West Coast"
    assert clean_name("x" * 600, 500) == "x" * 500


@pytest.mark.parametrize("raw", ["NaN", "nan", "Infinity", "-inf", "sNaN"])
def test_numbers_that_are_not_amounts_read_as_the_default_and_strictly_as_an_error(raw: str) -> None:
    assert money(raw) == Decimal(0)
    with pytest.raises(NotAnAmountError):
        strict_money(raw)


def test_strict_reading_keeps_the_default_for_blanks_and_refuses_huge_numbers() -> None:
    assert strict_money(None, "1") == Decimal(1) and strict_money("  ", "1") == Decimal(1)
    assert strict_money("999999999999.99") == Decimal("999999999999.99")
    with pytest.raises(NotAnAmountError, match="larger than"):
        strict_money("1e12")
