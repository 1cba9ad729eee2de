"""The company settings page's pieces: the form as a settings document, the dropdowns, the warnings, the CSV."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from actions.options import PROVIDERS, OptionsQuery
from services.books.eligibility import OPERATORS
from services.bootstrap import Services
from services.store.records import Connection
from services.transport.errors import ServiceError

BLANK_FILTER_ROWS = 3  # empty rows offered under the filters for new ones; empty rows are ignored
MAX_FILTER_ROWS = 100
LIST_OPERATORS = ("IN", "NOT_IN")
NO_VALUE_OPERATORS = ("HAS_PROPERTY", "NOT_HAS_PROPERTY")
PRODUCT_ID = re.compile(r"[0-9]{1,64}")
ITEM_ID = re.compile(r"[0-9]{1,32}")


# Defaults for the action card's fields (books.settings.DEFAULTS_OF_INPUTS): setting, label, its dropdown's provider.
DEFAULT_FIELDS = (
    ("default_payment_terms", "Payment terms of invoices", "payment_terms"),
    ("default_deposit_account", "Account payments and sales receipts are deposited to", "deposit_account"),
    ("default_refund_account", "Account refunds are paid from", "refund_account"),
    ("default_payment_account", "Account processing fees are paid from", "payment_account"),
    ("default_expense_account", "Expense account of processing fees", "expense_account"),
    ("default_payee", "Payee of processing fees", "payee"),
)


@dataclass
class Choices:
    """What a company's dropdowns offer; when QuickBooks cannot be asked, the page says so and takes ids."""

    income_accounts: list[dict[str, str]] = field(default_factory=list)
    tax_codes: list[dict[str, str]] = field(default_factory=list)
    items: dict[str, str] = field(default_factory=dict)
    # setting name -> its options
    defaults: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    problem: str = ""


def load_choices(services: Services, portal_id: int, realm_id: str) -> Choices:
    """Ask QuickBooks for the accounts, tax codes and items, through the options endpoints' own providers."""
    query = OptionsQuery(portal_id=portal_id, inputs={"quickbooks_account": realm_id}, text="", start=1)
    try:
        return Choices(
            income_accounts=PROVIDERS["income_account"](services, query).options,
            tax_codes=PROVIDERS["tax_code"](services, query).options,
            items={o["value"]: o["label"] for o in PROVIDERS["products"](services, query).options},
            defaults={name: PROVIDERS[provider](services, query).options for name, _, provider in DEFAULT_FIELDS},
        )
    except ServiceError as error:
        return Choices(problem=f"QuickBooks could not list the company's accounts and tax codes ({error.message}).")


def filter_rows(settings: dict[str, Any]) -> list[dict[str, str]]:
    """Return the contact-sync filters as form rows (group number, property, operator, value, high value)."""
    rows = []
    groups = (settings.get("contact_sync") or {}).get("filter_groups") or []
    for number, group in enumerate(groups, start=1):
        for item in group.get("filters", []):
            value = ", ".join(map(str, item.get("values", []))) if "values" in item else str(item.get("value", ""))
            rows.append(
                {
                    "group": str(number),
                    "property": str(item.get("propertyName", "")),
                    "operator": str(item.get("operator", "EQ")),
                    "value": value,
                    "high": str(item.get("highValue", "")),
                }
            )
    blank = {"group": "1", "property": "", "operator": "EQ", "value": "", "high": ""}
    return rows + [dict(blank) for _ in range(BLANK_FILTER_ROWS)]


