"""In-memory HTTP simulator of the QuickBooks Online Accounting API v3 and Intuit OAuth 2.0.

It answers what a real client sees: ``/v3/company/<realm>/...`` entity create/update/read/delete/void/send,
the query language subset, the ``/batch`` endpoint, change data capture (``/cdc``), ValidationFault JSON,
``requestid`` replay, change notifications (webhooks, CloudEvents or the legacy format, signed like Intuit's),
the lowercase gateway 401 body, the XML throttle body, ``intuit_tid`` headers, and Intuit OAuth: the consent
page, the token/revoke endpoints and an OpenID discovery document, so
``intuitlib.client.AuthClient(environment=<discovery url>)`` works offline.

Tests drive it through the Python methods of :class:`QuickBooksSimulator` or through the JSON admin
endpoints under ``/_sim/`` when it runs in another thread or process::

    python -m simulators.quickbooks --port 8101
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import html
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal, overload
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from flask import Blueprint, Flask, Response, request
from werkzeug.serving import run_simple

ACCESS_TOKEN_LIFETIME = 3600
REFRESH_TOKEN_LIFETIME = 8726400
REFRESH_GRACE_SECONDS = 24 * 3600  # "Your previous refresh tokens expire 24 hours after you receive a new one"
MAX_REQUESTID_LENGTH = 50
# Batch: "the RequestID supports a maximum of 36 characters. For each batch ID, only 10 characters are allowed
# when RequestID is also specified" (Intuit's Request ID docs); at most 30 items; 40 batch requests a minute.
MAX_BATCH_REQUESTID_LENGTH = 36
MAX_BATCH_ID_LENGTH = 10
MAX_BATCH_ITEMS = 30
BATCH_PER_MINUTE = 40
MAX_DOC_NUMBER_LENGTH = 21
DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"

SALES_DOCS = ("Invoice", "Estimate", "SalesReceipt", "RefundReceipt")
TRANSACTIONS = (*SALES_DOCS, "Payment", "Purchase")
NAME_LISTS = ("Customer", "Vendor", "Item", "Account", "Term", "PaymentMethod", "TaxCode")
WRITABLE = (*TRANSACTIONS, "Customer", "Vendor", "Item", "Account", "Term", "PaymentMethod")
ENTITY_BY_PATH = {name.lower(): name for name in (*WRITABLE, "TaxCode", "CompanyInfo", "Preferences")}
SENDABLE = ("Invoice", "Estimate", "SalesReceipt")  # the forms with a /<entity>/<id>/send endpoint
ESTIMATE_STATUSES = ("Pending", "Accepted", "Closed", "Rejected")
CDC_DAYS = 30  # "changes of the last 30 days only"
DEFAULT_CDC_MAX_RESULTS = 1000  # UNCONFIRMED: the commonly cited per-entity cap of a CDC response

_META = ("MetaData.CreateTime", "MetaData.LastUpdatedTime")
_SALES_FILTERS = ("Id", "DocNumber", "CustomerRef", "TxnDate", *_META)
QUERYABLE: dict[str, tuple[str, ...]] = {
    "Customer": (
        "Id",
        "DisplayName",
        "GivenName",
        "FamilyName",
        "MiddleName",
        "CompanyName",
        "FullyQualifiedName",
        "Active",
        "Balance",
        "PrimaryEmailAddr",
        *_META,
    ),
    "Item": ("Id", "Name", "Type", "Active", "Sku", "FullyQualifiedName", *_META),
    **{name: _SALES_FILTERS for name in SALES_DOCS},
    "Payment": ("Id", "CustomerRef", "TxnDate", *_META),  # "Filter support not provided for Payment" DocNumber
    "Purchase": ("Id", "DocNumber", "TxnDate", *_META),
    "Account": ("Id", "Name", "AccountType", "AccountSubType", "Active", "Classification", *_META),
    "Vendor": ("Id", "DisplayName", "Active", *_META),
    "Term": ("Id", "Name", "Active", *_META),
    "PaymentMethod": ("Id", "Name", "Active", *_META),
    "TaxCode": ("Id", "Name", "Active", *_META),
    "CompanyInfo": ("Id",),
    "Preferences": ("Id",),
}

ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset",
    "Accounts Receivable": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Other Current Liability": "Liability",
    "Long Term Liability": "Liability",
    "Equity": "Equity",
    "Income": "Revenue",
    "Other Income": "Revenue",
    "Cost of Goods Sold": "Expense",
    "Expense": "Expense",
    "Other Expense": "Expense",
}
ITEM_TYPES = ("Inventory", "NonInventory", "Service", "Category")
ITEM_TYPES_WITH_INCOME_ACCOUNT = ("Inventory", "NonInventory", "Service")
PURCHASE_ACCOUNT_TYPES = {
    "Cash": ("Bank", "Other Current Asset", "Credit Card"),
    "Check": ("Bank",),
    "CreditCard": ("Credit Card",),
}
US_LINE_TAX_CODES = ("TAX", "NON")
CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar",
    "EUR": "Euro",
    "AUD": "Australian Dollar",
}
TAX_RATE_WORDS = {"CA": "GST/HST", "AU": "GST", "IN": "GST"}  # everywhere else QBO says "VAT"

SEED_ACCOUNTS = (
    ("Checking", "Bank", "Checking"),
    ("Savings", "Bank", "Savings"),
    ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    ("Services", "Income", "ServiceFeeIncome"),
    ("Sales of Product Income", "Income", "SalesOfProductIncome"),
    ("Bank Charges & Fees", "Expense", "BankCharges"),
    ("Advertising", "Expense", "AdvertisingPromotional"),
    ("Visa", "Credit Card", "CreditCard"),
    ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
)
SEED_TERMS = (("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30), ("Net 60", 60))
SEED_PAYMENT_METHODS = (
    ("Cash", "NON_CREDIT_CARD"),
    ("Check", "NON_CREDIT_CARD"),
    ("Visa", "CREDIT_CARD"),
    ("MasterCard", "CREDIT_CARD"),
    ("Credit Card", "CREDIT_CARD"),
)
SEED_VENDORS = ("Stripe", "HubSpot Payments")
US_TAX_CODES = (("TAX", "TAX", "Taxable", True), ("NON", "NON", "Non-taxable", False))
NON_US_TAX_CODES = (
    ("2", "20.0% S", "Standard 20%", True),
    ("3", "5.0% R", "Reduced 5%", True),
    ("4", "0.0% Z", "Zero-rated 0%", True),
    ("6", "No VAT", "No VAT", False),
    ("17", "Exempt", "Exempt", False),
)

THROTTLE_BODY = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3">'
    '<Fault type="ValidationFault"><Error code="3001">'
    "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
    "<Detail>The request limit was reached.  Try again later</Detail>"
    "</Error></Fault></IntuitResponse>"
)


# ---------------------------------------------------------------------------------------------------------
# Small helpers


def _iso(moment: float, timespec: str = "seconds") -> str:
    """Format a POSIX time the way QBO does (ISO 8601 with an offset)."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec=timespec)


