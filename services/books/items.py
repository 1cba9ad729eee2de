"""Matching HubSpot line items to QuickBooks items, creating missing ones when the builder allowed it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.books.failures import ActionFailure
from services.books.lines import LineFigures
from services.books.money import number
from services.books.run import Run
from services.books.text import clean_name, text
from services.hubspot.client import CrmObject
from services.quickbooks import faults
from services.quickbooks.query import MAX_RESULTS, equals, one_of, select
from services.transport.errors import PermanentError

QUERY_CHUNK = 50
ITEM_NAME_MAX = 100


def item_name(line_item: CrmObject) -> str:
    """Return the QuickBooks item name for a line item (':' is reserved for sub-items; 100 characters)."""
    name = text(line_item.properties.get("name")) or f"HubSpot line item {line_item.id}"
    return clean_name(name, ITEM_NAME_MAX)


def _query_items(run: Run, field: str, values: Sequence[str]) -> list[dict[str, Any]]:
    """Return the active items whose field is one of the values, in as few queries as possible."""
    found: list[dict[str, Any]] = []
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), QUERY_CHUNK):
        chunk = unique[start : start + QUERY_CHUNK]
        found.extend(run.qbo.query(select("Item", one_of(field, chunk), size=MAX_RESULTS)))
    return found


def match_line_items(run: Run, line_items: Sequence[CrmObject], *, create_missing: bool) -> dict[str, str]:
    """Return {line item id: QuickBooks item id}: by product mapping, then SKU, then exact name."""
    ledger, tenant = run.ledger, run.tenant
    product_of = {li.id: text(li.properties.get("hs_product_id")) for li in line_items}
    mapped = ledger.product_mappings(tenant, [p for p in product_of.values() if p])
    matched = {li.id: mapped[product_of[li.id]] for li in line_items if product_of[li.id] in mapped}

    remaining = [li for li in line_items if li.id not in matched]
    skus = {li.id: text(li.properties.get("hs_sku")) for li in remaining}
    if any(skus.values()):
        by_sku = {
            text(item.get("Sku")): str(item["Id"]) for item in _query_items(run, "Sku", [s for s in skus.values() if s])
        }
        matched.update({li.id: by_sku[skus[li.id]] for li in remaining if skus[li.id] in by_sku})

    remaining = [li for li in line_items if li.id not in matched]
    if remaining:
        by_name = {
            text(item.get("Name")).casefold(): str(item["Id"])
            for item in _query_items(run, "Name", [item_name(li) for li in remaining])
        }
        matched.update(
            {li.id: by_name[item_name(li).casefold()] for li in remaining if item_name(li).casefold() in by_name}
        )

    remaining = [li for li in line_items if li.id not in matched]
    if remaining and not create_missing:
        names = ", ".join(f"'{item_name(li)}' (line item {li.id})" for li in remaining)
        raise ActionFailure(
            "LINE_ITEM_NOT_MATCHED",
            f"No QuickBooks product matches {names}. Sync these products to QuickBooks, or let the action "
            "create missing products.",
            line_item_ids=[li.id for li in remaining],
            # What an operator needs to map each product to a QuickBooks item and retry.
            unmatched=[
                {
                    "line_item_id": li.id,
                    "product_id": product_of[li.id],
                    "name": item_name(li),
                    "sku": text(li.properties.get("hs_sku")),
                }
                for li in remaining
            ],
        )
    for li in remaining:
        matched[li.id] = _create_item(run, li)

    # Remember what the look-ups found, so the next execution with these products needs no query.
    for li in line_items:
        product_id = product_of[li.id]
        if product_id and product_id not in mapped:
            ledger.save_product_mapping(tenant, product_id, matched[li.id])
    return matched


def income_account(run: Run) -> str:
    """Return the account new items book their income to (a company setting)."""
    account = text(run.settings.get("default_income_account"))
    if not account:
        raise ActionFailure(
            "SETTINGS_INCOMPLETE",
            "The action may create missing products, but no default income account is set for this "
            "QuickBooks company. Set default_income_account in the company settings.",
        )
    return account


def _create_item(run: Run, line_item: CrmObject) -> str:
    """Create a Service item for a line item (at most once, even across executions)."""
    name = item_name(line_item)
    body: dict[str, Any] = {
        "Name": name,
        "Type": "Service",
        "IncomeAccountRef": {"value": income_account(run)},
    }
    sku = text(line_item.properties.get("hs_sku"))
    if sku:
        body["Sku"] = sku[:100]
    if text(line_item.properties.get("description")):
        body["Description"] = text(line_item.properties.get("description"))[:4000]
    if text(line_item.properties.get("price")):
        # The line items' numbers were checked before matching (lines.check_line_items).
        body["UnitPrice"] = number(LineFigures.of(line_item).unit_price)

    def find_by_name(_started: dict[str, Any] | None = None) -> dict[str, Any] | None:
        found = run.qbo.query(select("Item", equals("Name", name)))
        return {"id": str(found[0]["Id"])} if found else None

    def create(requestid: str) -> dict[str, Any]:
        try:
            return {"id": str(run.qbo.create("Item", body, requestid=requestid)["Id"])}
        except PermanentError as exc:
            # Another execution created it a moment ago: use that one.
            existing = find_by_name() if exc.code == faults.DUPLICATE_NAME else None
            if existing is None:
                raise
            return existing

    # Two executions must not both create the same product: one waits for the other, then finds it.
    with run.locks(f"item:{run.tenant}:{name.casefold()}"):
        return str(run.write_once(f"item:{line_item.id}", create, find_existing=find_by_name)["id"])
