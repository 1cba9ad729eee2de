"""Money as HubSpot sends it and QuickBooks takes it: Decimals, rounded to cents."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
# Larger amounts are not bookkeeping, and would lose cents on their way through JSON.
LARGEST = Decimal("1e12")


class NotAnAmountError(ValueError):
    """A value that should be an amount, price or quantity is not one QuickBooks can take."""


def money(value: Any, default: str = "0") -> Decimal:
    """Parse a HubSpot number (a string or null) as a Decimal; anything else (text, NaN, infinity) is the default."""
    try:
        return strict_money(value, default)
    except NotAnAmountError:
        return Decimal(default)


def strict_money(value: Any, default: str = "0") -> Decimal:
    """Parse a HubSpot number; blank is the default, and text, NaN, infinity or a huge number raise NotAnAmountError."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return Decimal(default)
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        raise NotAnAmountError("is not a number") from None
    if not number.is_finite():
        raise NotAnAmountError("is not a finite number")
    if abs(number) >= LARGEST:
        raise NotAnAmountError(f"is larger than {LARGEST:,.0f}")
    return number


def cents(value: Decimal) -> Decimal:
    """Round to cents the way invoices do."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def number(value: Decimal) -> float | int:
    """Return a JSON number without float noise for whole values."""
    return int(value) if value == value.to_integral_value() else float(value)
