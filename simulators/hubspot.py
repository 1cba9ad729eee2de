"""Local HTTP simulator of the HubSpot APIs the QuickBooks workflow actions use.

It covers CRM object reads, writes and search (v3), associations (v4), the workflow-action
callback completions and action definitions (automation v4), the OAuth install page and token
endpoints, per-portal rate limits, and test controls under ``/_sim/`` (portals, seeded objects,
recorded callbacks and requests, injected faults, settings). State lives in memory in a
:class:`HubSpotSimulator`, one lock guards it.

Run it: ``python -m simulators.hubspot --port 8102 --portal 101:sim-token:sim-refresh``.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeGuard
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

OBJECT_TYPE_IDS = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "products": "0-7",
    "line_items": "0-8",
    "quotes": "0-14",
    "invoices": "0-53",
    "commerce_payments": "0-101",
    "notes": "0-46",
}
_TYPE_BY_ID = {type_id: name for name, type_id in OBJECT_TYPE_IDS.items()}
_SINGULAR = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "products": "product",
    "line_items": "line_item",
    "quotes": "quote",
    "invoices": "invoice",
    "commerce_payments": "commerce_payment",
    "notes": "note",
}
_TYPE_BY_SINGULAR = {singular: name for name, singular in _SINGULAR.items()}

# HUBSPOT_DEFINED association type ids as HubSpot documents them; pairs missing here (commerce
# payments among them) get a stable simulator-chosen id from _association_type_id.
_KNOWN_ASSOCIATION_TYPE_IDS = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("deals", "line_items"): 19,
    ("line_items", "deals"): 20,
    ("deals", "quotes"): 63,
    ("quotes", "deals"): 64,
    ("quotes", "line_items"): 67,
    ("line_items", "quotes"): 68,
    ("quotes", "contacts"): 69,
    ("contacts", "quotes"): 70,
    ("invoices", "contacts"): 177,
    ("contacts", "invoices"): 178,
    ("invoices", "line_items"): 409,
    ("line_items", "invoices"): 410,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "companies"): 190,
    ("companies", "notes"): 189,
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
}

_DEFAULT_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")
_PROPERTY_KINDS = {
    "text": ("string", "text"),
    "number": ("number", "number"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "enum": ("enumeration", "select"),
    "html": ("string", "html"),
}
# What GET /crm/v3/properties/{type} lists. Invoice names and the payment fee/refund/net/method/source
# names are UNCONFIRMED against HubSpot (see the reference notes); they live here only.
_KNOWN_PROPERTIES: dict[str, dict[str, str]] = {
    "contacts": {
        **dict.fromkeys(
            [
                "firstname",
                "lastname",
                "email",
                "company",
                "phone",
                "address",
                "city",
                "state",
                "zip",
                "country",
            ],
            "text",
        ),
        "lifecyclestage": "enum",
    },
    "companies": dict.fromkeys(["name", "domain", "phone", "address", "city", "state", "zip", "country"], "text"),
    "deals": {
        "dealname": "text",
        "amount": "number",
        "deal_currency_code": "enum",
        "closedate": "datetime",
        "pipeline": "enum",
        "dealstage": "enum",
    },
    "products": {"name": "text", "price": "number", "hs_sku": "text", "description": "text"},
    "line_items": {
        "name": "text",
        **dict.fromkeys(["quantity", "price", "amount", "discount", "hs_discount_percentage"], "number"),
        "hs_sku": "text",
        "hs_product_id": "number",
        "description": "text",
        "hs_line_item_currency_code": "enum",
        "hs_tax_rate": "number",
        "hs_tax_amount": "number",
    },
    "quotes": {
        "hs_title": "text",
        "hs_expiration_date": "datetime",
        "hs_status": "enum",
        "hs_currency": "enum",
        "hs_quote_amount": "number",
    },
    "invoices": {
        "hs_currency": "enum",
        "hs_invoice_status": "enum",
        "hs_due_date": "date",
        "hs_amount_billed": "number",
    },
    "commerce_payments": {
        "hs_initial_amount": "number",
        "hs_initiated_date": "datetime",
        "hs_latest_status": "enum",
        "hs_customer_email": "text",
        "hs_currency_code": "enum",
        **dict.fromkeys(["hs_fees_amount", "hs_refunds_amount", "hs_net_amount"], "number"),
        "hs_payment_method_type": "enum",
        "hs_payment_source_app": "enum",
        "hs_payment_source_name": "text",
    },
    "notes": {"hs_note_body": "html", "hs_timestamp": "datetime"},
}

EXECUTION_STATES = ("SUCCESS", "FAIL_CONTINUE", "BLOCK")
OBJECT_BATCH_LIMIT = 100
ASSOCIATION_BATCH_LIMIT = 1000
CALLBACK_BATCH_LIMIT = 100
SEARCH_PAGE_LIMIT = 200
SEARCH_MAX_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 6
_FIRST_OBJECT_ID = 1001
_TOKEN_SCOPES = [
    "oauth",
    "automation",
    "crm.objects.contacts.read",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.line_items.read",
    "crm.objects.quotes.read",
    "e-commerce",
]
_AUTH_DOCS = "https://developers.hubspot.com/docs/methods/auth/oauth-overview"
_API_KEY_DOCS = "https://app.hubspot.com/l/api-key/"
DEFAULT_CLIENT_ID = "sim-hs-client"
DEFAULT_DEVELOPER_API_KEY = "sim-developer-key"
DEFINITIONS_PAGE_DEFAULT = 10
DEFINITIONS_PAGE_LIMIT = 100
_FIRST_DEFINITION_ID = 10860211
# What HubSpot fills in on a stored definition when the request leaves it out (the official client's
# PublicActionDefinition requires functions, published, labels, inputFields and objectTypes).
_DEFINITION_DEFAULTS: dict[str, Any] = {
    "published": False,
    "objectTypes": [],
    "inputFields": [],
    "outputFields": [],
    "labels": {},
    "functions": [],
}
# Definitions and timeline event templates are managed with the developer API key, not a portal's OAuth token.
# Timeline lives under both prefixes: /crm/v3/timeline (older guides) and /integrators/timeline/v3 (HubSpot's
# current OpenAPI spec, which hubspot-api-client 12 calls).
_DEVELOPER_PATH = re.compile(r"^/(automation/v4/actions|crm/v3/timeline|integrators/timeline/v3)/\d+(/|$)")
# Browser pages: neither authenticated, rate-limited nor subject to injected API faults.
_PAGE_PATHS = ("/oauth/authorize",)
_FAULT_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
}


class SimError(Exception):
    """An error answer: HTTP status, JSON body and extra headers."""

    def __init__(self, status: int, body: dict, headers: Mapping[str, str] | None = None):
        super().__init__(body.get("message") or body.get("error") or str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def error_body(message: str, category: str, **extra: Any) -> dict:
    """Return a HubSpot-style error body with a fresh correlation id."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def rate_limit_body() -> dict:
    """Return the body HubSpot sends with a 429."""
    return {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": "SECONDLY",
    }


def _validation_error(message: str) -> SimError:
    """Return a 400 VALIDATION_ERROR."""
    return SimError(400, error_body(message, "VALIDATION_ERROR"))


def _not_found() -> SimError:
    """Return HubSpot's 404 for a single object read or write."""
    return SimError(404, error_body("Object not found. objectId are usually numeric.", "OBJECT_NOT_FOUND"))


def _now_iso() -> str:
    """Return the current UTC time as HubSpot formats timestamps."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _canonical_type(name: str) -> str | None:
    """Return the canonical type name for a plural name, singular name or type id (``0-3``), or None."""
    key = str(name).strip().lower()
    return key if key in OBJECT_TYPE_IDS else _TYPE_BY_ID.get(key) or _TYPE_BY_SINGULAR.get(key)


def resolve_object_type(name: str) -> str:
    """Return the canonical type name of ``name`` or raise HubSpot's 400 for an unknown type."""
    canonical = _canonical_type(name)
    if canonical is None:
        raise _validation_error(f"Unable to infer object type from: {name}")
    return canonical


def _association_type_id(from_type: str, to_type: str) -> int:
    """Return the HUBSPOT_DEFINED association type id from one canonical type to another."""
    known = _KNOWN_ASSOCIATION_TYPE_IDS.get((from_type, to_type))
    if known is not None:
        return known
    order = list(OBJECT_TYPE_IDS)
    return 900 + 10 * order.index(from_type) + order.index(to_type)


def _type_for_association_id(from_type: str, type_id: Any) -> str:
    """Return the target type of an association type id used from ``from_type``."""
    for to_type in OBJECT_TYPE_IDS:
        if _association_type_id(from_type, to_type) == type_id:
            return to_type
    raise _validation_error(f"{type_id} is not a valid association type id for {from_type}")


def _association_types(from_type: str, to_type: str) -> list[dict]:
    """Return the v4 associationTypes list of a default association."""
    return [{"category": "HUBSPOT_DEFINED", "typeId": _association_type_id(from_type, to_type), "label": None}]


