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
}
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


def validate_settings(settings: Any) -> dict[str, Any]:
    """Check a settings document and return it; raise SettingsError naming the first problem."""
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
    for key in KNOWN_SETTINGS:
        if key != "contact_sync" and key in settings and not isinstance(settings[key], str | int):
            raise SettingsError(f"{key} must be a QuickBooks id (text or number)")
    return {key: (str(value) if key != "contact_sync" else value) for key, value in settings.items()}
