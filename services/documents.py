"""Building QuickBooks sales documents (invoice, estimate, sales receipt) from HubSpot records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from services.company import CompanyProfile
from services.customers import customer_for
from services.errors import ActionFailure, PermanentError
from services.hubspot import CrmObject
from services.matching import match_line_items
from services.quickbooks import quote
from services.records import OBJECT_FIELDS, EnrolledRecord, load_record, object_type_name
from services.run import Run

CENT = Decimal("0.01")
# QuickBooks' codes for a reference to something that does not exist (any more).
INVALID_REFERENCE = ("2500", "610")
DOC_NUMBER_MAX = 21


def money(value: Any, default: str = "0") -> Decimal:
    """Parse a HubSpot number (a string or null) as a Decimal."""
    try:
        text = str(value).strip() if value not in (None, "") else default
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return Decimal(default)


def cents(value: Decimal) -> Decimal:
    """Round to cents the way invoices do."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def number(value: Decimal) -> float | int:
    """Return a JSON number without float noise for whole values."""
    return int(value) if value == value.to_integral_value() else float(value)


def is_taxable(line_item: CrmObject) -> bool:
    """Treat a line as taxable when it carries a non-zero tax rate or tax amount."""
    props = line_item.properties
    return money(props.get("hs_tax_rate")) != 0 or money(props.get("hs_tax_amount")) != 0


def tax_code_for(run: Run, profile: CompanyProfile, taxable: bool) -> str:
    """Return the line tax code: TAX/NON in the US, the company's configured code elsewhere."""
    if profile.is_us:
        return "TAX" if taxable else "NON"
    default = str(run.settings.get("default_tax_code") or "")
    if not default:
        raise ActionFailure(
            "TAX_CODE_NOT_SET",
            f"QuickBooks company {run.realm_id} is outside the US ({profile.country}) and needs a tax code on "
            "every line, but none is set. Set default_tax_code (and exempt_tax_code for untaxed lines) in the "
            "company settings.",
        )
    return default if taxable else str(run.settings.get("exempt_tax_code") or default)


def sales_lines(
    run: Run, profile: CompanyProfile, line_items: Sequence[CrmObject], items: dict[str, str]
) -> list[dict[str, Any]]:
    """Build SalesItemLine lines, plus one discount line for the line items' discounts."""
    lines: list[dict[str, Any]] = []
    discount_total = Decimal(0)
    for line_item in line_items:
        props = line_item.properties
        quantity = money(props.get("quantity"), "1")
        unit_price = money(props.get("price"))
        gross = cents(quantity * unit_price)
        if money(props.get("discount")):
            discount_total += cents(money(props.get("discount")) * quantity)
        elif money(props.get("hs_discount_percentage")):
            discount_total += cents(gross * money(props.get("hs_discount_percentage")) / 100)
        line: dict[str, Any] = {
            "DetailType": "SalesItemLineDetail",
            "Amount": number(gross),
            "SalesItemLineDetail": {
                "ItemRef": {"value": items[line_item.id]},
                "Qty": number(quantity),
                "UnitPrice": number(unit_price),
                "TaxCodeRef": {"value": tax_code_for(run, profile, is_taxable(line_item))},
            },
        }
        description = str(props.get("description") or props.get("name") or "").strip()
        if description:
            line["Description"] = description[:4000]
        lines.append(line)
    if discount_total:
        lines.append(
            {
                "DetailType": "DiscountLineDetail",
                "Amount": number(discount_total),
                "Description": "Discounts from HubSpot line items",
                "DiscountLineDetail": {"PercentBased": False},
            }
        )
    return lines


def amount_line(run: Run, profile: CompanyProfile, record: EnrolledRecord, item_id: str) -> list[dict[str, Any]]:
    """Build the single line that bills the record's amount with the item chosen in the action."""
    raw_amount = record.field("amount")
    if raw_amount in (None, ""):
        raise ActionFailure(
            "AMOUNT_MISSING",
            f"HubSpot {record.object_type} {record.record.id} has no amount to bill with the chosen product.",
        )
    amount = cents(money(raw_amount))
    line: dict[str, Any] = {
        "DetailType": "SalesItemLineDetail",
        "Amount": number(amount),
        "SalesItemLineDetail": {
            "ItemRef": {"value": item_id},
            "Qty": 1,
            "UnitPrice": number(amount),
            "TaxCodeRef": {"value": tax_code_for(run, profile, False)},
        },
    }
    title = str(record.field("title") or "").strip()
    if title:
        line["Description"] = title[:4000]
    return [line]