def _stringify(value: Any) -> str | None:
    """Store a property value as HubSpot does: as a string (booleans lower-case), or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_numeric_id(object_id: Any) -> str:
    """Return an object id as a string, insisting that it is numeric as HubSpot ids are."""
    text = str(object_id)
    if not text.isdigit():
        raise _validation_error(f"Object ids are numeric strings, got {object_id!r}")
    return text


def _parse_offset(after: Any) -> int:
    """Return the offset an ``after`` cursor stands for (the simulator's cursors are offsets)."""
    if after in (None, ""):
        return 0
    if not str(after).isdigit():
        raise _validation_error(f"Invalid after cursor: {after}")
    return int(after)


def _parse_limit(limit: Any, default: int, maximum: int) -> int:
    """Return a page size between 1 and ``maximum``."""
    if limit in (None, ""):
        return default
    try:
        value = int(limit)
    except (TypeError, ValueError):
        raise _validation_error(f"Invalid limit: {limit}") from None
    if not 0 < value <= maximum:
        raise _validation_error(f"limit must be between 1 and {maximum}, got {value}")
    return value


def redirect_url(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """Return ``redirect_uri`` with ``params`` (those not None) added to its query string."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(name, value) for name, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _is_web_url(value: str | None) -> TypeGuard[str]:
    """Return whether a redirect URI is an absolute http(s) URL."""
    if not value:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _approval_target(value: Any) -> int | str | None:
    """Return an ``auto_approve_portal`` value: None (show the page), ``"deny"``, or a portal id."""
    if value in (None, ""):
        return None
    return "deny" if value == "deny" else int(value)


_SETTING_KINDS: dict[str, Callable[[Any], Any]] = {
    "limit_per_10s": int,
    "search_limit_per_s": int,
    "send_retry_after": bool,
    "client_id": str,
    "developer_api_key": str,
    "auto_approve_portal": _approval_target,
}


# --- Action definitions --------------------------------------------------------------------------


def _is_list_of(value: Any, kind: type | tuple[type, ...]) -> bool:
    """Return whether ``value`` is a JSON array whose items are all of ``kind``."""
    return isinstance(value, list) and all(isinstance(item, kind) for item in value)


# Field name -> (check, what HubSpot expects); only the fields this simulator checks.
_DEFINITION_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "actionUrl": (lambda value: isinstance(value, str) and bool(value.strip()), "a non-empty string"),
    "published": (lambda value: isinstance(value, bool), "a boolean"),
    "objectTypes": (lambda value: _is_list_of(value, str), "an array of strings"),
    "inputFields": (lambda value: _is_list_of(value, Mapping), "an array of objects"),
    "outputFields": (lambda value: _is_list_of(value, Mapping), "an array of objects"),
    "labels": (
        lambda value: isinstance(value, Mapping) and all(isinstance(item, Mapping) for item in value.values()),
        "an object of per-language label objects",
    ),
    "functions": (lambda value: _is_list_of(value, Mapping), "an array of objects"),
}


def check_definition(body: Mapping, creating: bool) -> dict:
    """Return an action definition's writable fields, or raise the 400 HubSpot answers for a bad one."""
    if creating and "actionUrl" not in body:
        raise _validation_error("Some required fields were not set: [actionUrl]")
    for name, (is_valid, expected) in _DEFINITION_FIELDS.items():
        if name in body and not is_valid(body[name]):
            raise _validation_error(f"Invalid input JSON: {name} must be {expected}, got {body[name]!r}")
    # id and revisionId belong to HubSpot; a client sending them back does not change them.
    return {name: copy.deepcopy(value) for name, value in body.items() if name not in ("id", "revisionId")}


# --- Search filters ------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_TOKEN_SEPARATORS = re.compile(r"[\s,;:/|()]+")
_VALUE_OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
_VALUES_OPERATORS = {"IN", "NOT_IN"}


def _text(value: Any) -> str:
    """Return a filter value as text the way HubSpot stores it."""
    return _stringify(value) or ""


def _as_number(value: Any) -> float | None:
    """Return a number, or an ISO date as epoch milliseconds, so dates compare with ms timestamps."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if _NUMBER.match(text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000


def _is_set(actual: str | None) -> TypeGuard[str]:
    """Return whether a property has a value (HubSpot treats an empty string as unset)."""
    return actual is not None and actual != ""


def _order(actual: str, expected: Any) -> int:
    """Compare numerically when both sides are numbers or dates, else as case-insensitive text."""
    left_number, right_number = _as_number(actual), _as_number(expected)
    if left_number is not None and right_number is not None:
        return (left_number > right_number) - (left_number < right_number)
    left, right = actual.casefold(), _text(expected).casefold()
    return (left > right) - (left < right)


def _equals(actual: str | None, expected: Any) -> bool:
    """Return whether a set property equals a filter value (case-insensitive, numbers by value)."""
    return _is_set(actual) and _order(actual, expected) == 0


def _contains_token(actual: str | None, token: Any) -> bool:
    """Match a token (``*`` is a wildcard) against the whole value or any of its words."""
    if not _is_set(actual):
        return False
    text = actual.casefold()
    pattern = re.compile(".*".join(re.escape(part) for part in _text(token).casefold().split("*")))
    return any(pattern.fullmatch(word) for word in [text, *_TOKEN_SEPARATORS.split(text)])


def _between(actual: str | None, flt: Mapping) -> bool:
    """Return whether a set property lies within value..highValue, bounds included."""
    return _is_set(actual) and _order(actual, flt["value"]) >= 0 and _order(actual, flt["highValue"]) <= 0


def _compared(test: Callable[[int], bool]) -> Callable[[str | None, Mapping], bool]:
    """Build an ordering operator; unset properties never match one."""
    return lambda actual, flt: _is_set(actual) and test(_order(actual, flt["value"]))


# Negative operators (NEQ, NOT_IN, NOT_CONTAINS_TOKEN, NOT_HAS_PROPERTY) match unset properties.
_OPERATORS: dict[str, Callable[[str | None, Mapping], bool]] = {
    "EQ": lambda actual, flt: _equals(actual, flt["value"]),
    "NEQ": lambda actual, flt: not _equals(actual, flt["value"]),
    "LT": _compared(lambda order: order < 0),
    "LTE": _compared(lambda order: order <= 0),
    "GT": _compared(lambda order: order > 0),
    "GTE": _compared(lambda order: order >= 0),
    "BETWEEN": _between,
    "IN": lambda actual, flt: any(_equals(actual, value) for value in flt["values"]),
    "NOT_IN": lambda actual, flt: not any(_equals(actual, value) for value in flt["values"]),
    "HAS_PROPERTY": lambda actual, flt: _is_set(actual),
    "NOT_HAS_PROPERTY": lambda actual, flt: not _is_set(actual),
    "CONTAINS_TOKEN": lambda actual, flt: _contains_token(actual, flt["value"]),
    "NOT_CONTAINS_TOKEN": lambda actual, flt: not _contains_token(actual, flt["value"]),
}


def check_filter(flt: Any) -> None:
    """Raise ValueError unless ``flt`` is a filter HubSpot would accept."""
    if not isinstance(flt, Mapping) or not flt.get("propertyName"):
        raise ValueError(f"Each filter needs a propertyName: {flt!r}")
    operator = flt.get("operator")
    if operator not in _OPERATORS:
        raise ValueError(f"Unknown filter operator {operator!r}; expected one of {', '.join(_OPERATORS)}")
    if operator in _VALUE_OPERATORS and flt.get("value") is None:
        raise ValueError(f"Operator {operator} needs a value")
    if operator == "BETWEEN" and (flt.get("value") is None or flt.get("highValue") is None):
        raise ValueError("Operator BETWEEN needs value and highValue")
    if operator in _VALUES_OPERATORS and not isinstance(flt.get("values"), list):
        raise ValueError(f"Operator {operator} needs a values list")


def evaluate_filter_groups(filter_groups: Iterable[Mapping] | None, properties: Mapping[str, str | None]) -> bool:
    """Return whether properties match filterGroups: groups OR'ed, filters in a group AND'ed."""
    groups = list(filter_groups or [])
    if not groups:
        return True
    return any(all(_filter_matches(flt, properties) for flt in group.get("filters", [])) for group in groups)


def _filter_matches(flt: Mapping, properties: Mapping[str, str | None]) -> bool:
    """Return whether one checked filter matches the properties."""
    check_filter(flt)
    return _OPERATORS[flt["operator"]](properties.get(flt["propertyName"]), flt)


def _check_filter_groups(groups: Any) -> None:
    """Raise a 400 for filterGroups HubSpot would reject."""
    if not isinstance(groups, list) or len(groups) > SEARCH_MAX_GROUPS:
        raise _validation_error(f"filterGroups must be a list of at most {SEARCH_MAX_GROUPS} groups")
    for group in groups:
        filters = group.get("filters") if isinstance(group, Mapping) else None
        if not isinstance(filters, list) or len(filters) > SEARCH_MAX_FILTERS_PER_GROUP:
            raise _validation_error(f"Each filter group needs at most {SEARCH_MAX_FILTERS_PER_GROUP} filters")
        for flt in filters:
            try:
                check_filter(flt)
            except ValueError as exc:
                raise _validation_error(str(exc)) from None


def _sort_key(value: str | None) -> tuple:
    """Order unset values last, numbers (and dates) by value, text case-insensitively."""
    number = _as_number(value)
    return (value is None, number is None, number or 0.0, (value or "").casefold())


def _property_sort_key(name: str | None) -> Callable[[dict], tuple]:
    """Return the sort key that orders records by the property ``name``."""

    def key(record: dict) -> tuple:
        return _sort_key(record["properties"].get(name))

    return key


def _sort_records(records: list[dict], sorts: Any) -> list[dict]:
    """Apply HubSpot ``sorts`` (``{"propertyName", "direction"}`` or ``"-name"``); default by id."""
    ordered = sorted(records, key=lambda record: int(record["id"]))
    for spec in reversed(sorts or []):
        if isinstance(spec, str):
            name, descending = spec.lstrip("-"), spec.startswith("-")
        else:
            name, descending = spec.get("propertyName"), spec.get("direction") == "DESCENDING"
        ordered.sort(key=_property_sort_key(name), reverse=descending)
    return ordered


# --- Properties and their values -----------------------------------------------------------------

PROPERTY_TYPES = ("string", "number", "date", "datetime", "enumeration", "bool")
# The field types HubSpot accepts for each property type.
_FIELD_TYPES = {
    "string": ("text", "textarea", "html", "phonenumber", "file"),
    "number": ("number",),
    "date": ("date",),
    "datetime": ("date",),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox"),
    "bool": ("booleancheckbox",),
}
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PROPERTY_FIELDS = ("name", "label", "type", "fieldType", "groupName")
# What PATCH /crm/v3/properties/{type}/{name} may change.
_UPDATABLE_PROPERTY_FIELDS = (
    "label",
    "type",
    "fieldType",
    "groupName",
    "description",
    "options",
    "displayOrder",
    "hidden",
)
# HubSpot computes these; an integration cannot set them.
_READ_ONLY_PROPERTIES = frozenset({"hs_object_id", "hs_lastmodifieddate"})
_BOOL_OPTIONS = [
    {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False, "description": ""},
    {"label": "No", "value": "false", "displayOrder": 1, "hidden": False, "description": ""},
]
# Error codes of invalid property values. INVALID_OPTION, INVALID_DATE and PROPERTY_DOESNT_EXIST are
# HubSpot's; the number, boolean and datetime codes are UNCONFIRMED and live here only.
INVALID_NUMBER = "INVALID_NUMBER"
INVALID_BOOLEAN = "INVALID_BOOLEAN"
INVALID_DATETIME = "INVALID_DATETIME"
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH_MS = re.compile(r"^-?\d+$")
_DAY_MS = 86_400_000


def _builtin_group(object_type: str) -> dict:
    """Return the property group HubSpot ships for a type (``dealinformation`` ...)."""
    singular = _SINGULAR[object_type]
    return {
        "name": f"{singular.replace('_', '')}information",
        "label": f"{singular.replace('_', ' ').capitalize()} information",
        "displayOrder": -1,
        "archived": False,
    }


def _property_view(name: str, label: str, value_type: str, field_type: str, group: str) -> dict:
    """Return a property definition with the fields HubSpot always answers."""
    return {
        "name": name,
        "label": label,
        "type": value_type,
        "fieldType": field_type,
        "groupName": group,
        "description": "",
        "options": [],
        "displayOrder": -1,
        "hidden": False,
        "formField": False,
        "hasUniqueValue": False,
        "calculated": False,
        "externalOptions": False,
        "archived": False,
    }


def _builtin_properties(object_type: str) -> dict[str, dict]:
    """Return the HubSpot-defined properties the simulator knows for a type, by name."""
    kinds = {
        **_KNOWN_PROPERTIES[object_type],
        "hs_object_id": "number",
        "createdate": "datetime",
        "hs_lastmodifieddate": "datetime",
    }
    group = _builtin_group(object_type)["name"]
    found = {}
    for name, kind in kinds.items():
        label = name.removeprefix("hs_").replace("_", " ").capitalize()
        view = _property_view(name, label, *_PROPERTY_KINDS[kind], group)
        read_only = name in _READ_ONLY_PROPERTIES
        view["hubspotDefined"] = True
        view["modificationMetadata"] = {"archivable": False, "readOnlyDefinition": True, "readOnlyValue": read_only}
        found[name] = view
    return found


def _is_name(value: Any) -> TypeGuard[str]:
    """Return whether a property or group name is one HubSpot accepts."""
    return isinstance(value, str) and _PROPERTY_NAME.match(value) is not None


def check_group(body: Mapping) -> dict:
    """Return a property group as stored, or raise the 400 HubSpot answers for a bad one."""
    missing = [name for name in ("name", "label") if not isinstance(body.get(name), str) or not body[name]]
    if missing:
        raise _validation_error(f"Some required fields were not set: [{', '.join(missing)}]")
    if not _is_name(body["name"]):
        raise _validation_error(f"Invalid group name {body['name']!r}: use lower-case letters, digits and underscores")
    order = body.get("displayOrder", -1)
    if not isinstance(order, int) or isinstance(order, bool):
        raise _validation_error(f"displayOrder must be an integer, got {order!r}")
    return {"name": body["name"], "label": body["label"], "displayOrder": order, "archived": False}


def _checked_option(item: Any, order: int) -> dict:
    """Return one option of an enumeration as stored, or raise a 400."""
    if not isinstance(item, Mapping) or not all(isinstance(item.get(key), str) for key in ("label", "value")):
        raise _validation_error(f"Each option needs a string label and value, got {item!r}")
    if not item["label"] or not item["value"]:
        raise _validation_error(f"Option label and value must not be empty, got {item!r}")
    return {
        "label": item["label"],
        "value": item["value"],
        "displayOrder": item.get("displayOrder", order),
        "hidden": bool(item.get("hidden", False)),
        "description": item.get("description") or "",
    }


def _checked_options(value_type: str, options: Any) -> list[dict]:
    """Return a property's options: required for enumerations, Yes/No by default for booleans, else none."""
    if value_type not in ("enumeration", "bool"):
        return []
    if options in (None, []):
        if value_type == "bool":
            return copy.deepcopy(_BOOL_OPTIONS)
        raise _validation_error("Enumeration properties need at least one option")
    if not isinstance(options, list):
        raise _validation_error("options must be a list")
    checked = [_checked_option(item, order) for order, item in enumerate(options)]
    values = [option["value"] for option in checked]
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise _validation_error(f"Option values must be unique, repeated: {repeated}")
    return checked


def check_property_fields(fields: Mapping, groups: Iterable[str]) -> dict:
    """Check a property's type, field type, options and group; return the definition's stored fields."""
    value_type, field_type = fields["type"], fields["fieldType"]
    if value_type not in PROPERTY_TYPES:
        raise _validation_error(f"Invalid type {value_type!r}: expected one of {', '.join(PROPERTY_TYPES)}")
    if field_type not in _FIELD_TYPES[value_type]:
        allowed = ", ".join(_FIELD_TYPES[value_type])
        raise _validation_error(f"fieldType {field_type!r} does not suit type {value_type}: use one of {allowed}")
    if not isinstance(fields["groupName"], str) or fields["groupName"] not in set(groups):
        raise _validation_error(f"Property group {fields['groupName']} does not exist")
    description = fields.get("description") or ""
    if not isinstance(description, str) or not isinstance(fields["label"], str) or not fields["label"]:
        raise _validation_error("label must be a non-empty string and description a string")
    view = _property_view(fields["name"], fields["label"], value_type, field_type, fields["groupName"])
    view["description"] = description
    view["options"] = _checked_options(value_type, fields.get("options"))
    view["displayOrder"] = fields.get("displayOrder", -1)
    view["hidden"] = bool(fields.get("hidden", False))
    return view


def check_new_property(body: Mapping, groups: Iterable[str]) -> dict:
    """Return a property to create as stored (without timestamps), or raise the 400 HubSpot answers."""
    missing = [name for name in _PROPERTY_FIELDS if not isinstance(body.get(name), str) or not body[name]]
    if missing:
        raise _validation_error(f"Some required fields were not set: [{', '.join(missing)}]")
    if not _is_name(body["name"]):
        raise _validation_error(
            f"Invalid property name {body['name']!r}: use lower-case letters, digits and underscores, "
            "starting with a letter"
        )
    return check_property_fields(body, groups)


class _InvalidValue(ValueError):
    """A property value HubSpot refuses, with its error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _checked_number(definition: Mapping, text: str) -> str:
    """Accept a decimal number."""
    if not _NUMBER.match(text.strip()):
        raise _InvalidValue(INVALID_NUMBER, f"{text} was not a valid number.")
    return text.strip()


def _checked_bool(definition: Mapping, text: str) -> str:
    """Accept true or false (any case), stored lower-case."""
    if text.lower() not in ("true", "false"):
        raise _InvalidValue(INVALID_BOOLEAN, f"{text} was not a valid boolean: use true or false.")
    return text.lower()


def _checked_option_value(definition: Mapping, text: str) -> str:
    """Accept one of the property's option values (several, ``;``-separated, for checkboxes)."""
    allowed = [option["value"] for option in definition["options"]]
    if not allowed:
        # HubSpot-defined enumerations whose options the simulator does not know take any value.
        return text
    values = text.split(";") if definition["fieldType"] == "checkbox" else [text]
    bad = [value for value in values if value not in allowed]
    if bad:
        raise _InvalidValue("INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{', '.join(allowed)}]")
    return text


def _epoch_moment(text: str) -> datetime | None:
    """Return the UTC moment of epoch milliseconds, or None when out of range."""
    try:
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _checked_date(definition: Mapping, text: str) -> str:
    """Accept ``YYYY-MM-DD`` or midnight UTC in epoch milliseconds; store ``YYYY-MM-DD``."""
    if _DATE_ONLY.match(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise _InvalidValue("INVALID_DATE", f"{text} is not a valid date.") from None
    moment = _epoch_moment(text) if _EPOCH_MS.match(text) else None
    if moment is None:
        raise _InvalidValue("INVALID_DATE", f"{text} is not a valid date: use YYYY-MM-DD or midnight UTC in ms.")
    if int(text) % _DAY_MS:
        clock = f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"
        raise _InvalidValue("INVALID_DATE", f"{text} is at {clock} UTC, not midnight!")
    return moment.date().isoformat()


def _iso(moment: datetime) -> str:
    """Format a moment as HubSpot does: UTC, milliseconds, ``Z``."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_moment(text: str) -> datetime | None:
    """Return the moment of epoch milliseconds or an ISO-8601 date or datetime, or None."""
    if _EPOCH_MS.match(text):
        return _epoch_moment(text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _checked_datetime(definition: Mapping, text: str) -> str:
    """Accept epoch milliseconds or ISO-8601; store ISO-8601 UTC."""
    moment = _parse_moment(text)
    if moment is None:
        raise _InvalidValue(INVALID_DATETIME, f"{text} is not a valid datetime: use ISO-8601 or epoch ms.")
    return _iso(moment)


_VALUE_CHECKS: dict[str, Callable[[Mapping, str], str]] = {
    "number": _checked_number,
    "bool": _checked_bool,
    "enumeration": _checked_option_value,
    "date": _checked_date,
    "datetime": _checked_datetime,
}


def _checked_value(definition: Mapping, raw: Any) -> str:
    """Return a property value as HubSpot stores it; an empty string (or null) clears the value."""
    text = _stringify(raw) or ""
    check = _VALUE_CHECKS.get(definition["type"])
    return check(definition, text) if text and check else text


def checked_values(catalog: Mapping[str, dict], properties: Mapping) -> tuple[dict[str, str], list[tuple]]:
    """Return the values to store and the problems ``(name, code, message)`` of the ones HubSpot refuses."""
    values: dict[str, str] = {}
    problems: list[tuple] = []
    for name, raw in properties.items():
        definition = catalog.get(name)
        if definition is None:
            problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
        elif name in _READ_ONLY_PROPERTIES:
            problems.append((name, "READ_ONLY_VALUE", f"{name} is a read only property; its value cannot be set."))
        else:
            try:
                values[name] = _checked_value(definition, raw)
            except _InvalidValue as exc:
                problems.append((name, exc.code, str(exc)))
    return values, problems


def invalid_properties(problems: Iterable[tuple]) -> SimError:
    """Return the 400 HubSpot answers when property values are not valid (the whole request fails)."""
    problems = list(problems)
    details = [
        {"isValid": False, "message": message, "error": code, "name": name, "localizedErrorMessage": message}
        for name, code, message in problems
    ]
    errors = [
        {"message": message, "code": code, "context": {"propertyName": [name]}} for name, code, message in problems
    ]
    message = f"Property values were not valid: {json.dumps(details, separators=(',', ':'))}"
    return SimError(400, error_body(message, "VALIDATION_ERROR", errors=errors))


def _batch_error(category: str, message: str, context: Mapping[str, list[str]]) -> dict:
    """Return one entry of a 207 answer's ``errors``."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": dict(context),
        "errors": [],
        "links": {},
    }


def _batch_answer(results: list, errors: list, started: str, success: int) -> tuple[int, dict]:
    """Return ``success`` with the results, or 207 with the errors when some inputs failed."""
    answer = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}
    if not errors:
        return success, answer
    return 207, {**answer, "numErrors": len(errors), "errors": errors}


def _batch_inputs(body: Mapping, limit: int) -> list[Mapping]:
    """Return a batch request's ``inputs`` (objects), enforcing the batch size."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(item, Mapping) for item in inputs):
        raise _validation_error("inputs must be a list of objects")
    if len(inputs) > limit:
        raise _validation_error(f"Batch input size must be at most {limit}, got {len(inputs)}")
    return inputs


def _history_entries(record: dict, name: str) -> list[dict]:
    """Return the values a property of a record had, oldest first."""
    return [dict(entry) for entry in record.get("history", {}).get(name, [])]


# --- Timeline ------------------------------------------------------------------------------------

TIMELINE_TOKEN_TYPES = ("string", "number", "date", "enumeration")
TIMELINE_BATCH_LIMIT = 100
_FIRST_TEMPLATE_ID = 1001001


def _checked_token(token: Any) -> dict:
    """Return a template token as stored, or raise the 400 HubSpot answers for a bad one."""
    if not isinstance(token, Mapping):
        raise _validation_error(f"Each token must be an object, got {token!r}")
    for key in ("name", "label"):
        if not isinstance(token.get(key), str) or not token[key]:
            raise _validation_error(f"Each token needs a non-empty {key}: {dict(token)!r}")
    if token.get("type") not in TIMELINE_TOKEN_TYPES:
        raise _validation_error(f"Token {token['name']} type must be one of {', '.join(TIMELINE_TOKEN_TYPES)}")
    stored = {key: copy.deepcopy(token[key]) for key in ("name", "label", "type", "objectPropertyName") if key in token}
    if token["type"] == "enumeration":
        options = token.get("options")
        if not isinstance(options, list) or not options:
            raise _validation_error(f"Enumeration token {token['name']} needs options")
        stored["options"] = [_checked_token_option(option) for option in options]
    return stored


def _checked_token_option(option: Any) -> dict:
    """Return an enumeration token's option ``{value, label}``, or raise a 400."""
    if not isinstance(option, Mapping) or not all(isinstance(option.get(key), str) for key in ("value", "label")):
        raise _validation_error(f"Each token option needs a string value and label, got {option!r}")
    return {"value": option["value"], "label": option["label"]}


def check_template(body: Mapping, creating: bool) -> dict:
    """Return an event template's writable fields, or raise the 400 HubSpot answers for a bad one."""
    required = ("name", "objectType", "tokens") if creating else ("name", "tokens")
    missing = [name for name in required if body.get(name) in (None, "")]
    if missing:
        raise _validation_error(f"Some required fields were not set: [{', '.join(missing)}]")
    if not isinstance(body["name"], str) or not isinstance(body["tokens"], list):
        raise _validation_error("name must be a string and tokens a list")
    fields: dict[str, Any] = {"name": body["name"], "tokens": [_checked_token(token) for token in body["tokens"]]}
    names = [token["name"] for token in fields["tokens"]]
    if len(set(names)) != len(names):
        raise _validation_error(f"Token names must be unique: {names}")
    for key in ("headerTemplate", "detailTemplate"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise _validation_error(f"{key} must be a string")
        fields[key] = body.get(key)
    if creating:
        fields["objectType"] = resolve_object_type(str(body["objectType"]))
    return fields


def _checked_token_value(token: Mapping, raw: Any) -> str:
    """Return an event's token value as a string, or raise ValueError when it does not suit the token's type."""
    text = _stringify(raw) or ""
    kind = token["type"]
    if kind == "number" and not _NUMBER.match(text):
        raise ValueError(f"Token {token['name']} must be a number, got {text!r}")
    if kind == "date" and _parse_moment(text) is None:
        raise ValueError(f"Token {token['name']} must be a date (epoch ms or ISO-8601), got {text!r}")
    if kind == "enumeration" and text not in [option["value"] for option in token["options"]]:
        raise ValueError(f"Token {token['name']} must be one of its option values, got {text!r}")
    return text


def checked_event_tokens(template: Mapping, tokens: Any) -> dict[str, str]:
    """Return an event's tokens as strings, or raise HubSpot's 400 for undeclared or ill-typed ones."""
    if not isinstance(tokens, Mapping):
        raise _validation_error("tokens must be an object")
    declared = {token["name"]: token for token in template["tokens"]}
    undeclared = sorted(set(tokens) - set(declared))
    if undeclared:
        raise _validation_error(f"Event template {template['id']} does not define the tokens {undeclared}")
    try:
        return {name: _checked_token_value(declared[name], value) for name, value in tokens.items()}
    except ValueError as exc:
        raise _validation_error(str(exc)) from None


def _event_timestamp(raw: Any) -> str:
    """Return an event's timestamp (now when absent) as ISO-8601, or raise a 400."""
    if raw in (None, ""):
        return _now_iso()
    moment = _parse_moment(str(raw))
    if moment is None:
        raise _validation_error(f"Invalid timestamp {raw!r}: use ISO-8601 or epoch milliseconds")
    return _iso(moment)


# --- State ---------------------------------------------------------------------------------------


@dataclass
class _Token:
    """An access token and when it stops working (simulator clock)."""

    portal_id: int
    expires_at: float


@dataclass
class _Portal:
    """One HubSpot account: its objects, associations, refresh token and rate-limit windows."""

    portal_id: int
    refresh_token: str | None
    expires_in: int
    objects: dict[str, dict[str, dict]] = field(default_factory=dict)
    links: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    next_id: int = _FIRST_OBJECT_ID
    refreshes: int = 0
    recent_requests: deque = field(default_factory=deque)
    recent_searches: deque = field(default_factory=deque)
    groups: dict[str, dict[str, dict]] = field(default_factory=dict)
    properties: dict[str, dict[str, dict]] = field(default_factory=dict)
    events: dict[tuple[str, str], dict] = field(default_factory=dict)


@dataclass
class Fault:
    """A canned answer for the next ``remaining`` requests whose method and path match."""

    method: str
    path: re.Pattern
    status: int | None
    remaining: int
    body: Any = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        """Return whether the fault applies to a request."""
        return self.method in ("*", method.upper()) and self.path.search(path) is not None


def _window_full(times: deque, now: float, span: float, limit: int) -> bool:
    """Drop timestamps older than ``span`` and return whether ``limit`` remain."""
    while times and now - times[0] >= span:
        times.popleft()
    return len(times) >= limit


def _project(record: dict, names: Iterable[str]) -> dict:
    """Return the public view of an object with the default and the requested properties."""
    wanted = dict.fromkeys([*_DEFAULT_PROPERTIES, *names])
    return {
        "id": record["id"],
        "properties": {name: record["properties"].get(name) for name in wanted},
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
        "archived": False,
    }


def _full_view(record: dict) -> dict:
    """Return the public view of an object with all its properties."""
    return _project(record, record["properties"])


def _with_history(view: dict, record: dict, names: Iterable[str]) -> dict:
    """Add ``propertiesWithHistory`` (newest first) for ``names``; as HubSpot does, names never set are left out."""
    names = list(names)
    if names:
        history = record.get("history", {})
        view["propertiesWithHistory"] = {
            name: _history_entries(record, name)[::-1] for name in names if name in history
        }
    return view


def _set_values(record: dict, values: Mapping[str, str | None], source: str) -> None:
    """Set properties, keep the history of those that change, and bump the modification date."""
    now = _now_iso()
    changed = {name: value for name, value in values.items() if record["properties"].get(name) != value}
    for name, value in {**changed, "hs_lastmodifieddate": now}.items():
        record["properties"][name] = value
        record.setdefault("history", {}).setdefault(name, []).append(
            {"value": value, "timestamp": now, "sourceType": source}
        )
    record["updatedAt"] = now


class HubSpotSimulator:
    """In-memory, thread-safe HubSpot: portals, tokens, CRM objects, associations, callbacks, faults."""

    client_secret = "sim-hs-secret"
    app_id = 424242

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget portals (objects, properties, events), tokens, callbacks, definitions, templates, faults, requests."""
        with self._lock:
            self.limit_per_10s = 100
            self.search_limit_per_s = 4
            self.send_retry_after = True
            self.client_id = DEFAULT_CLIENT_ID
            self.developer_api_key = DEFAULT_DEVELOPER_API_KEY
            self.auto_approve_portal: int | str | None = None
            self._portals: dict[int, _Portal] = {}
            self._tokens: dict[str, _Token] = {}
            self._codes: dict[str, tuple[int, str | None]] = {}
            self._completions: list[dict] = []
            self._completed: set[tuple[int, str]] = set()
            self._duplicates = 0
            self._faults: list[Fault] = []
            self._requests: list[dict] = []
            self._definitions: dict[int, dict[str, dict]] = {}
            self._next_definition_id = _FIRST_DEFINITION_ID
            self._templates: dict[int, dict[str, dict]] = {}
            self._next_template_id = _FIRST_TEMPLATE_ID

    # Settings --------------------------------------------------------------------------------

    def settings(self) -> dict:
        """Return the adjustable settings: limits, app credentials and the install page's auto-approval."""
        with self._lock:
            return {name: getattr(self, name) for name in _SETTING_KINDS}

    def configure(self, **settings: Any) -> dict:
        """Change any of the settings ``settings()`` lists; return them all."""
        unknown = set(settings) - set(_SETTING_KINDS)
        if unknown:
            raise SimError(400, {"error": f"unknown settings: {sorted(unknown)}"})
        try:
            values = {name: _SETTING_KINDS[name](value) for name, value in settings.items()}
        except (TypeError, ValueError) as exc:
            raise SimError(400, {"error": f"invalid setting value: {exc}"}) from None
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)
            return self.settings()

    # Portals and tokens ------------------------------------------------------------------------

    def add_portal(
        self, portal_id: int, access_token: str, refresh_token: str | None = None, expires_in: int = 1800
    ) -> None:
        """Create a portal (or add a token to an existing one) whose token lasts ``expires_in`` s."""
        with self._lock:
            portal = self._portals.setdefault(int(portal_id), _Portal(int(portal_id), refresh_token, expires_in))
            portal.refresh_token = refresh_token or portal.refresh_token
            portal.expires_in = expires_in
            self._tokens[access_token] = _Token(portal.portal_id, self._clock() + expires_in)

    def expire_token(self, access_token: str) -> bool:
        """Make an access token expired; return False when it is unknown."""
        with self._lock:
            token = self._tokens.get(access_token)
            if token is not None:
                token.expires_at = self._clock() - 1
            return token is not None

    def portal_for_token(self, access_token: str | None) -> int | None:
        """Return the portal a token belongs to, expired or not, or None."""
        with self._lock:
            token = self._tokens.get(access_token or "")
            return token.portal_id if token else None

    def authenticate(self, access_token: str | None) -> int:
        """Return the portal of a valid access token, or raise HubSpot's 401."""
        with self._lock:
            token = self._tokens.get(access_token or "")
            if token is None:
                message = (
                    "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                    f"and you can find more details at {_AUTH_DOCS}"
                )
                raise SimError(401, error_body(message, "INVALID_AUTHENTICATION"))
            expired_for = self._clock() - token.expires_at
            if expired_for >= 0:
                message = f"The OAuth token used to make this call expired {int(expired_for // 60)} minute(s) ago."
                raise SimError(401, error_body(message, "EXPIRED_AUTHENTICATION"))
            return token.portal_id

    def add_authorization_code(self, code: str, portal_id: int, redirect_uri: str | None = None) -> None:
        """Register a one-time OAuth code that installs the app on a portal."""
        with self._lock:
            self._portal(portal_id)
            self._codes[code] = (int(portal_id), redirect_uri)

    def portal_ids(self) -> list[int]:
        """Return the ids of the portals, in creation order."""
        with self._lock:
            return list(self._portals)

    def authorize_problem(self, params: Mapping[str, str]) -> str | None:
        """Return why an install request (``/oauth/authorize``) is refused, or None when it is fine."""
        if params.get("client_id") != self.client_id:
            return "The client_id is missing or does not belong to an app."
        if not _is_web_url(params.get("redirect_uri")):
            return "The redirect_uri is missing or is not an absolute http(s) URL."
        if not (params.get("scope") or "").split():
            return "The scope parameter is missing: an app must ask for at least one scope."
        return None

    def grant_install(self, portal_id: int, redirect_uri: str) -> str:
        """Mint a one-time authorization code installing the app on a portal; raise a 404 for unknown ones."""
        code = str(uuid.uuid4())
        self.add_authorization_code(code, portal_id, redirect_uri)
        return code

    def install_redirect(self, params: Mapping[str, str], decision: str, portal_id: Any = None) -> str:
        """Return where the install page sends the browser after an allow or deny decision."""
        redirect_uri, state = params["redirect_uri"], params.get("state")
        if decision == "deny":
            description = "The user declined to install the app."
            return redirect_url(
                redirect_uri, {"error": "access_denied", "error_description": description, "state": state}
            )
        code = self.grant_install(int(portal_id), redirect_uri)
        return redirect_url(redirect_uri, {"code": code, "state": state})

    def exchange_token(self, form: Mapping[str, str]) -> dict:
        """Answer ``POST /oauth/v1/token`` for the refresh_token and authorization_code grants."""
        if form.get("client_id") != self.client_id:
            raise SimError(400, self._oauth_error("BAD_CLIENT_ID", "missing or invalid client id"))
        if form.get("client_secret") != self.client_secret:
            raise SimError(400, self._oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret"))
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "refresh_token":
                portal = self._portal_for_refresh_token(form.get("refresh_token"))
                portal.refreshes += 1
            elif grant_type == "authorization_code":
                portal = self._redeem_code(form.get("code"), form.get("redirect_uri"))
            else:
                raise SimError(400, self._oauth_error("BAD_GRANT_TYPE", f"unsupported grant_type {grant_type}"))
            return self._issue_tokens(portal)

    def token_info(self, access_token: str) -> dict:
        """Answer ``GET /oauth/v1/access-tokens/{token}``."""
        with self._lock:
            token = self._tokens.get(access_token)
            if token is None:
                raise SimError(404, error_body("Token not found", "OBJECT_NOT_FOUND"))
            return {
                "token": access_token,
                "user": "sim-user@example.com",
                "user_id": 1,
                "hub_domain": f"sim-{token.portal_id}.hubspot.com",
                "hub_id": token.portal_id,
                "app_id": self.app_id,
                "scopes": list(_TOKEN_SCOPES),
                "token_type": "access",
                "expires_in": max(0, int(token.expires_at - self._clock())),
            }

    def refresh_count(self, portal_id: int) -> int:
        """Return how many refresh_token grants a portal received."""
        with self._lock:
            return self._portal(portal_id).refreshes

    @staticmethod
    def _oauth_error(status: str, message: str) -> dict:
        """Return the body of an OAuth endpoint error."""
        return {"status": status, "message": message, "correlationId": str(uuid.uuid4())}

    def _portal_for_refresh_token(self, refresh_token: str | None) -> _Portal:
        """Return the portal a refresh token belongs to, or raise BAD_REFRESH_TOKEN."""
        for portal in self._portals.values():
            if refresh_token and portal.refresh_token == refresh_token:
                return portal
        raise SimError(400, self._oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token"))

    def _redeem_code(self, code: str | None, redirect_uri: str | None) -> _Portal:
        """Consume an authorization code and return its portal, or raise BAD_AUTH_CODE."""
        key = code or ""
        portal_id, expected_uri = self._codes.get(key, (None, None))
        if portal_id is None:
            raise SimError(400, self._oauth_error("BAD_AUTH_CODE", "missing or unknown auth code"))
        if expected_uri is not None and redirect_uri != expected_uri:
            raise SimError(400, self._oauth_error("BAD_REDIRECT_URI", "redirect_uri does not match"))
        del self._codes[key]
        return self._portals[portal_id]

    def _issue_tokens(self, portal: _Portal) -> dict:
        """Mint an access token; the refresh token stays the same since HubSpot's do not rotate."""
        access_token = f"sim-at-{portal.portal_id}-{uuid.uuid4().hex}"
        self._tokens[access_token] = _Token(portal.portal_id, self._clock() + portal.expires_in)
        portal.refresh_token = portal.refresh_token or f"sim-rt-{portal.portal_id}-{uuid.uuid4().hex}"
        return {
            "access_token": access_token,
            "refresh_token": portal.refresh_token,
            "expires_in": portal.expires_in,
            "token_type": "bearer",
        }

    def _portal(self, portal_id: int) -> _Portal:
        """Return a portal or raise a 404."""
        portal = self._portals.get(int(portal_id))
        if portal is None:
            raise SimError(404, {"error": f"unknown portal {portal_id}"})
        return portal

    # Rate limits -------------------------------------------------------------------------------

    def check_rate_limit(self, portal_id: int, is_search: bool) -> int:
        """Count a request against the portal's windows; return what is left or raise a 429."""
        now = self._clock()
        with self._lock:
            portal = self._portal(portal_id)
            over = _window_full(portal.recent_requests, now, 10.0, self.limit_per_10s) or (
                is_search and _window_full(portal.recent_searches, now, 1.0, self.search_limit_per_s)
            )
            if over:
                raise SimError(429, rate_limit_body(), {"Retry-After": "1"} if self.send_retry_after else None)
            portal.recent_requests.append(now)
            if is_search:
                portal.recent_searches.append(now)
            return self.limit_per_10s - len(portal.recent_requests)

    # Objects -----------------------------------------------------------------------------------

    def add_object(
        self,
        portal_id: int,
        object_type: str,
        properties: Mapping[str, Any] | None = None,
        object_id: str | int | None = None,
        associations: Mapping[str, Iterable] | None = None,
    ) -> dict:
        """Seed an object (id assigned when absent) and link it, in order, to ``{type: [ids]}``."""
        canonical = resolve_object_type(object_type)
        # Check every target before storing so that a bad request leaves no half-made object.
        links = [
            (resolve_object_type(to_type), _check_numeric_id(to_id))
            for to_type, to_ids in (associations or {}).items()
            for to_id in to_ids
        ]
        with self._lock:
            portal = self._portal(portal_id)
            record = self._store(portal, canonical, properties or {}, object_id, "CRM_UI")
            for to_type, to_id in links:
                self._link(portal, canonical, record["id"], to_type, to_id)
            return _full_view(record)

    def get_object(self, portal_id: int, object_type: str, object_id: str | int) -> dict | None:
        """Return an object with all its properties, associations (``{type: [ids]}``) and history, or None."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            portal = self._portal(portal_id)
            record = portal.objects.get(canonical, {}).get(str(object_id))
            if record is None:
                return None
            links = {
                to_type: list(ids)
                for (from_type, from_id, to_type), ids in portal.links.items()
                if from_type == canonical and from_id == record["id"] and ids
            }
            history = {name: _history_entries(record, name) for name in record.get("history", {})}
            return {**_full_view(record), "associations": links, "history": history}

    def associate(self, portal_id: int, from_type: str, from_id: str | int, to_type: str, to_id: str | int) -> None:
        """Link two objects both ways, keeping insertion order."""
        with self._lock:
            self._link(
                self._portal(portal_id),
                resolve_object_type(from_type),
                str(from_id),
                resolve_object_type(to_type),
                str(to_id),
            )

    def associated_ids(self, portal_id: int, from_type: str, from_id: str | int, to_type: str) -> list[str]:
        """Return the ids linked to an object, in association order."""
        with self._lock:
            key = (resolve_object_type(from_type), str(from_id), resolve_object_type(to_type))
            return list(self._portal(portal_id).links.get(key, []))

    def read_object(
        self,
        portal_id: int,
        object_type: str,
        object_id: str,
        properties: list[str],
        associations: list[str],
        with_history: Iterable[str] = (),
    ) -> dict:
        """Answer ``GET /crm/v3/objects/{type}/{id}``, with ``propertiesWithHistory`` when asked."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            portal = self._portal(portal_id)
            record = self._find(portal, canonical, object_id)
            view = _with_history(_project(record, properties), record, with_history)
            linked = self._v3_associations(portal, canonical, record["id"], associations)
            if linked:
                view["associations"] = linked
            return view

    @staticmethod
    def _v3_associations(portal: _Portal, object_type: str, object_id: str, names: list[str]) -> dict:
        """Return the v3 ``associations`` of an object; unknown type names are ignored, as HubSpot does."""
        linked = {}
        for to_type in dict.fromkeys(filter(None, map(_canonical_type, names))):
            label = f"{_SINGULAR[object_type]}_to_{_SINGULAR[to_type]}"
            ids = portal.links.get((object_type, object_id, to_type), [])
            if ids:
                linked[to_type] = {"results": [{"id": to_id, "type": label} for to_id in ids]}
        return linked

    def create_object(self, portal_id: int, object_type: str, body: Mapping) -> dict:
        """Answer ``POST /crm/v3/objects/{type}``, with optional v4-style ``associations``."""
        canonical = resolve_object_type(object_type)
        properties = body.get("properties")
        if not isinstance(properties, Mapping):
            raise _validation_error("properties must be an object")
        with self._lock:
            portal = self._portal(portal_id)
            links = [self._association_target(portal, canonical, item) for item in body.get("associations") or []]
            record = self._store(portal, canonical, properties, None)
            for to_type, to_id in links:
                self._link(portal, canonical, record["id"], to_type, to_id)
            return _full_view(record)

    def update_object(self, portal_id: int, object_type: str, object_id: str, body: Mapping) -> dict:
        """Answer ``PATCH /crm/v3/objects/{type}/{id}``: set the given properties."""
        canonical = resolve_object_type(object_type)
        properties = body.get("properties")
        if not isinstance(properties, Mapping):
            raise _validation_error("properties must be an object")
        with self._lock:
            record = self._find(self._portal(portal_id), canonical, object_id)
            # Unlike batch/update, this stays lenient (no property checks): seeded tests rely on it.
            _set_values(record, {name: _stringify(value) for name, value in properties.items()}, "INTEGRATION")
            return _project(record, properties)

    def batch_read(self, portal_id: int, object_type: str, body: Mapping) -> tuple[int, dict]:
        """Answer ``POST /crm/v3/objects/{type}/batch/read``: 200, or 207 listing the missing ids."""
        canonical = resolve_object_type(object_type)
        ids = self._batch_ids(body, OBJECT_BATCH_LIMIT)
        id_property = body.get("idProperty")
        started = _now_iso()
        with self._lock:
            records = self._portal(portal_id).objects.get(canonical, {})
            found = {object_id: self._lookup(records, object_id, id_property) for object_id in ids}
            with_history = body.get("propertiesWithHistory") or []
            results = [
                _with_history(_project(record, body.get("properties") or []), record, with_history)
                for record in found.values()
                if record
            ]
        answer = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}
        missing = [object_id for object_id, record in found.items() if record is None]
        if not missing:
            return 200, answer
        return 207, {**answer, "numErrors": 1, "errors": [self._objects_not_found(canonical, missing)]}

    def search(self, portal_id: int, object_type: str, body: Mapping) -> dict:
        """Answer ``POST /crm/v3/objects/{type}/search``."""
        canonical = resolve_object_type(object_type)
        groups = body.get("filterGroups") or []
        _check_filter_groups(groups)
        limit = _parse_limit(body.get("limit"), 10, SEARCH_PAGE_LIMIT)
        offset = _parse_offset(body.get("after"))
        with self._lock:
            records = list(self._portal(portal_id).objects.get(canonical, {}).values())
            matches = [record for record in records if evaluate_filter_groups(groups, record["properties"])]
            page = [
                _project(record, body.get("properties") or [])
                for record in _sort_records(matches, body.get("sorts"))[offset : offset + limit]
            ]
        answer: dict[str, Any] = {"total": len(matches), "results": page}
        if offset + limit < len(matches):
            answer["paging"] = {"next": {"after": str(offset + limit)}}
        return answer

    # Properties and groups ---------------------------------------------------------------------

    def property_definitions(self, object_type: str, portal_id: int | None = None) -> dict:
        """Answer ``GET /crm/v3/properties/{type}``: HubSpot's properties, then the portal's own."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            if portal_id is None:
                return {"results": list(_builtin_properties(canonical).values())}
            return {"results": copy.deepcopy(list(self._catalog(self._portal(portal_id), canonical).values()))}

    def property_definition(self, portal_id: int, object_type: str, name: str) -> dict:
        """Answer ``GET /crm/v3/properties/{type}/{name}``."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            return copy.deepcopy(self._property(self._portal(portal_id), canonical, name, include_builtin=True))

    def create_property(self, portal_id: int, object_type: str, body: Mapping) -> dict:
        """Answer ``POST /crm/v3/properties/{type}``: 409 CONFLICT when the name is taken."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            portal = self._portal(portal_id)
            checked = check_new_property(body, self._groups(portal, canonical))
            if checked["name"] in self._catalog(portal, canonical):
                message = f"A property named '{checked['name']}' already exists."
                raise SimError(409, error_body(message, "CONFLICT", subCategory="PROPERTY_ALREADY_EXISTS"))
            now = _now_iso()
            stored = {
                **checked,
                "createdAt": now,
                "updatedAt": now,
                "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
            }
            portal.properties.setdefault(canonical, {})[stored["name"]] = stored
            return copy.deepcopy(stored)

    def batch_create_properties(self, portal_id: int, object_type: str, body: Mapping) -> tuple[int, dict]:
        """Answer ``POST /crm/v3/properties/{type}/batch/create``: 201, or 207 with the refused inputs."""
        started = _now_iso()
        results, errors = [], []
        for item in _batch_inputs(body, OBJECT_BATCH_LIMIT):
            try:
                results.append(self.create_property(portal_id, object_type, item))
            except SimError as exc:
                context = {"name": [str(item.get("name"))]}
                errors.append(_batch_error(exc.body.get("category", "ERROR"), exc.body.get("message", ""), context))
        return _batch_answer(results, errors, started, 201)

    def update_property(self, portal_id: int, object_type: str, name: str, body: Mapping) -> dict:
        """Answer ``PATCH /crm/v3/properties/{type}/{name}`` for a property the portal created."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            portal = self._portal(portal_id)
            stored = self._property(portal, canonical, name, include_builtin=False)
            changes = {key: body[key] for key in _UPDATABLE_PROPERTY_FIELDS if key in body}
            checked = check_property_fields({**stored, **changes}, self._groups(portal, canonical))
            stored.update({**checked, "updatedAt": _now_iso()})
            return copy.deepcopy(stored)

    def property_groups(self, portal_id: int, object_type: str) -> dict:
        """Answer ``GET /crm/v3/properties/{type}/groups``: HubSpot's group, then the portal's own."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            return {"results": copy.deepcopy(list(self._groups(self._portal(portal_id), canonical).values()))}

    def property_group(self, portal_id: int, object_type: str, name: str) -> dict:
        """Answer ``GET /crm/v3/properties/{type}/groups/{name}``."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            group = self._groups(self._portal(portal_id), canonical).get(name)
            if group is None:
                raise SimError(404, error_body(f"Property group {name} does not exist", "OBJECT_NOT_FOUND"))
            return copy.deepcopy(group)

    def create_property_group(self, portal_id: int, object_type: str, body: Mapping) -> dict:
        """Answer ``POST /crm/v3/properties/{type}/groups``: 409 CONFLICT when the name is taken."""
        canonical = resolve_object_type(object_type)
        group = check_group(body)
        with self._lock:
            portal = self._portal(portal_id)
            if group["name"] in self._groups(portal, canonical):
                message = f"A property group named '{group['name']}' already exists."
                raise SimError(409, error_body(message, "CONFLICT"))
            portal.groups.setdefault(canonical, {})[group["name"]] = group
            return copy.deepcopy(group)

    def created_properties(self, portal_id: int, object_type: str) -> dict:
        """Return the groups and properties a portal created for a type (test control)."""
        canonical = resolve_object_type(object_type)
        with self._lock:
            portal = self._portal(portal_id)
            return copy.deepcopy(
                {
                    "groups": list(portal.groups.get(canonical, {}).values()),
                    "properties": list(portal.properties.get(canonical, {}).values()),
                }
            )

    @staticmethod
    def _groups(portal: _Portal, object_type: str) -> dict[str, dict]:
        """Return the property groups of a type by name: HubSpot's, then the portal's."""
        builtin = _builtin_group(object_type)
        return {builtin["name"]: builtin, **portal.groups.get(object_type, {})}

    @staticmethod
    def _catalog(portal: _Portal, object_type: str) -> dict[str, dict]:
        """Return the properties of a type by name: HubSpot's, then the portal's."""
        return {**_builtin_properties(object_type), **portal.properties.get(object_type, {})}

    def _property(self, portal: _Portal, object_type: str, name: str, include_builtin: bool) -> dict:
        """Return a property definition or raise HubSpot's 404."""
        found = (self._catalog(portal, object_type) if include_builtin else portal.properties.get(object_type, {})).get(
            name
        )
        if found is None:
            message = f"Unable to find property {name} for object type {OBJECT_TYPE_IDS[object_type]}"
            raise SimError(404, error_body(message, "OBJECT_NOT_FOUND"))
        return found

    # Batch writes ------------------------------------------------------------------------------

    def batch_update(self, portal_id: int, object_type: str, body: Mapping) -> tuple[int, dict]:
        """Answer ``POST /crm/v3/objects/{type}/batch/update``: 200, 400 for bad values, 207 for unknown ids."""
        canonical = resolve_object_type(object_type)
        inputs = _batch_inputs(body, OBJECT_BATCH_LIMIT)
        ids = self._update_ids(inputs)
        started = _now_iso()
        with self._lock:
            portal = self._portal(portal_id)
            values = self._checked_inputs(portal, canonical, inputs)
            records = portal.objects.get(canonical, {})
            found = {object_id: self._lookup(records, object_id, body.get("idProperty")) for object_id in ids}
            results = []
            for object_id, record in found.items():
                if record is not None:
                    _set_values(record, values[ids.index(object_id)], "INTEGRATION")
                    results.append(_full_view(record))
        missing = [object_id for object_id, record in found.items() if record is None]
        errors = [self._objects_not_found(canonical, missing)] if missing else []
        return _batch_answer(results, errors, started, 200)

    def batch_create(self, portal_id: int, object_type: str, body: Mapping) -> dict:
        """Answer ``POST /crm/v3/objects/{type}/batch/create`` (notes among them), with v4 associations."""
        canonical = resolve_object_type(object_type)
        inputs = _batch_inputs(body, OBJECT_BATCH_LIMIT)
        started = _now_iso()
        with self._lock:
            portal = self._portal(portal_id)
            values = self._checked_inputs(portal, canonical, inputs)
            links = [
                [self._association_target(portal, canonical, item) for item in entry.get("associations") or []]
                for entry in inputs
            ]
            results = []
            for properties, targets in zip(values, links, strict=True):
                record = self._store(portal, canonical, properties, None)
                for to_type, to_id in targets:
                    self._link(portal, canonical, record["id"], to_type, to_id)
                results.append(_full_view(record))
        return {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}

    @staticmethod
    def _update_ids(inputs: list[Mapping]) -> list[str]:
        """Return the ids of batch update inputs, refusing missing, repeated or property-less ones."""
        if not all("id" in item and isinstance(item.get("properties"), Mapping) for item in inputs):
            raise _validation_error('inputs must be a list of {"id": ..., "properties": {...}} objects')
        ids = [str(item["id"]) for item in inputs]
        repeated = sorted({object_id for object_id in ids if ids.count(object_id) > 1})
        if repeated:
            raise _validation_error(f"Duplicate IDs found in batch input: {repeated}. IDs must be unique")
        return ids

    def _checked_inputs(self, portal: _Portal, object_type: str, inputs: list[Mapping]) -> list[dict[str, str]]:
        """Return each input's checked values, or raise one 400 naming every refused value (HubSpot's rule)."""
        catalog = self._catalog(portal, object_type)
        checked, problems = [], []
        for item in inputs:
            properties = item.get("properties")
            if not isinstance(properties, Mapping):
                raise _validation_error("Each input needs a properties object")
            values, refused = checked_values(catalog, properties)
            checked.append(values)
            problems.extend(refused)
        if problems:
            raise invalid_properties(problems)
        return checked

    @staticmethod
    def _objects_not_found(object_type: str, missing: list[str]) -> dict:
        """Return the error entry of a batch answer naming ids that do not exist."""
        message = (
            f"Could not get some {_SINGULAR[object_type].upper()} objects, they may be deleted or not exist. "
            "Check that ids are valid."
        )
        return {"status": "error", "category": "OBJECT_NOT_FOUND", "message": message, "context": {"ids": missing}}

    def _store(
        self,
        portal: _Portal,
        object_type: str,
        properties: Mapping[str, Any],
        object_id: Any,
        source: str = "INTEGRATION",
    ) -> dict:
        """Create and return an object record with HubSpot's default properties and their first history."""
        if object_id is None:
            object_id = str(portal.next_id)
        object_id = _check_numeric_id(object_id)
        portal.next_id = max(portal.next_id, int(object_id) + 1)
        now = _now_iso()
        values: dict[str, str | None] = {"createdate": now, "hs_lastmodifieddate": now}
        values.update({name: _stringify(value) for name, value in properties.items()})
        values["hs_object_id"] = object_id
        history = {
            name: [{"value": value, "timestamp": now, "sourceType": source}]
            for name, value in values.items()
            if value is not None
        }
        record = {
            "id": object_id,
            "properties": values,
            "createdAt": values["createdate"],
            "updatedAt": now,
            "history": history,
        }
        portal.objects.setdefault(object_type, {})[object_id] = record
        return record

    @staticmethod
    def _find(portal: _Portal, object_type: str, object_id: str) -> dict:
        """Return an object record or raise the 404 HubSpot answers."""
        record = portal.objects.get(object_type, {}).get(str(object_id))
        if record is None:
            raise _not_found()
        return record

    @staticmethod
    def _lookup(records: Mapping[str, dict], key: str, id_property: str | None) -> dict | None:
        """Find a record by id, or by the value of ``id_property`` when given."""
        if not id_property or id_property == "hs_object_id":
            return records.get(key)
        return next((record for record in records.values() if record["properties"].get(id_property) == key), None)

    @staticmethod
    def _batch_ids(body: Mapping, limit: int) -> list[str]:
        """Return the distinct ids of a batch request's ``inputs``, enforcing the batch size."""
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(item, Mapping) and "id" in item for item in inputs):
            raise _validation_error('inputs must be a list of {"id": ...} objects')
        if len(inputs) > limit:
            raise _validation_error(f"Batch input size must be at most {limit}, got {len(inputs)}")
        return list(dict.fromkeys(str(item["id"]) for item in inputs))

    def _association_target(self, portal: _Portal, from_type: str, item: Any) -> tuple[str, str]:
        """Return (type, id) of an existing target named by a v3 create's association entry."""
        try:
            to_id = str(item["to"]["id"])
            type_id = item["types"][0]["associationTypeId"]
        except (KeyError, IndexError, TypeError):
            raise _validation_error(f"Invalid association: {item!r}") from None
        to_type = _type_for_association_id(from_type, type_id)
        if to_id not in portal.objects.get(to_type, {}):
            raise _validation_error(f"Cannot associate with {_SINGULAR[to_type]} {to_id}: it does not exist")
        return to_type, to_id

    @staticmethod
    def _link(portal: _Portal, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """Add an association both ways unless present, keeping insertion order."""
        from_id, to_id = _check_numeric_id(from_id), _check_numeric_id(to_id)
        for key, other in (((from_type, from_id, to_type), to_id), ((to_type, to_id, from_type), from_id)):
            ids = portal.links.setdefault(key, [])
            if other not in ids:
                ids.append(other)

    # Associations v4 ---------------------------------------------------------------------------

    def associations_page(
        self, portal_id: int, from_type: str, from_id: str, to_type: str, limit: Any = None, after: Any = None
    ) -> dict:
        """Answer ``GET /crm/v4/objects/{fromType}/{id}/associations/{toType}``."""
        source, target = resolve_object_type(from_type), resolve_object_type(to_type)
        size, offset = _parse_limit(limit, 500, 500), _parse_offset(after)
        ids = self.associated_ids(portal_id, source, from_id, target)
        answer: dict[str, Any] = {
            "results": [self._v4_target(source, target, to_id) for to_id in ids[offset : offset + size]]
        }
        if offset + size < len(ids):
            answer["paging"] = {"next": {"after": str(offset + size)}}
        return answer

    def batch_associations(self, portal_id: int, from_type: str, to_type: str, body: Mapping) -> tuple[int, dict]:
        """Answer ``POST /crm/v4/associations/{fromType}/{toType}/batch/read``; 207 names unlinked ids."""
        source, target = resolve_object_type(from_type), resolve_object_type(to_type)
        started = _now_iso()
        results, errors = [], []
        for from_id in self._batch_ids(body, ASSOCIATION_BATCH_LIMIT):
            ids = self.associated_ids(portal_id, source, from_id, target)
            if ids:
                results.append({"from": {"id": from_id}, "to": [self._v4_target(source, target, i) for i in ids]})
            else:
                message = f"No {_SINGULAR[target]} is associated with {_SINGULAR[source]} {from_id}."
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": message,
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "context": {"fromObjectId": [from_id], "toObjectType": [_SINGULAR[target]]},
                    }
                )
        answer = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}
        if not errors:
            return 200, answer
        return 207, {**answer, "numErrors": len(errors), "errors": errors}

    def create_default_association(
        self, portal_id: int, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> dict:
        """Answer ``PUT /crm/v4/objects/{fromType}/{fromId}/associations/default/{toType}/{toId}``."""
        source, target = resolve_object_type(from_type), resolve_object_type(to_type)
        started = _now_iso()
        with self._lock:
            portal = self._portal(portal_id)
            self._find(portal, source, from_id)
            self._find(portal, target, to_id)
            self._link(portal, source, str(from_id), target, str(to_id))
        results = self._default_association_results(source, str(from_id), target, str(to_id))
        return {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso()}

    def batch_associate_default(self, portal_id: int, from_type: str, to_type: str, body: Mapping) -> tuple[int, dict]:
        """Answer ``POST /crm/v4/associations/{fromType}/{toType}/batch/associate/default``; 207 for unknown ids."""
        source, target = resolve_object_type(from_type), resolve_object_type(to_type)
        pairs = [self._association_pair(item) for item in _batch_inputs(body, ASSOCIATION_BATCH_LIMIT)]
        started = _now_iso()
        results, errors = [], []
        with self._lock:
            portal = self._portal(portal_id)
            for from_id, to_id in pairs:
                absent = [
                    f"{_SINGULAR[kind]} {object_id}"
                    for kind, object_id in ((source, from_id), (target, to_id))
                    if object_id not in portal.objects.get(kind, {})
                ]
                if absent:
                    message = f"No such object: {', '.join(absent)}"
                    context = {"fromObjectId": [from_id], "toObjectId": [to_id]}
                    errors.append(_batch_error("OBJECT_NOT_FOUND", message, context))
                    continue
                self._link(portal, source, from_id, target, to_id)
                results.extend(self._default_association_results(source, from_id, target, to_id))
        return _batch_answer(results, errors, started, 200)

    @staticmethod
    def _association_pair(item: Mapping) -> tuple[str, str]:
        """Return (fromId, toId) of a ``{"from": {"id"}, "to": {"id"}}`` input, or raise a 400."""
        try:
            return str(item["from"]["id"]), str(item["to"]["id"])
        except (KeyError, TypeError):
            raise _validation_error(f'Each input needs {{"from": {{"id"}}, "to": {{"id"}}}}, got {item!r}') from None

    @staticmethod
    def _default_association_results(source: str, from_id: str, target: str, to_id: str) -> list[dict]:
        """Return the two directed default associations HubSpot reports for one link."""
        return [
            {
                "from": {"id": a_id},
                "to": {"id": b_id},
                "associationSpec": {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": _association_type_id(a_type, b_type),
                },
            }
            for a_type, a_id, b_type, b_id in ((source, from_id, target, to_id), (target, to_id, source, from_id))
        ]

    @staticmethod
    def _v4_target(from_type: str, to_type: str, to_id: str) -> dict:
        """Return one v4 association result."""
        return {"toObjectId": int(to_id), "associationTypes": _association_types(from_type, to_type)}

    # Callbacks ---------------------------------------------------------------------------------

    def complete_callbacks(self, portal_id: int, completions: Iterable[tuple[Any, Any]]) -> None:
        """Validate (callbackId, outputFields) pairs, then record them all in order."""
        checked = [self._checked_completion(callback_id, output_fields) for callback_id, output_fields in completions]
        with self._lock:
            for callback_id, output_fields in checked:
                duplicate = (portal_id, callback_id) in self._completed
                self._completed.add((portal_id, callback_id))
                self._duplicates += int(duplicate)
                self._completions.append(
                    {
                        "portal_id": portal_id,
                        "callback_id": callback_id,
                        "output_fields": output_fields,
                        "received_at": _now_iso(),
                        "duplicate": duplicate,
                    }
                )

    def completions(self, callback_id: str | None = None) -> list[dict]:
        """Return recorded completions in arrival order, optionally for one callback."""
        with self._lock:
            return [copy.deepcopy(c) for c in self._completions if callback_id in (None, c["callback_id"])]

    @property
    def duplicates(self) -> int:
        """Return how many completions repeated an already-completed callback."""
        with self._lock:
            return self._duplicates

    def clear_completions(self) -> None:
        """Forget recorded completions and the duplicate count."""
        with self._lock:
            self._completions.clear()
            self._completed.clear()
            self._duplicates = 0

    @staticmethod
    def _checked_completion(callback_id: Any, output_fields: Any) -> tuple[str, dict]:
        """Return a completion or raise the 400 HubSpot answers for a bad one."""
        if not isinstance(callback_id, str) or not callback_id:
            raise _validation_error("callbackId must be a non-empty string")
        if not isinstance(output_fields, Mapping):
            raise _validation_error(f"outputFields must be an object (callback {callback_id})")
        state = output_fields.get("hs_execution_state")
        if state not in EXECUTION_STATES:
            raise _validation_error(
                f"Invalid hs_execution_state {state!r} for callback {callback_id}: "
                f"expected one of {', '.join(EXECUTION_STATES)}"
            )
        return callback_id, copy.deepcopy(dict(output_fields))

    # Action definitions ------------------------------------------------------------------------

    def check_developer_key(self, hapikey: str | None) -> None:
        """Raise HubSpot's 401 unless ``hapikey`` is the developer API key."""
        if not hapikey:
            message = (
                "Authentication credentials not found. This API supports both API Key and OAuth 2.0 "
                f"authentication and you can find more details at {_AUTH_DOCS}"
            )
            raise SimError(401, error_body(message, "INVALID_AUTHENTICATION"))
        if hapikey != self.developer_api_key:
            message = f"The API key provided is invalid. View or manage your API key here: {_API_KEY_DOCS}"
            raise SimError(401, error_body(message, "INVALID_AUTHENTICATION", links={"api key": _API_KEY_DOCS}))

    def create_definition(self, app_id: int, body: Mapping) -> dict:
        """Answer ``POST /automation/v4/actions/{appId}``: store a definition at revision 1."""
        fields = check_definition(body, creating=True)
        with self._lock:
            definition_id = str(self._next_definition_id)
            self._next_definition_id += 1
            stored = {"id": definition_id, "revisionId": "1", **copy.deepcopy(_DEFINITION_DEFAULTS), **fields}
            self._definitions.setdefault(int(app_id), {})[definition_id] = stored
            return copy.deepcopy(stored)

    def definitions_page(self, app_id: int, limit: Any = None, after: Any = None) -> dict:
        """Answer ``GET /automation/v4/actions/{appId}``: one page of definitions, oldest first."""
        size = _parse_limit(limit, DEFINITIONS_PAGE_DEFAULT, DEFINITIONS_PAGE_LIMIT)
        offset = _parse_offset(after)
        definitions = self.definitions(app_id)
        answer: dict[str, Any] = {"results": definitions[offset : offset + size]}
        if offset + size < len(definitions):
            answer["paging"] = {"next": {"after": str(offset + size)}}
        return answer

    def get_definition(self, app_id: int, definition_id: str) -> dict:
        """Answer ``GET /automation/v4/actions/{appId}/{definitionId}``."""
        with self._lock:
            return copy.deepcopy(self._definition(app_id, definition_id))

    def update_definition(self, app_id: int, definition_id: str, body: Mapping) -> dict:
        """Answer ``PATCH /automation/v4/actions/{appId}/{definitionId}``: merge the fields, next revision."""
        fields = check_definition(body, creating=False)
        with self._lock:
            stored = self._definition(app_id, definition_id)
            stored.update(fields)
            stored["revisionId"] = str(int(stored["revisionId"]) + 1)
            return copy.deepcopy(stored)

    def definitions(self, app_id: int) -> list[dict]:
        """Return every definition of an app, oldest first."""
        with self._lock:
            stored = self._definitions.get(int(app_id), {})
            return [copy.deepcopy(stored[key]) for key in sorted(stored, key=int)]

    def _definition(self, app_id: int, definition_id: str) -> dict:
        """Return a stored definition or raise HubSpot's 404."""
        stored = self._definitions.get(int(app_id), {}).get(str(definition_id))
        if stored is None:
            message = f"No action definition {definition_id} for app {app_id}"
            raise SimError(404, error_body(message, "OBJECT_NOT_FOUND"))
        return stored

    # Timeline ----------------------------------------------------------------------------------

    def create_template(self, app_id: int, body: Mapping) -> dict:
        """Answer ``POST /crm/v3/timeline/{appId}/event-templates``."""
        fields = check_template(body, creating=True)
        with self._lock:
            template_id = str(self._next_template_id)
            self._next_template_id += 1
            now = _now_iso()
            stored = {"id": template_id, **fields, "createdAt": now, "updatedAt": now}
            self._templates.setdefault(int(app_id), {})[template_id] = stored
            return copy.deepcopy(stored)

    def templates(self, app_id: int) -> dict:
        """Answer ``GET /crm/v3/timeline/{appId}/event-templates``."""
        with self._lock:
            return {"results": copy.deepcopy(list(self._templates.get(int(app_id), {}).values()))}

    def get_template(self, app_id: int, template_id: str) -> dict:
        """Answer ``GET /crm/v3/timeline/{appId}/event-templates/{templateId}``."""
        with self._lock:
            return copy.deepcopy(self._template(app_id, template_id))

    def update_template(self, app_id: int, template_id: str, body: Mapping) -> dict:
        """Answer ``PUT .../event-templates/{templateId}``: replace name, templates and tokens (not objectType)."""
        fields = check_template(body, creating=False)
        with self._lock:
            stored = self._template(app_id, template_id)
            stored.update({**fields, "updatedAt": _now_iso()})
            return copy.deepcopy(stored)

    def delete_template(self, app_id: int, template_id: str) -> None:
        """Answer ``DELETE .../event-templates/{templateId}``."""
        with self._lock:
            self._template(app_id, template_id)
            del self._templates[int(app_id)][str(template_id)]

    def create_event(self, portal_id: int, body: Mapping) -> dict:
        """Answer ``POST /crm/v3/timeline/events``: 400 for a bad event, 409 for a repeated event id."""
        with self._lock:
            portal = self._portal(portal_id)
            event = self._checked_event(portal, body)
            key = (event["eventTemplateId"], event["id"])
            if key in portal.events:
                message = f"An event with id {event['id']} already exists for event template {key[0]}."
                raise SimError(409, error_body(message, "CONFLICT"))
            portal.events[key] = event
            return copy.deepcopy(event)

    def batch_create_events(self, portal_id: int, body: Mapping) -> tuple[int, dict]:
        """Answer ``POST /crm/v3/timeline/events/batch/create``: 201, or 207 with the refused events."""
        started = _now_iso()
        results, errors = [], []
        for item in _batch_inputs(body, TIMELINE_BATCH_LIMIT):
            try:
                results.append(self.create_event(portal_id, item))
            except SimError as exc:
                context = {"eventTemplateId": [str(item.get("eventTemplateId"))], "id": [str(item.get("id"))]}
                errors.append(_batch_error(exc.body.get("category", "ERROR"), exc.body.get("message", ""), context))
        return _batch_answer(results, errors, started, 201)

    def get_event(self, portal_id: int, template_id: str, event_id: str) -> dict:
        """Answer ``GET .../events/{eventTemplateId}/{eventId}``."""
        with self._lock:
            event = self._portal(portal_id).events.get((str(template_id), str(event_id)))
            if event is None:
                message = f"No event {event_id} for event template {template_id}"
                raise SimError(404, error_body(message, "OBJECT_NOT_FOUND"))
            return copy.deepcopy(event)

    def timeline_events(self, portal_id: int, object_type: str | None = None, object_id: str | None = None) -> list:
        """Return a portal's events in arrival order, optionally of one type and record (test control)."""
        canonical = resolve_object_type(object_type) if object_type else None
        with self._lock:
            return [
                copy.deepcopy(event)
                for event in self._portal(portal_id).events.values()
                if canonical in (None, event["objectType"]) and object_id in (None, event["objectId"])
            ]

    def _checked_event(self, portal: _Portal, body: Mapping) -> dict:
        """Return an event as stored, or raise the 400 HubSpot answers (unknown template, token or record)."""
        template_id = str(body.get("eventTemplateId") or "")
        template = next((t[template_id] for t in self._templates.values() if template_id in t), None)
        if template is None:
            raise _validation_error(f"Event template {template_id or '(none)'} does not exist")
        tokens = checked_event_tokens(template, body.get("tokens", {}))
        object_type, object_id = template["objectType"], str(body.get("objectId") or "")
        if object_id not in portal.objects.get(object_type, {}):
            raise _validation_error(f"No {_SINGULAR[object_type]} with objectId {object_id or '(none)'} exists")
        event_id = body.get("id")
        if event_id is not None and (not isinstance(event_id, str) or not event_id):
            raise _validation_error("id must be a non-empty string")
        event = {
            "id": event_id or str(uuid.uuid4()),
            "eventTemplateId": template_id,
            "objectId": object_id,
            "objectType": object_type,
            "tokens": tokens,
            "timestamp": _event_timestamp(body.get("timestamp")),
            "createdAt": _now_iso(),
        }
        for key in ("extraData", "timelineIFrame"):
            if key in body:
                event[key] = copy.deepcopy(body[key])
        return event

    def _template(self, app_id: int, template_id: str) -> dict:
        """Return a stored event template or raise HubSpot's 404."""
        stored = self._templates.get(int(app_id), {}).get(str(template_id))
        if stored is None:
            message = f"No event template {template_id} for app {app_id}"
            raise SimError(404, error_body(message, "OBJECT_NOT_FOUND"))
        return stored

    # Faults and request log --------------------------------------------------------------------

    def add_fault(
        self,
        method: str = "*",
        path: str = ".*",
        status: int | None = None,
        count: int = 1,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` after ``delay`` s (None: just wait)."""
        try:
            pattern = re.compile(path)
        except re.error as exc:
            raise SimError(400, {"error": f"invalid path regex: {exc}"}) from None
        with self._lock:
            self._faults.append(
                Fault(method.upper(), pattern, status, int(count), body, dict(headers or {}), float(delay))
            )

    def clear_faults(self) -> None:
        """Drop all pending faults."""
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching a request."""
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is None:
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            return copy.copy(fault)

    def record_request(self, entry: dict) -> None:
        """Append an API request to the log."""
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[dict]:
        """Return the logged API requests in order."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def clear_requests(self) -> None:
        """Forget logged requests."""
        with self._lock:
            self._requests.clear()

    def stats(self) -> dict:
        """Return counters tests check: duplicate completions and refreshes per portal."""
        with self._lock:
            return {
                "duplicates": self._duplicates,
                "refreshes": {str(pid): portal.refreshes for pid, portal in self._portals.items()},
            }


# --- HTTP: API ----------------------------------------------------------------------------------

api = Blueprint("hubspot_api", __name__)
admin = Blueprint("hubspot_admin", __name__, url_prefix="/_sim")


def _sim() -> HubSpotSimulator:
    """Return the simulator behind the current app."""
    return current_app.config["SIMULATOR"]


def _bearer_token() -> str | None:
    """Return the token of an ``Authorization: Bearer`` header."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _json_body() -> dict:
    """Return the request's JSON object or raise a 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _validation_error("Invalid input JSON: expected an object")
    return body


def _list_arg(name: str) -> list[str]:
    """Return a list query parameter sent comma-separated and/or repeated."""
    return [part for value in request.args.getlist(name) for part in value.split(",") if part]


def _is_admin_path() -> bool:
    """Return whether the request is a test control, which is neither gated nor logged."""
    return request.path.startswith("/_sim/")


def _fault_response(sim: HubSpotSimulator, fault: Fault) -> Response:
    """Build the response an injected fault asks for."""
    status = fault.status
    assert status is not None  # only faults with a status are answered in place of the request
    body = fault.body
    if body is None:
        body = (
            rate_limit_body()
            if status == 429
            else error_body(
                f"Simulated HubSpot fault (HTTP {status})",
                _FAULT_CATEGORIES.get(status, "INTERNAL_ERROR"),
            )
        )
    response = Response(body, mimetype="text/html") if isinstance(body, str) else jsonify(body)
    response.status_code = status
    if status == 429 and sim.send_retry_after:
        response.headers["Retry-After"] = "1"
    response.headers.update(fault.headers)
    return response


def _gate_request() -> Response | None:
    """Apply injected faults, then authentication and rate limits, to every API request."""
    if _is_admin_path() or request.path in _PAGE_PATHS:
        return None
    sim = _sim()
    g.portal_id = sim.portal_for_token(_bearer_token())
    fault = sim.take_fault(request.method, request.path)
    if fault is not None:
        time.sleep(fault.delay)
        if fault.status:
            return _fault_response(sim, fault)
    if request.path.startswith("/oauth/"):
        return None
    if _DEVELOPER_PATH.match(request.path):
        sim.check_developer_key(request.args.get("hapikey"))
        return None
    g.portal_id = sim.authenticate(_bearer_token())
    is_search = request.method == "POST" and request.path.endswith("/search")
    g.rate_remaining = sim.check_rate_limit(g.portal_id, is_search)
    return None


def _logged_body() -> Any:
    """Return the request body for the log: JSON, form fields, or None."""
    return request.get_json(silent=True) if request.is_json else (request.form.to_dict() or None)


def _log_request(response: Response) -> Response:
    """Log API requests with their status and add HubSpot's rate-limit headers."""
    if _is_admin_path():
        return response
    sim = _sim()
    sim.record_request(
        {
            "method": request.method,
            "path": request.path,
            "query": request.args.to_dict(flat=False),
            "body": _logged_body(),
            "status": response.status_code,
            "portal_id": g.get("portal_id"),
        }
    )
    if g.get("rate_remaining") is not None:
        response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = "10000"
        response.headers["X-HubSpot-RateLimit-Max"] = str(sim.limit_per_10s)
        response.headers["X-HubSpot-RateLimit-Remaining"] = str(max(0, g.rate_remaining))
    return response


def _sim_error(exc: SimError) -> Response:
    """Turn a SimError into its JSON response."""
    response = jsonify(exc.body)
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


def _http_error(exc: HTTPException) -> Response:
    """Answer unknown routes and methods with a JSON error like HubSpot's."""
    response = jsonify(error_body(exc.description or exc.name, "OBJECT_NOT_FOUND" if exc.code == 404 else "ERROR"))
    response.status_code = exc.code or 500
    return response


def _no_content() -> Response:
    """Return an empty 204."""
    return Response(status=204)


@api.get("/crm/v3/objects/<object_type>/<object_id>")
def read_object(object_type: str, object_id: str) -> Response:
    """Read one object with the requested properties, associations and property histories."""
    return jsonify(
        _sim().read_object(
            g.portal_id,
            object_type,
            object_id,
            _list_arg("properties"),
            _list_arg("associations"),
            _list_arg("propertiesWithHistory"),
        )
    )


@api.post("/crm/v3/objects/<object_type>")
def create_object(object_type: str) -> tuple[Response, int]:
    """Create an object."""
    return jsonify(_sim().create_object(g.portal_id, object_type, _json_body())), 201


@api.patch("/crm/v3/objects/<object_type>/<object_id>")
def update_object(object_type: str, object_id: str) -> Response:
    """Update an object's properties."""
    return jsonify(_sim().update_object(g.portal_id, object_type, object_id, _json_body()))


@api.post("/crm/v3/objects/<object_type>/batch/read")
def batch_read(object_type: str) -> tuple[Response, int]:
    """Read up to 100 objects."""
    status, body = _sim().batch_read(g.portal_id, object_type, _json_body())
    return jsonify(body), status


@api.post("/crm/v3/objects/<object_type>/search")
def search(object_type: str) -> Response:
    """Search objects with filterGroups."""
    return jsonify(_sim().search(g.portal_id, object_type, _json_body()))


@api.post("/crm/v3/objects/<object_type>/batch/update")
def batch_update(object_type: str) -> tuple[Response, int]:
    """Update up to 100 objects; every value is checked first."""
    status, body = _sim().batch_update(g.portal_id, object_type, _json_body())
    return jsonify(body), status


@api.post("/crm/v3/objects/<object_type>/batch/create")
def batch_create(object_type: str) -> tuple[Response, int]:
    """Create up to 100 objects (notes among them), with their associations."""
    return jsonify(_sim().batch_create(g.portal_id, object_type, _json_body())), 201


@api.get("/crm/v3/properties/<object_type>")
def properties(object_type: str) -> Response:
    """List HubSpot's properties of a type and those the portal created."""
    return jsonify(_sim().property_definitions(object_type, g.portal_id))


@api.post("/crm/v3/properties/<object_type>")
def create_property(object_type: str) -> tuple[Response, int]:
    """Create a property."""
    return jsonify(_sim().create_property(g.portal_id, object_type, _json_body())), 201


@api.post("/crm/v3/properties/<object_type>/batch/create")
def batch_create_properties(object_type: str) -> tuple[Response, int]:
    """Create up to 100 properties."""
    status, body = _sim().batch_create_properties(g.portal_id, object_type, _json_body())
    return jsonify(body), status


@api.get("/crm/v3/properties/<object_type>/groups")
def property_groups(object_type: str) -> Response:
    """List the property groups of a type."""
    return jsonify(_sim().property_groups(g.portal_id, object_type))


@api.post("/crm/v3/properties/<object_type>/groups")
def create_property_group(object_type: str) -> tuple[Response, int]:
    """Create a property group."""
    return jsonify(_sim().create_property_group(g.portal_id, object_type, _json_body())), 201


@api.get("/crm/v3/properties/<object_type>/groups/<name>")
def property_group(object_type: str, name: str) -> Response:
    """Read one property group."""
    return jsonify(_sim().property_group(g.portal_id, object_type, name))


@api.get("/crm/v3/properties/<object_type>/<name>")
def property_definition(object_type: str, name: str) -> Response:
    """Read one property."""
    return jsonify(_sim().property_definition(g.portal_id, object_type, name))


@api.patch("/crm/v3/properties/<object_type>/<name>")
def update_property(object_type: str, name: str) -> Response:
    """Change a property the portal created."""
    return jsonify(_sim().update_property(g.portal_id, object_type, name, _json_body()))


@api.get("/crm/v4/objects/<from_type>/<from_id>/associations/<to_type>")
def associations_page(from_type: str, from_id: str, to_type: str) -> Response:
    """List an object's associations of one type, in association order."""
    return jsonify(
        _sim().associations_page(
            g.portal_id, from_type, from_id, to_type, request.args.get("limit"), request.args.get("after")
        )
    )


@api.post("/crm/v4/associations/<from_type>/<to_type>/batch/read")
def batch_associations(from_type: str, to_type: str) -> tuple[Response, int]:
    """Read the associations of many objects."""
    status, body = _sim().batch_associations(g.portal_id, from_type, to_type, _json_body())
    return jsonify(body), status


@api.put("/crm/v4/objects/<from_type>/<from_id>/associations/default/<to_type>/<to_id>")
def create_default_association(from_type: str, from_id: str, to_type: str, to_id: str) -> Response:
    """Associate two objects with the default association type."""
    return jsonify(_sim().create_default_association(g.portal_id, from_type, from_id, to_type, to_id))


@api.post("/crm/v4/associations/<from_type>/<to_type>/batch/associate/default")
def batch_associate_default(from_type: str, to_type: str) -> tuple[Response, int]:
    """Associate pairs of objects with the default association type."""
    status, body = _sim().batch_associate_default(g.portal_id, from_type, to_type, _json_body())
    return jsonify(body), status


@api.get("/crm/v3/timeline/<int:app_id>/event-templates")
@api.get("/integrators/timeline/v3/<int:app_id>/event-templates")
def event_templates(app_id: int) -> Response:
    """List an app's timeline event templates."""
    return jsonify(_sim().templates(app_id))


@api.post("/crm/v3/timeline/<int:app_id>/event-templates")
@api.post("/integrators/timeline/v3/<int:app_id>/event-templates")
def create_event_template(app_id: int) -> tuple[Response, int]:
    """Create a timeline event template."""
    return jsonify(_sim().create_template(app_id, _json_body())), 201


@api.get("/crm/v3/timeline/<int:app_id>/event-templates/<template_id>")
@api.get("/integrators/timeline/v3/<int:app_id>/event-templates/<template_id>")
def event_template(app_id: int, template_id: str) -> Response:
    """Read one timeline event template."""
    return jsonify(_sim().get_template(app_id, template_id))


@api.put("/crm/v3/timeline/<int:app_id>/event-templates/<template_id>")
@api.put("/integrators/timeline/v3/<int:app_id>/event-templates/<template_id>")
def update_event_template(app_id: int, template_id: str) -> Response:
    """Replace a timeline event template's name, templates and tokens."""
    return jsonify(_sim().update_template(app_id, template_id, _json_body()))


@api.delete("/crm/v3/timeline/<int:app_id>/event-templates/<template_id>")
@api.delete("/integrators/timeline/v3/<int:app_id>/event-templates/<template_id>")
def delete_event_template(app_id: int, template_id: str) -> Response:
    """Delete a timeline event template."""
    _sim().delete_template(app_id, template_id)
    return _no_content()


@api.post("/crm/v3/timeline/events")
@api.post("/integrators/timeline/v3/events")
def create_event() -> tuple[Response, int]:
    """Put an event on a record's timeline."""
    return jsonify(_sim().create_event(g.portal_id, _json_body())), 201


@api.post("/crm/v3/timeline/events/batch/create")
@api.post("/integrators/timeline/v3/events/batch/create")
def batch_create_events() -> tuple[Response, int]:
    """Put up to 100 events on timelines."""
    status, body = _sim().batch_create_events(g.portal_id, _json_body())
    return jsonify(body), status


@api.get("/crm/v3/timeline/events/<template_id>/<event_id>")
@api.get("/integrators/timeline/v3/events/<template_id>/<event_id>")
def get_event(template_id: str, event_id: str) -> Response:
    """Read one event."""
    return jsonify(_sim().get_event(g.portal_id, template_id, event_id))


@api.post("/automation/v4/actions/callbacks/<callback_id>/complete")
def complete_callback(callback_id: str) -> Response:
    """Complete one blocked workflow action."""
    _sim().complete_callbacks(g.portal_id, [(callback_id, _json_body().get("outputFields"))])
    return _no_content()


@api.post("/automation/v4/actions/callbacks/complete")
def complete_callbacks() -> Response:
    """Complete up to 100 blocked workflow actions."""
    inputs = _json_body().get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(item, Mapping) for item in inputs):
        raise _validation_error("inputs must be a list of {callbackId, outputFields} objects")
    if len(inputs) > CALLBACK_BATCH_LIMIT:
        raise _validation_error(f"Batch input size must be at most {CALLBACK_BATCH_LIMIT}, got {len(inputs)}")
    _sim().complete_callbacks(g.portal_id, [(item.get("callbackId"), item.get("outputFields")) for item in inputs])
    return _no_content()


@api.get("/automation/v4/actions/<int:app_id>")
def definitions_page(app_id: int) -> Response:
    """List an app's action definitions, a page at a time."""
    return jsonify(_sim().definitions_page(app_id, request.args.get("limit"), request.args.get("after")))


@api.post("/automation/v4/actions/<int:app_id>")
def create_definition(app_id: int) -> tuple[Response, int]:
    """Create an action definition."""
    return jsonify(_sim().create_definition(app_id, _json_body())), 201


@api.get("/automation/v4/actions/<int:app_id>/<definition_id>")
def get_definition(app_id: int, definition_id: str) -> Response:
    """Read one action definition."""
    return jsonify(_sim().get_definition(app_id, definition_id))


@api.patch("/automation/v4/actions/<int:app_id>/<definition_id>")
def update_definition(app_id: int, definition_id: str) -> Response:
    """Change some fields of an action definition."""
    return jsonify(_sim().update_definition(app_id, definition_id, _json_body()))


# --- HTTP: the install page (HubSpot's login and consent screen) ------------------------------------

_PAGE_STYLE = "body{font-family:sans-serif;max-width:36em;margin:3em auto}button{margin-right:1em}"


def _html_page(title: str, body: str, status: int = 200) -> Response:
    """Return a small HTML page."""
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    response = Response(document, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _bad_install_request(message: str) -> Response:
    """Return the 400 page shown instead of the install screen."""
    return _html_page("Something went wrong", f'<p id="error">{html.escape(message)}</p>', 400)


def _install_params(source: Mapping[str, str]) -> dict[str, str]:
    """Return the install request's parameters that the page carries from the query to its form."""
    names = ("client_id", "redirect_uri", "scope", "optional_scope", "state")
    return {name: source[name] for name in names if source.get(name) is not None}


def _scope_items(scopes: str, optional: bool) -> str:
    """Return the list items naming the scopes of a space-separated scope string."""
    suffix = " (optional)" if optional else ""
    return "".join(f"<li>{html.escape(scope)}{suffix}</li>" for scope in scopes.split())


def _install_page(sim: HubSpotSimulator, params: Mapping[str, str]) -> Response:
    """Render the account chooser and consent form of an install request."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value, quote=True)}">'
        for name, value in params.items()
    )
    options = "".join(f'<option value="{pid}">Portal {pid}</option>' for pid in sim.portal_ids())
    scopes = _scope_items(params["scope"], False) + _scope_items(params.get("optional_scope", ""), True)
    body = (
        f"<p>App <code>{html.escape(params['client_id'])}</code> asks for access to:</p>\n"
        f'<ul id="scopes">{scopes}</ul>\n'
        f'<form method="post" action="/oauth/authorize">{hidden}\n'
        f'<p><label for="portal">Account</label> <select name="portal_id" id="portal">{options}</select></p>\n'
        '<p><button type="submit" id="allow" name="decision" value="allow">Connect app</button>'
        '<button type="submit" id="deny" name="decision" value="deny">Cancel</button></p>\n'
        "</form>"
    )
    return _html_page("Choose an account", body)


def _install_redirect(sim: HubSpotSimulator, params: Mapping[str, str], decision: str, portal_id: Any) -> Response:
    """Redirect the browser back to the app with a code (allow) or ``error=access_denied`` (deny)."""
    if decision not in ("allow", "deny"):
        return _bad_install_request("Choose whether to connect the app.")
    if decision == "allow":
        if portal_id is None or not str(portal_id).isdigit() or int(portal_id) not in sim.portal_ids():
            return _bad_install_request(f"Unknown account: {portal_id}")
        g.portal_id = int(portal_id)
    response = Response(status=302)
    response.headers["Location"] = sim.install_redirect(params, decision, portal_id)
    return response


@api.get("/oauth/authorize")
def install_page() -> Response:
    """Show the install screen, or answer at once when the simulator is set to auto-approve."""
    sim = _sim()
    params = _install_params(request.args)
    problem = sim.authorize_problem(params)
    if problem:
        return _bad_install_request(problem)
    target = sim.auto_approve_portal
    if target is None:
        return _install_page(sim, params)
    return _install_redirect(sim, params, "deny" if target == "deny" else "allow", target)


@api.post("/oauth/authorize")
def install_decision() -> Response:
    """Handle the install form: redirect to the app with a code or with ``error=access_denied``."""
    sim = _sim()
    params = _install_params(request.form)
    problem = sim.authorize_problem(params)
    if problem:
        return _bad_install_request(problem)
    return _install_redirect(sim, params, request.form.get("decision", ""), request.form.get("portal_id"))


@api.post("/oauth/v1/token")
def oauth_token() -> Response:
    """Exchange an authorization code or a refresh token for tokens."""
    return jsonify(_sim().exchange_token(request.form))


@api.get("/oauth/v1/access-tokens/<token>")
def oauth_token_info(token: str) -> Response:
    """Describe an access token, notably its portal (hub_id)."""
    return jsonify(_sim().token_info(token))


# --- HTTP: test controls ------------------------------------------------------------------------


def _required(body: Mapping, *names: str) -> list[Any]:
    """Return the named fields of an admin request or raise a 400 naming the missing ones."""
    missing = [name for name in names if body.get(name) in (None, "")]
    if missing:
        raise SimError(400, {"error": f"missing fields: {', '.join(missing)}"})
    return [body[name] for name in names]


@admin.post("/reset")
def reset() -> Response:
    """Forget everything."""
    _sim().reset()
    return jsonify({"reset": True})


@admin.post("/portals")
def add_portal() -> tuple[Response, int]:
    """Create a portal with an access token."""
    body = _json_body()
    portal_id, access_token = _required(body, "portal_id", "access_token")
    _sim().add_portal(int(portal_id), access_token, body.get("refresh_token"), int(body.get("expires_in", 1800)))
    return jsonify({"portal_id": int(portal_id), "access_token": access_token}), 201


@admin.post("/tokens/expire")
def expire_token() -> Response:
    """Expire an access token."""
    (access_token,) = _required(_json_body(), "access_token")
    if not _sim().expire_token(access_token):
        raise SimError(404, {"error": "unknown access token"})
    return jsonify({"expired": access_token})


@admin.post("/auth-codes")
def add_authorization_code() -> tuple[Response, int]:
    """Register an OAuth authorization code for a portal."""
    body = _json_body()
    code, portal_id = _required(body, "code", "portal_id")
    _sim().add_authorization_code(code, int(portal_id), body.get("redirect_uri"))
    return jsonify({"code": code, "portal_id": int(portal_id)}), 201


@admin.post("/objects")
def add_object() -> tuple[Response, int]:
    """Seed an object, optionally with ordered associations."""
    body = _json_body()
    portal_id, object_type = _required(body, "portal_id", "type")
    created = _sim().add_object(
        int(portal_id), object_type, body.get("properties"), body.get("id"), body.get("associations")
    )
    return jsonify(created), 201


@admin.get("/objects/<int:portal_id>/<object_type>/<object_id>")
def get_object(portal_id: int, object_type: str, object_id: str) -> Response:
    """Return an object with all its properties and associations."""
    found = _sim().get_object(portal_id, object_type, object_id)
    if found is None:
        raise SimError(404, {"error": f"no {object_type} {object_id} in portal {portal_id}"})
    return jsonify(found)


@admin.get("/callbacks")
def list_callbacks() -> Response:
    """List recorded callback completions, optionally for one callbackId."""
    return jsonify(_sim().completions(request.args.get("callbackId")))


@admin.delete("/callbacks")
def clear_callbacks() -> Response:
    """Forget recorded completions."""
    _sim().clear_completions()
    return _no_content()


@admin.post("/faults")
def add_fault() -> tuple[Response, int]:
    """Inject a canned answer for the next matching requests."""
    body = _json_body()
    _sim().add_fault(
        body.get("method", "*"),
        body.get("path", ".*"),
        body.get("status"),
        body.get("count", 1),
        body.get("body"),
        body.get("headers"),
        body.get("delay", 0.0),
    )
    return jsonify({"added": True}), 201


@admin.delete("/faults")
def clear_faults() -> Response:
    """Drop pending faults."""
    _sim().clear_faults()
    return _no_content()


@admin.get("/requests")
def list_requests() -> Response:
    """List logged API requests."""
    return jsonify(_sim().requests())


@admin.delete("/requests")
def clear_requests() -> Response:
    """Forget logged API requests."""
    _sim().clear_requests()
    return _no_content()


@admin.get("/settings")
def get_settings() -> Response:
    """Return the settings: rate limits, client_id, developer_api_key, auto_approve_portal."""
    return jsonify(_sim().settings())


@admin.post("/settings")
def change_settings() -> Response:
    """Change settings (see get_settings)."""
    return jsonify(_sim().configure(**_json_body()))


@admin.get("/action-definitions/<int:app_id>")
def list_definitions(app_id: int) -> Response:
    """Return every action definition of an app."""
    return jsonify(_sim().definitions(app_id))


@admin.get("/properties/<int:portal_id>/<object_type>")
def created_properties(portal_id: int, object_type: str) -> Response:
    """Return the property groups and properties a portal created for a type."""
    return jsonify(_sim().created_properties(portal_id, object_type))


@admin.get("/timeline/<int:portal_id>")
def list_timeline_events(portal_id: int) -> Response:
    """Return a portal's timeline events, optionally of one objectType and objectId."""
    return jsonify(_sim().timeline_events(portal_id, request.args.get("objectType"), request.args.get("objectId")))


@admin.get("/stats")
def stats() -> Response:
    """Return duplicate-completion and refresh counters."""
    return jsonify(_sim().stats())


def create_app(sim: HubSpotSimulator | None = None) -> Flask:
    """Build the simulator's Flask app around ``sim`` (a fresh simulator when None)."""
    app = Flask(__name__, static_folder=None)
    app.config["SIMULATOR"] = sim or HubSpotSimulator()
    app.before_request(_gate_request)
    app.after_request(_log_request)
    app.register_error_handler(SimError, _sim_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_blueprint(api)
    app.register_blueprint(admin)
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator (threaded) until interrupted."""
    parser = argparse.ArgumentParser(description="HubSpot API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument(
        "--portal",
        action="append",
        default=[],
        metavar="ID:ACCESS_TOKEN[:REFRESH_TOKEN]",
        help="create a portal at start-up (repeatable)",
    )
    args = parser.parse_args(argv)
    sim = HubSpotSimulator()
    for spec in args.portal:
        portal_id, access_token, *refresh = spec.split(":")
        sim.add_portal(int(portal_id), access_token, refresh[0] if refresh else None)
    create_app(sim).run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
