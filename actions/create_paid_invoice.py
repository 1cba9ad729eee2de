"""Create a paid invoice in QuickBooks (an invoice and the payment applied to it) from a HubSpot payment."""

from __future__ import annotations

from actions.registry import ActionSpec
from actions.schemas import PaidInputSchema

# HubSpot's documentation names commerce payments by type id; the name forms are accepted too.
COMMERCE_PAYMENT = ("0-101", "COMMERCE_PAYMENT", "COMMERCE_PAYMENTS")

SPEC = ActionSpec(
    name="create_paid_invoice",
    label="Create a paid invoice in QuickBooks",
    object_types=COMMERCE_PAYMENT,
    input_schema=PaidInputSchema,
    manifest="create_paid_invoice.json",
)