def settings_from_form(form: MultiDict[str, str], current: dict[str, Any]) -> dict[str, Any]:
    """Turn the posted form into a settings document (validate it with books.settings.validate_settings)."""
    document = {
        k: v for k, v in current.items() if k not in ("contact_sync", "hold_failures", "hold_hours", *ID_SETTINGS)
    }
    mode = form.get("mode", "legacy")
    groups: dict[int, list[dict[str, Any]]] = {}
    rows = form.get("rows", "0")
    # The form says how many rows it has; never believe more than a page could show.
    for row in range(min(int(rows), MAX_FILTER_ROWS) if rows.isdecimal() else 0):
        prop = form.get(f"filters-{row}-property", "").strip()
        if not prop:
            continue
        operator = form.get(f"filters-{row}-operator", "EQ")
        value = form.get(f"filters-{row}-value", "").strip()
        item: dict[str, Any] = {"propertyName": prop, "operator": operator}
        if operator in LIST_OPERATORS:
            item["values"] = [v.strip() for v in value.split(",") if v.strip()]
        elif operator not in NO_VALUE_OPERATORS:
            item["value"] = value
        if operator == "BETWEEN":
            item["highValue"] = form.get(f"filters-{row}-high", "").strip()
        group = form.get(f"filters-{row}-group", "1")
        groups.setdefault(int(group) if group.isdecimal() else 1, []).append(item)
    document["contact_sync"] = {"mode": mode, "filter_groups": [{"filters": groups[g]} for g in sorted(groups)]}
    if mode == "legacy":
        document["contact_sync"] = {"mode": "legacy"}
    for name in ID_SETTINGS:
        value = form.get(name, "").strip()
        if value:
            document[name] = value
    held = [reason for reason in form.getlist("hold_failures") if reason]
    if held:
        document["hold_failures"] = held
        hours = form.get("hold_hours", "").strip()
        # Not a number: kept as text, so validation names the field instead of guessing.
        document["hold_hours"] = int(hours) if hours.isdecimal() else hours or None
        if document["hold_hours"] is None:
            del document["hold_hours"]
    return document


ID_SETTINGS = ("default_income_account", "default_tax_code", "exempt_tax_code", *(f[0] for f in DEFAULT_FIELDS))


def warnings(connection: Connection, profile: dict[str, Any], settings: dict[str, Any], choices: Choices) -> list[str]:
    """Say which settings will make actions fail, before a workflow finds out."""
    found = []
    if not connection.active:
        found.append(
            "The connection needs reconnecting: every action using this company fails until it is reconnected."
        )
    us = str(profile.get("country") or "US").upper() in ("US", "USA")
    if profile and not us and not settings.get("default_tax_code"):
        found.append(
            f"This company is outside the US ({profile.get('country')}): QuickBooks needs a tax code on every line. "
            "Choose a default tax code, or actions fail with “Tax code not set”."
        )
    if profile.get("custom_txn_numbers"):
        found.append(
            "This company numbers its documents itself (custom transaction numbers): documents the actions create "
            "are numbered HS-… so that a retry can never book one twice."
        )
    account = settings.get("default_income_account")
    if not account:
        found.append("No default income account: actions allowed to create missing products fail until one is chosen.")
    elif choices.income_accounts and account not in {o["value"] for o in choices.income_accounts}:
        found.append(
            f"The default income account ({account}) no longer exists in QuickBooks, or is not an income account."
        )
    offered = {"default_tax_code": choices.tax_codes, "exempt_tax_code": choices.tax_codes, **choices.defaults}
    for name, options in offered.items():
        chosen = settings.get(name)
        if chosen and options and chosen not in {o["value"] for o in options}:
            found.append(f"The {name.replace('_', ' ')} ({chosen}) no longer exists in QuickBooks.")
    return found


@dataclass(frozen=True)
class ImportResult:
    """What a CSV import did."""

    saved: list[tuple[str, str]]
    problems: list[str]


def read_mapping_csv(text: str, limit: int = 5000) -> ImportResult:
    """Read `hubspot_product_id,quickbooks_item_id` rows (a header row is allowed); say which lines are wrong."""
    saved: list[tuple[str, str]] = []
    problems: list[str] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or (number == 1 and cells and not cells[0].isdecimal()):
            continue
        if len(saved) >= limit:
            problems.append(f"only the first {limit} rows are read")
            break
        if len(cells) != 2 or not PRODUCT_ID.fullmatch(cells[0]) or not ITEM_ID.fullmatch(cells[1]):
            problems.append(f"line {number}: expected a HubSpot product id and a QuickBooks item id, got {row!r}")
            continue
        saved.append((cells[0], cells[1]))
    return ImportResult(saved, problems)


OPERATOR_CHOICES = OPERATORS
