"""Create a QuickBooks sales receipt from a deal or a quote."""

from __future__ import annotations

from actions.create_invoice import DEAL_AND_QUOTE
from actions.registry import ActionSpec
from actions.schemas import SalesInputSchema

SPEC = ActionSpec(
    name="create_sales_receipt",
    label="Create a QuickBooks sales receipt",
    object_types=DEAL_AND_QUOTE,
    input_schema=SalesInputSchema,
    manifest="create_sales_receipt.json",
)
