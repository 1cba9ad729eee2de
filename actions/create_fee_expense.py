"""Create a QuickBooks expense for a HubSpot payment's processing fee."""

from __future__ import annotations

from actions.create_paid_invoice import COMMERCE_PAYMENT
from actions.registry import ActionSpec
from actions.schemas import FeeExpenseInputSchema

SPEC = ActionSpec(
    name="create_fee_expense",
    label="Create a QuickBooks expense",
    object_types=COMMERCE_PAYMENT,
    input_schema=FeeExpenseInputSchema,
    manifest="create_fee_expense.json",
)
