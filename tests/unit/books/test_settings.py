"""Company settings: what may be set, and how holds are read."""

from __future__ import annotations

import pytest

from services.books.settings import DEFAULT_HOLD_HOURS, SettingsError, hold_for, validate_settings


def test_held_reasons_and_hours_are_kept_as_given() -> None:
    document = validate_settings({"hold_failures": ["LINE_ITEM_NOT_MATCHED"], "hold_hours": 48}, longest_hold_hours=168)
    assert document == {"hold_failures": ["LINE_ITEM_NOT_MATCHED"], "hold_hours": 48}


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"hold_failures": ["NOT_A_REASON"]}, "hold_failures must be a list"),
        ({"hold_failures": "LINE_ITEM_NOT_MATCHED"}, "hold_failures must be a list"),
        ({"hold_failures": ["EXPIRED"]}, "hold_failures must be a list"),
        ({"hold_hours": 0}, "at least 1"),
        ({"hold_hours": "24"}, "whole number"),
        ({"hold_hours": True}, "whole number"),
        ({"hold_hours": 200}, "must not outlast HubSpot's wait for the callback (168 hours)"),
    ],
)
def test_holds_that_cannot_work_are_refused(settings: dict[str, object], problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        validate_settings(settings, longest_hold_hours=168)
    assert problem in str(refused.value)


def test_a_reason_is_held_for_the_companys_hours_or_a_day() -> None:
    assert hold_for({"hold_failures": ["NO_CONTACT"], "hold_hours": 6}, "NO_CONTACT") == 6
    assert hold_for({"hold_failures": ["NO_CONTACT"]}, "NO_CONTACT") == DEFAULT_HOLD_HOURS
    assert hold_for({"hold_failures": ["NO_CONTACT"]}, "NO_LINE_ITEMS") == 0
    assert hold_for({}, "NO_CONTACT") == 0
