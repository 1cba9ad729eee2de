"""Create a QuickBooks sales receipt from a HubSpot payment."""

from __future__ import annotations

from actions.create_paid_invoice import COMMERCE_PAYMENT
from actions.registry import ActionSpec
from actions.schemas import PaidInputSchema

SPEC = ActionSpec(
    name="create_payment_sales_receipt",
    label="Create a sales receipt in QuickBooks",
    object_types=COMMERCE_PAYMENT,
    input_schema=PaidInputSchema,
    manifest="create_payment_sales_receipt.json",
)
