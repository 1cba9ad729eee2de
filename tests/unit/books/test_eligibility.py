"""Contact-sync filters: HubSpot's CRM-search grammar evaluated against a contact's properties."""

from __future__ import annotations

from typing import Any

import pytest

from services.books.eligibility import FilterError, check_contact_eligible, matches, validate_filter_groups
from services.books.failures import ActionFailure


def flt(prop: str, operator: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    """Return one filter; ``value`` is left out when None (HAS_PROPERTY, IN, ...)."""
    item: dict[str, Any] = {"propertyName": prop, "operator": operator, **extra}
    if value is not None:
        item["value"] = value
    return item


def groups(*filter_lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return filter groups, one per list of filters."""
    return [{"filters": list(filters)} for filters in filter_lists]


def one(item: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a single group holding a single filter."""
    return groups([item])


def filters_mode(*filter_lists: list[dict[str, Any]]) -> dict[str, Any]:
    """Return company settings with contact sync in filters mode."""
    return {"contact_sync": {"mode": "filters", "filter_groups": groups(*filter_lists)}}


# EQ / NEQ ----------------------------------------------------------------------------------------


def test_eq_matches_the_same_text_ignoring_case() -> None:
    assert matches(one(flt("lifecyclestage", "EQ", "Customer")), {"lifecyclestage": "customer"})


def test_eq_does_not_match_other_text() -> None:
    assert not matches(one(flt("lifecyclestage", "EQ", "customer")), {"lifecyclestage": "lead"})


def test_eq_compares_numbers_as_numbers() -> None:
    assert matches(one(flt("score", "EQ", "10")), {"score": "10.0"})


def test_eq_does_not_match_a_missing_property() -> None:
    assert not matches(one(flt("lifecyclestage", "EQ", "customer")), {})


def test_neq_matches_other_text() -> None:
    assert matches(one(flt("lifecyclestage", "NEQ", "customer")), {"lifecyclestage": "lead"})


def test_neq_does_not_match_the_same_text_in_another_case() -> None:
    assert not matches(one(flt("lifecyclestage", "NEQ", "customer")), {"lifecyclestage": "CUSTOMER"})


@pytest.mark.parametrize("properties", [{}, {"lifecyclestage": None}, {"lifecyclestage": ""}])
def test_neq_matches_a_missing_or_empty_property(properties: dict[str, Any]) -> None:
    assert matches(one(flt("lifecyclestage", "NEQ", "customer")), properties)


def test_eq_on_a_first_name_that_reads_as_not_a_number_compares_text() -> None:
    assert matches(one(flt("firstname", "EQ", "nan")), {"firstname": "Nan"})


# IN / NOT_IN -------------------------------------------------------------------------------------


def test_in_matches_any_listed_value_ignoring_case() -> None:
    rule = one(flt("country", "IN", values=["Germany", "France"]))
    assert matches(rule, {"country": "FRANCE"})
    assert not matches(rule, {"country": "Spain"})


def test_in_does_not_match_a_missing_property() -> None:
    assert not matches(one(flt("country", "IN", values=["France"])), {})


def test_not_in_matches_unlisted_values_and_a_missing_property() -> None:
    rule = one(flt("country", "NOT_IN", values=["Germany", "France"]))
    assert matches(rule, {"country": "Spain"})
    assert matches(rule, {})
    assert not matches(rule, {"country": "germany"})


# HAS_PROPERTY / NOT_HAS_PROPERTY -----------------------------------------------------------------


def test_has_property_needs_a_non_empty_value() -> None:
    rule = one(flt("email", "HAS_PROPERTY"))
    assert matches(rule, {"email": "ann@acme.com"})
    assert not matches(rule, {"email": ""})
    assert not matches(rule, {"email": None})
    assert not matches(rule, {})


def test_not_has_property_matches_only_a_missing_or_empty_value() -> None:
    rule = one(flt("email", "NOT_HAS_PROPERTY"))
    assert matches(rule, {})
    assert matches(rule, {"email": ""})
    assert not matches(rule, {"email": "ann@acme.com"})


def test_has_property_counts_zero_as_a_value() -> None:
    assert matches(one(flt("score", "HAS_PROPERTY")), {"score": 0})


# CONTAINS_TOKEN / NOT_CONTAINS_TOKEN -------------------------------------------------------------


def test_contains_token_matches_a_whole_word_ignoring_case() -> None:
    rule = one(flt("company", "CONTAINS_TOKEN", "acme"))
    assert matches(rule, {"company": "The ACME Corporation"})
    assert not matches(rule, {"company": "Acmeville Ltd"})


def test_contains_token_with_a_wildcard_matches_part_of_a_word() -> None:
    assert matches(one(flt("company", "CONTAINS_TOKEN", "acme*")), {"company": "Acmeville Ltd"})


def test_contains_token_splits_email_addresses_into_tokens() -> None:
    assert matches(one(flt("email", "CONTAINS_TOKEN", "acme")), {"email": "ann@acme.com"})


def test_contains_token_does_not_match_a_missing_property() -> None:
    assert not matches(one(flt("company", "CONTAINS_TOKEN", "acme")), {})


def test_not_contains_token_matches_text_without_the_word_and_a_missing_property() -> None:
    rule = one(flt("company", "NOT_CONTAINS_TOKEN", "acme"))
    assert matches(rule, {"company": "Globex"})
    assert matches(rule, {})
    assert not matches(rule, {"company": "Acme Inc"})


# GT / GTE / LT / LTE / BETWEEN -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "actual", "expected"),
    [
        ("GT", "10", True),
        ("GT", "9", False),
        ("GTE", "9", True),
        ("GTE", "8.5", False),
        ("LT", "8.5", True),
        ("LT", "9", False),
        ("LTE", "9.0", True),
        ("LTE", "10", False),
    ],
)
def test_ordering_operators_compare_numbers_numerically(operator: str, actual: str, expected: bool) -> None:
    # As text "10" < "9"; numerically it is greater.
    assert matches(one(flt("score", operator, "9")), {"score": actual}) is expected


def test_ordering_operators_compare_text_alphabetically_ignoring_case() -> None:
    assert matches(one(flt("lastname", "GT", "m")), {"lastname": "Smith"})
    assert not matches(one(flt("lastname", "GT", "M")), {"lastname": "brown"})
    assert matches(one(flt("lastname", "LTE", "SMITH")), {"lastname": "smith"})


@pytest.mark.parametrize("operator", ["GT", "GTE", "LT", "LTE"])
def test_ordering_operators_do_not_match_a_missing_property(operator: str) -> None:
    assert not matches(one(flt("score", operator, "5")), {"score": ""})
    assert not matches(one(flt("score", operator, "5")), {})


@pytest.mark.parametrize(
    ("actual", "expected"), [("10", True), ("20", True), ("15.5", True), ("9", False), ("21", False)]
)
def test_between_includes_both_ends(actual: str, expected: bool) -> None:
    rule = one(flt("score", "BETWEEN", "10", highValue="20"))
    assert matches(rule, {"score": actual}) is expected


def test_between_does_not_match_a_missing_property() -> None:
    assert not matches(one(flt("score", "BETWEEN", "10", highValue="20")), {})


# Groups ------------------------------------------------------------------------------------------


def test_filters_within_a_group_must_all_match() -> None:
    rule = groups([flt("country", "EQ", "France"), flt("lifecyclestage", "EQ", "customer")])
    assert matches(rule, {"country": "France", "lifecyclestage": "customer"})
    assert not matches(rule, {"country": "France", "lifecyclestage": "lead"})


def test_one_matching_group_is_enough() -> None:
    rule = groups([flt("country", "EQ", "France")], [flt("lifecyclestage", "EQ", "customer")])
    assert matches(rule, {"country": "Spain", "lifecyclestage": "customer"})
    assert matches(rule, {"country": "France", "lifecyclestage": "lead"})
    assert not matches(rule, {"country": "Spain", "lifecyclestage": "lead"})


def test_no_groups_match_nothing() -> None:
    assert not matches([], {"country": "France"})


# validate_filter_groups --------------------------------------------------------------------------


def test_valid_groups_are_returned_unchanged() -> None:
    rule = groups(
        [flt("country", "IN", values=["France"]), flt("email", "HAS_PROPERTY")],
        [flt("score", "BETWEEN", "1", highValue="5")],
    )
    assert validate_filter_groups(rule) == rule


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"filters": []}, "must be a list"),
        ([{"filters": []}], "group 0 needs a non-empty 'filters' list"),
        (["country"], "group 0 needs a non-empty 'filters' list"),
        ([{"filters": [{"operator": "EQ", "value": "x"}]}], "filter 0 of group 0 needs a propertyName"),
        (groups([flt("country", "LIKE", "x")]), "unknown operator 'LIKE'"),
        (groups([flt("country", "IN", "France")]), "(IN) needs a 'values' list"),
        (groups([flt("country", "NOT_IN")]), "(NOT_IN) needs a 'values' list"),
        (groups([flt("score", "BETWEEN", "1")]), "(BETWEEN) needs 'value' and 'highValue'"),
        (groups([flt("country", "EQ")]), "(EQ) needs a 'value'"),
        (groups([flt("a", "EQ", "x")], [flt("b", "GT")]), "filter 0 of group 1 (GT) needs a 'value'"),
    ],
)
def test_invalid_groups_are_refused_with_the_first_problem(bad: Any, message: str) -> None:
    with pytest.raises(FilterError) as raised:
        validate_filter_groups(bad)
    assert message in str(raised.value)


# check_contact_eligible --------------------------------------------------------------------------


def test_a_contact_outside_the_filters_is_not_eligible() -> None:
    settings = filters_mode([flt("lifecyclestage", "EQ", "customer")])
    with pytest.raises(ActionFailure) as raised:
        check_contact_eligible(settings, "51", {"lifecyclestage": "lead"})
    assert raised.value.reason == "CONTACT_NOT_ELIGIBLE"
    assert raised.value.details == {"contact_id": "51"}
    assert "51" in raised.value.message


def test_a_contact_inside_the_filters_is_eligible() -> None:
    settings = filters_mode([flt("lifecyclestage", "EQ", "customer")])
    assert check_contact_eligible(settings, "51", {"lifecyclestage": "Customer"}) is None


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"contact_sync": {"mode": "legacy"}},
        {"contact_sync": {"mode": "legacy", "filter_groups": groups([flt("lifecyclestage", "EQ", "customer")])}},
    ],
)
def test_every_contact_is_eligible_outside_filters_mode(settings: dict[str, Any]) -> None:
    assert check_contact_eligible(settings, "51", {"lifecyclestage": "lead"}) is None
