"""Per-company settings: what an operator may set and how it is checked."""

from __future__ import annotations

from typing import Any

from services.books.eligibility import MODES, FilterError, validate_filter_groups

# Setting name -> what it holds (shown by `qbo-actions settings show`).
KNOWN_SETTINGS = {
    "contact_sync": 'How contacts become customers: {"mode": "filters" | "legacy", "filter_groups": [...]}',
    "default_income_account": "QuickBooks account id that products created by the actions book income to",
    "default_tax_code": "Tax code id put on taxable lines (companies outside the US)",
    "exempt_tax_code": "Tax code id put on untaxed lines (companies outside the US; default: default_tax_code)",
    # Defaults for the action card's fields, used when a workflow leaves the field empty.
    "default_payment_terms": "Payment terms id of invoices (when the action names none)",
    "default_deposit_account": "Account id payments and sales receipts are deposited to (empty: Undeposited Funds)",
    "default_refund_account": "Account id refund receipts are paid from",
    "default_payment_account": "Account id (Bank or Credit Card) processing fees are paid from",
    "default_expense_account": "Account id processing fees are booked to",
    "default_payee": "Vendor id processing fees are paid to",
    "hold_failures": "Failure reasons held for a person to fix instead of reported at once (a list)",
    "hold_hours": "How long a failure is held before it is reported anyway (default 24)",
}
# Reasons a person can fix and retry while HubSpot waits; the others are reported at once.
HOLDABLE_REASONS = (
    "QUICKBOOKS_NOT_CONNECTED",
    "HUBSPOT_NOT_CONNECTED",
    "CONTACT_NOT_ELIGIBLE",
    "NO_CONTACT",
    "NO_LINE_ITEMS",
    "LINE_ITEM_NOT_MATCHED",
    "INVALID_LINE_ITEM",
    "AMOUNT_MISSING",
    "INVALID_AMOUNT",
    "TAX_CODE_NOT_SET",
    "SETTINGS_INCOMPLETE",
    "CURRENCY_MISMATCH",
    "PAYMENT_TERM_NOT_FOUND",
    "QUICKBOOKS_REJECTED",
    "QUICKBOOKS_UNAVAILABLE",
    "HUBSPOT_UNAVAILABLE",
    "SERVER_UNAVAILABLE",
    "INTERNAL_ERROR",
)
DEFAULT_HOLD_HOURS = 24
# Action input -> the company setting that stands in for it when the workflow leaves it empty.
DEFAULTS_OF_INPUTS = {
    "payment_terms": "default_payment_terms",
    "deposit_account": "default_deposit_account",
    "refund_account": "default_refund_account",
    "payment_account": "default_payment_account",
    "expense_account": "default_expense_account",
    "payee": "default_payee",
}


class SettingsError(ValueError):
    """The settings document is not valid."""


def validate_settings(settings: Any, *, longest_hold_hours: float | None = None) -> dict[str, Any]:
    """Check a settings document and return it; raise SettingsError naming the first problem.

    A hold may not outlast HubSpot's wait for the callback (``longest_hold_hours``, from CALLBACK_EXPIRATION).
    """
    if not isinstance(settings, dict):
        raise SettingsError("settings must be a JSON object")
    unknown = sorted(set(settings) - set(KNOWN_SETTINGS))
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(unknown)} (known: {', '.join(KNOWN_SETTINGS)})")
    contact_sync = settings.get("contact_sync")
    if contact_sync is not None:
        if not isinstance(contact_sync, dict) or contact_sync.get("mode") not in MODES:
            raise SettingsError('contact_sync needs "mode": "filters" or "legacy"')
        if contact_sync["mode"] == "filters":
            try:
                validate_filter_groups(contact_sync.get("filter_groups"))
            except FilterError as exc:
                raise SettingsError(f"contact_sync.filter_groups: {exc}") from exc
            if not contact_sync.get("filter_groups"):
                raise SettingsError("contact_sync in filters mode needs at least one filter group")
    held = settings.get("hold_failures")
    if held is not None and (not isinstance(held, list) or not all(r in HOLDABLE_REASONS for r in held)):
        raise SettingsError(f"hold_failures must be a list of these reasons: {', '.join(HOLDABLE_REASONS)}")
    hours = settings.get("hold_hours")
    if hours is not None:
        if isinstance(hours, bool) or not isinstance(hours, int) or hours < 1:
            raise SettingsError("hold_hours must be a whole number of hours, at least 1")
        if longest_hold_hours is not None and hours > longest_hold_hours:
            raise SettingsError(
                f"hold_hours ({hours}) must not outlast HubSpot's wait for the callback ({longest_hold_hours:g} hours)"
            )
    structured = ("contact_sync", "hold_failures", "hold_hours")
    for key in KNOWN_SETTINGS:
        if key not in structured and key in settings and not isinstance(settings[key], str | int):
            raise SettingsError(f"{key} must be a QuickBooks id (text or number)")
    return {key: (value if key in structured else str(value)) for key, value in settings.items()}


def hold_for(settings: dict[str, Any], reason: str) -> float:
    """Return how many hours a failure of this reason is held (0: reported at once)."""
    if reason not in (settings.get("hold_failures") or []):
        return 0
    return float(settings.get("hold_hours") or DEFAULT_HOLD_HOURS)
