"""Linking an execution to a QuickBooks document that already exists (an operator's "mark as booked")."""

from __future__ import annotations

from typing import Any

from services.books.documents import document_summary, url_of
from services.books.failures import ActionFailure
from services.quickbooks.client import QuickBooksClient
from services.transport.errors import NotFoundError, PermanentError

# The QuickBooks document each action books (a paid invoice is linked by its invoice).
DOCUMENT_OF_ACTION = {
    "create_invoice": "Invoice",
    "create_estimate": "Estimate",
    "create_sales_receipt": "SalesReceipt",
    "create_paid_invoice": "Invoice",
    "create_payment_sales_receipt": "SalesReceipt",
    "create_fee_expense": "Purchase",
    "create_refund_receipt": "RefundReceipt",
}
# Their outputs carry a note on the amounts; a linked document's amounts are QuickBooks' own.
PAYMENT_ACTIONS = frozenset(
    {"create_paid_invoice", "create_payment_sales_receipt", "create_fee_expense", "create_refund_receipt"}
)
# What the QuickBooks app calls a Purchase in its addresses.
APP_PAGE = {"Purchase": "Expense"}
LINKED_NOTE = "Linked by an operator to a document that already existed in QuickBooks; nothing was written."


def linked_outputs(
    qbo: QuickBooksClient, action: str, document_id: str, *, realm_id: str, app_url: str
) -> dict[str, Any]:
    """Read the document an operator names and return the action's output fields for it.

    ActionFailure when the action books no document, or QuickBooks has no such document (or a deleted one).
    """
    kind = DOCUMENT_OF_ACTION.get(action)
    if kind is None:
        raise ActionFailure("INTERNAL_ERROR", f"Action {action!r} books no QuickBooks document.")
    if not document_id.isdigit() or len(document_id) > 32:
        raise ActionFailure("RECORD_NOT_FOUND", f"{document_id!r} is not a QuickBooks document id.")
    try:
        document = qbo.read(kind, document_id)
    except (NotFoundError, PermanentError) as error:
        raise ActionFailure(
            "RECORD_NOT_FOUND", f"QuickBooks company {realm_id} has no {kind} {document_id} ({error})."
        ) from error
    if str(document.get("status", "")).lower() == "deleted":
        raise ActionFailure("RECORD_NOT_FOUND", f"{kind} {document_id} was deleted in QuickBooks.")
    summary = document_summary(document)
    outputs: dict[str, Any] = {
        "quickbooks_document_type": kind,
        "quickbooks_id": summary["id"],
        "quickbooks_total": summary["total"],
        "quickbooks_url": url_of(app_url, APP_PAGE.get(kind, kind), summary["id"]),
        "quickbooks_realm_id": realm_id,
    }
    if kind != "Purchase":
        outputs.update(
            {
                "quickbooks_number": summary["number"] or "",
                "quickbooks_currency": summary["currency"] or "",
                "quickbooks_customer_id": str((document.get("CustomerRef") or {}).get("value") or ""),
            }
        )
    if action in PAYMENT_ACTIONS:
        outputs["amount_note"] = LINKED_NOTE
    return outputs
