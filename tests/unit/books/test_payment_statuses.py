"""What each of HubSpot's documented payment statuses means for each payment action."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.books.failures import ActionFailure
from services.books.payments import FEE_EXPENSE, PAID_INVOICE, REFUND_RECEIPT, SALES_RECEIPT, Payment, check_status
from services.hubspot.client import CrmObject
from services.hubspot.objects import PAYMENT_STATUSES

BOOK, NOT_SETTLED, NOT_REFUNDED = "book", "PAYMENT_NOT_SETTLED", "PAYMENT_NOT_REFUNDED"
# status: (paid invoice and sales receipt, fee expense, refund receipt)
EXPECTED = {
    "processing": (NOT_SETTLED, NOT_SETTLED, NOT_REFUNDED),
    "succeeded": (BOOK, BOOK, NOT_REFUNDED),
    "failed": (NOT_SETTLED, NOT_SETTLED, NOT_REFUNDED),
    "partially_refunded": (BOOK, BOOK, BOOK),
    "refunded": (BOOK, BOOK, BOOK),
    "processing_refund": (BOOK, BOOK, NOT_REFUNDED),  # the refund is not done yet
    "disputed_won": (BOOK, BOOK, NOT_REFUNDED),
    "disputed_lost": (NOT_SETTLED, BOOK, NOT_REFUNDED),  # a chargeback: the sale is undone, the fee stays
    "disputed_action_required": (NOT_SETTLED, BOOK, NOT_REFUNDED),  # an open dispute is not settled
    "disputed_awaiting_decision": (NOT_SETTLED, BOOK, NOT_REFUNDED),
    "": (NOT_SETTLED, NOT_SETTLED, NOT_REFUNDED),
    "canceled": (NOT_SETTLED, NOT_SETTLED, NOT_REFUNDED),  # not a documented status: nothing is assumed
}


def payment(status: str) -> Payment:
    return Payment.from_record(
        CrmObject(
            "7",
            {
                "hs_latest_status": status,
                "hs_initial_amount": "100",
                "hs_refunds_amount": "100" if "refund" in status else "0",
            },
        )
    )


def verdict(status: str, kind: str) -> str:
    try:
        check_status(payment(status), kind)
    except ActionFailure as failure:
        return failure.reason
    return BOOK


def test_every_documented_status_has_a_decision() -> None:
    assert set(PAYMENT_STATUSES) <= set(EXPECTED)


@pytest.mark.parametrize("status", list(EXPECTED))
def test_each_status_books_what_happened_to_the_money(status: str) -> None:
    sale, fee, refund = EXPECTED[status]
    assert (verdict(status, PAID_INVOICE), verdict(status, SALES_RECEIPT)) == (sale, sale)
    assert verdict(status, FEE_EXPENSE) == fee
    assert verdict(status, REFUND_RECEIPT) == refund


@pytest.mark.parametrize(
    ("status", "kind", "says"),
    [
        ("disputed_awaiting_decision", PAID_INVOICE, "is disputed, and the dispute is still open"),
        ("disputed_lost", SALES_RECEIPT, "taken back by the customer's bank in a dispute the company lost"),
        ("processing_refund", REFUND_RECEIPT, "has a refund that is still processing"),
        ("disputed_lost", REFUND_RECEIPT, "a chargeback, not a refund"),
        ("processing", FEE_EXPENSE, "is still processing"),
    ],
)
def test_the_failure_says_what_the_status_means(status: str, kind: str, says: str) -> None:
    with pytest.raises(ActionFailure) as failure:
        check_status(payment(status), kind)
    assert says in failure.value.message


def test_a_refunded_payment_without_a_refunded_amount_counts_as_fully_refunded() -> None:
    refunded = Payment.from_record(CrmObject("7", {"hs_latest_status": "refunded", "hs_initial_amount": "80"}))
    assert refunded.refunded == Decimal(80) and refunded.paid_on == date.today()


def test_the_source_of_a_payment_is_the_documented_property() -> None:
    record = CrmObject(
        "7", {"hs_latest_status": "succeeded", "hs_payment_source_app": "invoice", "hs_payment_source_type": "X"}
    )
    assert Payment.from_record(record).source_app == "INVOICE"
