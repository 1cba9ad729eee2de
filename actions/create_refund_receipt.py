"""Create a QuickBooks refund receipt when a HubSpot payment is refunded."""

from __future__ import annotations

from actions.create_paid_invoice import COMMERCE_PAYMENT
from actions.registry import ActionSpec
from actions.schemas import RefundReceiptInputSchema

SPEC = ActionSpec(
    name="create_refund_receipt",
    label="Create a QuickBooks refund receipt",
    object_types=COMMERCE_PAYMENT,
    input_schema=RefundReceiptInputSchema,
    manifest="create_refund_receipt.json",
)
