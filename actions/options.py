"""Options endpoints: the dropdowns a workflow builder sees in the action card."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, jsonify
from marshmallow import ValidationError

from actions.endpoints import json_body, services, validation_error, verify_signature
from actions.errors import ApiError
from actions.schemas import OptionsRequestSchema
from services.bootstrap import Services
from services.quickbooks.client import QuickBooksClient
from services.quickbooks.query import like_pattern
from services.transport.errors import ServiceError

PAGE_SIZE = 100


@dataclass(frozen=True)
class OptionsQuery:
    """What the builder asked for: the portal, the other inputs, the typed text and the page."""

    portal_id: int
    inputs: dict[str, Any]
    text: str
    start: int


@dataclass
class OptionsPage:
    """One page of options."""

    options: list[dict[str, str]]
    after: str | None = None
    searchable: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return HubSpot's answer shape."""
        body: dict[str, Any] = {"options": self.options, "searchable": self.searchable}
        if self.after:
            body["after"] = self.after
        return body


Provider = Callable[[Services, OptionsQuery], OptionsPage]


def option(label: str, value: str, description: str | None = None) -> dict[str, str]:
    """Build one option."""
    item = {"label": label, "value": value}
    if description:
        item["description"] = description
    return item


def company_client(svc: Services, query: OptionsQuery) -> QuickBooksClient | None:
    """Return a client for the chosen company, only if it is connected to the calling portal."""
    realm_id = str(query.inputs.get("quickbooks_account") or "").strip()
    if not realm_id:
        return None
    connection = svc.connections.quickbooks(query.portal_id, realm_id)
    if connection is None or not connection.active:
        return None
    return svc.quickbooks(connection)


def quickbooks_accounts(svc: Services, query: OptionsQuery) -> OptionsPage:
    """List the QuickBooks companies connected to the calling portal (and no other portal's)."""
    connections = svc.connections.quickbooks_of(query.portal_id)
    return OptionsPage(
        [
            option(c.name or f"QuickBooks company {c.realm_id}", c.realm_id, f"Company ID {c.realm_id}")
            for c in connections
            if c.active
        ]
    )


def searched(
    entity: str, name_field: str, where: str = "", describe: Callable[[dict[str, Any]], str | None] | None = None
) -> Provider:
    """Return a provider that lists a company's entities with search and paging."""

    def provide(svc: Services, query: OptionsQuery) -> OptionsPage:
        qbo = company_client(svc, query)
        if qbo is None:
            return OptionsPage([], searchable=True)
        clauses = [where] if where else []
        if query.text:
            clauses.append(f"{name_field} LIKE {like_pattern(query.text)}")
        rows = qbo.query_page(entity, " AND ".join(clauses), start=query.start, size=PAGE_SIZE + 1)
        more = len(rows) > PAGE_SIZE
        options = [
            option(str(row.get(name_field) or row["Id"]), str(row["Id"]), describe(row) if describe else None)
            for row in rows[:PAGE_SIZE]
        ]
        return OptionsPage(options, after=str(query.start + PAGE_SIZE) if more else None, searchable=True)

    return provide


def payment_terms(svc: Services, query: OptionsQuery) -> OptionsPage:
    """List the chosen company's payment terms."""
    qbo = company_client(svc, query)
    if qbo is None:
        return OptionsPage([])
    terms = qbo.terms()
    return OptionsPage(
        [
            option(str(t.get("Name")), str(t["Id"]), f"Due in {t['DueDays']} days" if t.get("DueDays") else None)
            for t in terms
        ]
    )


def _customer_description(row: dict[str, Any]) -> str | None:
    return (row.get("PrimaryEmailAddr") or {}).get("Address")


def _item_description(row: dict[str, Any]) -> str | None:
    return " · ".join(str(v) for v in (row.get("Type"), row.get("Sku")) if v) or None


def _account_description(row: dict[str, Any]) -> str | None:
    return " · ".join(str(v) for v in (row.get("AccountType"), row.get("AccountSubType")) if v) or None


def accounts(*types: str) -> Provider:
    """Return a provider of the chosen company's accounts of some types."""
    where = "AccountType IN (" + ", ".join(f"'{t}'" for t in types) + ")"
    return searched("Account", "Name", where, _account_description)


DEPOSIT_ACCOUNTS = accounts("Bank", "Other Current Asset")
PROVIDERS: dict[str, Provider] = {
    "quickbooks_account": quickbooks_accounts,
    "payment_terms": payment_terms,
    "customer": searched("Customer", "DisplayName", describe=_customer_description),
    "products": searched("Item", "Name", "Type IN ('Service', 'NonInventory', 'Inventory')", _item_description),
    "deposit_account": DEPOSIT_ACCOUNTS,
    "refund_account": DEPOSIT_ACCOUNTS,
    "payment_account": accounts("Bank", "Credit Card"),
    "expense_account": accounts("Expense", "Other Expense", "Cost of Goods Sold"),
    "payment_method": searched("PaymentMethod", "Name"),
    # Company settings (the settings page): where created products book income, and the tax codes outside the US.
    "income_account": accounts("Income", "Other Income"),
    "tax_code": searched("TaxCode", "Name"),
    "payee": searched("Vendor", "DisplayName"),
}


bp = Blueprint("options", __name__)
bp.before_request(verify_signature)


@bp.post("/options/<field_name>")
def options(field_name: str) -> Any:
    """Answer a dropdown's request for options."""
    provider = PROVIDERS.get(field_name)
    if provider is None:
        raise ApiError(f"No options for field {field_name!r}.", 404)
    try:
        body = OptionsRequestSchema().load(json_body())
    except ValidationError as error:
        raise validation_error(error, "options request") from error
    fetch = body["fetchOptions"] or {}
    after = int(fetch.get("after") or 1)
    query = OptionsQuery(
        portal_id=body["origin"]["portalId"],
        inputs=body["inputFields"] or {},
        text=str(fetch.get("q") or "").strip(),
        start=max(after, 1),
    )
    try:
        page = provider(services(), query)
    except ServiceError as error:
        raise ApiError(f"QuickBooks could not list the options: {error}", 502) from error
    return jsonify(page.to_dict())


def register(app: Flask) -> None:
    """Register the options endpoints."""
    app.register_blueprint(bp)
