"""Payment-based actions: paid invoice, sales receipt, fee expense and refund receipt from a HubSpot payment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from services.books.company import CompanyProfile
from services.books.customers import customer_for
from services.books.documents import create_document, currency_ref, document_url, output_fields
from services.books.failures import ActionFailure, DocumentBusyError, invalid_amount
from services.books.items import item_name, match_line_items
from services.books.lines import TaxCodes, adjusted_to, is_taxable, sales_line
from services.books.money import NotAnAmountError, cents, number, strict_money
from services.books.records import EnrolledRecord, load_record
from services.books.run import Run
from services.books.sales import chosen_product, document_lines, require_line_items, tax_codes
from services.hubspot.client import CrmObject
from services.hubspot.objects import PAYMENT_PROPERTIES, payment_properties
from services.hubspot.outputs import without_state
from services.quickbooks.query import equals, ref, select
from services.store.records import FAILED, SUCCEEDED

PAID_INVOICE, SALES_RECEIPT, FEE_EXPENSE, REFUND_RECEIPT = (
    "paid_invoice",
    "sales_receipt",
    "fee_expense",
    "refund_receipt",
)
KIND_LABELS = {
    PAID_INVOICE: "paid invoice",
    SALES_RECEIPT: "sales receipt",
    FEE_EXPENSE: "fee expense",
    REFUND_RECEIPT: "refund receipt",
}
REF_NUMBER_MAX = 21

# What each of HubSpot's payment statuses means for the books (README, "Payment statuses"):
# the sale is booked (paid invoice, sales receipt) once the money is the company's: the charge succeeded and no
# dispute is open or lost; a later refund is booked by the refund receipt, not by undoing the sale.
SALE_STATUSES = frozenset({"succeeded", "partially_refunded", "refunded", "processing_refund", "disputed_won"})
# The processing fee was charged when the charge succeeded, and HubSpot keeps it through refunds and disputes.
FEE_STATUSES = SALE_STATUSES | {"disputed_lost", "disputed_action_required", "disputed_awaiting_decision"}
# A refund receipt books money that went back: a refund that completed (a chargeback is not a refund).
REFUNDED_STATUSES = frozenset({"refunded", "partially_refunded"})
WHY_NOT_SETTLED = {
    "processing": "is still processing",
    "failed": "failed",
    "disputed_lost": "was taken back by the customer's bank in a dispute the company lost",
    "disputed_action_required": "is disputed, and the dispute is still open",
    "disputed_awaiting_decision": "is disputed, and the dispute is still open",
}
WHY_NOT_REFUNDED = {
    "processing_refund": "has a refund that is still processing",
    "disputed_lost": "was taken back in a dispute, which is a chargeback, not a refund",
}


@dataclass(frozen=True)
class Payment:
    """A HubSpot commerce payment, in the terms the actions need."""

    id: str
    amount: Decimal
    currency: str
    status: str
    fee: Decimal
    refunded: Decimal
    method: str
    source_app: str
    paid_on: date

    @classmethod
    def from_record(cls, record: CrmObject) -> Payment:
        """Read a payment from its CRM properties."""

        def value(key: str) -> str:
            for name in PAYMENT_PROPERTIES[key]:
                found = record.properties.get(name)
                if found not in (None, ""):
                    return str(found).strip()
            return ""

        def amount_of(key: str) -> Decimal:
            raw = value(key)
            try:
                figure = strict_money(raw)
            except NotAnAmountError as problem:
                raise invalid_amount(f"HubSpot payment {record.id}", PAYMENT_PROPERTIES[key][0], raw, problem) from None
            if figure < 0:
                raise invalid_amount(f"HubSpot payment {record.id}", PAYMENT_PROPERTIES[key][0], raw, "is below zero")
            return figure

        status = value("status").lower()
        amount = amount_of("amount")
        refunded = amount_of("refunded")
        if status == "refunded" and not refunded:
            refunded = amount
        return cls(
            id=record.id,
            amount=cents(amount),
            currency=value("currency").upper(),
            status=status,
            fee=cents(amount_of("fee")),
            refunded=cents(refunded),
            method=value("method"),
            source_app=value("source_app").upper(),
            paid_on=_date(value("date")),
        )

    @property
    def reference(self) -> str:
        """Return the reference number written on QuickBooks documents."""
        return f"HS-{self.id}"[:REF_NUMBER_MAX]


def _date(value: str) -> date:
    """Parse HubSpot's date (ISO text or milliseconds since the epoch); today when absent."""
    if not value:
        return date.today()
    if value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC).date()
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return date.today()


