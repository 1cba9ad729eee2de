"""The registry of action handlers: what a job does for each action name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.books.payments import (
    create_fee_expense,
    create_paid_invoice,
    create_payment_sales_receipt,
    create_refund_receipt,
)
from services.books.run import Run
from services.books.sales import create_sales_document

Handler = Callable[[Run], dict[str, Any]]

HANDLERS: dict[str, Handler] = {
    "create_invoice": lambda run: create_sales_document(run, "Invoice"),
    "create_estimate": lambda run: create_sales_document(run, "Estimate"),
    "create_sales_receipt": lambda run: create_sales_document(run, "SalesReceipt"),
    "create_paid_invoice": create_paid_invoice,
    "create_payment_sales_receipt": create_payment_sales_receipt,
    "create_fee_expense": create_fee_expense,
    "create_refund_receipt": create_refund_receipt,
}
