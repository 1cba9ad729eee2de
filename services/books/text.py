"""Text as QuickBooks accepts it in names and descriptions."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """Return a HubSpot property as stripped text ('' for null)."""
    return str(value).strip() if value is not None else ""


def clean_name(name: str, limit: int) -> str:
    """Return a name QuickBooks accepts: ':' separates sub-customers and sub-items, whitespace collapsed."""
    return " ".join(name.replace(":", "-").split())[:limit]