def _yes(run: Run, name: str) -> bool:
    return str(run.inputs.get(name) or "no") == "yes"


# Input field -> the document field it fills.
REF_FIELDS = {"deposit_account": "DepositToAccountRef", "payment_method": "PaymentMethodRef"}


def _money_refs(run: Run, currency: dict[str, str] | None, *inputs: str) -> dict[str, Any]:
    """Return the currency and the account/method references the builder chose (none when left empty)."""
    refs: dict[str, Any] = {"CurrencyRef": currency} if currency else {}
    for name in inputs:
        value = run.choice(name)
        if value:
            refs[REF_FIELDS[name]] = ref(value)
    return refs


# Checks that protect the books --------------------------------------------------------------------


def check_status(payment: Payment, kind: str) -> None:
    """Book only what a payment's status says happened to the money (see SALE_STATUSES and its neighbours)."""
    status = payment.status or "without a status"
    if kind == REFUND_RECEIPT:
        if payment.status not in REFUNDED_STATUSES or not payment.refunded:
            why = WHY_NOT_REFUNDED.get(payment.status, f"is {status} and has not been refunded")
            raise ActionFailure(
                "PAYMENT_NOT_REFUNDED", f"HubSpot payment {payment.id} {why}, so no refund receipt was booked."
            )
        return
    booked = FEE_STATUSES if kind == FEE_EXPENSE else SALE_STATUSES
    if payment.status not in booked:
        why = WHY_NOT_SETTLED.get(payment.status, f"is {status}, not succeeded")
        raise ActionFailure(
            "PAYMENT_NOT_SETTLED",
            f"HubSpot payment {payment.id} {why}, so nothing was booked. Enroll payments once they have succeeded.",
        )


def check_not_from_invoice(run: Run, payment: Payment) -> None:
    """A payment collected through an invoice already has its invoice in the books."""
    if payment.source_app == "INVOICE" and not _yes(run, "allow_invoice_payments"):
        raise ActionFailure(
            "PAYMENT_FROM_INVOICE",
            f"HubSpot payment {payment.id} was collected through an invoice, which is already in QuickBooks; "
            "booking it again would count the sale twice. Filter these payments out of the workflow, or set "
            "'Book payments collected through invoices' to Yes.",
        )


def check_not_taxable(record: EnrolledRecord) -> None:
    """Paid invoices take only untaxed line items (as in HubSpot's own integration)."""
    taxable = [li for li in record.line_items if is_taxable(li)]
    if taxable:
        names = ", ".join(f"'{item_name(li)}' (line item {li.id})" for li in taxable)
        raise ActionFailure(
            "TAXABLE_LINE_ITEMS",
            f"Only untaxed line items can become a paid invoice, and {names} carry tax. Use the sales receipt "
            "action for this payment.",
            line_item_ids=[li.id for li in taxable],
        )


# One document per payment, kind and company -------------------------------------------------------


def claim(run: Run, payment: Payment, kind: str) -> dict[str, Any] | None:
    """Claim the payment's document of this kind; return the outputs of an existing one instead."""
    ledger, execution = run.ledger, run.execution
    for _ in range(3):
        holder = ledger.claim_payment_document(run.tenant, payment.id, kind, execution.id)
        if holder.execution_id == execution.id:
            # Every execution of this payment's document shares its requestids and note; payment ids repeat
            # across portals, so the portal is part of the scope.
            run.scope = f"payment-{execution.portal_id}-{payment.id}-{kind}"
            run.legacy_scope = f"payment-{payment.id}-{kind}"
            run.steps = ledger.steps(execution.id)
            return None
        if holder.holder_state == SUCCEEDED:
            outputs = without_state(holder.holder_outputs)
            return {
                **outputs,
                "duplicate_of": outputs.get("quickbooks_id", ""),
                "duplicate_of_execution": holder.execution_id,
            }
        if holder.holder_state in (None, FAILED):
            # The earlier execution gave up: carry on where it stopped, with what it already booked.
            ledger.take_over_payment_document(run.tenant, payment.id, kind, holder.execution_id, execution.id)
            continue
        raise DocumentBusyError(
            f"Execution {holder.execution_id} is booking the {KIND_LABELS[kind]} of HubSpot payment {payment.id}",
            service="internal",
        )
    raise DocumentBusyError(f"The {KIND_LABELS[kind]} of payment {payment.id} changed hands", service="internal")


