"""The payment actions end to end: paid invoice, sales receipt, fee expense, refund receipt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.bootstrap import Services
from services.store.records import Execution, Tenant
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_payment
from tests.conftest import only_callback, qbo_writes

PaymentAction = Callable[..., Execution]

TENANT = Tenant(PORTAL_ID, REALM_ID)


@pytest.fixture
def book(perform: Callable[..., Execution], sims: Simulators, settings: Any) -> PaymentAction:
    """Run a payment action on a payment and return the execution."""

    def run(action: str, payment_id: str, **inputs: Any) -> Execution:
        base: dict[str, Any] = {"quickbooks_account": REALM_ID}
        if action != "create_fee_expense":
            base["create_missing_products"] = "yes"
        if action == "create_refund_receipt":
            base["refund_account"] = sims.account_id("Checking")
        if action == "create_fee_expense":
            base["payment_account"] = sims.account_id("Checking")
            base["expense_account"] = sims.account_id("Bank Charges & Fees")
        return perform(payment_id, action=action, object_type="0-101", inputs={**base, **inputs})

    return run


def sales_lines(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in document["Line"] if line["DetailType"] == "SalesItemLineDetail"]


class TestPaidInvoice:
    def test_books_an_invoice_and_a_payment_that_pays_it(self, book: PaymentAction, sims: Simulators) -> None:
        payment = seed_payment(sims)
        checking = sims.account_id("Checking")

        execution = book("create_paid_invoice", payment["payment"], deposit_account=checking)

        assert execution.state == "succeeded", execution.failure_message
        [invoice] = sims.entities("Invoice")
        [paid] = sims.entities("Payment")
        assert invoice["TotalAmt"] == 399.5 and invoice["TxnDate"] == "2026-11-20"
        assert paid["TotalAmt"] == 399.5
        assert paid["Line"][0]["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
        assert paid["DepositToAccountRef"]["value"] == checking
        assert paid["PaymentRefNum"] == f"HS-{payment['payment']}"
        assert sims.entities("Invoice")[0]["Balance"] == 0
        outputs = only_callback(sims, execution)
        assert outputs["quickbooks_id"] == invoice["Id"]
        assert outputs["quickbooks_payment_id"] == paid["Id"]

    def test_without_a_deposit_account_quickbooks_uses_undeposited_funds(
        self, book: PaymentAction, sims: Simulators
    ) -> None:
        execution = book("create_paid_invoice", seed_payment(sims)["payment"])

        assert execution.state == "succeeded", execution.failure_message
        [write] = qbo_writes(sims, "payment")
        assert "DepositToAccountRef" not in write["body"]

    def test_a_failed_payment_step_is_resumed_without_a_second_invoice(
        self, book: PaymentAction, sims: Simulators, services: Services
    ) -> None:
        sims.qbo_fault(method="POST", path="/payment$", status=503, count=1)

        execution = book("create_paid_invoice", seed_payment(sims)["payment"])

        assert execution.state == "succeeded", execution.failure_message
        assert len(sims.entities("Invoice")) == 1 and len(sims.entities("Payment")) == 1
        assert [w["status"] for w in qbo_writes(sims, "invoice")] == [200]
        assert [w["status"] for w in qbo_writes(sims, "payment")] == [503, 200]
        assert [a.outcome for a in services.attempts.of(execution.id)] == ["retrying", "succeeded"]

    def test_a_later_execution_finishes_what_a_failed_one_started(self, book: PaymentAction, sims: Simulators) -> None:
        """The first execution created the invoice, then QuickBooks refused the payment for good."""
        payment = seed_payment(sims)
        sims.qbo_fault(
            method="POST",
            path="/payment$",
            status=400,
            count=1,
            body={
                "Fault": {"Error": [{"Message": "Account period closed", "code": "6210"}], "type": "ValidationFault"}
            },
        )
        first = book("create_paid_invoice", payment["payment"])
        second = book("create_paid_invoice", payment["payment"])

        assert first.failure_reason == "QUICKBOOKS_REJECTED"
        assert second.state == "succeeded", second.failure_message
        assert len(sims.entities("Invoice")) == 1 and len(sims.entities("Payment")) == 1
        assert sims.entities("Payment")[0]["Line"][0]["LinkedTxn"][0]["TxnId"] == sims.entities("Invoice")[0]["Id"]

    def test_taxable_line_items_are_refused_by_name_and_nothing_is_created(
        self, book: PaymentAction, sims: Simulators
    ) -> None:
        payment = seed_payment(
            sims,
            line_items=[
                {"name": "Licence", "quantity": "1", "price": "300", "hs_tax_amount": "24.75"},
                {"name": "Training", "quantity": "1", "price": "99.5"},
            ],
        )

        execution = book("create_paid_invoice", payment["payment"])

        assert execution.failure_reason == "TAXABLE_LINE_ITEMS"
        assert "'Licence'" in execution.failure_message and "Training" not in execution.failure_message
        assert [r for r in sims.qbo_requests() if r["method"] == "POST"] == []

    def test_line_items_that_do_not_add_up_book_what_was_paid_and_say_so(
        self, book: PaymentAction, sims: Simulators
    ) -> None:
        payment = seed_payment(sims, payment={"hs_initial_amount": "380"})

        execution = book("create_paid_invoice", payment["payment"])

        assert execution.state == "succeeded", execution.failure_message
        [invoice] = sims.entities("Invoice")
        assert invoice["TotalAmt"] == 380 and sims.entities("Payment")[0]["TotalAmt"] == 380
        outputs = only_callback(sims, execution)
        assert "399.5" in outputs["amount_note"] and "380" in outputs["amount_note"]


@pytest.mark.parametrize("action", ["create_paid_invoice", "create_payment_sales_receipt"])
def test_payments_collected_through_an_invoice_are_refused_unless_allowed(
    book: PaymentAction, sims: Simulators, action: str
) -> None:
    refused = book(action, seed_payment(sims, payment={"hs_payment_source_app": "INVOICE"})["payment"])
    allowed = book(
        action,
        seed_payment(sims, payment={"hs_payment_source_app": "INVOICE"})["payment"],
        allow_invoice_payments="yes",
    )

    assert refused.failure_reason == "PAYMENT_FROM_INVOICE"
    assert allowed.state == "succeeded", allowed.failure_message


@pytest.mark.parametrize("action", ["create_paid_invoice", "create_payment_sales_receipt", "create_fee_expense"])
def test_only_settled_payments_are_booked(book: PaymentAction, sims: Simulators, action: str) -> None:
    execution = book(action, seed_payment(sims, payment={"hs_latest_status": "processing"})["payment"])

    assert execution.failure_reason == "PAYMENT_NOT_SETTLED"
    assert "processing" in execution.failure_message
    assert [r for r in sims.qbo_requests() if r["method"] == "POST"] == []


def test_a_payment_in_another_currency_needs_multicurrency(book: PaymentAction, sims: Simulators) -> None:
    execution = book("create_payment_sales_receipt", seed_payment(sims, payment={"hs_currency_code": "EUR"})["payment"])

    assert execution.failure_reason == "CURRENCY_MISMATCH"


def test_a_sales_receipt_carries_deposit_account_method_and_reference(book: PaymentAction, sims: Simulators) -> None:
    payment = seed_payment(sims)
    checking = sims.account_id("Checking")
    method = next(m["Id"] for m in sims.entities("PaymentMethod") if m["Name"] == "Visa")

    execution = book(
        "create_payment_sales_receipt", payment["payment"], deposit_account=checking, payment_method=method
    )

    assert execution.state == "succeeded", execution.failure_message
    [receipt] = sims.entities("SalesReceipt")
    assert receipt["DepositToAccountRef"]["value"] == checking
    assert receipt["PaymentMethodRef"]["value"] == method
    assert receipt["PaymentRefNum"] == f"HS-{payment['payment']}"
    assert receipt["TotalAmt"] == 399.5


class TestFeeExpense:
    def test_books_the_fee_from_the_chosen_account_to_the_chosen_expense(
        self, book: PaymentAction, sims: Simulators
    ) -> None:
        vendor = next(v for v in sims.entities("Vendor") if v["DisplayName"] == "Stripe")

        execution = book("create_fee_expense", seed_payment(sims)["payment"], payee=vendor["Id"])

        assert execution.state == "succeeded", execution.failure_message
        [expense] = sims.entities("Purchase")
        assert expense["TotalAmt"] == 11.89
        assert expense["AccountRef"]["value"] == sims.account_id("Checking")
        detail = expense["Line"][0]["AccountBasedExpenseLineDetail"]
        assert detail["AccountRef"]["value"] == sims.account_id("Bank Charges & Fees")
        assert expense["EntityRef"]["value"] == vendor["Id"]
        assert only_callback(sims, execution)["fee_amount"] == 11.89

    def test_a_credit_card_account_pays_by_credit_card(self, book: PaymentAction, sims: Simulators) -> None:
        execution = book("create_fee_expense", seed_payment(sims)["payment"], payment_account=sims.account_id("Visa"))

        assert execution.state == "succeeded", execution.failure_message
        assert sims.entities("Purchase")[0]["PaymentType"] == "CreditCard"

    def test_a_payment_without_a_fee_books_nothing_and_says_so(self, book: PaymentAction, sims: Simulators) -> None:
        execution = book("create_fee_expense", seed_payment(sims, payment={"hs_fees_amount": "0"})["payment"])

        assert execution.state == "succeeded"
        assert sims.entities("Purchase") == []
        outputs = only_callback(sims, execution)
        assert outputs["hs_execution_state"] == "SUCCESS"
        assert outputs["fee_amount"] == 0 and "no processing fee" in outputs["amount_note"]


class TestRefundReceipt:
    def test_a_full_refund_mirrors_the_original_lines(self, book: PaymentAction, sims: Simulators) -> None:
        payment = seed_payment(sims, payment={"hs_latest_status": "refunded", "hs_refunds_amount": "399.5"})

        execution = book("create_refund_receipt", payment["payment"])

        assert execution.state == "succeeded", execution.failure_message
        [refund] = sims.entities("RefundReceipt")
        assert refund["TotalAmt"] == 399.5
        assert [line["Amount"] for line in sales_lines(refund)] == [300, 99.5]
        assert refund["DepositToAccountRef"]["value"] == sims.account_id("Checking")

    def test_a_payment_that_was_not_refunded_is_refused(self, book: PaymentAction, sims: Simulators) -> None:
        execution = book("create_refund_receipt", seed_payment(sims)["payment"])

        assert execution.failure_reason == "PAYMENT_NOT_REFUNDED"

    def test_a_partial_refund_is_refused_by_default(self, book: PaymentAction, sims: Simulators) -> None:
        payment = seed_payment(sims, payment={"hs_latest_status": "partially_refunded", "hs_refunds_amount": "99.5"})

        execution = book("create_refund_receipt", payment["payment"])

        assert execution.failure_reason == "PARTIAL_REFUND"
        assert "99.5" in execution.failure_message
        assert sims.entities("RefundReceipt") == []

    def test_a_partial_refund_is_booked_as_one_line_when_allowed(self, book: PaymentAction, sims: Simulators) -> None:
        payment = seed_payment(sims, payment={"hs_latest_status": "partially_refunded", "hs_refunds_amount": "99.5"})

        execution = book("create_refund_receipt", payment["payment"], partial_refunds="single_line")

        assert execution.state == "succeeded", execution.failure_message
        [refund] = sims.entities("RefundReceipt")
        [line] = sales_lines(refund)
        assert line["Amount"] == 99.5 and refund["TotalAmt"] == 99.5
        assert "Partial refund" in line["Description"]


def test_the_same_payment_enrolled_three_times_books_one_document(
    book: PaymentAction, sims: Simulators, services: Services
) -> None:
    payment = seed_payment(sims)

    executions = [book("create_paid_invoice", payment["payment"]) for _ in range(3)]

    assert [e.state for e in executions] == ["succeeded"] * 3
    assert len(sims.entities("Invoice")) == 1 and len(sims.entities("Payment")) == 1
    first, *later = (only_callback(sims, e) for e in executions)
    assert "duplicate_of" not in first
    assert all(o["duplicate_of"] == first["quickbooks_id"] == o["quickbooks_id"] for o in later)
    claim = services.bookkeeping.payment_document(TENANT, payment["payment"], "paid_invoice")
    assert claim is not None and claim.execution_id == executions[0].id


def test_each_kind_of_document_is_booked_once_per_payment(book: PaymentAction, sims: Simulators) -> None:
    payment = seed_payment(sims)

    for action in ("create_payment_sales_receipt", "create_fee_expense") * 2:
        assert book(action, payment["payment"]).state == "succeeded"

    assert len(sims.entities("SalesReceipt")) == 1 and len(sims.entities("Purchase")) == 1


def test_a_company_outside_the_us_puts_its_tax_codes_on_every_line(
    book: PaymentAction, sims: Simulators, services: Services
) -> None:
    sims.add_company("7770002", country="GB", home_currency="GBP")
    services.connections.save_quickbooks(
        PORTAL_ID, "7770002", "qbo-refresh-demo-7770002", "qbo-access-demo-7770002", None
    )
    codes = {c["Name"]: c["Id"] for c in sims.entities("TaxCode", "7770002")}
    services.companies.save_settings(
        "7770002",
        {
            "default_tax_code": codes["20.0% S"],
            "exempt_tax_code": codes["Exempt"],
            "default_income_account": sims.account_id("Services", "7770002"),
        },
    )
    payment = seed_payment(
        sims,
        payment={"hs_currency_code": "GBP", "hs_initial_amount": "140"},
        line_items=[
            {"name": "Taxed", "quantity": "1", "price": "100", "hs_tax_rate": "20"},
            {"name": "Untaxed", "quantity": "1", "price": "40"},
        ],
    )

    execution = book("create_payment_sales_receipt", payment["payment"], quickbooks_account="7770002")

    assert execution.state == "succeeded", execution.failure_message
    [receipt] = sims.entities("SalesReceipt", "7770002")
    assert [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in sales_lines(receipt)] == [
        codes["20.0% S"],
        codes["Exempt"],
    ]


@pytest.mark.parametrize(
    ("action", "status", "reason"),
    [
        ("create_paid_invoice", "disputed_awaiting_decision", "PAYMENT_NOT_SETTLED"),
        ("create_payment_sales_receipt", "disputed_lost", "PAYMENT_NOT_SETTLED"),
        ("create_refund_receipt", "processing_refund", "PAYMENT_NOT_REFUNDED"),
        ("create_fee_expense", "disputed_lost", None),
        ("create_payment_sales_receipt", "disputed_won", None),
    ],
)
def test_documented_statuses_book_what_happened_to_the_money(
    book: PaymentAction, sims: Simulators, action: str, status: str, reason: str | None
) -> None:
    execution = book(action, seed_payment(sims, payment={"hs_latest_status": status})["payment"])

    assert execution.failure_reason == reason, execution.failure_message
    writes = [r for r in sims.qbo_requests() if r["method"] == "POST"]
    assert bool(writes) == (reason is None)
