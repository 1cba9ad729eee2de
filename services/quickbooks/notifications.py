"""Intuit's change notifications (webhooks): the signature and the two payload formats.

The CloudEvents format is a JSON array of events, each naming one entity of one company; the older format is
`{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [...]}}]}`. Both become `Notice`s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Intuit spells entities in lower case in CloudEvents types; the API spells them like this.
ENTITY_NAMES = {
    name.lower(): name
    for name in (
        "Account",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CreditMemo",
        "Currency",
        "Customer",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalCode",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    )
}
# The older format's operation words, in the CloudEvents spelling.
LEGACY_OPERATIONS = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "void": "voided",
    "merge": "merged",
    "emailed": "emailed",
}
MAX_ID = 64
# The longest realm, entity or entity id a notice may carry (what the notices table holds).
MAX_FIELD = 32


class PayloadError(ValueError):
    """A notification body that is neither of Intuit's formats."""


@dataclass(frozen=True)
class Notice:
    """One change: an entity of a company, what happened to it, and when."""

    id: str
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: datetime | None


def signature_valid(body: bytes, signature: str | None, verifier_token: str) -> bool:
    """Tell whether `intuit-signature` is base64(HMAC-SHA256(verifier token, raw body)); constant time."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest())
    # Bytes, so a header with characters outside ASCII is a mismatch rather than an error.
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    # CloudEvents times carry nanoseconds; Python reads at most microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _short(identifier: str) -> str:
    # Ids longer than the column are hashed; the same id always gives the same key.
    return identifier if len(identifier) <= MAX_ID else "sha256:" + hashlib.sha256(identifier.encode()).hexdigest()[:57]


def _field(value: Any) -> str | None:
    """Return an id-like field as text, or None when it is missing, not a string or number, or too long."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= MAX_FIELD else None


def _cloud_event(event: Any) -> Notice | None:
    """Read one CloudEvent; None when it lacks what a notice needs (it is skipped, not the whole delivery)."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    parts = event["type"].split(".")
    event_id = event.get("id")
    realm, entity_id = _field(event.get("intuitaccountid")), _field(event.get("intuitentityid"))
    # The event id may be long (it is hashed to fit), but must be a string or a number.
    if len(parts) < 3 or parts[0] != "qbo" or len(parts[1]) > MAX_FIELD:
        return None
    if isinstance(event_id, bool) or not isinstance(event_id, (str, int)) or not str(event_id).strip():
        return None
    if realm is None or entity_id is None:
        return None
    entity = ENTITY_NAMES.get(parts[1].lower(), parts[1][:1].upper() + parts[1][1:])
    operation = parts[2].lower()[:16]
    return Notice(_short(str(event_id)), str(realm), entity, str(entity_id), operation, _time(event.get("time")))


def _legacy(notification: Any) -> list[Notice]:
    """Read one entry of the older format's eventNotifications."""
    realm = _field(notification.get("realmId")) if isinstance(notification, dict) else None
    if realm is None:
        return []
    change = notification.get("dataChangeEvent")
    entities = change.get("entities") if isinstance(change, dict) else None
    notices = []
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict) or _field(entity.get("id")) is None or _field(entity.get("name")) is None:
            continue
        operation = str(entity.get("operation") or "")
        # The older format has no event id: the change itself is the key, so a repeated delivery is one notice.
        key = "|".join((realm, str(entity["name"]), str(entity["id"]), operation, str(entity.get("lastUpdated"))))
        notices.append(
            Notice(
                "legacy:" + hashlib.sha256(key.encode()).hexdigest()[:56],
                realm,
                ENTITY_NAMES.get(str(entity["name"]).lower(), str(entity["name"])),
                str(entity["id"]),
                LEGACY_OPERATIONS.get(operation.lower(), operation.lower()[:16]),
                _time(entity.get("lastUpdated")),
            )
        )
    return notices


def _legacy_count(notification: Any) -> int:
    """Return how many changes an entry of the older format names (1 when it is unreadable)."""
    change = notification.get("dataChangeEvent") if isinstance(notification, dict) else None
    entities = change.get("entities") if isinstance(change, dict) else None
    return len(entities) if isinstance(entities, list) else 1


def parse(body: bytes) -> tuple[list[Notice], int]:
    """Read a delivery in either format; return its notices and how many events were skipped as unreadable."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise PayloadError("the body is not JSON") from error
    if isinstance(payload, dict) and "eventNotifications" in payload:
        entries = payload["eventNotifications"]
        if not isinstance(entries, list):
            raise PayloadError("eventNotifications is not a list")
        notices = [notice for entry in entries for notice in _legacy(entry)]
        total = sum(_legacy_count(entry) for entry in entries)
        return notices, max(0, total - len(notices))
    if isinstance(payload, dict) and "specversion" in payload:
        payload = [payload]
    if not isinstance(payload, list):
        raise PayloadError("expected a JSON array of CloudEvents or an eventNotifications object")
    read = [_cloud_event(event) for event in payload]
    notices = [notice for notice in read if notice is not None]
    return notices, len(read) - len(notices)
