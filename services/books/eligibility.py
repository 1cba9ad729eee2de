"""Which contacts may be synced to QuickBooks: the connection's contact-sync setting."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from services.books.failures import ActionFailure

OPERATORS = (
    "EQ",
    "NEQ",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
    "GT",
    "GTE",
    "LT",
    "LTE",
    "BETWEEN",
)
MODES = ("filters", "legacy")


class FilterError(ValueError):
    """A filter group is not written in HubSpot's CRM-search grammar."""


def validate_filter_groups(groups: Any) -> list[dict[str, Any]]:
    """Check filter groups and return them; raises FilterError with the first problem."""
    if not isinstance(groups, list):
        raise FilterError("filter_groups must be a list of {'filters': [...]} groups")
    for g, group in enumerate(groups):
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or not filters:
            raise FilterError(f"filter group {g} needs a non-empty 'filters' list")
        for f, item in enumerate(filters):
            where = f"filter {f} of group {g}"
            if not isinstance(item, dict) or not item.get("propertyName"):
                raise FilterError(f"{where} needs a propertyName")
            operator = item.get("operator")
            if operator not in OPERATORS:
                raise FilterError(f"{where} has unknown operator {operator!r}")
            if operator in ("IN", "NOT_IN") and not isinstance(item.get("values"), list):
                raise FilterError(f"{where} ({operator}) needs a 'values' list")
            if operator == "BETWEEN" and ("value" not in item or "highValue" not in item):
                raise FilterError(f"{where} (BETWEEN) needs 'value' and 'highValue'")
            if operator not in ("IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY") and "value" not in item:
                raise FilterError(f"{where} ({operator}) needs a 'value'")
    return groups


def matches(groups: list[dict[str, Any]], properties: dict[str, Any]) -> bool:
    """Tell whether properties satisfy the groups: groups are OR'ed, filters within a group AND'ed."""
    return any(all(_matches_filter(item, properties) for item in group["filters"]) for group in groups)


def _present(value: Any) -> bool:
    return value is not None and str(value) != ""


def _number(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    # "NaN" and "Infinity" are names people have, not numbers to compare.
    return number if number.is_finite() else None


def _compare(actual: Any, expected: Any) -> int | None:
    """Compare numerically when both are numbers, else as case-folded text; None when actual is empty."""
    if not _present(actual):
        return None
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    left, right = str(actual).casefold(), str(expected).casefold()
    return (left > right) - (left < right)


def _tokens(value: Any) -> set[str]:
    text = "".join(ch if ch.isalnum() else " " for ch in str(value).casefold())
    return set(text.split())


def _contains_token(actual: Any, expected: Any) -> bool:
    if not _present(actual):
        return False
    wanted = str(expected).casefold().strip("*")
    if str(expected).startswith("*") or str(expected).endswith("*"):
        return wanted in str(actual).casefold()
    return _tokens(expected) <= _tokens(actual)


def _matches_filter(item: dict[str, Any], properties: dict[str, Any]) -> bool:
    operator = item["operator"]
    actual = properties.get(item["propertyName"])
    if operator == "HAS_PROPERTY":
        return _present(actual)
    if operator == "NOT_HAS_PROPERTY":
        return not _present(actual)
    if operator in ("IN", "NOT_IN"):
        found = _present(actual) and any(_compare(actual, value) == 0 for value in item["values"])
        return found if operator == "IN" else not found
    if operator == "CONTAINS_TOKEN":
        return _contains_token(actual, item["value"])
    if operator == "NOT_CONTAINS_TOKEN":
        return not _contains_token(actual, item["value"])
    if operator == "BETWEEN":
        low, high = _compare(actual, item["value"]), _compare(actual, item["highValue"])
        return low is not None and high is not None and low >= 0 and high <= 0
    order = _compare(actual, item["value"])
    if operator == "NEQ":
        return order != 0
    if order is None:
        return False
    return {"EQ": order == 0, "GT": order > 0, "GTE": order >= 0, "LT": order < 0, "LTE": order <= 0}[operator]


def explain(groups: list[dict[str, Any]], properties: dict[str, Any]) -> tuple[bool, str]:
    """Tell whether properties satisfy the groups, and why: the group that matched, or each group's first miss."""
    misses = []
    for number, group in enumerate(groups, start=1):
        failed = next((item for item in group["filters"] if not _matches_filter(item, properties)), None)
        if failed is None:
            return True, f"matches filter group {number}"
        actual = properties.get(failed["propertyName"])
        wanted = failed.get("values", failed.get("value", ""))
        test = f"group {number}: {failed['propertyName']} {failed['operator']} {wanted!r}"
        why = f"is not true of {actual!r}" if _present(actual) else "fails: the contact has no value"
        misses.append(f"{test} {why}")
    return False, "; ".join(misses) or "there are no filter groups"


def contact_sync_mode(settings: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Return the connection's contact-sync mode and its filter groups (legacy when unset)."""
    contact_sync = settings.get("contact_sync") or {}
    return contact_sync.get("mode", "legacy"), contact_sync.get("filter_groups") or []


def check_contact_eligible(settings: dict[str, Any], contact_id: str, properties: dict[str, Any]) -> None:
    """Fail the action with CONTACT_NOT_ELIGIBLE when the contact is outside the sync filters."""
    mode, groups = contact_sync_mode(settings)
    if mode == "filters" and not matches(groups, properties):
        raise ActionFailure(
            "CONTACT_NOT_ELIGIBLE",
            f"Contact {contact_id} does not match the QuickBooks contact sync filters of this connection, "
            "so no customer may be created or used for it. Enroll only contacts that match the sync filters.",
            contact_id=contact_id,
        )
