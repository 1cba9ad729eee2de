"""What happened to a document after we booked it: its state as QuickBooks tells it, the status a sales team
reads, the properties that show it on the HubSpot record, and the payments that go on the record's timeline.

QuickBooks has no status field: an invoice's status follows from its balance, due date and whether it was voided
or deleted. Notifications arrive late, twice or out of order, so every state carries QuickBooks' own version
(`MetaData.LastUpdatedTime`, then `SyncToken`) and only a newer one replaces an older one; a deletion is final.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from services.hubspot import properties as p
from services.store.records import DocumentVersion

# The documents whose later life shows on the record (an expense has none worth following).
FOLLOWED = ("Invoice", "Estimate", "SalesReceipt", "RefundReceipt")
# The entity types change data capture reads: the documents, and the payments that change invoices.
CHANGE_ENTITIES = (*FOLLOWED, "Payment")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DocumentState:
    """A document as QuickBooks last told it: what the record's properties are made of."""

    entity: str
    document_id: str
    updated_at: datetime
    sync_token: int
    number: str | None = None
    total: str | None = None
    balance: str | None = None
    currency: str | None = None
    txn_date: str | None = None
    due_date: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    email_status: str | None = None
    estimate_status: str | None = None
    converted: bool = False
    voided: bool = False
    deleted: bool = False
    # Payments QuickBooks lists on an invoice (LinkedTxn), so their dates and amounts can be read.
    payment_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the state as stored (JSON)."""
        data = asdict(self)
        data["updated_at"] = self.updated_at.isoformat()
        data["payment_ids"] = list(self.payment_ids)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DocumentState:
        """Read a stored state back."""
        values = dict(data)
        values["updated_at"] = parse_time(values.get("updated_at")) or EPOCH
        values["payment_ids"] = tuple(values.get("payment_ids") or ())
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class PaymentApplied:
    """A payment QuickBooks applied to an invoice: what goes on the record's timeline, once."""

    payment_id: str
    invoice_id: str
    amount: str
    paid_on: str | None
    currency: str | None


def parse_time(value: Any) -> datetime | None:
    """Parse QuickBooks' ISO-8601 times ("2015-07-24T10:33:39-07:00", "...Z"); None when there is none."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def amount(value: Any) -> str | None:
    """Return a money amount as HubSpot's number text ("125.5" → "125.50"); None when there is none."""
    if value is None or value == "":
        return None
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    except InvalidOperation:
        return None


def _ref_name(document: Mapping[str, Any], key: str) -> str | None:
    ref = document.get(key)
    return str(ref.get("name")) if isinstance(ref, dict) and ref.get("name") else None


def _linked(document: Mapping[str, Any], txn_type: str) -> tuple[str, ...]:
    links = document.get("LinkedTxn") or []
    return tuple(str(link["TxnId"]) for link in links if isinstance(link, dict) and link.get("TxnType") == txn_type)


def _is_voided(document: Mapping[str, Any]) -> bool:
    # QuickBooks keeps a voided document with zero amounts and says so in its private note.
    note = str(document.get("PrivateNote") or "").lower()
    return "void" in note and Decimal(str(document.get("TotalAmt") or 0)) == 0


def state_of(entity: str, document: Mapping[str, Any]) -> DocumentState:
    """Return the state of a document as QuickBooks answered it (a read, a query or change data capture)."""
    document_id = str(document["Id"])
    meta = document.get("MetaData") or {}
    updated_at = parse_time(meta.get("LastUpdatedTime")) or EPOCH
    token = int(document.get("SyncToken") or 0) if str(document.get("SyncToken") or "0").isdigit() else 0
    if str(document.get("status") or "").lower() == "deleted":
        return DocumentState(entity, document_id, updated_at, token, deleted=True)
    email = document.get("BillEmail")
    return DocumentState(
        entity=entity,
        document_id=document_id,
        updated_at=updated_at,
        sync_token=token,
        number=str(document["DocNumber"]) if document.get("DocNumber") else None,
        total=amount(document.get("TotalAmt")),
        balance=amount(document.get("Balance")) if entity == "Invoice" else None,
        currency=(document.get("CurrencyRef") or {}).get("value"),
        txn_date=document.get("TxnDate"),
        due_date=document.get("DueDate"),
        customer_name=_ref_name(document, "CustomerRef"),
        customer_email=str(email.get("Address")) if isinstance(email, dict) and email.get("Address") else None,
        email_status=document.get("EmailStatus"),
        estimate_status=document.get("TxnStatus") if entity == "Estimate" else None,
        converted=entity == "Estimate" and bool(_linked(document, "Invoice")),
        voided=_is_voided(document),
        payment_ids=_linked(document, "Payment") if entity == "Invoice" else (),
    )


