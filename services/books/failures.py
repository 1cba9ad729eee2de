"""How an action fails: stable reasons reported to HubSpot, the sentence a workflow builder sees for each,
and the failure a remote error that no retry will fix turns into."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.transport.errors import (
    ConnectionRevokedError,
    InfrastructureError,
    NotFoundError,
    ServiceError,
    TransientError,
)

REASONS: dict[str, str] = {
    "QUICKBOOKS_NOT_CONNECTED": (
        "The QuickBooks company chosen in this action is not connected to this HubSpot account, "
        "or its connection was revoked. Reconnect QuickBooks, then retry."
    ),
    "HUBSPOT_NOT_CONNECTED": "The app lost its access to this HubSpot account. Reinstall the app, then retry.",
    "CONTACT_NOT_ELIGIBLE": (
        "The record's contact does not match the QuickBooks contact sync filters, so nothing was created. "
        "Enroll only records whose contact matches the sync filters."
    ),
    "NO_CONTACT": (
        "The record has no associated contact, so there is no QuickBooks customer to bill. "
        "Associate a contact or choose a customer in the action."
    ),
    "NO_LINE_ITEMS": (
        "The record has no line items, so nothing was created. Add line items, or choose a QuickBooks "
        "product in the action to bill the record's amount."
    ),
    "LINE_ITEM_NOT_MATCHED": (
        "Some line items match no QuickBooks product, so nothing was created. Sync the products, or set "
        "'Create a product in QuickBooks if it doesn't exist' to Yes."
    ),
    "INVALID_LINE_ITEM": (
        "A line item's price, quantity or discount is not one QuickBooks can take (not a number, or negative), so "
        "nothing was created; the failure message names the line item. Correct it in HubSpot, then retry."
    ),
    "AMOUNT_MISSING": "The record has no amount to bill with the chosen QuickBooks product.",
    "INVALID_AMOUNT": (
        "An amount of the record (its amount, or the payment's amount, fee or refund) is not one QuickBooks can "
        "take; the failure message names it."
    ),
    "TAX_CODE_NOT_SET": (
        "This QuickBooks company is outside the US and needs a tax code on every line, but no default tax "
        "code is set for it. Set default_tax_code in the company settings."
    ),
    "SETTINGS_INCOMPLETE": "A company setting this action needs is missing; the failure message names it.",
    "CURRENCY_MISMATCH": (
        "The record's currency differs from the QuickBooks company's home currency and multicurrency is off "
        "in QuickBooks."
    ),
    "PAYMENT_TERM_NOT_FOUND": "The payment terms chosen in the action no longer exist in QuickBooks.",
    "RECORD_NOT_FOUND": "The enrolled record could not be read from HubSpot; it may have been deleted.",
    "QUICKBOOKS_REJECTED": "QuickBooks rejected the document; the failure message gives QuickBooks' reason.",
    "HUBSPOT_REJECTED": "HubSpot refused a request the action needed; the failure message says which.",
    "QUICKBOOKS_UNAVAILABLE": "QuickBooks could not be reached after several attempts. Retry later.",
    "HUBSPOT_UNAVAILABLE": "HubSpot could not be reached after several attempts. Retry later.",
    "SERVER_UNAVAILABLE": (
        "The server's own database or queue kept failing over several attempts; nothing was booked twice. Retry later."
    ),
    "INTERNAL_ERROR": "The action stopped on an unexpected error. The operator can see it and retry.",
    "CANCELLED": (
        "An operator cancelled this action, so nothing was booked; the failure message says who cancelled it and why."
    ),
    "EXPIRED": (
        "HubSpot stopped waiting for this action before it could start booking, so nothing was booked. "
        "An operator may still retry it."
    ),
    # Payment-based actions
    "TAXABLE_LINE_ITEMS": (
        "Only payments whose line items are not taxable can become a paid invoice. Use the sales receipt "
        "action for taxable items."
    ),
    "PAYMENT_FROM_INVOICE": (
        "This payment was collected through an invoice that is already in QuickBooks, so booking it again "
        "would duplicate it."
    ),
    "PAYMENT_NOT_SETTLED": "The payment has not succeeded, so nothing was booked.",
    "PAYMENT_NOT_REFUNDED": "The payment has not been refunded, so no refund receipt was booked.",
    "DOCUMENT_IN_PROGRESS": (
        "Another execution was booking this payment's document and did not finish in time. Retry later."
    ),
    "PARTIAL_REFUND": (
        "The payment was only partly refunded. Allow partial refunds in the action to book them as one line."
    ),
}


# Reasons HubSpot never hears: by the time they happen it has stopped waiting for the callback.
NOT_REPORTED = frozenset({"EXPIRED"})


def describe(reason: str) -> str:
    """Return the sentence for a reason code."""
    return REASONS.get(reason, REASONS["INTERNAL_ERROR"])


class ActionFailure(Exception):
    """The action ends in failure with a stable reason code and a sentence for people."""

    def __init__(self, reason: str, message: str, **details: Any) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.details = details


class DocumentBusyError(TransientError):
    """Another execution is booking the same payment document right now; look again later."""


def expired(expires_at: datetime | None) -> ActionFailure:
    """Return the failure of an execution HubSpot stopped waiting for before its first write."""
    when = f" at {expires_at.isoformat(timespec='minutes')}" if expires_at else ""
    return ActionFailure(
        "EXPIRED",
        f"HubSpot stopped waiting for this action{when} (the action's expiration) before anything was booked, so "
        "nothing was booked and the workflow went on without it. An operator may retry it to book it anyway.",
    )


def invalid_amount(record: str, name: str, raw: object, problem: object) -> ActionFailure:
    """Return the failure of a record whose amount QuickBooks cannot take."""
    return ActionFailure(
        "INVALID_AMOUNT",
        f"{record} has {name} {str(raw).strip()!r}, which {problem}; nothing was booked. Correct it in HubSpot, "
        "then retry.",
    )


def not_connected(realm_id: str, *, was_connected: bool) -> ActionFailure:
    """Return the failure of an action whose QuickBooks company is not (or no longer) connected to the portal."""
    if was_connected:
        sentence = (
            f"QuickBooks company {realm_id} needs to be reconnected: QuickBooks no longer accepts its authorization. "
            "Reconnect it on the app's settings page, then retry the action."
        )
    else:
        sentence = (
            f"QuickBooks company {realm_id} is not connected to this HubSpot account. Connect it on the app's "
            "settings page, then retry the action."
        )
    return ActionFailure("QUICKBOOKS_NOT_CONNECTED", sentence)


def failure_for(error: ServiceError) -> ActionFailure:
    """Turn a remote error that no retry will fix into the action's failure."""
    if isinstance(error, ConnectionRevokedError):
        if error.service == "quickbooks":
            return ActionFailure(
                "QUICKBOOKS_NOT_CONNECTED",
                "The QuickBooks connection was revoked or has expired. Reconnect QuickBooks in the app, "
                "then retry the action.",
            )
        return ActionFailure("HUBSPOT_NOT_CONNECTED", describe("HUBSPOT_NOT_CONNECTED"))
    if isinstance(error, InfrastructureError):
        return ActionFailure("SERVER_UNAVAILABLE", f"{describe('SERVER_UNAVAILABLE')} Last error: {error}")
    if isinstance(error, DocumentBusyError):
        return ActionFailure("DOCUMENT_IN_PROGRESS", f"{describe('DOCUMENT_IN_PROGRESS')} ({error})")
    if isinstance(error, TransientError):
        reason = "QUICKBOOKS_UNAVAILABLE" if error.service == "quickbooks" else "HUBSPOT_UNAVAILABLE"
        return ActionFailure(reason, f"{describe(reason)} Last error: {error}")
    if error.service == "quickbooks":
        code = f" (code {error.code})" if error.code else ""
        detail = error.detail or ""
        message = error.message.removeprefix("QuickBooks: ")
        sentence = f"QuickBooks rejected the request{code}: {message}" + (
            f" {detail}" if detail and detail not in message else ""
        )
        return ActionFailure("QUICKBOOKS_REJECTED", sentence, quickbooks_code=error.code)
    if isinstance(error, NotFoundError):
        return ActionFailure("RECORD_NOT_FOUND", f"HubSpot could not find a record the action needs: {error}")
    return ActionFailure("HUBSPOT_REJECTED", f"HubSpot refused a request the action needed: {error}")


def internal_error(error: Exception) -> ActionFailure:
    """Return the failure of an action stopped by an unexpected error (a bug)."""
    return ActionFailure("INTERNAL_ERROR", f"{describe('INTERNAL_ERROR')} ({error.__class__.__name__})")
