"""The QuickBooks query language: quoting values and building the statements the server sends."""

from __future__ import annotations

from collections.abc import Sequence

# QuickBooks answers at most this many rows per query.
MAX_RESULTS = 1000


def quote(value: object) -> str:
    """Quote a value for the query language (backslash escapes, as Intuit documents)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def like_pattern(text: str) -> str:
    """Return a quoted LIKE pattern that finds ``text`` anywhere ('%' is dropped, it cannot be escaped)."""
    return quote("%" + text.replace("%", "") + "%")


def select(
    entity: str, where: str = "", *, start: int | None = None, size: int | None = None, order_by: str | None = None
) -> str:
    """Return ``SELECT * FROM entity [WHERE ...] [ORDERBY f] [STARTPOSITION n] [MAXRESULTS m]``."""
    statement = f"SELECT * FROM {entity}"
    if where:
        statement += f" WHERE {where}"
    if order_by:
        statement += f" ORDERBY {order_by}"
    if start is not None:
        statement += f" STARTPOSITION {start}"
    if size is not None:
        statement += f" MAXRESULTS {min(size, MAX_RESULTS)}"
    return statement


def equals(field: str, value: object) -> str:
    """Return ``field = 'value'``."""
    return f"{field} = {quote(value)}"


def one_of(field: str, values: Sequence[object]) -> str:
    """Return ``field IN ('a', 'b')``."""
    return f"{field} IN ({', '.join(quote(v) for v in values)})"


def ref(value: str | int, name: str | None = None) -> dict[str, str]:
    """Build a QuickBooks reference object."""
    reference = {"value": str(value)}
    if name:
        reference["name"] = name
    return reference
