"""The properties our app adds to HubSpot records for the documents it books, and the payment timeline event.

This is the only place that spells their names, labels, types and options; `qbo-actions hubspot setup` (and the
install) creates them in a group "QuickBooks" on deals, quotes and commerce payments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GROUP_NAME = "quickbooks"
GROUP_LABEL = "QuickBooks"
# The record types whose workflows run our actions, as HubSpot's CRM paths name them.
OBJECT_TYPES = ("deals", "quotes", "commerce_payments")


@dataclass(frozen=True)
class Option:
    """One choice of an enumeration property: its stored value and what HubSpot shows."""

    value: str
    label: str


@dataclass(frozen=True)
class PropertySpec:
    """One property as HubSpot's properties API takes it."""

    name: str
    label: str
    type: str
    field_type: str
    description: str
    options: tuple[Option, ...] = ()

    def definition(self, display_order: int) -> dict[str, Any]:
        """Return the body of `POST /crm/v3/properties/{objectType}` for this property."""
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": GROUP_NAME,
            "description": self.description,
            "displayOrder": display_order,
        }
        if self.options:
            body["options"] = [
                {"value": o.value, "label": o.label, "displayOrder": i, "hidden": False}
                for i, o in enumerate(self.options)
            ]
        return body


def _text(name: str, label: str, description: str) -> PropertySpec:
    return PropertySpec(name, label, "string", "text", description)


def _number(name: str, label: str, description: str) -> PropertySpec:
    return PropertySpec(name, label, "number", "number", description)


def _date(name: str, label: str, description: str) -> PropertySpec:
    return PropertySpec(name, label, "date", "date", description)


def _choice(name: str, label: str, description: str, options: tuple[Option, ...]) -> PropertySpec:
    return PropertySpec(name, label, "enumeration", "select", description, options)


# Invoice statuses, in the order a sales team follows them.
AWAITING_PAYMENT = Option("awaiting_payment", "Awaiting payment")
PARTIALLY_PAID = Option("partially_paid", "Partially paid")
PAID = Option("paid", "Paid")
OVERDUE = Option("overdue", "Overdue")
VOIDED = Option("voided", "Voided")
DELETED = Option("deleted", "Deleted")
INVOICE_STATUSES = (AWAITING_PAYMENT, PARTIALLY_PAID, PAID, OVERDUE, VOIDED, DELETED)

# Whether QuickBooks emailed the invoice to the customer (its EmailStatus).
NOT_SENT = Option("not_sent", "Not sent")
NEEDS_SENDING = Option("needs_sending", "Needs sending")
SENT = Option("sent", "Sent")
EMAIL_STATUSES = (NOT_SENT, NEEDS_SENDING, SENT)

ESTIMATE_PENDING = Option("pending", "Pending")
ESTIMATE_ACCEPTED = Option("accepted", "Accepted")
ESTIMATE_CLOSED = Option("closed", "Closed")
ESTIMATE_REJECTED = Option("rejected", "Rejected")
ESTIMATE_CONVERTED = Option("converted", "Converted to invoice")
ESTIMATE_STATUSES = (
    ESTIMATE_PENDING,
    ESTIMATE_ACCEPTED,
    ESTIMATE_CLOSED,
    ESTIMATE_REJECTED,
    ESTIMATE_CONVERTED,
    DELETED,
)