def _new_tid() -> str:
    """Return a fresh intuit_tid (a random transaction id like Intuit's)."""
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def _compact(value: Any) -> Any:
    """Drop None, "" and empty objects: clients such as python-quickbooks send them for unset fields."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = _compact(item)
            if item is None or item == "" or item == {}:
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [_compact(item) for item in value]
    return value


def _decimal(value: Any, element: str) -> Decimal:
    """Parse a JSON number (or numeric string) or raise the 2010 invalid-property fault."""
    if isinstance(value, bool):
        raise _invalid_property(element)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _invalid_property(element) from None
    if not number.is_finite():
        raise _invalid_property(element)
    return number


def _money(amount: Decimal | float | int) -> float:
    """Round to cents and return the float QBO puts in JSON."""
    return float(Decimal(str(amount)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _ref_value(holder: dict, key: str) -> str | None:
    """Return holder[key]["value"] as a string, or None."""
    ref = holder.get(key)
    if isinstance(ref, dict) and ref.get("value") not in (None, ""):
        return str(ref["value"])
    return None


def _parse_date(value: Any, element: str) -> date:
    """Parse a yyyy-mm-dd date or raise 2010."""
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise _invalid_property(element) from None


def _display_name(entity_name: str, entity: dict) -> str | None:
    """Return the name QBO copies into a Ref pointing at ``entity``."""
    return entity.get("DisplayName") if entity_name in ("Customer", "Vendor") else entity.get("Name")


_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _number_lines(lines: list[dict]) -> None:
    """Give every line the Id and LineNum QBO assigns (1-based, in request order)."""
    for number, line in enumerate(lines, 1):
        line["Id"] = str(number)
        line["LineNum"] = number


# ---------------------------------------------------------------------------------------------------------
# Faults


class QboError(Exception):
    """A QBO Fault: the HTTP status plus one Error entry."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str = "",
        element: str = "",
        *,
        status: int = 400,
        fault_type: str = "ValidationFault",
    ):
        super().__init__(f"{code} {message}: {detail}")
        self.code, self.message, self.detail, self.element = code, message, detail, element
        self.status, self.fault_type = status, fault_type

    def body(self, stamp: str) -> dict:
        """Return the Fault JSON document."""
        error = {"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}
        return {"Fault": {"Error": [error], "type": self.fault_type}, "time": stamp}


def _required(element: str) -> QboError:
    return QboError(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element,
    )


def _invalid_property(element: str) -> QboError:
    return QboError(
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:{element} specified is unsupported or invalid",
        element,
    )


def _invalid_enum(element: str, value: Any) -> QboError:
    return QboError("2170", "Invalid Enumeration", f"Invalid Enumeration : {value}", element)


def _invalid_ref(element: str, value: Any) -> QboError:
    return QboError("2500", "Invalid Reference Id", f"Invalid Reference Id : {element} {value} does not exist", element)


def _object_not_found(element: str = "") -> QboError:
    return QboError(
        "610",
        "Object Not Found",
        "Object Not Found : Something you're trying to use has been made "
        "inactive. Check the fields with accounts, customers, items, vendors or employees.",
        element,
    )


def _business(detail: str, element: str = "") -> QboError:
    return QboError(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


def _duplicate_name(detail: str) -> QboError:
    return QboError("6240", "Duplicate Name Exists Error", f"The name supplied already exists. : {detail}")


def _stale_object() -> QboError:
    return QboError(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and Simulator User were working on "
        "this at the same time. Simulator User finished before you did, so your work was not saved.",
    )


def _too_long(element: str, limit: int, length: int) -> QboError:
    return QboError(
        "2050",
        "Invalid String Length",
        f"{element} is longer than {limit} characters. Supplied length:{length}",
        element,
    )


def _unsupported(path: str) -> QboError:
    return QboError(
        "500", "Unsupported Operation", f"Operation Could not find resource for relative : {path} is not supported."
    )


def _gateway_body(kind: str, detail: str) -> dict:
    """Return the lowercase gateway fault for 401 (AUTHENTICATION) or 403 (AUTHORIZATION)."""
    if kind == "AUTHENTICATION":
        message, code = "message=AuthenticationFailed; errorCode=003200; statusCode=401", "3200"
    else:
        message, code = "message=AuthorizationFailed; errorCode=003100; statusCode=403", "3100"
    return {"fault": {"error": [{"message": message, "detail": detail, "code": code, "element": None}], "type": kind}}


@dataclass
class Reply:
    """An HTTP answer: a dict body is sent as JSON, a str body as is."""

    status: int
    body: Any
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def _throttled() -> Reply:
    return Reply(429, THROTTLE_BODY, "text/xml")


@dataclass
class InjectedFault:
    """A canned response for the next ``count`` requests (or batch items) matching method/path/realm.

    A batch request as a whole is matched by ``path="/batch$"``. A ``batch_item`` fault instead matches the items of
    a batch as if each were a single call (``POST /invoice``, ``GET /query``...) and gives a matching item a Fault
    in the 200 answer while the other items run normally: status 400 gives the 6000 ValidationFault, 5xx the 10000
    SystemFault, and a ``body`` of ``{"Fault": {...}}`` any other. With ``after_commit`` the item's write happens
    and only its answer is replaced.
    """

    status: int | None  # None: answer normally, only after ``delay``
    method: str | None = None
    path: str | None = None  # regex searched in the path after /v3/company/<realm> (or the /oauth2/... path)
    realm_id: str | None = None
    count: int = 1
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    after_commit: bool = False
    delay: float = 0.0
    batch_item: bool = False

    def matches(self, call: Call) -> bool:
        """Tell whether this fault applies to ``call``."""
        return (
            (self.method is None or self.method.upper() == call.method)
            and (self.realm_id is None or self.realm_id == call.realm_id)
            and (self.path is None or re.search(self.path, call.fault_path) is not None)
        )

    def reply(self, stamp: str) -> Reply:
        """Build the fault response (the default body depends on the status)."""
        status = self.status
        assert status is not None, "a delay-only fault has no response of its own"
        headers = dict(self.headers)
        content_type = headers.pop("Content-Type", None)
        if self.body is not None:
            text_type = "text/plain" if isinstance(self.body, str) else "application/json"
            return Reply(status, self.body, content_type or text_type, headers, self.delay)
        if status == 429:
            return replace(_throttled(), headers=headers, delay=self.delay)
        if status in (401, 403):
            kind, detail = (
                ("AUTHENTICATION", "Token invalid: simulated fault")
                if status == 401
                else ("AUTHORIZATION", "Authorization failure: simulated fault")
            )
            return Reply(status, _gateway_body(kind, detail), headers=headers, delay=self.delay)
        if status == 400:
            error = _business("simulated fault")
        else:
            error = QboError(
                "10000",
                "An application error has occurred while processing your request",
                "System Failure Error: An unexpected error occurred while accessing or saving your "
                "data. Please wait a few minutes and try again. If the problem persists, contact "
                "customer support.",
                status=status,
                fault_type="SystemFault",
            )
        return Reply(status, error.body(stamp), headers=headers, delay=self.delay)

    def item_fault(self) -> dict:
        """Return the Fault object a ``batch_item`` fault puts in its item's answer."""
        body = self.body if self.body is not None else self.reply("").body  # the Fault JSON of status 400 or 5xx
        return copy.deepcopy(body["Fault"])


def _item_fault_problem(status: int | None, body: Any, delay: float) -> str | None:
    """Return why a ``batch_item`` fault can't be built (an item answer is a Fault object, sent at once)."""
    if isinstance(body, dict) and isinstance(body.get("Fault"), dict):
        return "a batch_item fault cannot delay" if delay else None
    if body is not None:
        return 'a batch_item fault body must be {"Fault": {...}}'
    if status is None or not (status == 400 or status >= 500):
        return "a batch_item fault needs status 400 or 5xx, or a Fault body"
    return "a batch_item fault cannot delay" if delay else None


# ---------------------------------------------------------------------------------------------------------
# Query language


@dataclass
class Condition:
    """One WHERE clause: ``path op value`` (value is a list for IN)."""

    path: str
    op: str
    value: Any


@dataclass
class Query:
    """A parsed SELECT statement."""

    entity: str
    count: bool = False
    fields: list[str] | None = None  # None: whole entities
    conditions: list[Condition] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (path, descending)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


_TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<string>'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|=|<|>)
  | (?P<punct>[(),*])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
)""",
    re.VERBOSE,
)


def _parse_error(detail: str) -> QboError:
    return QboError("4000", "Error parsing query", f"QueryParserError: {detail}")


class QueryParser:
    """Parse ``SELECT ... FROM Entity [WHERE ...] [ORDERBY ...] [STARTPOSITION n] [MAXRESULTS n]``."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, Any]]:
        tokens: list[tuple[str, Any]] = []
        pos = 0
        while text[pos:].strip():
            match = _TOKEN_RE.match(text, pos)
            if not match:
                raise _parse_error(f'Encountered "{text[pos:].strip()[:20]}" at column {pos + 1}.')
            kind = match.lastgroup
            assert kind is not None  # every alternative of _TOKEN_RE is a named group
            raw = match.group(kind)
            if kind == "string":
                tokens.append((kind, re.sub(r"\\(.)", r"\1", raw[1:-1])))
            elif kind == "number":
                tokens.append((kind, Decimal(raw)))
            else:
                tokens.append((kind, raw))
            pos = match.end()
        return tokens

    def parse(self) -> Query:
        """Return the Query or raise the 4000 parse fault."""
        self._expect_keyword("SELECT")
        count, fields = self._projection()
        self._expect_keyword("FROM")
        entity = self._expect_word("an entity name")
        if entity not in QUERYABLE:
            raise _parse_error(f"Invalid entity name: {entity} (entity names are case sensitive)")
        query = Query(entity, count, fields)
        if self._accept_keyword("WHERE"):
            query.conditions.append(self._condition())
            while self._accept_keyword("AND"):
                query.conditions.append(self._condition())
        if self._accept_keyword("ORDERBY") or (self._accept_keyword("ORDER") and self._expect_keyword("BY")):
            query.order_by.append(self._order())
            while self._accept_punct(","):
                query.order_by.append(self._order())
        seen = set()
        while self.pos < len(self.tokens):
            keyword = self._expect_word("STARTPOSITION, MAXRESULTS or the end").upper()
            if keyword not in ("STARTPOSITION", "MAXRESULTS") or keyword in seen:
                raise _parse_error(f'Encountered "{keyword}" where it is not allowed.')
            seen.add(keyword)
            number = self._expect_integer()
            if keyword == "STARTPOSITION":
                query.start_position = max(number, 1)
            else:
                query.max_results = min(max(number, 0), MAX_MAX_RESULTS)
        return query

    def _projection(self) -> tuple[bool, list[str] | None]:
        if self._accept_keyword("COUNT"):
            for punct in "(*)":
                self._expect_punct(punct)
            return True, None
        if self._accept_punct("*"):
            while self._accept_punct(","):  # "SELECT *, Sku" still returns whole entities
                self._expect_word("a property name")
            return False, None
        fields = [self._expect_word("* or a property name")]
        while self._accept_punct(","):
            fields.append(self._expect_word("a property name"))
        return False, fields

    def _condition(self) -> Condition:
        path = self._expect_word("a property name")
        if self._accept_keyword("IN"):
            self._expect_punct("(")
            values = [self._value()]
            while self._accept_punct(","):
                values.append(self._value())
            self._expect_punct(")")
            return Condition(path, "IN", values)
        if self._accept_keyword("LIKE"):
            kind, pattern = self._next("a quoted pattern")
            if kind != "string":
                raise _parse_error("LIKE needs a quoted pattern.")
            return Condition(path, "LIKE", pattern)
        kind, op = self._next("an operator")
        if kind != "op":
            raise _parse_error(f'Encountered "{op}" where an operator was expected.')
        return Condition(path, op, self._value())

    def _order(self) -> tuple[str, bool]:
        path = self._expect_word("a property name")
        if self._accept_keyword("DESC"):
            return path, True
        self._accept_keyword("ASC")
        return path, False

    def _value(self) -> Any:
        kind, value = self._next("a value")
        if kind in ("string", "number"):
            return value
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _parse_error(f'Encountered "{value}" where a value was expected.')

    def _next(self, expected: str) -> tuple[str, Any]:
        if self.pos >= len(self.tokens):
            raise _parse_error(f"Unexpected end of query, expected {expected}.")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _peek_word(self) -> str | None:
        if self.pos < len(self.tokens) and self.tokens[self.pos][0] == "word":
            return self.tokens[self.pos][1].upper()
        return None

    def _accept_keyword(self, keyword: str) -> bool:
        if self._peek_word() == keyword:
            self.pos += 1
            return True
        return False

    def _expect_keyword(self, keyword: str) -> bool:
        if not self._accept_keyword(keyword):
            raise _parse_error(f"Expected {keyword}.")
        return True

    def _accept_punct(self, punct: str) -> bool:
        if self.pos < len(self.tokens) and self.tokens[self.pos] == ("punct", punct):
            self.pos += 1
            return True
        return False

    def _expect_punct(self, punct: str) -> None:
        if not self._accept_punct(punct):
            raise _parse_error(f'Expected "{punct}".')

    def _expect_word(self, expected: str) -> str:
        kind, value = self._next(expected)
        if kind != "word":
            raise _parse_error(f'Encountered "{value}" where {expected} was expected.')
        return value

    def _expect_integer(self) -> int:
        kind, value = self._next("a number")
        if kind != "number" or value != value.to_integral_value():
            raise _parse_error(f'Encountered "{value}" where an integer was expected.')
        return int(value)


def _field_value(entity: dict, path: str) -> Any:
    """Follow a dotted path; a Ref compares by its value, an email address by its Address."""
    value: Any = entity
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, dict):
        return value.get("value", value.get("Address"))
    return value


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _as_datetime(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compare(actual: Any, expected: Any) -> int:
    """Three-way compare a stored value with a query literal: as booleans, numbers, instants or text."""
    if isinstance(actual, bool):
        wanted = expected if isinstance(expected, bool) else str(expected).lower() == "true"
        return (actual > wanted) - (actual < wanted)
    left, right = _as_number(actual), _as_number(expected)
    if left is not None and right is not None:
        return (left > right) - (left < right)
    # Timestamps compare as instants so offsets and date-only literals work; other text ignores case.
    if isinstance(actual, str) and "T" in actual:
        start, end = _as_datetime(actual), _as_datetime(expected)
        if start is not None and end is not None:
            return (start > end) - (start < end)
    left_text, right_text = str(actual).casefold(), str(expected).casefold()
    return (left_text > right_text) - (left_text < right_text)


def _matches(entity: dict, condition: Condition) -> bool:
    actual = _field_value(entity, condition.path)
    if actual is None:
        return False
    if condition.op == "IN":
        return any(_compare(actual, value) == 0 for value in condition.value)
    if condition.op == "LIKE":
        pattern = "".join(".*" if char == "%" else re.escape(char) for char in condition.value)
        return re.fullmatch(pattern, str(actual), re.IGNORECASE | re.DOTALL) is not None
    order = _compare(actual, condition.value)
    return {"=": order == 0, "<": order < 0, ">": order > 0, "<=": order <= 0, ">=": order >= 0}[condition.op]


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (2, "")
    number = _as_number(value)
    return (0, number) if number is not None else (1, str(value).casefold())


def _field_sort_key(path: str) -> Callable[[dict], tuple]:
    """Return the sort key that orders entities by the value at ``path``."""

    def key(entity: dict) -> tuple:
        return _sort_key(_field_value(entity, path))

    return key


def run_query(query: Query, entities: list[dict]) -> dict:
    """Evaluate ``query`` over ``entities`` and return the QueryResponse object."""
    allowed = QUERYABLE[query.entity]
    for path in [c.path for c in query.conditions] + [path for path, _ in query.order_by]:
        if path not in allowed:
            raise QboError("4001", "Invalid query", f"QueryValidationError: property '{path}' is not queryable")
    rows = [e for e in entities if all(_matches(e, c) for c in query.conditions)]
    if query.entity in NAME_LISTS and not any(c.path == "Active" for c in query.conditions):
        rows = [e for e in rows if e.get("Active", True) is not False]
    if query.count:
        return {"totalCount": len(rows)}
    rows.sort(key=lambda e: _sort_key(e.get("Id")))
    for path, descending in reversed(query.order_by):
        rows.sort(key=_field_sort_key(path), reverse=descending)
    page = rows[query.start_position - 1 : query.start_position - 1 + query.max_results]
    if not page:
        return {}
    if query.fields is not None:
        page = [{**{k: e[k] for k in query.fields if k in e}, "domain": "QBO", "sparse": True} for e in page]
    return {query.entity: copy.deepcopy(page), "startPosition": query.start_position, "maxResults": len(page)}


# ---------------------------------------------------------------------------------------------------------
# Companies and their entities


@dataclass
class Change:
    """One change a write made to an entity, as a change notification reports it."""

    entity_name: str
    entity_id: str
    operation: str  # created, updated, deleted, voided or emailed
    moment: float


_NEVER = datetime.min.replace(tzinfo=UTC)


def _last_updated(entity: dict) -> datetime:
    """Return an entity's (or a tombstone's) MetaData.LastUpdatedTime as an instant."""
    return _as_datetime(entity.get("MetaData", {}).get("LastUpdatedTime")) or _NEVER


class Company:
    """One QBO company (realm): its settings and every stored entity, by type and Id."""

    def __init__(
        self,
        realm_id: str,
        *,
        name: str,
        country: str,
        home_currency: str,
        multicurrency: bool,
        custom_txn_numbers: bool,
        clock,
    ):
        self.realm_id = realm_id
        self.country = country.upper()
        self.home_currency = home_currency.upper()
        self.multicurrency = multicurrency
        self.custom_txn_numbers = custom_txn_numbers
        self._clock = clock
        self.entities: dict[str, dict[str, dict]] = {}
        self._last_id: dict[str, int] = {}
        self.changes: list[Change] = []  # since the simulator last took them (after each API call)
        # Deleted entities by type: Id -> deletion time, for change data capture.
        self.tombstones: dict[str, dict[str, str]] = {}
        # LastUpdatedTime has one-second resolution; this orders changes within a second for CDC.
        self._sequence = itertools.count()
        self._change_order: dict[tuple[str, str], int] = {}
        self._seed(name)

    # -- storage -------------------------------------------------------------------------------------

    def today(self) -> date:
        """Return the company's current date."""
        return datetime.fromtimestamp(self._clock(), UTC).date()

    def get(self, entity_name: str, entity_id: str) -> dict | None:
        """Return the stored entity (not a copy) or None."""
        return self.entities.get(entity_name, {}).get(str(entity_id))

    def all(self, entity_name: str) -> list[dict]:
        """Return the stored entities of one type (not copies), active or not."""
        return list(self.entities.get(entity_name, {}).values())

    def insert(self, entity_name: str, fields: dict, entity_id: str | None = None, *, record: bool = False) -> dict:
        """Store a new entity with SyncToken "0", MetaData and an Id; ``record`` notes it as created."""
        if entity_id is None:
            entity_id = str(self._last_id.get(entity_name, 0) + 1)
        if entity_id.isdigit():  # keep later sequential Ids clear of explicitly chosen ones
            self._last_id[entity_name] = max(self._last_id.get(entity_name, 0), int(entity_id))
        now = _iso(self._clock())
        entity = {
            **fields,
            "domain": "QBO",
            "sparse": False,
            "Id": entity_id,
            "SyncToken": "0",
            "MetaData": {"CreateTime": now, "LastUpdatedTime": now},
        }
        self.entities.setdefault(entity_name, {})[entity_id] = entity
        self.tombstones.get(entity_name, {}).pop(entity_id, None)
        if record:
            self._record(entity_name, entity_id, "created")
        else:
            self._change_order[(entity_name, entity_id)] = next(self._sequence)
        return entity

    def _update(self, entity_name: str, existing: dict, fields: dict, operation: str = "updated") -> dict:
        """Replace an entity's fields, bumping SyncToken and LastUpdatedTime; note the change."""
        entity = {
            **fields,
            "domain": "QBO",
            "sparse": False,
            "Id": existing["Id"],
            "SyncToken": str(int(existing["SyncToken"]) + 1),
            "MetaData": {**existing.get("MetaData", {}), "LastUpdatedTime": _iso(self._clock())},
        }
        self.entities[entity_name][existing["Id"]] = entity
        self._record(entity_name, existing["Id"], operation)
        return entity

    def _record(self, entity_name: str, entity_id: str, operation: str) -> None:
        """Note a change for change notifications and order it for change data capture."""
        self._change_order[(entity_name, entity_id)] = next(self._sequence)
        self.changes.append(Change(entity_name, entity_id, operation, self._clock()))

    def take_changes(self) -> list[Change]:
        """Return and forget the changes noted so far, each (entity, Id, operation) once."""
        seen: set[tuple[str, str, str]] = set()
        taken = []
        for change in self.changes:
            key = (change.entity_name, change.entity_id, change.operation)
            if key not in seen:
                seen.add(key)
                taken.append(change)
        self.changes.clear()
        return taken

    def _touch(self, entity_name: str, entity: dict) -> None:
        """Record a server-side change (e.g. a payment lowered an invoice's Balance)."""
        self._update(entity_name, entity, _strip_server_fields(entity))

    @overload
    def resolve(self, entity_name: str, holder: dict, key: str, *, required: Literal[True]) -> dict: ...

    @overload
    def resolve(self, entity_name: str, holder: dict, key: str, *, required: bool = False) -> dict | None: ...

    def resolve(self, entity_name: str, holder: dict, key: str, *, required: bool = False) -> dict | None:
        """Return the active entity ``holder[key]`` refers to and fill the Ref's name; fault when it can't."""
        value = _ref_value(holder, key)
        if value is None:
            if required:
                raise _required(key)
            return None
        target = self.get(entity_name, value)
        if target is None:
            raise _invalid_ref(key, value)
        if target.get("Active") is False:
            raise _object_not_found(key)
        holder[key]["value"] = value
        name = _display_name(entity_name, target)
        if name:
            holder[key]["name"] = name
        return target

    def account_named(self, name: str) -> dict:
        """Return a seeded account by name."""
        return next(a for a in self.all("Account") if a.get("Name") == name)

    def currency_ref(self, ref: Any, element: str = "CurrencyRef") -> dict:
        """Default the currency to the home currency; refuse foreign ones without multicurrency."""
        code = str(ref.get("value") if isinstance(ref, dict) and ref.get("value") else self.home_currency).upper()
        if code != self.home_currency and not self.multicurrency:
            raise _business(
                f"Multicurrency is not enabled for this company, so the currency must be the home "
                f"currency {self.home_currency}. Supplied value: {code}",
                element,
            )
        return {"value": code, "name": CURRENCY_NAMES.get(code, code)}

    # -- operations ------------------------------------------------------------------------------------

    def save(self, entity_name: str, body: dict, options: frozenset[str] = frozenset()) -> dict:
        """Create, or update when the body has an Id (full, or merged when ``sparse`` is true)."""
        body = _compact(body)
        existing = None
        if body.get("Id") is not None:
            existing = self._for_update(entity_name, body)
            if body.get("sparse") is True:
                body = {**copy.deepcopy(existing), **body}
            elif "DocNumber" not in body and existing.get("DocNumber"):
                body["DocNumber"] = existing["DocNumber"]  # a full update need not repeat a number QBO assigned
        prepared = PREPARERS[entity_name](self, entity_name, _strip_server_fields(body), existing, options)
        if existing is None:
            saved = self.insert(entity_name, prepared, record=True)
        else:
            saved = self._update(entity_name, existing, prepared)
        if entity_name in ("Invoice", "Payment"):
            self.refresh_receivables()
        if entity_name == "Invoice":
            self._close_linked_estimates(saved)
        stored = self.get(entity_name, saved["Id"])
        assert stored is not None  # just saved
        return copy.deepcopy(stored)

    def delete(self, entity_name: str, body: dict) -> dict:
        """Delete a transaction (QBO only deletes transactions; name lists are made inactive instead)."""
        if entity_name not in TRANSACTIONS:
            raise _unsupported(f"/{entity_name.lower()}?operation=delete")
        existing = self._for_update(entity_name, _compact(body))
        if entity_name == "Invoice" and self.payments_applied_to(existing["Id"]):
            raise _business("This invoice has payments applied to it. Delete or change the payments first.")
        del self.entities[entity_name][existing["Id"]]
        self.tombstones.setdefault(entity_name, {})[existing["Id"]] = _iso(self._clock())
        self._record(entity_name, existing["Id"], "deleted")
        if entity_name in ("Invoice", "Payment"):
            self.refresh_receivables()
        return {"domain": "QBO", "status": "Deleted", "Id": existing["Id"]}

    def void(self, entity_name: str, body: dict) -> dict:
        """Void an Invoice, SalesReceipt or Payment: zero its amounts but keep the record."""
        if entity_name not in ("Invoice", "SalesReceipt", "Payment"):
            raise _unsupported(f"/{entity_name.lower()}?operation=void")
        existing = self._for_update(entity_name, _compact(body))
        if entity_name == "Invoice" and self.payments_applied_to(existing["Id"]):
            raise _business("This invoice has payments applied to it. Delete or change the payments first.")
        voided = _strip_server_fields(copy.deepcopy(existing))
        for line in voided.get("Line", []):
            line["Amount"] = 0.0
            if "Qty" in line.get("SalesItemLineDetail", {}):
                line["SalesItemLineDetail"]["Qty"] = 0  # keeps Amount == Qty x UnitPrice for later updates
        voided.update(TotalAmt=0.0, PrivateNote="Voided")
        if entity_name == "Payment":
            voided["UnappliedAmt"] = 0.0
        else:
            voided["Balance"] = 0.0
        saved = self._update(entity_name, existing, voided, "voided")
        self.refresh_receivables()
        stored = self.get(entity_name, saved["Id"])
        assert stored is not None  # just saved
        return copy.deepcopy(stored)

    def send(self, entity_name: str, entity_id: str, send_to: str | None) -> dict:
        """Email a sales form (to ``send_to``, else its BillEmail): EmailStatus becomes EmailSent."""
        existing = self.get(entity_name, entity_id)
        if existing is None:
            raise _object_not_found()
        fields = _strip_server_fields(copy.deepcopy(existing))
        if send_to is not None:
            if not _EMAIL_RE.fullmatch(send_to):
                raise _invalid_property("sendTo")
            fields["BillEmail"] = {**fields.get("BillEmail", {}), "Address": send_to}
        if not _field_value(fields, "BillEmail"):
            # UNCONFIRMED: Intuit's code and wording when there is no address to send to.
            raise _business("An email address is required to send this form. Supply BillEmail or sendTo.", "sendTo")
        fields["EmailStatus"] = "EmailSent"
        fields["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": _iso(self._clock())}
        saved = self._update(entity_name, existing, fields, "emailed")
        return copy.deepcopy(saved)

    def query(self, text: str) -> dict:
        """Run a query statement."""
        query = QueryParser(text).parse()
        return run_query(query, self.all(query.entity))

    def changed_since(self, entity_names: list[str], since: datetime, max_results: int) -> list[dict]:
        """Answer change data capture: per entity type, what changed at or after ``since``, oldest first."""
        return [{"QueryResponse": [self._changes_of(name, since, max_results) for name in entity_names]}]

    def _changes_of(self, entity_name: str, since: datetime, max_results: int) -> dict:
        deleted = [
            {"Id": entity_id, "status": "Deleted", "MetaData": {"LastUpdatedTime": when}}
            for entity_id, when in self.tombstones.get(entity_name, {}).items()
        ]
        rows = [row for row in self.all(entity_name) + deleted if _last_updated(row) >= since]
        rows.sort(key=lambda row: (_last_updated(row), self._change_order.get((entity_name, row["Id"]), -1)))
        page = copy.deepcopy(rows[:max_results])
        if not page:
            return {}
        return {entity_name: page, "startPosition": 1, "maxResults": len(page)}

    def _for_update(self, entity_name: str, body: dict) -> dict:
        """Return the stored entity an update/delete/void names, checking its SyncToken."""
        entity_id = body.get("Id")
        if entity_id is None:
            raise _required("Id")
        existing = self.get(entity_name, str(entity_id))
        if existing is None:
            raise _object_not_found("Id")
        if body.get("SyncToken") is None:
            raise _required("SyncToken")
        if str(body["SyncToken"]) != existing["SyncToken"]:
            raise _stale_object()
        return existing

    # -- receivables -----------------------------------------------------------------------------------

    def payments_applied_to(self, invoice_id: str) -> list[tuple[str, Decimal]]:
        """Return (payment Id, amount) for every payment line linked to the invoice."""
        return [
            (payment["Id"], amount)
            for payment in self.all("Payment")
            for linked_id, amount in _applications(payment).items()
            if linked_id == invoice_id
        ]

    def refresh_receivables(self) -> None:
        """Recompute invoice balances and payment links, then customer balances, after money moved."""
        balances: dict[str, Decimal] = {}
        # Every payment's applications, read once: thousands of invoices and payments stay quick to recompute.
        applied: dict[str, list[tuple[str, Decimal]]] = {}
        for payment in self.all("Payment"):
            for linked_id, amount in _applications(payment).items():
                applied.setdefault(linked_id, []).append((payment["Id"], amount))
        for invoice in self.all("Invoice"):
            payments = applied.get(invoice["Id"], [])
            balance = _money(Decimal(str(invoice.get("TotalAmt", 0))) - sum(a for _, a in payments))
            links = _invoice_links(invoice.get("LinkedTxn", []), payments)
            if balance != invoice.get("Balance") or links != invoice.get("LinkedTxn", []):
                invoice["Balance"], invoice["LinkedTxn"] = balance, links
                self._touch("Invoice", invoice)
            customer_id = _ref_value(invoice, "CustomerRef")
            if customer_id is not None:
                balances[customer_id] = balances.get(customer_id, Decimal(0)) + Decimal(str(balance))
        for customer in self.all("Customer"):
            total = _money(balances.get(customer["Id"], 0))
            customer["Balance"] = customer["BalanceWithJobs"] = total

    def _close_linked_estimates(self, invoice: dict) -> None:
        """Mark the estimates an invoice was created from as Closed, as QBO does."""
        for link in invoice.get("LinkedTxn", []):
            estimate = self.get("Estimate", link.get("TxnId")) if link.get("TxnType") == "Estimate" else None
            if estimate and estimate.get("TxnStatus") != "Closed":
                estimate["TxnStatus"] = "Closed"
                self._touch("Estimate", estimate)

    # -- seed data -------------------------------------------------------------------------------------

    def _seed(self, name: str) -> None:
        us = self.country == "US"
        self.insert(
            "CompanyInfo",
            {
                "CompanyName": name,
                "LegalName": name,
                "Country": self.country,
                "CompanyAddr": {"Line1": "1 Simulator Way", "City": "Mountain View", "Country": self.country},
                "SupportedLanguages": "en",
                "FiscalYearStartMonth": "January",
                "CompanyStartDate": self.today().isoformat(),
            },
        )
        self.insert(
            "Preferences",
            {
                "SalesFormsPrefs": {
                    "CustomTxnNumbers": self.custom_txn_numbers,
                    "AllowDiscount": True,
                    "AllowDeposit": True,
                },
                "CurrencyPrefs": {
                    "MultiCurrencyEnabled": self.multicurrency,
                    "HomeCurrency": {"value": self.home_currency},
                },
                "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": us},
            },
        )
        home = self.currency_ref(None)
        for account_name, account_type, sub_type in SEED_ACCOUNTS:
            self.insert(
                "Account",
                {
                    "Name": account_name,
                    "FullyQualifiedName": account_name,
                    "AccountType": account_type,
                    "AccountSubType": sub_type,
                    "Classification": ACCOUNT_CLASSIFICATION[account_type],
                    "Active": True,
                    "SubAccount": False,
                    "CurrentBalance": 0.0,
                    "CurrencyRef": home,
                },
            )
        for term_name, days in SEED_TERMS:
            self.insert("Term", {"Name": term_name, "Type": "STANDARD", "DueDays": days, "Active": True})
        for method_name, method_type in SEED_PAYMENT_METHODS:
            self.insert("PaymentMethod", {"Name": method_name, "Type": method_type, "Active": True})
        for code_id, code_name, description, taxable in US_TAX_CODES if us else NON_US_TAX_CODES:
            self.insert(
                "TaxCode",
                {"Name": code_name, "Description": description, "Taxable": taxable, "TaxGroup": False, "Active": True},
                code_id,
            )
        for vendor_name in SEED_VENDORS:
            self.insert(
                "Vendor",
                {
                    "DisplayName": vendor_name,
                    "PrintOnCheckName": vendor_name,
                    "Active": True,
                    "Balance": 0.0,
                    "CurrencyRef": home,
                },
            )


