"""QuickBooks documents: currency, numbering, the note that ties them to HubSpot, creating each exactly once,
and the output fields that link them back to the record."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from services.books.company import CompanyProfile
from services.books.failures import ActionFailure
from services.books.lines import item_ids
from services.books.run import Run
from services.quickbooks import faults
from services.quickbooks.client import QuickBooksClient
from services.quickbooks.query import MAX_RESULTS, equals, quote, ref, select
from services.transport.errors import PermanentError

DOC_NUMBER_MAX = 21
# Documents QuickBooks numbers with DocNumber, which the company may set to number itself.
NUMBERED = ("Invoice", "Estimate", "SalesReceipt", "RefundReceipt")


def currency_ref(profile: CompanyProfile, currency: str | None) -> dict[str, str] | None:
    """Return the CurrencyRef to send, failing when QuickBooks cannot take the currency."""
    code = (currency or "").strip().upper()
    if not code or code == profile.home_currency.upper():
        return ref(profile.home_currency) if profile.multicurrency else None
    if not profile.multicurrency:
        raise ActionFailure(
            "CURRENCY_MISMATCH",
            f"The record is in {code} but the QuickBooks company's home currency is {profile.home_currency} "
            "and multicurrency is off in QuickBooks. Turn multicurrency on, or use a record in "
            f"{profile.home_currency}.",
        )
    return ref(code)


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
    return url_of(run.app_url, kind, document_id)


def url_of(app_url: str, kind: str, document_id: str) -> str:
    """Return the web address of a document in the QuickBooks app at ``app_url``."""
    return f"{app_url}/app/{kind.lower()}?txnId={document_id}"


def find_document(run: Run, kind: str, started: dict[str, Any]) -> dict[str, Any] | None:
    """Look for a document an earlier, interrupted run may have created."""
    return find_created(run.qbo, kind, started, run.markers(started))


def find_created(
    qbo: QuickBooksClient, kind: str, started: dict[str, Any], markers: Sequence[str]
) -> dict[str, Any] | None:
    """Look for the document of a started write: by its number, or by its customer, date and marker."""
    if started.get("doc_number"):
        found = qbo.query(select(kind, equals("DocNumber", started["doc_number"])))
    else:
        customer = f"CustomerRef = {quote(started['customer_id'])} AND " if started.get("customer_id") else ""
        found = qbo.query(select(kind, f"{customer}{equals('TxnDate', started['txn_date'])}", size=MAX_RESULTS))
        found = [doc for doc in found if any(f"({m})" in str(doc.get("PrivateNote") or "") for m in markers)]
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


def create_document(
    run: Run, kind: str, body: dict[str, Any], *, customer_id: str | None, txn_date: date, profile: CompanyProfile
) -> dict[str, Any]:
    """Create one document at most once across runs and return its summary."""
    body = {**body, "TxnDate": txn_date.isoformat(), "PrivateNote": private_note(run)}
    if customer_id is not None:
        body["CustomerRef"] = ref(customer_id)
    if not profile.is_us and "Line" in body:
        body["GlobalTaxCalculation"] = "TaxExcluded"
    context = {"customer_id": customer_id, "txn_date": txn_date.isoformat()}
    if profile.custom_txn_numbers and kind in NUMBERED:
        # The company numbers its documents itself: a fixed number makes a repeat fail with 6140.
        body["DocNumber"] = context["doc_number"] = doc_number(run, kind)

    def create(requestid: str) -> dict[str, Any]:
        return document_summary(run.qbo.create(kind, body, requestid=requestid))

    try:
        return run.write_once(
            f"document:{kind}",
            create,
            find_existing=lambda started: find_document(run, kind, started),
            context=context,
            batch=(kind, body),
        )
    except PermanentError as error:
        if error.code in faults.UNKNOWN_REFERENCE:
            # A remembered customer or item was deleted in QuickBooks: forget it, so a retry matches again.
            run.ledger.forget_mappings_to(
                run.realm_id, customer_id=customer_id, item_ids=item_ids(body.get("Line", []))
            )
        raise


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
