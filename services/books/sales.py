"""Sales documents (invoice, estimate, sales receipt) from a deal or a quote, and the lines every action bills."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from services.books.company import CompanyProfile
from services.books.customers import customer_for
from services.books.documents import create_document, currency_ref, output_fields
from services.books.failures import ActionFailure, invalid_amount
from services.books.items import match_line_items
from services.books.lines import TaxCodes, check_line_items, line_item_lines, sales_line
from services.books.money import NotAnAmountError, cents, strict_money
from services.books.records import EnrolledRecord, load_record
from services.books.run import Run
from services.hubspot.objects import OBJECT_FIELDS, object_type_name
from services.quickbooks.query import ref


def tax_codes(run: Run, profile: CompanyProfile) -> TaxCodes:
    """Return the tax codes of this run's company."""
    return TaxCodes(profile, run.settings, run.realm_id)


def chosen_product(run: Run) -> str:
    """Return the QuickBooks product the builder chose to bill the record's amount with ('' for none)."""
    return str(run.inputs.get("products") or "").strip()


def record_properties(object_type: str) -> list[str]:
    """Return the record properties the sales actions read."""
    return list(OBJECT_FIELDS.get(object_type, {}).values())


def require_line_items(record: EnrolledRecord, chosen_item: str) -> None:
    """Fail when there is nothing QuickBooks can take to put on the document's lines, before anything is written."""
    if not chosen_item and not record.line_items:
        raise ActionFailure(
            "NO_LINE_ITEMS",
            f"HubSpot {record.object_type} {record.record.id} has no line items. Add line items, or choose a "
            "QuickBooks product in the action to bill the record's amount.",
        )
    if chosen_item:
        record_amount(record)
    else:
        check_line_items(record.line_items)


def record_amount(record: EnrolledRecord) -> Decimal:
    """Return the record's amount, failing with AMOUNT_MISSING or INVALID_AMOUNT when there is none to bill."""
    raw_amount = record.field("amount")
    if raw_amount in (None, ""):
        raise ActionFailure(
            "AMOUNT_MISSING",
            f"HubSpot {record.object_type} {record.record.id} has no amount to bill with the chosen product.",
        )
    what = f"HubSpot {record.object_type} {record.record.id}"
    try:
        amount = strict_money(raw_amount)
    except NotAnAmountError as problem:
        raise invalid_amount(what, "amount", raw_amount, problem) from None
    if amount < 0:
        raise invalid_amount(what, "amount", raw_amount, "is below zero")
    return cents(amount)


def amount_line(record: EnrolledRecord, item_id: str, tax: TaxCodes) -> dict[str, Any]:
    """Build the single line that bills the record's amount with the item chosen in the action."""
    return sales_line(
        ref(item_id),
        record_amount(record),
        tax_code=tax.code(False),
        description=str(record.field("title") or ""),
    )


def document_lines(run: Run, tax: TaxCodes, record: EnrolledRecord) -> list[dict[str, Any]]:
    """Return the lines: one for the chosen product, or one per matched line item."""
    chosen_item = chosen_product(run)
    if chosen_item:
        return [amount_line(record, chosen_item, tax)]
    create_missing = run.inputs.get("create_missing_products") == "yes"
    items = match_line_items(run, record.line_items, create_missing=create_missing)
    return line_item_lines(record.line_items, items, tax)


def create_sales_document(run: Run, kind: str) -> dict[str, Any]:
    """Create an Invoice, Estimate or SalesReceipt for the enrolled record and return the output fields."""
    execution = run.execution
    type_name = object_type_name(execution.object_type)
    chosen_item = chosen_product(run)
    record = load_record(
        run.hubspot,
        execution.object_type,
        execution.object_id,
        record_properties=record_properties(type_name),
        with_line_items=not chosen_item,
    )
    require_line_items(record, chosen_item)
    # Company-level checks come first, so a failure leaves nothing half-written in QuickBooks.
    profile = run.profile()
    currency = currency_ref(profile, record.field("currency"))
    tax = tax_codes(run, profile)
    tax.code(False)
    customer_id = customer_for(run, record.contact_id)
    body: dict[str, Any] = {"Line": document_lines(run, tax, record)}
    if currency:
        body["CurrencyRef"] = currency
    txn_date = date.today()
    if kind == "Invoice" and run.choice("payment_terms"):
        term_id = run.choice("payment_terms")
        if term_id not in profile.terms:
            profile = run.profile(refresh=True)
        if term_id not in profile.terms:
            raise ActionFailure(
                "PAYMENT_TERM_NOT_FOUND",
                f"Payment terms {term_id} do not exist in QuickBooks company {run.realm_id}. "
                "Choose the terms again in the action.",
            )
        body["SalesTermRef"] = ref(term_id)
        body["DueDate"] = (txn_date + timedelta(days=profile.terms[term_id])).isoformat()
    if kind == "Estimate" and type_name == "quotes" and record.record.properties.get("hs_expiration_date"):
        body["ExpirationDate"] = str(record.record.properties["hs_expiration_date"])[:10]
    document = create_document(run, kind, body, customer_id=customer_id, txn_date=txn_date, profile=profile)
    return output_fields(run, kind, document, customer_id)
