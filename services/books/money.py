"""Money as HubSpot sends it and QuickBooks takes it: Decimals, rounded to cents."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")


def money(value: Any, default: str = "0") -> Decimal:
    """Parse a HubSpot number (a string or null) as a Decimal."""
    try:
        text = str(value).strip() if value not in (None, "") else default
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return Decimal(default)


def cents(value: Decimal) -> Decimal:
    """Round to cents the way invoices do."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def number(value: Decimal) -> float | int:
    """Return a JSON number without float noise for whole values."""
    return int(value) if value == value.to_integral_value() else float(value)