def currency_ref(profile: CompanyProfile, currency: str | None) -> dict[str, str] | None:
    """Return the CurrencyRef to send, failing when QuickBooks cannot take the currency."""
    code = (currency or "").strip().upper()
    if not code or code == profile.home_currency.upper():
        return {"value": profile.home_currency} if profile.multicurrency else None
    if not profile.multicurrency:
        raise ActionFailure(
            "CURRENCY_MISMATCH",
            f"The record is in {code} but the QuickBooks company's home currency is {profile.home_currency} "
            "and multicurrency is off in QuickBooks. Turn multicurrency on, or use a record in "
            f"{profile.home_currency}.",
        )
    return {"value": code}


def doc_number(run: Run, kind: str) -> str:
    """Return a deterministic document number (used when the company numbers documents itself)."""
    key = uuid.uuid5(uuid.NAMESPACE_URL, f"{run.marker}|{kind}").hex
    return f"HS-{key[: DOC_NUMBER_MAX - 3]}"


def private_note(run: Run) -> str:
    """Return the note that ties a document to its HubSpot record and to this run's marker."""
    execution = run.execution
    return f"Created from HubSpot {execution.object_type} {execution.object_id} ({run.marker})"


def document_url(run: Run, kind: str, document_id: str) -> str:
    """Return the QuickBooks web address of a document."""
    return f"{run.services.config.quickbooks_app_url}/app/{kind.lower()}?txnId={document_id}"


def find_document(run: Run, kind: str, started: dict[str, Any]) -> dict[str, Any] | None:
    """Look for a document an earlier, interrupted run may have created."""
    if started.get("doc_number"):
        found = run.qbo.query(f"SELECT * FROM {kind} WHERE DocNumber = {quote(started['doc_number'])}")
    else:
        customer = f"CustomerRef = {quote(started['customer_id'])} AND " if started.get("customer_id") else ""
        found = run.qbo.query(
            f"SELECT * FROM {kind} WHERE {customer}TxnDate = {quote(started['txn_date'])} MAXRESULTS 1000"
        )
        found = [doc for doc in found if run.marker in str(doc.get("PrivateNote") or "")]
    return document_summary(found[0]) if found else None


def document_summary(document: dict[str, Any]) -> dict[str, Any]:
    """Return what the run remembers about a created document."""
    return {
        "id": str(document["Id"]),
        "number": document.get("DocNumber"),
        "total": document.get("TotalAmt"),
        "currency": (document.get("CurrencyRef") or {}).get("value"),
        "due_date": document.get("DueDate"),
    }


def record_properties(object_type: str) -> list[str]:
    """Return the record properties the sales actions read."""
    fields = OBJECT_FIELDS.get(object_type, {})
    return [prop for prop in fields.values()]


def require_line_items(record: EnrolledRecord, chosen_item: str) -> None:
    """Fail when there is nothing to put on the document's lines."""
    if not chosen_item and not record.line_items:
        raise ActionFailure(
            "NO_LINE_ITEMS",
            f"HubSpot {record.object_type} {record.record.id} has no line items. Add line items, or choose a "
            "QuickBooks product in the action to bill the record's amount.",
        )


def document_lines(run: Run, profile: CompanyProfile, record: EnrolledRecord) -> list[dict[str, Any]]:
    """Return the lines: one for the chosen product, or one per matched line item."""
    chosen_item = str(run.inputs.get("products") or "").strip()
    if chosen_item:
        return amount_line(run, profile, record, chosen_item)
    create_missing = run.inputs.get("create_missing_products") == "yes"
    items = match_line_items(run, record.line_items, create_missing=create_missing)
    return sales_lines(run, profile, record.line_items, items)