_SERVER_FIELDS = ("Id", "SyncToken", "MetaData", "domain", "sparse")


def _strip_server_fields(entity: dict) -> dict:
    return {k: v for k, v in entity.items() if k not in _SERVER_FIELDS}


def _applications(payment: dict) -> dict[str, Decimal]:
    """Return {invoice Id: amount} a payment applies."""
    applied: dict[str, Decimal] = {}
    for line in payment.get("Line", []):
        for link in line.get("LinkedTxn", []):
            if link.get("TxnType") == "Invoice":
                invoice_id = str(link.get("TxnId"))
                applied[invoice_id] = applied.get(invoice_id, Decimal(0)) + Decimal(str(line.get("Amount", 0)))
    return applied


def _invoice_links(links: list[dict], payments: list[tuple[str, Decimal]]) -> list[dict]:
    """Keep an invoice's own links and list the payments applied to it, as QBO does."""
    own = [link for link in links if link.get("TxnType") != "Payment"]
    return own + [{"TxnId": payment_id, "TxnType": "Payment"} for payment_id, _ in payments]


# ---------------------------------------------------------------------------------------------------------
# Per-entity validation and computed fields. Each preparer gets a copy of the request body (server
# fields removed, sparse updates already merged) and returns the fields to store, or raises QboError.