def deleted_state(entity: str, document_id: str, when: datetime) -> DocumentState:
    """Return the state of a document QuickBooks no longer has."""
    return DocumentState(entity, str(document_id), when, 0, deleted=True)


def created_state(outputs: Mapping[str, Any], when: datetime) -> DocumentState | None:
    """Return what an action's outputs tell of the document it created (QuickBooks' own state replaces it)."""
    entity = outputs.get("quickbooks_document_type")
    if entity not in FOLLOWED or not outputs.get("quickbooks_id"):
        return None
    total = amount(outputs.get("quickbooks_total"))
    paid = bool(outputs.get("quickbooks_payment_id"))
    return DocumentState(
        entity=str(entity),
        document_id=str(outputs["quickbooks_id"]),
        # Older than any state QuickBooks reports, so the first notification or read replaces it.
        updated_at=EPOCH,
        sync_token=-1,
        number=str(outputs.get("quickbooks_number") or "") or None,
        total=total,
        balance=("0.00" if paid else total) if entity == "Invoice" else None,
        currency=str(outputs.get("quickbooks_currency") or "") or None,
        due_date=str(outputs.get("quickbooks_due_date") or "") or None,
        estimate_status="Pending" if entity == "Estimate" else None,
    )


def version_of(realm_id: str, state: DocumentState) -> DocumentVersion:
    """Return a state as the store keeps it, with QuickBooks' version."""
    return DocumentVersion(
        realm_id=realm_id,
        entity=state.entity,
        document_id=state.document_id,
        state=state.to_json(),
        version_at=state.updated_at,
        version_token=state.sync_token,
        deleted=state.deleted,
        due_date=state.due_date if state.entity == "Invoice" and not state.deleted else None,
    )


def is_newer(candidate: DocumentState, current: DocumentState | None) -> bool:
    """Tell whether a state should replace the one we have (never an older one, never after a deletion)."""
    if current is None:
        return True
    if current.deleted:
        return False
    if candidate.deleted:
        return True
    return (candidate.updated_at, candidate.sync_token) > (current.updated_at, current.sync_token)


# -- statuses ---------------------------------------------------------------------------------------------


def _decimal(value: str | None) -> Decimal | None:
    return Decimal(value) if value is not None else None


def invoice_status(state: DocumentState, today: date) -> p.Option:
    """Return an invoice's status: deleted, voided, paid, overdue (unpaid past its due date), partly paid or not."""
    if state.deleted:
        return p.DELETED
    if state.voided:
        return p.VOIDED
    balance, total = _decimal(state.balance), _decimal(state.total)
    if balance is not None and balance <= 0:
        return p.PAID
    if state.due_date and state.due_date < today.isoformat():
        return p.OVERDUE
    if balance is not None and total is not None and balance < total:
        return p.PARTIALLY_PAID
    return p.AWAITING_PAYMENT


def estimate_status(state: DocumentState) -> p.Option:
    """Return an estimate's status (converted once an invoice was made from it)."""
    if state.deleted:
        return p.DELETED
    if state.converted:
        return p.ESTIMATE_CONVERTED
    by_name = {o.label.lower(): o for o in p.ESTIMATE_STATUSES}
    return by_name.get(str(state.estimate_status or "pending").lower(), p.ESTIMATE_PENDING)


def email_status(state: DocumentState) -> p.Option:
    """Return whether QuickBooks emailed the invoice."""
    return {"EmailSent": p.SENT, "NeedToSend": p.NEEDS_SENDING}.get(str(state.email_status), p.NOT_SENT)


def amount_paid(state: DocumentState) -> str | None:
    """Return what was paid of an invoice (total less balance)."""
    if state.total is None or state.balance is None or state.voided or state.deleted:
        return None
    return str(Decimal(state.total) - Decimal(state.balance))


# -- the record's properties --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Followed:
    """A followed document of a record: its state, its link and the date of its latest payment."""

    state: DocumentState
    link: str
    last_payment_date: str | None = None


def latest(documents: Iterable[Followed], entity: str) -> Followed | None:
    """Return the most recently updated document of a kind (as HubSpot's own integration shows the latest)."""
    candidates = [d for d in documents if d.state.entity == entity]
    return max(candidates, key=lambda d: (d.state.updated_at, d.state.sync_token), default=None)


def _value(value: str | None) -> str:
    # An empty string clears a HubSpot property.
    return value if value is not None else ""


