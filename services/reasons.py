"""Stable failure reasons reported to HubSpot, with the sentence a workflow builder sees for each."""

from __future__ import annotations

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
    "AMOUNT_MISSING": "The record has no amount to bill with the chosen QuickBooks product.",
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
    "INTERNAL_ERROR": "The action stopped on an unexpected error. The operator can see it and retry.",
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


def describe(reason: str) -> str:
    """Return the sentence for a reason code."""
    return REASONS.get(reason, REASONS["INTERNAL_ERROR"])