def _require_name(body: dict, key: str = "Name") -> str:
    """Return the stripped name, or raise 2020 when missing and 6000 when it has a colon."""
    name = str(body.get(key, "")).strip()
    if not name:
        raise _required(key)
    if ":" in name:
        raise _business("The name can't contain a colon (:).", key)
    return name


def _check_unique_name(
    company: Company, kinds: tuple[str, ...], key: str, name: str, existing: dict | None, detail: str
) -> None:
    """Raise 6240 when another entity of ``kinds`` has this name (case-insensitively, inactive ones too)."""
    for kind in kinds:
        for other in company.all(kind):
            if other is not existing and str(other.get(key, "")).casefold() == name.casefold():
                raise _duplicate_name(detail)


def _prepare_party(company: Company, kind: str, body: dict, existing: dict | None, _options) -> dict:
    """Customer and Vendor: DisplayName (or one built from the name parts) unique across both."""
    parts = (str(body.get(k, "")).strip() for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix"))
    name = str(body.get("DisplayName") or " ".join(p for p in parts if p)).strip()
    if not name:
        raise QboError(
            "6080",
            "Name field is empty",
            "You must fill out at least one of the name fields: "
            "Title, GivenName, MiddleName, FamilyName, Suffix or DisplayName.",
            "DisplayName",
        )
    if ":" in name:
        raise _business("The name can't contain a colon (:).", "DisplayName")
    _check_unique_name(
        company,
        ("Customer", "Vendor"),
        "DisplayName",
        name,
        existing,
        "Another customer, vendor or employee is already using this name. Please use a different name.",
    )
    body["DisplayName"] = name
    body.setdefault("PrintOnCheckName", name)
    body.setdefault("Active", True)
    body["CurrencyRef"] = company.currency_ref(body.get("CurrencyRef"))
    body["Balance"] = existing.get("Balance", 0.0) if existing else 0.0  # computed from invoices, not settable
    if kind == "Customer":
        body["FullyQualifiedName"] = name
        body["BalanceWithJobs"] = body["Balance"]
        body.setdefault("Job", False)
        body.setdefault("BillWithParent", False)
    return body


def _prepare_item(company: Company, _kind: str, body: dict, existing: dict | None, _options) -> dict:
    """Item: unique Name, a Type, an Income account for sellable types."""
    name = _require_name(body)
    _check_unique_name(
        company,
        ("Item",),
        "Name",
        name,
        existing,
        "Another product or service is already using this name. Please use a different name.",
    )
    item_type = body.get("Type")
    if not item_type:
        raise _required("Type")
    if item_type not in ITEM_TYPES:
        raise _invalid_enum("Type", item_type)
    income = company.resolve("Account", body, "IncomeAccountRef", required=item_type in ITEM_TYPES_WITH_INCOME_ACCOUNT)
    if income is not None and income.get("Classification") != "Revenue":
        raise QboError(
            "6430",
            "Invalid account type used",
            "Invalid account type: IncomeAccountRef must be an Income or Other Income account.",
            "IncomeAccountRef",
        )
    for key in ("ExpenseAccountRef", "AssetAccountRef"):
        company.resolve("Account", body, key)
    body["Name"] = body["FullyQualifiedName"] = name
    body.setdefault("Active", True)
    body.setdefault("Taxable", False)
    body.setdefault("UnitPrice", 0)
    body.setdefault("TrackQtyOnHand", False)
    return body


def _prepare_account(company: Company, _kind: str, body: dict, existing: dict | None, _options) -> dict:
    """Account: unique Name and a known AccountType (Classification follows from it)."""
    name = _require_name(body)
    _check_unique_name(
        company,
        ("Account",),
        "Name",
        name,
        existing,
        "Another account is already using this name. Please use a different name.",
    )
    account_type = body.get("AccountType")
    if not account_type:
        raise _required("AccountType")
    if account_type not in ACCOUNT_CLASSIFICATION:
        raise _invalid_enum("AccountType", account_type)
    body["Name"] = body["FullyQualifiedName"] = name
    body["Classification"] = ACCOUNT_CLASSIFICATION[account_type]
    body["CurrencyRef"] = company.currency_ref(body.get("CurrencyRef"))
    body.setdefault("Active", True)
    body.setdefault("SubAccount", False)
    body["CurrentBalance"] = existing.get("CurrentBalance", 0.0) if existing else 0.0
    return body


def _prepare_term(company: Company, _kind: str, body: dict, existing: dict | None, _options) -> dict:
    """Term: unique Name, DueDays."""
    name = _require_name(body)
    _check_unique_name(
        company,
        ("Term",),
        "Name",
        name,
        existing,
        "Another term is already using this name. Please use a different name.",
    )
    body["Name"] = name
    body["DueDays"] = int(_decimal(body.get("DueDays", 0), "DueDays"))
    body.setdefault("Type", "STANDARD")
    body.setdefault("Active", True)
    return body


def _prepare_payment_method(company: Company, _kind: str, body: dict, existing: dict | None, _options) -> dict:
    """PaymentMethod: unique Name."""
    name = _require_name(body)
    _check_unique_name(
        company,
        ("PaymentMethod",),
        "Name",
        name,
        existing,
        "Another payment method is already using this name. Please use a different name.",
    )
    body["Name"] = name
    body.setdefault("Type", "NON_CREDIT_CARD")
    body.setdefault("Active", True)
    return body


def _assign_doc_number(company: Company, kind: str, body: dict, existing: dict | None, options: frozenset[str]) -> None:
    """Auto-number sales forms when custom numbers are off; check length and duplicates."""
    doc_number = body.get("DocNumber")
    auto = kind in SALES_DOCS and (
        doc_number == "AUTO_GENERATE" or (doc_number is None and not company.custom_txn_numbers)
    )
    if auto:
        used = [int(d["DocNumber"]) for d in company.all(kind) if str(d.get("DocNumber", "")).isdigit()]
        doc_number = str(max(used, default=1000) + 1)
    if doc_number is None:
        return
    doc_number = str(doc_number)
    if len(doc_number) > MAX_DOC_NUMBER_LENGTH:
        raise QboError(
            "6000",
            "A business validation error has occurred while processing your request",
            f"String length is either shorter or longer than supported by specification. "
            f"Min:0 Max:{MAX_DOC_NUMBER_LENGTH} supported. Supplied length:{len(doc_number)}",
            "DocNumber",
        )
    if company.custom_txn_numbers and "allowduplicatedocnum" not in options:
        for other in company.all(kind):
            if other.get("DocNumber") == doc_number and (existing is None or other["Id"] != existing["Id"]):
                raise QboError(
                    "6140",
                    "Duplicate Document Number Error",
                    f"You must specify a different number. This number has already been used. "
                    f"DocNumber={doc_number} is assigned to TxnType={kind} with TxnId={other['Id']}",
                    "DocNumber",
                )
    body["DocNumber"] = doc_number


def _txn_date(company: Company, body: dict) -> date:
    txn_date = _parse_date(body["TxnDate"], "TxnDate") if body.get("TxnDate") else company.today()
    body["TxnDate"] = txn_date.isoformat()
    return txn_date


def _txn_currency(company: Company, body: dict, party: dict | None) -> None:
    """Set CurrencyRef; with multicurrency on it must be the customer's/vendor's currency."""
    currency = company.currency_ref(body.get("CurrencyRef"))
    party_currency = _ref_value(party, "CurrencyRef") if party else None
    if party and party_currency and party_currency != currency["value"]:
        raise _business(
            f"The currency of the transaction ({currency['value']}) must match the currency of "
            f"{party.get('DisplayName')} ({party_currency}).",
            "CurrencyRef",
        )
    body["CurrencyRef"] = currency


def _check_line_amount(line: dict, detail: dict, amount: Decimal, index: int) -> None:
    """Amount must equal Qty × UnitPrice (to the cent) when both are given: error 6070."""
    if detail.get("Qty") is None or detail.get("UnitPrice") is None:
        return
    product = _decimal(detail["Qty"], "Qty") * _decimal(detail["UnitPrice"], "UnitPrice")
    if _money(product) != _money(amount):
        raise QboError(
            "6070",
            "Amount is not equal to UnitPrice * Qty",
            f"Amount is not equal to UnitPrice * Qty. Supplied value:{_money(amount)} "
            f"(line {index}, UnitPrice * Qty = {_money(product)})",
            "Amount",
        )


def _check_line_tax_code(company: Company, detail: dict) -> None:
    """US lines take the TAX/NON pseudo codes (6100); elsewhere every line needs a real TaxCode (6000)."""
    code = _ref_value(detail, "TaxCodeRef")
    if company.country == "US":
        if code is not None and code not in US_LINE_TAX_CODES:
            raise QboError(
                "6100",
                "Invalid tax code",
                f"Invalid line TaxCodeRef {code}: US companies accept only TAX or NON on lines.",
                "TaxCodeRef",
            )
    elif code is None or company.get("TaxCode", code) is None:
        rate_word = TAX_RATE_WORDS.get(company.country, "VAT")
        raise _business(f"Make sure all your transactions have a {rate_word} rate before you save.", "TaxCodeRef")


def _sales_lines(company: Company, lines: list[dict]) -> tuple[list[dict], Decimal, Decimal]:
    """Validate sales lines; return them (with Ids) plus the item subtotal and the discount total."""
    kept, subtotal, discounts = [], Decimal(0), []
    for index, line in enumerate(lines, 1):
        detail_type = line.get("DetailType")
        if detail_type == "SubTotalLineDetail":
            continue  # QBO recomputes the subtotal line
        if not detail_type:
            raise _required("Line.DetailType")
        if detail_type == "SalesItemLineDetail":
            if line.get("Amount") is None:
                raise _required("Line.Amount")
            amount = _decimal(line["Amount"], "Line.Amount")
            detail = line.setdefault("SalesItemLineDetail", {})
            company.resolve("Item", detail, "ItemRef")
            _check_line_amount(line, detail, amount, index)
            _check_line_tax_code(company, detail)
            line["Amount"] = _money(amount)
            subtotal += amount
        elif detail_type == "DiscountLineDetail":
            company.resolve("Account", line.setdefault("DiscountLineDetail", {}), "DiscountAccountRef")
            discounts.append(line)
        elif detail_type != "DescriptionOnly":
            raise _invalid_enum("Line.DetailType", detail_type)
        kept.append(line)
    discount_total = Decimal(0)
    for line in discounts:
        detail = line["DiscountLineDetail"]
        if detail.get("PercentBased") and detail.get("DiscountPercent") is not None:
            percent = _decimal(detail["DiscountPercent"], "DiscountPercent")
            amount = Decimal(str(_money(subtotal * percent / 100)))
        else:
            amount = _decimal(line.get("Amount", 0), "Line.Amount")
        line["Amount"] = _money(amount)
        discount_total += amount
    _number_lines(kept)
    kept.append({"Amount": _money(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    return kept, subtotal, discount_total


def _prepare_sales_doc(company: Company, kind: str, body: dict, existing: dict | None, options: frozenset[str]) -> dict:
    """Invoice, Estimate, SalesReceipt, RefundReceipt: references, lines, totals, numbers, dates."""
    customer = company.resolve("Customer", body, "CustomerRef", required=True)
    if not body.get("Line"):
        raise _required("Line")
    _txn_currency(company, body, customer)
    _assign_doc_number(company, kind, body, existing, options)
    txn_date = _txn_date(company, body)
    body["Line"], subtotal, discount = _sales_lines(company, body["Line"])
    tax_detail = body.get("TxnTaxDetail", {})
    tax = _decimal(tax_detail.get("TotalTax", 0), "TxnTaxDetail.TotalTax")  # an explicit amount is honoured
    body["TxnTaxDetail"] = {**tax_detail, "TotalTax": _money(tax)}
    total = subtotal - discount + tax
    if total < 0:
        raise _business("The transaction total can't be negative.", "Line")
    body["TotalAmt"] = _money(total)
    if company.multicurrency:
        rate = _decimal(body.get("ExchangeRate", 1), "ExchangeRate")
        body["ExchangeRate"] = float(rate)
        body["HomeTotalAmt"] = _money(total * rate)
    body.setdefault("EmailStatus", "NotSet")
    body.setdefault("PrintStatus", "NotSet")
    if kind == "Invoice":
        _finish_invoice(company, body, existing, txn_date, total)
    elif kind == "Estimate":
        status = body.setdefault("TxnStatus", "Pending")
        if status not in ESTIMATE_STATUSES:
            raise _invalid_enum("TxnStatus", status)
    else:
        deposit_required = kind == "RefundReceipt"
        if not deposit_required and _ref_value(body, "DepositToAccountRef") is None:
            # "If you do not specify this account, QBO uses the Undeposited Funds account."
            body["DepositToAccountRef"] = {"value": company.account_named("Undeposited Funds")["Id"]}
        company.resolve("Account", body, "DepositToAccountRef", required=deposit_required)
        company.resolve("PaymentMethod", body, "PaymentMethodRef")
        body["Balance"] = 0.0
    return body


def _finish_invoice(company: Company, body: dict, existing: dict | None, txn_date: date, total: Decimal) -> None:
    """Invoice extras: term and DueDate, links to estimates, Balance after applied payments."""
    term = company.resolve("Term", body, "SalesTermRef")
    if not body.get("DueDate"):
        body["DueDate"] = (txn_date + timedelta(days=int(term.get("DueDays", 0)) if term else 0)).isoformat()
    else:
        body["DueDate"] = _parse_date(body["DueDate"], "DueDate").isoformat()
    for link in body.get("LinkedTxn", []):
        if link.get("TxnType") == "Estimate" and company.get("Estimate", str(link.get("TxnId"))) is None:
            raise _invalid_ref("LinkedTxn.TxnId", link.get("TxnId"))
    payments = company.payments_applied_to(existing["Id"]) if existing else []
    applied = sum((amount for _, amount in payments), Decimal(0))
    if total < applied:
        raise _business(f"The invoice total can't be less than the {_money(applied)} already paid on it.", "Line")
    body["LinkedTxn"] = _invoice_links(body.get("LinkedTxn", []), payments)
    body["Balance"] = _money(total - applied)


def _prepare_payment(company: Company, _kind: str, body: dict, existing: dict | None, _options) -> dict:
    """Payment: CustomerRef + TotalAmt; lines apply amounts to that customer's open invoices."""
    customer = company.resolve("Customer", body, "CustomerRef", required=True)
    if body.get("TotalAmt") is None:
        raise _required("TotalAmt")
    total = _decimal(body["TotalAmt"], "TotalAmt")
    if total < 0:
        raise _business("A payment's TotalAmt can't be negative.", "TotalAmt")
    _txn_currency(company, body, customer)
    _txn_date(company, body)
    if _ref_value(body, "DepositToAccountRef") is None:
        body["DepositToAccountRef"] = {"value": company.account_named("Undeposited Funds")["Id"]}
    company.resolve("Account", body, "DepositToAccountRef")
    company.resolve("PaymentMethod", body, "PaymentMethodRef")
    previously = _applications(existing) if existing else {}
    applying: dict[str, Decimal] = {}
    for line in body.get("Line", []):
        amount = _decimal(line.get("Amount", 0), "Line.Amount")
        for link in line.get("LinkedTxn", []):
            invoice_id = str(link.get("TxnId"))
            invoice = company.get("Invoice", invoice_id) if link.get("TxnType") == "Invoice" else None
            if invoice is None:
                raise _invalid_ref("LinkedTxn.TxnId", link.get("TxnId"))
            if _ref_value(invoice, "CustomerRef") != customer["Id"]:
                raise _business(f"Invoice {invoice_id} belongs to a different customer.", "LinkedTxn")
            applying[invoice_id] = applying.get(invoice_id, Decimal(0)) + amount
            open_balance = Decimal(str(invoice.get("Balance", 0))) + previously.get(invoice_id, Decimal(0))
            if applying[invoice_id] > open_balance:
                raise _business(
                    f"The amount applied to Invoice {invoice_id} is more than its open balance "
                    f"of {_money(open_balance)}.",
                    "Line.Amount",
                )
        line["Amount"] = _money(amount)
    applied = sum((_decimal(line.get("Amount", 0), "Line.Amount") for line in body.get("Line", [])), Decimal(0))
    if applied > total:
        raise _business("The amounts applied to transactions are more than the payment's TotalAmt.", "TotalAmt")
    body["TotalAmt"] = _money(total)
    body["UnappliedAmt"] = _money(total - applied)
    body.setdefault("ProcessPayment", False)
    body.setdefault("Line", [])
    return body


def _resolve_payee(company: Company, body: dict) -> None:
    """A Purchase's EntityRef may name a Vendor or a Customer (Employees are not simulated)."""
    value = _ref_value(body, "EntityRef")
    if value is None:
        return
    wanted = body["EntityRef"].get("type")
    for kind in (wanted,) if wanted in ("Vendor", "Customer") else ("Vendor", "Customer"):
        if company.get(kind, value) is not None:
            company.resolve(kind, body, "EntityRef")
            body["EntityRef"]["type"] = kind
            return
    raise _invalid_ref("EntityRef", value)


def _prepare_purchase(company: Company, kind: str, body: dict, existing: dict | None, options: frozenset[str]) -> dict:
    """Purchase (expense): PaymentType, a matching AccountRef, expense lines."""
    payment_type = body.get("PaymentType")
    if not payment_type:
        raise _required("PaymentType")
    if payment_type not in PURCHASE_ACCOUNT_TYPES:
        raise _invalid_enum("PaymentType", payment_type)
    account = company.resolve("Account", body, "AccountRef", required=True)
    if account.get("AccountType") not in PURCHASE_ACCOUNT_TYPES[payment_type]:
        allowed = " or ".join(PURCHASE_ACCOUNT_TYPES[payment_type])
        raise _business(f"A {payment_type} purchase must be paid from a {allowed} account.", "AccountRef")
    if not body.get("Line"):
        raise _required("Line")
    _resolve_payee(company, body)
    _txn_currency(company, body, None)
    _assign_doc_number(company, kind, body, existing, options)
    _txn_date(company, body)
    total = Decimal(0)
    for index, line in enumerate(body["Line"], 1):
        if line.get("Amount") is None:
            raise _required("Line.Amount")
        amount = _decimal(line["Amount"], "Line.Amount")
        detail_type = line.get("DetailType")
        if detail_type == "AccountBasedExpenseLineDetail":
            detail = line.setdefault(detail_type, {})
            company.resolve("Account", detail, "AccountRef", required=True)
        elif detail_type == "ItemBasedExpenseLineDetail":
            detail = line.setdefault(detail_type, {})
            company.resolve("Item", detail, "ItemRef", required=True)
            _check_line_amount(line, detail, amount, index)
        else:
            raise _invalid_enum("Line.DetailType", detail_type)
        line["Amount"] = _money(amount)
        total += amount
    _number_lines(body["Line"])
    body["TotalAmt"] = _money(total)
    body.setdefault("Credit", False)
    return body


PREPARERS = {
    "Customer": _prepare_party,
    "Vendor": _prepare_party,
    "Item": _prepare_item,
    "Account": _prepare_account,
    "Term": _prepare_term,
    "PaymentMethod": _prepare_payment_method,
    **{name: _prepare_sales_doc for name in SALES_DOCS},
    "Payment": _prepare_payment,
    "Purchase": _prepare_purchase,
}


# ---------------------------------------------------------------------------------------------------------
# OAuth tokens


@dataclass
class _Grant:
    realm_id: str
    expires_at: float


class TokenStore:
    """Access tokens, refresh tokens and authorization codes, each bound to one realm."""

    def __init__(self, clock):
        self._clock = clock
        self.access: dict[str, _Grant] = {}
        self.refresh: dict[str, _Grant] = {}
        self.codes: dict[str, tuple[str, str | None]] = {}  # code -> (realm, redirect_uri it was issued for)

    def access_problem(self, token: str, realm_id: str) -> str | None:
        """Return why ``token`` can't call ``realm_id`` (the 401 detail), or None when it can."""
        if not token:
            return "Malformed bearer token: too short or too long"
        grant = self.access.get(token)
        if grant is None or grant.realm_id != realm_id:
            return "Token invalid: the token is unknown, revoked or for another company"
        if grant.expires_at <= self._clock():
            return f"Token expired: {token[:12]}..."
        return None

    def issue(self, realm_id: str) -> dict:
        """Mint a new access/refresh token pair and return the token response."""
        access, refresh = f"sim-at-{secrets.token_urlsafe(24)}", f"sim-rt-{secrets.token_urlsafe(24)}"
        now = self._clock()
        self.access[access] = _Grant(realm_id, now + ACCESS_TOKEN_LIFETIME)
        self.refresh[refresh] = _Grant(realm_id, now + REFRESH_TOKEN_LIFETIME)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "x_refresh_token_expires_in": REFRESH_TOKEN_LIFETIME,
            "token_type": "bearer",
        }

    def rotate(self, refresh_token: str, grace_seconds: float) -> dict | None:
        """Exchange a live refresh token for new tokens; the old one lives on for ``grace_seconds``."""
        grant = self.refresh.get(refresh_token)
        now = self._clock()
        if grant is None or grant.expires_at <= now:
            return None
        grant.expires_at = min(grant.expires_at, now + grace_seconds)
        return {**self.issue(grant.realm_id), "realm_id": grant.realm_id}

    def redeem(self, code: str, redirect_uri: str | None) -> str | None:
        """Consume a code issued for ``redirect_uri`` (any, when issued without one); return its realm or None."""
        realm_id, expected_uri = self.codes.get(code, (None, None))
        if realm_id is None or expected_uri not in (None, redirect_uri):
            return None
        del self.codes[code]  # codes are single-use
        return realm_id

    def realm_of(self, token: str) -> str | None:
        """Return the realm an access or refresh token belongs to."""
        grant = self.access.get(token) or self.refresh.get(token)
        return grant.realm_id if grant else None

    def revoke_realm(self, realm_id: str) -> None:
        """Forget every token of a realm (the connection is gone)."""
        for store in (self.access, self.refresh):
            for token in [t for t, g in store.items() if g.realm_id == realm_id]:
                del store[token]


# ---------------------------------------------------------------------------------------------------------
# Change data capture arguments


def _cdc_arguments(args: dict[str, str], now: float) -> tuple[list[str], datetime]:
    """Return the entity names and the changedSince instant of a /cdc call, or raise its 400 fault."""
    names: list[str] = []
    for word in (args.get("entities") or "").split(","):
        if not word.strip():
            continue
        name = ENTITY_BY_PATH.get(word.strip().lower())
        if name not in WRITABLE:
            # UNCONFIRMED: Intuit's code and wording for an entity CDC does not cover.
            raise _invalid_property(f"entities ({word.strip()})")
        if name not in names:
            names.append(name)
    if not names:
        raise _required("entities")
    text = args.get("changedSince")
    if not text:
        raise _required("changedSince")
    since = _as_datetime(text.strip())
    if since is None:
        raise _invalid_property("changedSince")
    if since < datetime.fromtimestamp(now, UTC) - timedelta(days=CDC_DAYS):
        # UNCONFIRMED: Intuit's code and wording; the 30-day window itself is documented.
        raise _business(f"changedSince must be within the last {CDC_DAYS} days.", "changedSince")
    return names, since


# ---------------------------------------------------------------------------------------------------------
# Change notifications (webhooks)

WEBHOOK_TIMEOUT = 5.0
WEBHOOK_RETRY_PAUSES = (0.2, 0.5, 1.0)  # seconds before each retry of an unanswered or non-2xx delivery
LEGACY_OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "voided": "Void",
    "emailed": "Emailed",
}


def _utc_z(moment: float, timespec: str) -> str:
    """Format a POSIX time as ISO 8601 UTC ending in Z, as Intuit's notifications do."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def webhook_signature(verifier_token: str, body: bytes) -> str:
    """Return the intuit-signature header: base64(HMAC-SHA256(verifier token, raw body))."""
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class WebhookEvent:
    """One change notification, queued until delivered."""

    realm_id: str
    change: Change
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def cloud_event(self, source: str) -> dict:
        """Return the event in Intuit's CloudEvents format."""
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": source,
            "type": f"qbo.{self.change.entity_name.lower()}.{self.change.operation}.v1",
            "datacontenttype": "application/json",
            "time": _utc_z(self.change.moment, "microseconds"),
            "intuitentityid": self.change.entity_id,
            "intuitaccountid": self.realm_id,
            "data": {},
        }

    def legacy_entity(self) -> dict:
        """Return the event as an entry of the legacy dataChangeEvent.entities list."""
        return {
            "id": self.change.entity_id,
            "operation": LEGACY_OPERATIONS[self.change.operation],
            "name": self.change.entity_name,
            "lastUpdated": _utc_z(self.change.moment, "milliseconds"),
        }


def _legacy_payload(events: list[WebhookEvent]) -> dict:
    """Return the legacy body: one eventNotifications entry per realm, in order of first appearance."""
    by_realm: dict[str, list[dict]] = {}
    for event in events:
        by_realm.setdefault(event.realm_id, []).append(event.legacy_entity())
    return {
        "eventNotifications": [
            {"realmId": realm_id, "dataChangeEvent": {"entities": entities}} for realm_id, entities in by_realm.items()
        ]
    }


@dataclass(frozen=True)
class _Target:
    """Where and how a delivery goes: the settings as they were when its events left the queue."""

    url: str
    verifier_token: str
    legacy: bool
    generation: int


class WebhookHub:
    """The app's webhook subscription: settings, the event queue, delivery (timed or on demand) and its log.

    State lives under the simulator's lock; no lock is held while POSTing to the receiver.
    """

    def __init__(self, lock: threading.RLock, client_id: str, clock: Callable[[], float]):
        self._lock = lock
        self._clock = clock
        # Stable per app, shaped like Intuit's "intuit.<base64 of 32 bytes>".
        self.source = "intuit." + base64.b64encode(hashlib.sha256(client_id.encode()).digest()).decode()
        self._generation = 0
        self.reset()

    def reset(self) -> None:
        """Turn webhooks off and forget queued events, pending drops and the delivery log."""
        with self._lock:
            self._generation += 1  # timers and deliveries started before now no longer count
            self.url: str | None = None
            self.verifier_token = ""
            self.delay = 0.05
            self.auto = True
            self.legacy = False
            self._queue: list[WebhookEvent] = []
            self._to_drop = 0
            self._timer_pending = False
            self._log: list[dict] = []

    def configure(
        self, url: str | None = None, verifier_token: str = "", delay_ms: float = 50, auto: bool = True
    ) -> None:
        """Subscribe ``url`` (None turns webhooks off and discards queued events)."""
        if url is not None and not isinstance(url, str):
            raise ValueError("url must be a string or null")
        if url and not verifier_token:
            raise ValueError("verifier_token is required with a url")
        with self._lock:
            self.url = url or None
            self.verifier_token = str(verifier_token)
            self.delay = max(float(delay_ms), 0.0) / 1000
            self.auto = bool(auto)
            if self.url is None:
                self._queue.clear()
            self._schedule()

    def set_legacy(self, enabled: bool) -> None:
        """Send the legacy eventNotifications body instead of CloudEvents."""
        with self._lock:
            self.legacy = bool(enabled)

    def settings(self) -> dict:
        """Return the current settings."""
        with self._lock:
            return {
                "url": self.url,
                "verifier_token": self.verifier_token,
                "delay_ms": self.delay * 1000,
                "auto": self.auto,
                "legacy": self.legacy,
            }

    def drop(self, count: int) -> None:
        """Discard the next ``count`` events produced (a lost notification)."""
        with self._lock:
            self._to_drop = max(int(count), 0)

    def publish(self, realm_id: str, changes: list[Change]) -> None:
        """Queue one event per change (when subscribed) and start the delivery timer."""
        with self._lock:
            if self.url is None:
                return
            for change in changes:
                if self._to_drop:
                    self._to_drop -= 1
                    continue
                self._queue.append(WebhookEvent(realm_id, change))
            self._schedule()

    def queued(self) -> list[dict]:
        """Return the events not delivered yet, in CloudEvents format."""
        with self._lock:
            return [event.cloud_event(self.source) for event in self._queue]

    def deliveries(self) -> list[dict]:
        """Return the delivery log: one entry per POST attempt."""
        with self._lock:
            return copy.deepcopy(self._log)

    def deliver(self, order: str = "as_is", drop: list[int] | None = None, split: bool = False) -> dict:
        """Deliver the queued events now, optionally reordered, thinned or one per POST; return the outcomes."""
        if order not in ("as_is", "reversed"):
            raise ValueError("order must be as_is or reversed")
        with self._lock:
            dropped = sorted({int(index) for index in drop or []})
            if any(index < 0 or index >= len(self._queue) for index in dropped):
                raise ValueError(f"drop indices must be between 0 and {len(self._queue) - 1}")
            events, self._queue = self._queue, []
            target = self._target()
        kept = [event for index, event in enumerate(events) if index not in dropped]
        if order == "reversed":
            kept.reverse()
        groups = [[event] for event in kept] if split else [kept] if kept else []
        outcomes = [self._send(group, target) for group in groups] if target else []
        return {"deliveries": outcomes, "dropped": [events[index].id for index in dropped]}

    def _target(self) -> _Target | None:
        if self.url is None:
            return None
        return _Target(self.url, self.verifier_token, self.legacy, self._generation)

    def _schedule(self) -> None:
        """Start the timer that delivers what is queued ``delay`` after the first event (called under the lock)."""
        if not self.auto or not self._queue or self._timer_pending:
            return
        self._timer_pending = True
        timer = threading.Timer(self.delay, self._deliver_due, args=(self._generation,))
        timer.daemon = True
        timer.start()

    def _deliver_due(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._timer_pending = False
            events, self._queue = self._queue, []
            target = self._target()
        if events and target:
            self._send(events, target)

    def _send(self, events: list[WebhookEvent], target: _Target) -> dict:
        """POST one delivery, retrying like Intuit when it is not answered with 2xx; return the last attempt."""
        payload: Any = _legacy_payload(events) if target.legacy else [e.cloud_event(self.source) for e in events]
        body = json.dumps(payload).encode()
        signature = webhook_signature(target.verifier_token, body)
        headers = {"Content-Type": "application/json", "intuit-signature": signature}
        ids = [event.id for event in events]
        record: dict = {}
        for attempt, pause in enumerate((0.0, *WEBHOOK_RETRY_PAUSES), 1):
            time.sleep(pause)
            record = {"events": ids, **self._post(target.url, body, headers), "attempt": attempt}
            with self._lock:
                if target.generation != self._generation:
                    return record  # a reset happened meanwhile: stop, and leave the new log alone
                self._log.append(copy.deepcopy(record))
            if record["status"] is not None and 200 <= record["status"] < 300:
                break
        return record

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> dict:
        moment = self._clock()
        try:
            response = requests.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
        except requests.RequestException as error:
            return {"status": None, "error": str(error), "time": _utc_z(moment, "milliseconds")}
        return {"status": response.status_code, "error": None, "time": _utc_z(moment, "milliseconds")}


# ---------------------------------------------------------------------------------------------------------
# The simulator


@dataclass
class Call:
    """One request as the simulator sees it (built by the Flask layer)."""

    kind: str  # "api", "token", "revoke" or "consent" (the browser page)
    method: str
    path: str  # the full request path
    args: dict[str, str] = field(default_factory=dict)
    body: str = ""
    authorization: str | None = None
    realm_id: str | None = None
    sub_path: str = ""  # for "api": the path after /v3/company/<realm>

    @property
    def fault_path(self) -> str:
        """Return the path injected faults match against."""
        return self.sub_path if self.kind == "api" else self.path

    @property
    def is_batch(self) -> bool:
        """Tell whether this is a POST to the batch endpoint."""
        return self.kind == "api" and self.method == "POST" and self.sub_path.strip("/") == "batch"

    def logged_body(self) -> Any:
        """Return the body as logged: the token form as a dict, JSON parsed, other text as is."""
        if not self.body:
            return None
        if self.kind in ("token", "consent"):
            return dict(parse_qsl(self.body))
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body


class QuickBooksSimulator:
    """All simulator state: companies, tokens, injected faults, the request log; thread-safe."""

    def __init__(self, client_id: str = "sim-client", client_secret: str = "sim-secret", *, clock=time.time):
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock
        self._lock = threading.RLock()
        self.webhooks = WebhookHub(self._lock, client_id, self._now)
        self.reset()

    def reset(self) -> None:
        """Forget everything (companies, tokens, faults, log, replays) and restore default settings."""
        with self._lock:
            self.throttle_per_minute = 500
            self.batch_per_minute = BATCH_PER_MINUTE
            self.per_second_limit: int | None = None
            # Intuit's "at most 10 concurrent requests per realm and app" (None: not enforced).
            self.concurrent_limit: int | None = None
            self._in_flight: dict[str, int] = {}
            self.refresh_grace_seconds: float = REFRESH_GRACE_SECONDS
            self.auto_approve_realm: str | None = None
            self.companies: dict[str, Company] = {}
            self.tokens = TokenStore(self._now)
            self.refresh_count: dict[str, int] = {}
            self.replays: dict[tuple[str, str], tuple[int, Any]] = {}
            self.faults: list[InjectedFault] = []
            self._log: list[dict] = []
            self._recent: dict[str, deque[float]] = {}
            self._recent_batches: dict[str, deque[float]] = {}
            self.cdc_max_results = DEFAULT_CDC_MAX_RESULTS
            self.webhooks.reset()

    def configure(self, **settings: Any) -> None:
        """Set any of the settings named in ``allowed`` (throttles, limits, refresh grace, auto-approval, CDC cap)."""
        allowed = (
            "throttle_per_minute",
            "batch_per_minute",
            "per_second_limit",
            "concurrent_limit",
            "refresh_grace_seconds",
            "auto_approve_realm",
            "cdc_max_results",
        )
        with self._lock:
            for name, value in settings.items():
                if name not in allowed:
                    raise ValueError(f"unknown setting {name!r}; expected one of {allowed}")
                if name == "auto_approve_realm":
                    value = None if value in (None, "") else str(value)  # a realm id may come as a JSON number
                if name == "cdc_max_results":
                    value = max(int(value), 1)
                setattr(self, name, value)

    # -- seeding ---------------------------------------------------------------------------------------

    def add_company(
        self,
        realm_id: str,
        *,
        name: str = "Sim Co",
        country: str = "US",
        home_currency: str = "USD",
        multicurrency: bool = False,
        custom_txn_numbers: bool = False,
    ) -> dict:
        """Create (or replace) a company with its default chart of accounts and lists; return CompanyInfo."""
        with self._lock:
            company = Company(
                str(realm_id),
                name=name,
                country=country,
                home_currency=home_currency,
                multicurrency=multicurrency,
                custom_txn_numbers=custom_txn_numbers,
                clock=self._now,
            )
            self.companies[company.realm_id] = company
            info = company.get("CompanyInfo", "1")
            assert info is not None  # every new company is seeded with its CompanyInfo
            return copy.deepcopy(info)

    def add_token(self, access_token: str, realm_id: str, expires_in: float = ACCESS_TOKEN_LIFETIME) -> None:
        """Register an access token for a realm."""
        with self._lock:
            self.tokens.access[access_token] = _Grant(str(realm_id), self.clock() + expires_in)

    def add_refresh_token(self, refresh_token: str, realm_id: str, expires_in: float = REFRESH_TOKEN_LIFETIME) -> None:
        """Register a refresh token for a realm."""
        with self._lock:
            self.tokens.refresh[refresh_token] = _Grant(str(realm_id), self.clock() + expires_in)

    def add_auth_code(self, code: str, realm_id: str, redirect_uri: str | None = None) -> None:
        """Register a one-time authorization code for the authorization_code grant (bound to ``redirect_uri``)."""
        with self._lock:
            self.tokens.codes[code] = (str(realm_id), redirect_uri)

    def expire_token(self, token: str) -> None:
        """Make an access (or refresh) token expired as of now."""
        with self._lock:
            grant = self.tokens.access.get(token) or self.tokens.refresh.get(token)
            if grant is None:
                raise KeyError(f"unknown token {token!r}")
            grant.expires_at = self.clock() - 1

    def revoke_realm(self, realm_id: str) -> None:
        """Revoke every token of a realm: API calls get 401, refreshes invalid_grant."""
        with self._lock:
            self.tokens.revoke_realm(str(realm_id))

    def seed_entity(self, realm_id: str, entity_name: str, body: dict) -> dict:
        """Store an entity as given, without validation (an Id is assigned if absent); return it."""
        with self._lock:
            company = self._company(realm_id)
            if entity_name not in QUERYABLE:
                raise ValueError(f"unknown entity {entity_name!r}")
            fields = _strip_server_fields(body)
            if entity_name == "Invoice" and "TotalAmt" in fields:
                fields.setdefault("Balance", fields["TotalAmt"])
            entity_id = str(body["Id"]) if body.get("Id") is not None else None
            entity = company.insert(entity_name, fields, entity_id)
            for key in ("SyncToken", "MetaData"):
                if key in body:
                    entity[key] = copy.deepcopy(body[key])
            return copy.deepcopy(entity)

    def list_entities(self, realm_id: str, entity_name: str) -> list[dict]:
        """Return every stored entity of a type, inactive ones included."""
        with self._lock:
            return copy.deepcopy(self._company(realm_id).all(entity_name))

    def get_entity(self, realm_id: str, entity_name: str, entity_id: str) -> dict | None:
        """Return one stored entity, or None."""
        with self._lock:
            return copy.deepcopy(self._company(realm_id).get(entity_name, str(entity_id)))

    # -- faults and the request log --------------------------------------------------------------------

    def add_fault(
        self,
        status: int | None,
        *,
        method: str | None = None,
        path: str | None = None,
        realm_id: str | None = None,
        count: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        after_commit: bool = False,
        delay: float = 0.0,
        batch_item: bool = False,
    ) -> None:
        """Answer the next ``count`` matching requests (or batch items, with ``batch_item``) with ``status``.

        See InjectedFault: ``add_fault(400, path="^/invoice$", batch_item=True)`` fails the next invoice item of a
        batch with a 6000 Fault and lets the other items run; ``add_fault(500, path="/batch$")`` fails a whole batch.
        """
        if path is not None:
            re.compile(path)
        if batch_item:
            problem = _item_fault_problem(status, body, float(delay))
            if problem:
                raise ValueError(problem)
        with self._lock:
            self.faults.append(
                InjectedFault(
                    status,
                    method,
                    path,
                    realm_id,
                    int(count),
                    body,
                    dict(headers or {}),
                    bool(after_commit),
                    float(delay),
                    bool(batch_item),
                )
            )

    def clear_faults(self) -> None:
        """Drop every pending injected fault."""
        with self._lock:
            self.faults.clear()

    def request_log(self) -> list[dict]:
        """Return the API and OAuth requests received so far (admin calls excluded)."""
        with self._lock:
            return copy.deepcopy(self._log)

    def clear_request_log(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._log.clear()

    def state(self) -> dict:
        """Summarise entity counts per realm and refresh counts."""
        with self._lock:
            return {
                "realms": {
                    realm_id: {
                        "country": company.country,
                        "entities": {name: len(items) for name, items in company.entities.items()},
                        "refresh_count": self.refresh_count.get(realm_id, 0),
                    }
                    for realm_id, company in self.companies.items()
                },
                "refresh_count": dict(self.refresh_count),
                "pending_faults": len(self.faults),
                "requests_logged": len(self._log),
            }

    # -- request handling ------------------------------------------------------------------------------

    def enter(self, realm_id: str) -> None:
        """Count an API request of a realm as in flight (until ``leave``), for ``concurrent_limit``."""
        with self._lock:
            self._in_flight[realm_id] = self._in_flight.get(realm_id, 0) + 1

    def leave(self, realm_id: str) -> None:
        """Count an API request of a realm as answered."""
        with self._lock:
            self._in_flight[realm_id] = max(0, self._in_flight.get(realm_id, 0) - 1)

    def handle(self, call: Call) -> Reply:
        """Answer one API or OAuth request: auth, throttle, injected faults, replay, the operation, the log."""
        with self._lock:
            self._take_changes()  # changes made outside API calls (direct Python calls) notify nobody
            if call.kind == "consent":
                # A browser page: no bearer token, no throttle, and no injected API faults.
                reply = self._consent(call)
            else:
                reply = (self._gate(call) if call.kind == "api" else None) or self._with_faults(call)
            reply.headers.setdefault("intuit_tid", _new_tid())
            entry: dict[str, Any] = {
                "method": call.method,
                "path": call.path,
                "query": dict(call.args),
                "body": call.logged_body(),
                "status": reply.status,
                "requestid": call.args.get("requestid"),
                "realm_id": call.realm_id,
                "intuit_tid": reply.headers["intuit_tid"],
                "time": _iso(self.clock(), "milliseconds"),
            }
            if call.is_batch:  # one entry per batch request; the item count tells how much work it carried
                requested = entry["body"].get("BatchItemRequest") if isinstance(entry["body"], dict) else None
                entry["items"] = len(requested) if isinstance(requested, list) else 0
            self._log.append(entry)
            for realm_id, changes in self._take_changes().items():
                self.webhooks.publish(realm_id, changes)
            return reply

    def _take_changes(self) -> dict[str, list[Change]]:
        """Return and forget every company's noted changes, by realm (companies without changes left out)."""
        taken = {realm_id: company.take_changes() for realm_id, company in self.companies.items()}
        return {realm_id: changes for realm_id, changes in taken.items() if changes}

    def consent_problem(self, params: dict[str, str]) -> str | None:
        """Return why an authorization request (``/connect/oauth2``) is refused, or None when it is fine."""
        if params.get("client_id") != self.client_id:
            return "invalid_client: the client_id is missing or unknown."
        if params.get("response_type") != "code":
            return "unsupported_response_type: response_type must be code."
        if ACCOUNTING_SCOPE not in (params.get("scope") or "").split():
            return f"invalid_scope: the scope must include {ACCOUNTING_SCOPE}."
        redirect = urlsplit(params.get("redirect_uri") or "")
        if redirect.scheme not in ("http", "https") or not redirect.netloc:
            return "invalid_request: redirect_uri is missing or is not an absolute http(s) URL."
        return None

    def _consent(self, call: Call) -> Reply:
        """Answer the consent page: GET shows it (or decides at once), POST carries the user's decision."""
        source = call.args if call.method == "GET" else dict(parse_qsl(call.body))
        params = {name: source[name] for name in _CONSENT_PARAMS if source.get(name) is not None}
        problem = self.consent_problem(params)
        if problem:
            return _error_page(problem)
        if call.method == "POST":
            decision, realm_id = source.get("decision", ""), source.get("realm_id")
        elif self.auto_approve_realm is None:
            return Reply(200, _consent_page(params, self._company_choices()), "text/html")
        elif self.auto_approve_realm == "deny":
            decision, realm_id = "deny", None
        else:
            decision, realm_id = "allow", self.auto_approve_realm
        redirect_uri, state = params["redirect_uri"], params.get("state")
        if decision == "deny":
            location = _redirect_url(redirect_uri, {"error": "access_denied", "state": state})
        elif decision == "allow" and realm_id is not None and realm_id in self.companies:
            call.realm_id = realm_id
            code = f"AB11{secrets.token_urlsafe(36)}"
            self.add_auth_code(code, realm_id, redirect_uri)
            location = _redirect_url(redirect_uri, {"code": code, "state": state, "realmId": realm_id})
        else:
            return _error_page(f"Choose a company to connect (unknown company {realm_id!r}).")
        return Reply(302, "", "text/html", {"Location": location})

    def _company_choices(self) -> list[tuple[str, str]]:
        """Return (realm id, company name) of every company, in creation order."""
        choices = []
        for realm_id, company in self.companies.items():
            info = company.get("CompanyInfo", "1") or {}
            choices.append((realm_id, str(info.get("CompanyName", realm_id))))
        return choices

    def _now(self) -> float:
        # Read through self.clock on every call so a test can swap the clock after construction.
        return self.clock()

    def _stamp(self) -> str:
        return _iso(self.clock(), "milliseconds")

    def _company(self, realm_id: str) -> Company:
        company = self.companies.get(str(realm_id))
        if company is None:
            raise KeyError(f"unknown realm {realm_id!r}")
        return company

    def _gate(self, call: Call) -> Reply | None:
        """Check the bearer token and the throttles; return the rejection, or None to go on."""
        header = call.authorization or ""
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        assert call.realm_id is not None  # every API path names its realm
        problem = self.tokens.access_problem(token, call.realm_id)
        if problem:
            return Reply(
                401,
                _gateway_body("AUTHENTICATION", problem),
                headers={"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
            )
        if self.concurrent_limit is not None and self._in_flight.get(call.realm_id, 0) > self.concurrent_limit:
            return _throttled()
        now = self.clock()
        recent = self._recent.setdefault(call.realm_id, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        last_second = sum(1 for moment in recent if moment > now - 1)
        batches = self._recent_batches.setdefault(call.realm_id, deque())
        while batches and batches[0] <= now - 60:
            batches.popleft()
        if (
            len(recent) >= self.throttle_per_minute
            or (self.per_second_limit is not None and last_second >= self.per_second_limit)
            or (call.is_batch and len(batches) >= self.batch_per_minute)
        ):
            return _throttled()
        # Assumption (Intuit does not say): a batch request also counts as one request against the per-minute
        # throttle, on top of the batch limit of its own.
        recent.append(now)
        if call.is_batch:
            batches.append(now)
        return None

    def _take_fault(self, call: Call, *, batch_item: bool = False) -> InjectedFault | None:
        """Return the first fault matching ``call`` (a request, or one item of a batch), using up one of its count."""
        fault = next((f for f in self.faults if f.batch_item == batch_item and f.matches(call)), None)
        if fault is not None:
            fault.count -= 1
            if fault.count <= 0:
                self.faults.remove(fault)
        return fault

    def _with_faults(self, call: Call) -> Reply:
        fault = self._take_fault(call)
        if fault is not None:
            if fault.status is not None and not fault.after_commit:
                return fault.reply(self._stamp())
        reply = self._perform(call)
        if fault is None:
            return reply
        if fault.status is None:
            return replace(reply, delay=fault.delay)
        return fault.reply(self._stamp())  # the operation happened, but the client never hears of it

    def _perform(self, call: Call) -> Reply:
        if call.kind == "token":
            return self._token(call)
        if call.kind == "revoke":
            return self._revoke(call)
        requestid = call.args.get("requestid")
        if call.method != "POST" or requestid is None:
            return self._api(call)
        limit = MAX_BATCH_REQUESTID_LENGTH if call.is_batch else MAX_REQUESTID_LENGTH
        if len(requestid) > limit:
            error = _too_long("requestid", limit, len(requestid))
            return Reply(error.status, error.body(self._stamp()))
        assert call.realm_id is not None  # token and revoke calls were answered above; API paths name a realm
        key = (call.realm_id, requestid)
        if key in self.replays:
            status, body = self.replays[key]
            return Reply(status, copy.deepcopy(body))
        reply = self._api(call)
        self.replays[key] = (reply.status, copy.deepcopy(reply.body))
        return reply

    def _api(self, call: Call) -> Reply:
        """Run one /v3/company/<realm> operation; QboError becomes a Fault response."""
        assert call.realm_id is not None  # every API path names its realm
        try:
            company = self.companies.get(call.realm_id)
            if company is None:
                return Reply(403, _gateway_body("AUTHORIZATION", f"No company with realm {call.realm_id}"))
            key, body = self._route(company, call)
            return Reply(200, {key: body, "time": self._stamp()})
        except QboError as error:
            return Reply(error.status, error.body(self._stamp()))

    def _route(self, company: Company, call: Call) -> tuple[str, Any]:
        parts = call.sub_path.strip("/").split("/")
        entity_name = ENTITY_BY_PATH.get(parts[0])
        if call.is_batch:
            return "BatchItemResponse", self._batch(company, call)
        if parts == ["query"]:
            text = call.args.get("query") if call.method == "GET" else call.body
            return "QueryResponse", company.query(text or "")
        if call.method == "GET" and parts == ["preferences"]:
            return "Preferences", copy.deepcopy(company.get("Preferences", "1"))
        if call.method == "GET" and parts == ["companyinfo", company.realm_id]:
            return "CompanyInfo", copy.deepcopy(company.get("CompanyInfo", "1"))  # addressed by realm id
        if call.method == "GET" and parts == ["cdc"]:
            names, since = _cdc_arguments(call.args, self.clock())
            return "CDCResponse", company.changed_since(names, since, self.cdc_max_results)
        if call.method == "POST" and len(parts) == 3 and parts[2] == "send" and entity_name in SENDABLE:
            return entity_name, company.send(entity_name, parts[1], call.args.get("sendTo"))
        if call.method == "GET" and len(parts) == 2 and entity_name:
            entity = company.get(entity_name, parts[1])
            if entity is None:
                raise _object_not_found()
            return entity_name, copy.deepcopy(entity)
        if call.method == "POST" and len(parts) == 1 and entity_name in WRITABLE:
            try:
                body = json.loads(call.body or "{}")
            except ValueError:
                raise _invalid_property("request body (not valid JSON)") from None
            if not isinstance(body, dict):
                raise _invalid_property("request body (not a JSON object)")
            operation = call.args.get("operation", "create").lower()
            options = frozenset(call.args.get("include", "").lower().split(","))
            if operation == "delete":
                return entity_name, company.delete(entity_name, body)
            if operation == "void" or (operation == "update" and "void" in options):
                return entity_name, company.void(entity_name, body)
            if operation in ("create", "update"):
                return entity_name, company.save(entity_name, body, options)
        raise _unsupported(call.path)

    def _batch(self, company: Company, call: Call) -> list[dict]:
        """Answer every item of a batch on its own, as its single-entity endpoint would; a fault stops only its item."""
        items = _batch_requests(call)
        answers: dict[int, dict] = {}
        # Queries run before the writes, so no item sees what another item of the same batch did; the writes then
        # run in request order, each checked (names, DocNumbers...) exactly as separate POSTs would be.
        for index in sorted(range(len(items)), key=lambda i: "Query" not in items[i]):
            answers[index] = self._batch_item(company, call, items[index])
        return [answers[index] for index in range(len(items))]

    def _batch_item(self, company: Company, batch: Call, item: dict) -> dict:
        """Answer one BatchItemRequest with ``{<Entity>: {...}, "bId"}`` or ``{"Fault": {...}, "bId"}``."""
        bid = item["bId"]
        try:
            call = _batch_item_call(batch, item)
        except QboError as error:
            return {"Fault": error.body("")["Fault"], "bId": bid}
        fault = self._take_fault(call, batch_item=True)
        if fault is not None and not fault.after_commit:
            return {"Fault": fault.item_fault(), "bId": bid}
        try:
            key, body = self._route(company, call)
            answer = {key: body, "bId": bid}
        except QboError as error:
            answer = {"Fault": error.body("")["Fault"], "bId": bid}
        if fault is not None:  # after_commit: the item's write happened, but its answer says it failed
            return {"Fault": fault.item_fault(), "bId": bid}
        return answer

    def _token(self, call: Call) -> Reply:
        """The OAuth token endpoint: refresh_token and authorization_code grants."""
        if not self._client_authenticated(call.authorization):
            return Reply(401, {"error": "invalid_client"})
        form = dict(parse_qsl(call.body))
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            issued = self.tokens.rotate(form.get("refresh_token", ""), self.refresh_grace_seconds)
            if issued is None:
                return Reply(400, {"error": "invalid_grant"})
            realm_id = issued.pop("realm_id")
            self.refresh_count[realm_id] = self.refresh_count.get(realm_id, 0) + 1
            return Reply(200, issued)
        if grant_type == "authorization_code":
            realm_id = self.tokens.redeem(form.get("code", ""), form.get("redirect_uri"))
            if realm_id is None:
                return Reply(400, {"error": "invalid_grant"})
            return Reply(200, self.tokens.issue(realm_id))
        return Reply(400, {"error": "unsupported_grant_type"})

    def _revoke(self, call: Call) -> Reply:
        """The OAuth revoke endpoint: revoking any token of a connection revokes all of them."""
        if not self._client_authenticated(call.authorization):
            return Reply(401, {"error": "invalid_client"})
        try:
            token = json.loads(call.body or "{}").get("token", "")
        except (ValueError, AttributeError):
            return Reply(400, {"error": "invalid_request"})
        realm_id = self.tokens.realm_of(token)
        if realm_id is not None:  # unknown tokens are not an error (RFC 7009)
            self.tokens.revoke_realm(realm_id)
        return Reply(200, "", "text/plain")

    def _client_authenticated(self, authorization: str | None) -> bool:
        if not authorization or not authorization.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip()).decode()
        except ValueError:
            return False
        return decoded == f"{self.client_id}:{self.client_secret}"


# Keys of a BatchItemRequest besides the one entity (or "Query") it carries.
_BATCH_ITEM_KEYS = ("bId", "operation", "optionsData")


def _batch_requests(call: Call) -> list[dict]:
    """Return a batch's BatchItemRequest list, or raise the request-level fault (too many items, bad bIds)."""
    try:
        body = json.loads(call.body or "{}")
    except ValueError:
        raise _invalid_property("request body (not valid JSON)") from None
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise _required("BatchItemRequest")
    if len(items) > MAX_BATCH_ITEMS:
        # UNCONFIRMED: Intuit's code and wording for an oversized batch; 6000 is its generic validation fault.
        raise _business(
            f"A batch may have at most {MAX_BATCH_ITEMS} BatchItemRequest items. Supplied: {len(items)}",
            "BatchItemRequest",
        )
    bids = [item.get("bId") for item in items]
    if not all(isinstance(bid, str) and bid for bid in bids):
        raise _required("bId")
    if len(set(bids)) != len(bids):
        raise _business("Every BatchItemRequest needs a bId of its own.", "bId")  # UNCONFIRMED wording
    if call.args.get("requestid") is not None:
        longest = max(len(bid) for bid in bids) if bids else 0
        if longest > MAX_BATCH_ID_LENGTH:
            raise _too_long("bId", MAX_BATCH_ID_LENGTH, longest)
    return items


def _batch_item_call(batch: Call, item: dict) -> Call:
    """Return the single call a batch item stands for: ``POST /<entity>?operation=...`` or ``GET /query``."""
    company_path = batch.path[: len(batch.path) - len(batch.sub_path)]
    if "Query" in item:
        args = {"query": str(item["Query"])}
        return replace(batch, method="GET", path=f"{company_path}/query", args=args, body="", sub_path="/query")
    names = [key for key in item if key not in _BATCH_ITEM_KEYS]
    entity_name = names[0] if len(names) == 1 else None
    if entity_name is None or entity_name not in WRITABLE:
        raise _unsupported(f"batch item {', '.join(names) or 'without an entity'}")
    operation = item.get("operation")
    if operation is None:
        raise _required("operation")
    if str(operation).lower() not in ("create", "update", "delete"):
        raise _invalid_enum("operation", operation)
    if not isinstance(item[entity_name], dict):
        raise _invalid_property(entity_name)
    args = {"operation": str(operation).lower()}
    if item.get("optionsData"):
        args["include"] = str(item["optionsData"])  # "void" with update voids, as ?operation=update&include=void
    sub_path, body = f"/{entity_name.lower()}", json.dumps(item[entity_name])
    return replace(batch, path=company_path + sub_path, args=args, body=body, sub_path=sub_path)


# ---------------------------------------------------------------------------------------------------------
# The consent page (Intuit's sign-in, company chooser and "Connect" screen)

_CONSENT_PARAMS = ("client_id", "response_type", "scope", "redirect_uri", "state")
_PAGE_STYLE = "body{font-family:sans-serif;max-width:36em;margin:3em auto}button{margin-right:1em}"


def _redirect_url(redirect_uri: str, params: dict[str, str | None]) -> str:
    """Return ``redirect_uri`` with ``params`` (those not None) added to its query string."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(name, value) for name, value in params.items() if value is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _html_page(title: str, body: str) -> str:
    """Return a small HTML document."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _error_page(message: str) -> Reply:
    """Return the 400 page shown instead of the consent screen."""
    return Reply(400, _html_page("Something went wrong", f'<p id="error">{html.escape(message)}</p>'), "text/html")


def _consent_page(params: dict[str, str], companies: list[tuple[str, str]]) -> str:
    """Render the company chooser and the Connect/Cancel form, carrying the request's parameters."""
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value, quote=True)}">'
        for name, value in params.items()
    )
    options = "".join(
        f'<option value="{html.escape(realm_id, quote=True)}">{html.escape(name)} ({html.escape(realm_id)})</option>'
        for realm_id, name in companies
    )
    scopes = "".join(f"<li>{html.escape(scope)}</li>" for scope in params["scope"].split())
    body = (
        f"<p>App <code>{html.escape(params['client_id'])}</code> wants to connect to your company:</p>\n"
        f'<ul id="scopes">{scopes}</ul>\n'
        f'<form method="post" action="/connect/oauth2">{hidden}\n'
        f'<p><label for="company">Company</label> <select name="realm_id" id="company">{options}</select></p>\n'
        '<p><button type="submit" id="connect" name="decision" value="allow">Connect</button>'
        '<button type="submit" id="cancel" name="decision" value="deny">Cancel</button></p>\n'
        "</form>"
    )
    return _html_page("Connect to QuickBooks", body)


# ---------------------------------------------------------------------------------------------------------
# HTTP layer


def _to_response(reply: Reply) -> Response:
    body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
    if reply.delay:
        time.sleep(reply.delay)  # outside the lock: other requests proceed meanwhile
    return Response(body, reply.status, headers=reply.headers, content_type=reply.content_type)


def _call(kind: str, realm_id: str | None = None, sub_path: str = "") -> Call:
    return Call(
        kind=kind,
        method=request.method,
        path=request.path,
        args=request.args.to_dict(),
        body=request.get_data(as_text=True),
        authorization=request.headers.get("Authorization"),
        realm_id=realm_id,
        sub_path=sub_path,
    )


def _admin_blueprint(sim: QuickBooksSimulator) -> Blueprint:
    """The JSON test-control endpoints under /_sim/."""
    admin = Blueprint("sim_admin", __name__, url_prefix="/_sim")

    def payload() -> dict:
        data = request.get_json(force=True, silent=True)
        return data if isinstance(data, dict) else {}

    @admin.errorhandler(KeyError)
    def missing(error: KeyError):
        return {"error": f"missing or unknown: {error.args[0] if error.args else error}"}, 400

    @admin.errorhandler(ValueError)
    @admin.errorhandler(TypeError)
    def bad_request(error: Exception):
        return {"error": str(error)}, 400

    @admin.post("/reset")
    def reset():
        sim.reset()
        return {"ok": True}

    @admin.post("/config")
    def config():
        sim.configure(**payload())
        return {"ok": True}

    @admin.post("/companies")
    def add_company():
        data = payload()
        return {"CompanyInfo": sim.add_company(data.pop("realm_id"), **data)}

    @admin.post("/tokens")
    def add_tokens():
        data = payload()
        realm_id = data["realm_id"]
        if data.get("access_token"):
            sim.add_token(data["access_token"], realm_id, data.get("expires_in", ACCESS_TOKEN_LIFETIME))
        if data.get("refresh_token"):
            sim.add_refresh_token(
                data["refresh_token"], realm_id, data.get("refresh_expires_in", REFRESH_TOKEN_LIFETIME)
            )
        return {"ok": True}

    @admin.post("/tokens/expire")
    def expire_token():
        data = payload()
        sim.expire_token(data.get("access_token") or data["refresh_token"])
        return {"ok": True}

    @admin.post("/auth_codes")
    def add_auth_code():
        data = payload()
        sim.add_auth_code(data["code"], data["realm_id"], data.get("redirect_uri"))
        return {"ok": True}

    @admin.post("/revoke")
    def revoke():
        sim.revoke_realm(payload()["realm_id"])
        return {"ok": True}

    @admin.post("/entities/<realm_id>/<entity_name>")
    def seed_entity(realm_id: str, entity_name: str):
        return sim.seed_entity(realm_id, entity_name, payload())

    @admin.get("/entities/<realm_id>/<entity_name>")
    def list_entities(realm_id: str, entity_name: str):
        return sim.list_entities(realm_id, entity_name)

    @admin.post("/faults")
    def add_fault():
        data = payload()
        sim.add_fault(data.pop("status", None), **data)
        return {"ok": True}

    @admin.delete("/faults")
    def clear_faults():
        sim.clear_faults()
        return {"ok": True}

    @admin.get("/requests")
    def requests_log():
        return sim.request_log()

    @admin.delete("/requests")
    def clear_requests():
        sim.clear_request_log()
        return {"ok": True}

    @admin.get("/state")
    def state():
        return sim.state()

    @admin.get("/webhooks")
    def webhook_settings():
        return sim.webhooks.settings()

    @admin.post("/webhooks")
    def configure_webhooks():
        sim.webhooks.configure(**payload())
        return {"ok": True}

    @admin.post("/webhooks/deliver")
    def deliver_webhooks():
        return sim.webhooks.deliver(**payload())  # returns once every POST (and its retries) finished

    @admin.post("/webhooks/drop")
    def drop_webhooks():
        sim.webhooks.drop(payload()["count"])
        return {"ok": True}

    @admin.post("/webhooks/legacy")
    def legacy_webhooks():
        sim.webhooks.set_legacy(bool(payload().get("enabled", True)))
        return {"ok": True}

    @admin.get("/webhooks/queued")
    def queued_webhooks():
        return sim.webhooks.queued()

    @admin.get("/webhooks/deliveries")
    def webhook_deliveries():
        return sim.webhooks.deliveries()

    return admin


def create_app(sim: QuickBooksSimulator | None = None) -> Flask:
    """Build the Flask app serving the QBO API, Intuit OAuth and the /_sim/ admin endpoints."""
    sim = sim or QuickBooksSimulator()
    app = Flask(__name__)
    app.config["SIMULATOR"] = sim
    app.register_blueprint(_admin_blueprint(sim))

    @app.route("/v3/company/<realm_id>/<path:sub_path>", methods=["GET", "POST"])
    def api(realm_id: str, sub_path: str):
        sim.enter(realm_id)  # in flight until answered, an injected delay included
        try:
            return _to_response(sim.handle(_call("api", realm_id, "/" + sub_path)))
        finally:
            sim.leave(realm_id)

    @app.route("/connect/oauth2", methods=["GET", "POST"])
    def consent():
        response = _to_response(sim.handle(_call("consent")))
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.post("/oauth2/v1/tokens/bearer")
    def token():
        return _to_response(sim.handle(_call("token")))

    @app.post("/oauth2/v1/tokens/revoke")
    @app.post("/v2/oauth2/tokens/revoke")
    def revoke():
        return _to_response(sim.handle(_call("revoke")))

    @app.get("/.well-known/openid_configuration", strict_slashes=False)
    def discovery():
        # intuitlib fetches this document when AuthClient's environment is a URL instead of "sandbox".
        base = request.host_url.rstrip("/")
        return {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/oauth2/v1/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
        }

    @app.after_request
    def add_intuit_tid(response: Response) -> Response:
        response.headers.setdefault("intuit_tid", _new_tid())
        return response

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator in the foreground."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--client-id", default="sim-client")
    parser.add_argument("--client-secret", default="sim-secret")
    args = parser.parse_args(argv)
    sim = QuickBooksSimulator(args.client_id, args.client_secret)
    run_simple(args.host, args.port, create_app(sim), threaded=True)


if __name__ == "__main__":
    main()