INVOICE_NUMBER = _text("qbo_invoice_number", "QuickBooks invoice number", "The invoice's number in QuickBooks.")
INVOICE_STATUS = _choice(
    "qbo_invoice_status",
    "QuickBooks invoice status",
    "Where the invoice stands in QuickBooks: awaiting payment, partially paid, paid, overdue, voided or deleted.",
    INVOICE_STATUSES,
)
INVOICE_TOTAL = _number("qbo_invoice_total", "QuickBooks invoice total", "The amount the invoice bills.")
INVOICE_BALANCE = _number("qbo_invoice_balance", "QuickBooks invoice balance", "What the customer still owes.")
INVOICE_AMOUNT_PAID = _number(
    "qbo_invoice_amount_paid", "QuickBooks invoice amount paid", "What the customer paid so far."
)
INVOICE_DUE_DATE = _date("qbo_invoice_due_date", "QuickBooks invoice due date", "When the invoice is due.")
INVOICE_RECIPIENT_NAME = _text(
    "qbo_invoice_recipient_name", "QuickBooks invoice recipient", "The QuickBooks customer the invoice bills."
)
INVOICE_RECIPIENT_EMAIL = _text(
    "qbo_invoice_recipient_email", "QuickBooks invoice recipient email", "Where QuickBooks sends the invoice."
)
INVOICE_EMAIL_STATUS = _choice(
    "qbo_invoice_email_status",
    "QuickBooks invoice sent",
    "Whether QuickBooks emailed the invoice to the customer.",
    EMAIL_STATUSES,
)
INVOICE_LINK = _text("qbo_invoice_link", "QuickBooks invoice link", "The invoice in QuickBooks.")
INVOICE_LAST_PAYMENT_DATE = _date(
    "qbo_invoice_last_payment_date", "QuickBooks invoice last payment date", "When the latest payment was made."
)
ESTIMATE_NUMBER = _text("qbo_estimate_number", "QuickBooks estimate number", "The estimate's number in QuickBooks.")
ESTIMATE_STATUS = _choice(
    "qbo_estimate_status",
    "QuickBooks estimate status",
    "Where the estimate stands in QuickBooks: pending, accepted, closed, rejected or converted to an invoice.",
    ESTIMATE_STATUSES,
)
ESTIMATE_TOTAL = _number("qbo_estimate_total", "QuickBooks estimate total", "The amount the estimate quotes.")
ESTIMATE_LINK = _text("qbo_estimate_link", "QuickBooks estimate link", "The estimate in QuickBooks.")
SALES_RECEIPT_NUMBER = _text(
    "qbo_sales_receipt_number", "QuickBooks sales receipt number", "The sales receipt's number in QuickBooks."
)
SALES_RECEIPT_TOTAL = _number("qbo_sales_receipt_total", "QuickBooks sales receipt total", "The amount received.")
SALES_RECEIPT_LINK = _text(
    "qbo_sales_receipt_link", "QuickBooks sales receipt link", "The sales receipt in QuickBooks."
)
REFUND_RECEIPT_NUMBER = _text(
    "qbo_refund_receipt_number", "QuickBooks refund receipt number", "The refund receipt's number in QuickBooks."
)
REFUND_RECEIPT_TOTAL = _number("qbo_refund_receipt_total", "QuickBooks refund receipt total", "The amount refunded.")
REFUND_RECEIPT_LINK = _text(
    "qbo_refund_receipt_link", "QuickBooks refund receipt link", "The refund receipt in QuickBooks."
)

PROPERTIES = (
    INVOICE_NUMBER,
    INVOICE_STATUS,
    INVOICE_TOTAL,
    INVOICE_BALANCE,
    INVOICE_AMOUNT_PAID,
    INVOICE_DUE_DATE,
    INVOICE_RECIPIENT_NAME,
    INVOICE_RECIPIENT_EMAIL,
    INVOICE_EMAIL_STATUS,
    INVOICE_LINK,
    INVOICE_LAST_PAYMENT_DATE,
    ESTIMATE_NUMBER,
    ESTIMATE_STATUS,
    ESTIMATE_TOTAL,
    ESTIMATE_LINK,
    SALES_RECEIPT_NUMBER,
    SALES_RECEIPT_TOTAL,
    SALES_RECEIPT_LINK,
    REFUND_RECEIPT_NUMBER,
    REFUND_RECEIPT_TOTAL,
    REFUND_RECEIPT_LINK,
)


def definitions() -> list[dict[str, Any]]:
    """Return every property's creation body, in display order."""
    return [spec.definition(order) for order, spec in enumerate(PROPERTIES)]


def differs(wanted: dict[str, Any], existing: dict[str, Any]) -> bool:
    """Tell whether a property HubSpot has lacks something of ours (label, type, group or an option)."""
    if any(existing.get(key) != wanted[key] for key in ("label", "type", "fieldType", "groupName")):
        return True
    have = {o.get("value") for o in existing.get("options") or [] if isinstance(o, dict)}
    return any(o["value"] not in have for o in wanted.get("options") or [])


# The timeline event of a payment applied to an invoice (created once per app by `qbo-actions publish`).
PAYMENT_EVENT_NAME = "QuickBooks payment received"
PAYMENT_EVENT_TOKENS = (
    {"name": "invoice_number", "label": "Invoice number", "type": "string"},
    {"name": "amount", "label": "Amount", "type": "number"},
    {"name": "currency", "label": "Currency", "type": "string"},
    {"name": "payment_date", "label": "Payment date", "type": "date"},
    {"name": "balance", "label": "Invoice balance", "type": "number"},
    {"name": "invoice_link", "label": "Invoice link", "type": "string"},
)


def payment_event_template(object_type: str) -> dict[str, Any]:
    """Return the body of the timeline event template for payments on one record type."""
    return {
        "name": f"{PAYMENT_EVENT_NAME} ({object_type})",
        "objectType": object_type,
        "headerTemplate": "Payment of {{amount}} {{currency}} received for QuickBooks invoice {{invoice_number}}",
        "detailTemplate": (
            "Paid on {{payment_date}}. Invoice balance: {{balance}} {{currency}}.\n\n"
            "[Open the invoice in QuickBooks]({{invoice_link}})"
        ),
        "tokens": [dict(token) for token in PAYMENT_EVENT_TOKENS],
    }