# The actions --------------------------------------------------------------------------------------


def _load(run: Run, *, with_line_items: bool) -> tuple[EnrolledRecord, Payment]:
    execution = run.execution
    record = load_record(
        run.hubspot,
        execution.object_type,
        execution.object_id,
        record_properties=payment_properties(),
        with_line_items=with_line_items and not chosen_product(run),
    )
    return record, Payment.from_record(record.record)


def _paid_lines(run: Run, tax: TaxCodes, record: EnrolledRecord, amount: Decimal) -> tuple[list[dict[str, Any]], str]:
    """Return the lines for what was paid, adjusted to the payment's amount, and a note when they differ."""
    return adjusted_to(document_lines(run, tax, record), amount, tax)


def _prepare(run: Run, kind: str) -> tuple[EnrolledRecord, Payment, CompanyProfile, TaxCodes, dict[str, str] | None]:
    """Read the payment and run every check before anything is written."""
    record, payment = _load(run, with_line_items=kind != FEE_EXPENSE)
    check_status(payment, kind)
    if kind == REFUND_RECEIPT:
        if payment.refunded < payment.amount and run.inputs.get("partial_refunds") != "single_line":
            raise ActionFailure(
                "PARTIAL_REFUND",
                f"HubSpot payment {payment.id} was refunded {payment.refunded} of {payment.amount}. Set 'Partial "
                "refunds' to 'Book as one line' to record partial refunds.",
            )
    if kind in (PAID_INVOICE, SALES_RECEIPT):
        check_not_from_invoice(run, payment)
    profile = run.profile()
    currency = currency_ref(profile, payment.currency)
    tax = tax_codes(run, profile)
    if kind != FEE_EXPENSE:
        require_line_items(record, chosen_product(run))
        tax.code(False)
    if kind == PAID_INVOICE:
        check_not_taxable(record)
    return record, payment, profile, tax, currency


def _finish(run: Run, payment: Payment, kind: str, outputs: dict[str, Any]) -> dict[str, Any]:
    run.ledger.save_payment_document_outputs(run.tenant, payment.id, kind, outputs)
    return outputs


def create_paid_invoice(run: Run) -> dict[str, Any]:
    """Book an Invoice for the payment's line items and a Payment that pays it."""
    record, payment, profile, tax, currency = _prepare(run, PAID_INVOICE)
    existing = claim(run, payment, PAID_INVOICE)
    if existing is not None:
        return existing
    customer_id = customer_for(run, record.contact_id)
    lines, note = _paid_lines(run, tax, record, payment.amount)
    invoice_body: dict[str, Any] = {"Line": lines, **_money_refs(run, currency)}
    invoice = create_document(
        run, "Invoice", invoice_body, customer_id=customer_id, txn_date=payment.paid_on, profile=profile
    )
    payment_body: dict[str, Any] = {
        "TotalAmt": number(payment.amount),
        "PaymentRefNum": payment.reference,
        "Line": [{"Amount": number(payment.amount), "LinkedTxn": [{"TxnId": invoice["id"], "TxnType": "Invoice"}]}],
    }
    payment_body.update(_money_refs(run, currency, "deposit_account", "payment_method"))
    # A separate step: when the invoice exists and the payment failed, a retry books only the payment.
    paid = create_document(
        run, "Payment", payment_body, customer_id=customer_id, txn_date=payment.paid_on, profile=profile
    )
    outputs = {
        **output_fields(run, "Invoice", invoice, customer_id),
        "quickbooks_payment_id": paid["id"],
        "amount_paid": number(payment.amount),
        "amount_note": note,
    }
    return _finish(run, payment, PAID_INVOICE, outputs)


def create_payment_sales_receipt(run: Run) -> dict[str, Any]:
    """Book a SalesReceipt for the payment, deposited to the chosen account."""
    record, payment, profile, tax, currency = _prepare(run, SALES_RECEIPT)
    existing = claim(run, payment, SALES_RECEIPT)
    if existing is not None:
        return existing
    customer_id = customer_for(run, record.contact_id)
    lines, note = _paid_lines(run, tax, record, payment.amount)
    body: dict[str, Any] = {"Line": lines, "PaymentRefNum": payment.reference}
    body.update(_money_refs(run, currency, "deposit_account", "payment_method"))
    receipt = create_document(
        run, "SalesReceipt", body, customer_id=customer_id, txn_date=payment.paid_on, profile=profile
    )
    outputs = {
        **output_fields(run, "SalesReceipt", receipt, customer_id),
        "amount_paid": number(payment.amount),
        "amount_note": note,
    }
    return _finish(run, payment, SALES_RECEIPT, outputs)


