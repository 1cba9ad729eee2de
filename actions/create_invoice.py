"""Create a QuickBooks invoice from a deal or a quote."""

from __future__ import annotations

from marshmallow import fields
from marshmallow.validate import Length

from actions.registry import ActionSpec
from actions.schemas import SalesInputSchema

DEAL_AND_QUOTE = ("DEAL", "0-3", "QUOTE", "0-14")


class InvoiceInputSchema(SalesInputSchema):
    """Inputs of the invoice action: the sales inputs plus payment terms."""

    payment_terms = fields.String(load_default="", validate=Length(max=32))


SPEC = ActionSpec(
    name="create_invoice",
    label="Create a QuickBooks invoice",
    object_types=DEAL_AND_QUOTE,
    input_schema=InvoiceInputSchema,
    manifest="create_invoice.json",
)