def lines_total(lines: Sequence[dict[str, Any]]) -> Decimal:
    """Return what the lines add up to before tax (sales lines less discounts)."""
    total = Decimal(0)
    for line in lines:
        amount = money(line.get("Amount"))
        total += -amount if line["DetailType"] == "DiscountLineDetail" else amount
    return cents(total)


def create_document(
    run: Run, kind: str, body: dict[str, Any], *, customer_id: str | None, txn_date: date, profile: CompanyProfile
) -> dict[str, Any]:
    """Create one document at most once across runs and return its summary."""
    body = {**body, "TxnDate": txn_date.isoformat(), "PrivateNote": private_note(run)}
    if customer_id is not None:
        body["CustomerRef"] = {"value": customer_id}
    if not profile.is_us and "Line" in body:
        body["GlobalTaxCalculation"] = "TaxExcluded"
    context = {"customer_id": customer_id, "txn_date": txn_date.isoformat()}
    if profile.custom_txn_numbers and kind in ("Invoice", "Estimate", "SalesReceipt", "RefundReceipt"):
        # The company numbers its documents itself: a fixed number makes a repeat fail with 6140.
        body["DocNumber"] = context["doc_number"] = doc_number(run, kind)

    def create(requestid: str) -> dict[str, Any]:
        try:
            return document_summary(run.qbo.create(kind, body, requestid=requestid))
        except PermanentError as error:
            if error.code in INVALID_REFERENCE:
                # A remembered customer or item was deleted in QuickBooks: forget it, so a retry matches again.
                item_ids = [
                    line["SalesItemLineDetail"]["ItemRef"]["value"]
                    for line in body.get("Line", [])
                    if "SalesItemLineDetail" in line
                ]
                run.services.store.forget_mappings_to(run.realm_id, customer_id=customer_id, item_ids=item_ids)
            raise

    return run.write_once(
        f"document:{kind}",
        create,
        find_existing=lambda started: find_document(run, kind, started),
        context=context,
    )


def create_sales_document(run: Run, kind: str) -> dict[str, Any]:
    """Create an Invoice, Estimate or SalesReceipt for the enrolled record and return the output fields."""
    execution, inputs = run.execution, run.inputs
    type_name = object_type_name(execution.object_type)
    chosen_item = str(inputs.get("products") or "").strip()
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
    tax_code_for(run, profile, taxable=False)
    customer_id = customer_for(run, record.contact_id)
    body: dict[str, Any] = {"Line": document_lines(run, profile, record)}
    if currency:
        body["CurrencyRef"] = currency
    txn_date = date.today()
    if kind == "Invoice" and inputs.get("payment_terms"):
        term_id = str(inputs["payment_terms"])
        if term_id not in profile.terms:
            profile = run.profile(refresh=True)
        if term_id not in profile.terms:
            raise ActionFailure(
                "PAYMENT_TERM_NOT_FOUND",
                f"Payment terms {term_id} do not exist in QuickBooks company {run.realm_id}. "
                "Choose the terms again in the action.",
            )
        body["SalesTermRef"] = {"value": term_id}
        body["DueDate"] = (txn_date + timedelta(days=profile.terms[term_id])).isoformat()
    if kind == "Estimate" and type_name == "quotes" and record.record.properties.get("hs_expiration_date"):
        body["ExpirationDate"] = str(record.record.properties["hs_expiration_date"])[:10]
    document = create_document(run, kind, body, customer_id=customer_id, txn_date=txn_date, profile=profile)
    return output_fields(run, kind, document, customer_id)


def output_fields(run: Run, kind: str, document: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """Return the output fields that link the new document to the record."""
    return {
        "quickbooks_document_type": kind,
        "quickbooks_id": document["id"],
        "quickbooks_number": document.get("number") or "",
        "quickbooks_total": document.get("total"),
        "quickbooks_currency": document.get("currency") or "",
        "quickbooks_url": document_url(run, kind, document["id"]),
        "quickbooks_customer_id": customer_id,
        "quickbooks_realm_id": run.realm_id,
    }