def create_fee_expense(run: Run) -> dict[str, Any]:
    """Book a Purchase for the payment's processing fee; a payment without a fee books nothing."""
    _record, payment, profile, _tax, currency = _prepare(run, FEE_EXPENSE)
    if payment.fee <= 0:
        return {
            "quickbooks_document_type": "Purchase",
            "quickbooks_id": "",
            "fee_amount": 0,
            "amount_note": f"HubSpot payment {payment.id} has no processing fee; nothing was booked.",
            "quickbooks_realm_id": run.realm_id,
        }
    payment_account = run.required_choice("payment_account", "account the fee is paid from")
    expense_account = run.required_choice("expense_account", "expense account for the fee")
    existing = claim(run, payment, FEE_EXPENSE)
    if existing is not None:
        return existing
    accounts = run.qbo.query(select("Account", equals("Id", payment_account)))
    if not accounts:
        raise ActionFailure(
            "SETTINGS_INCOMPLETE",
            f"The account the fee is paid from ({payment_account}) does not exist in QuickBooks. Choose it again.",
        )
    body: dict[str, Any] = {
        "PaymentType": "CreditCard" if accounts[0].get("AccountType") == "Credit Card" else "Cash",
        "AccountRef": ref(payment_account),
        "Line": [
            {
                "DetailType": "AccountBasedExpenseLineDetail",
                "Amount": number(payment.fee),
                "Description": f"Processing fee of HubSpot payment {payment.id}",
                "AccountBasedExpenseLineDetail": {"AccountRef": ref(expense_account)},
            }
        ],
    }
    if payee := run.choice("payee"):
        body["EntityRef"] = {**ref(payee), "type": "Vendor"}
    if currency:
        body["CurrencyRef"] = currency
    expense = create_document(run, "Purchase", body, customer_id=None, txn_date=payment.paid_on, profile=profile)
    outputs = {
        "quickbooks_document_type": "Purchase",
        "quickbooks_id": expense["id"],
        "quickbooks_total": expense.get("total"),
        "quickbooks_url": document_url(run, "Expense", expense["id"]),
        "fee_amount": number(payment.fee),
        "amount_note": "",
        "quickbooks_realm_id": run.realm_id,
    }
    return _finish(run, payment, FEE_EXPENSE, outputs)


def create_refund_receipt(run: Run) -> dict[str, Any]:
    """Book a RefundReceipt mirroring the payment's lines (or one line for a partial refund, when allowed)."""
    record, payment, profile, tax, currency = _prepare(run, REFUND_RECEIPT)
    refund_account = run.required_choice("refund_account", "account the refund is paid from")
    existing = claim(run, payment, REFUND_RECEIPT)
    if existing is not None:
        return existing
    customer_id = customer_for(run, record.contact_id)
    note = ""
    if payment.refunded < payment.amount:
        lines = [_single_refund_line(run, tax, record, payment)]
        note = f"Partial refund of {payment.refunded} out of {payment.amount}, booked as one line."
    else:
        lines, note = _paid_lines(run, tax, record, payment.refunded)
    body: dict[str, Any] = {
        "Line": lines,
        "DepositToAccountRef": ref(refund_account),
        "PaymentRefNum": payment.reference,
    }
    body.update(_money_refs(run, currency, "payment_method"))
    refund = create_document(
        run, "RefundReceipt", body, customer_id=customer_id, txn_date=date.today(), profile=profile
    )
    outputs = {
        **output_fields(run, "RefundReceipt", refund, customer_id),
        "refunded_amount": number(payment.refunded),
        "amount_note": note,
    }
    return _finish(run, payment, REFUND_RECEIPT, outputs)


def _single_refund_line(run: Run, tax: TaxCodes, record: EnrolledRecord, payment: Payment) -> dict[str, Any]:
    """Return one line for the refunded amount, on the chosen product or the first line item's."""
    item_id = chosen_product(run)
    if not item_id:
        create_missing = run.inputs.get("create_missing_products") == "yes"
        first = record.line_items[:1]
        item_id = match_line_items(run, first, create_missing=create_missing)[first[0].id]
    return sales_line(
        ref(item_id),
        payment.refunded,
        tax_code=tax.code(False),
        description=f"Partial refund of HubSpot payment {payment.id}",
    )