def record_properties(documents: Sequence[Followed], today: date) -> dict[str, str]:
    """Return the QuickBooks properties of a HubSpot record from the documents booked for it."""
    values: dict[str, str] = {}
    if invoice := latest(documents, "Invoice"):
        state = invoice.state
        values.update(
            {
                p.INVOICE_NUMBER.name: _value(state.number),
                p.INVOICE_STATUS.name: invoice_status(state, today).value,
                p.INVOICE_LINK.name: invoice.link,
            }
        )
        if not state.deleted:
            values.update(
                {
                    p.INVOICE_TOTAL.name: _value(state.total),
                    p.INVOICE_BALANCE.name: _value(state.balance),
                    p.INVOICE_AMOUNT_PAID.name: _value(amount_paid(state)),
                    p.INVOICE_DUE_DATE.name: _value(state.due_date),
                    p.INVOICE_RECIPIENT_NAME.name: _value(state.customer_name),
                    p.INVOICE_RECIPIENT_EMAIL.name: _value(state.customer_email),
                    p.INVOICE_EMAIL_STATUS.name: email_status(state).value,
                    p.INVOICE_LAST_PAYMENT_DATE.name: _value(invoice.last_payment_date),
                }
            )
    if estimate := latest(documents, "Estimate"):
        values.update(
            {
                p.ESTIMATE_NUMBER.name: _value(estimate.state.number),
                p.ESTIMATE_STATUS.name: estimate_status(estimate.state).value,
                p.ESTIMATE_LINK.name: estimate.link,
            }
        )
        if not estimate.state.deleted:
            values[p.ESTIMATE_TOTAL.name] = _value(estimate.state.total)
    for entity, number, total, link in (
        ("SalesReceipt", p.SALES_RECEIPT_NUMBER, p.SALES_RECEIPT_TOTAL, p.SALES_RECEIPT_LINK),
        ("RefundReceipt", p.REFUND_RECEIPT_NUMBER, p.REFUND_RECEIPT_TOTAL, p.REFUND_RECEIPT_LINK),
    ):
        if receipt := latest(documents, entity):
            values.update({number.name: _value(receipt.state.number), link.name: receipt.link})
            if not receipt.state.deleted:
                values[total.name] = _value(receipt.state.total)
    return values


# -- payments -------------------------------------------------------------------------------------------------


def payments_applied(payment: Mapping[str, Any]) -> list[PaymentApplied]:
    """Return the invoices a QuickBooks payment pays, with the amount applied to each."""
    if str(payment.get("status") or "").lower() == "deleted" or _is_voided(payment):
        return []
    payment_id = str(payment["Id"])
    currency = (payment.get("CurrencyRef") or {}).get("value")
    applied: dict[str, Decimal] = {}
    for line in payment.get("Line") or []:
        if not isinstance(line, dict):
            continue
        for link in line.get("LinkedTxn") or []:
            if isinstance(link, dict) and link.get("TxnType") == "Invoice" and link.get("TxnId"):
                invoice_id = str(link["TxnId"])
                applied[invoice_id] = applied.get(invoice_id, Decimal(0)) + Decimal(str(line.get("Amount") or 0))
    return [
        PaymentApplied(payment_id, invoice_id, str(total.quantize(Decimal("0.01"))), payment.get("TxnDate"), currency)
        for invoice_id, total in applied.items()
    ]


def payment_tokens(payment: PaymentApplied, invoice: DocumentState, link: str) -> dict[str, str]:
    """Return the tokens of a payment's timeline event."""
    return {
        "invoice_number": invoice.number or invoice.document_id,
        "amount": payment.amount,
        "currency": payment.currency or invoice.currency or "",
        "payment_date": payment.paid_on or "",
        "balance": invoice.balance or "",
        "invoice_link": link,
    }


def payment_note(payment: PaymentApplied, invoice: DocumentState, link: str) -> str:
    """Return the note that tells of a payment when the app has no timeline template for the record type."""
    currency = payment.currency or invoice.currency or ""
    when = f" on {payment.paid_on}" if payment.paid_on else ""
    balance = f" Invoice balance: {invoice.balance} {currency}." if invoice.balance is not None else ""
    # Plain text: HubSpot keeps it as sent, and the client matches created notes back to records by their body.
    return (
        f"Payment of {payment.amount} {currency} received{when} for QuickBooks invoice "
        f"{invoice.number or invoice.document_id}.{balance} Invoice: {link}"
    )


def payment_event_id(realm_id: str, payment: PaymentApplied) -> str:
    """Return the timeline event's id: the same payment on the same invoice is one event, however often sent."""
    return f"qbo-{realm_id}-payment-{payment.payment_id}-invoice-{payment.invoice_id}"
