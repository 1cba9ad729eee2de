"""Creating a QuickBooks document: currency, numbering, the note, and forgetting stale mappings."""

from __future__ import annotations

from datetime import date

import pytest

from services.books.company import CompanyProfile
from services.books.documents import create_document, currency_ref, doc_number, document_url, private_note
from services.books.failures import ActionFailure
from services.transport.errors import PermanentError
from tests.fakes import FakeLedger, FakeQuickBooks
from tests.unit.books.conftest import TENANT, MakeRun

US = CompanyProfile("US", "USD", False, False, {})
NUMBERING = CompanyProfile("US", "USD", False, True, {})
UK = CompanyProfile("GB", "GBP", True, False, {})


def test_the_home_currency_is_sent_only_when_multicurrency_is_on() -> None:
    assert currency_ref(US, "usd") is None and currency_ref(US, None) is None
    assert currency_ref(UK, "") == {"value": "GBP"} and currency_ref(UK, "eur") == {"value": "EUR"}


def test_a_foreign_currency_without_multicurrency_fails_with_a_reason() -> None:
    with pytest.raises(ActionFailure) as failure:
        currency_ref(US, "EUR")
    assert failure.value.reason == "CURRENCY_MISMATCH" and "EUR" in failure.value.message


def test_document_numbers_are_deterministic_per_run_and_kind_and_fit_quickbooks(make_run: MakeRun) -> None:
    number = doc_number(make_run(), "Invoice")
    assert number == doc_number(make_run(), "Invoice") != doc_number(make_run(), "Estimate")
    assert number.startswith("HS-") and len(number) <= 21


def test_a_document_carries_its_record_and_marker_and_links_to_quickbooks(
    make_run: MakeRun, qbo: FakeQuickBooks
) -> None:
    run = make_run()
    summary = create_document(run, "Invoice", {"Line": []}, customer_id="58", txn_date=date(2026, 12, 1), profile=US)

    [(entity, body, _requestid)] = qbo.created
    assert entity == "Invoice" and body["CustomerRef"] == {"value": "58"} and body["TxnDate"] == "2026-12-01"
    assert body["PrivateNote"] == private_note(run) == "Created from HubSpot DEAL 614 (e-1)"
    assert "DocNumber" not in body and "GlobalTaxCalculation" not in body
    assert (
        document_url(run, "Invoice", summary["id"])
        == f"https://app.sandbox.qbo.intuit.com/app/invoice?txnId={summary['id']}"
    )


def test_a_company_that_numbers_its_documents_gets_a_fixed_number(
    make_run: MakeRun, qbo: FakeQuickBooks, ledger: FakeLedger
) -> None:
    run = make_run()
    create_document(run, "Invoice", {"Line": []}, customer_id="58", txn_date=date(2026, 12, 1), profile=NUMBERING)
    assert qbo.created[0][1]["DocNumber"] == doc_number(run, "Invoice")
    # The number is also kept with the step, so an interrupted run can look the document up by it.
    assert ledger.steps("e-1")["document:Invoice"].status == "done"
    started = [e for e in ledger.saved if e == ("step", "document:Invoice", "started")]
    assert started


def test_a_reference_quickbooks_no_longer_knows_makes_the_mappings_to_it_forgotten(
    make_run: MakeRun, qbo: FakeQuickBooks, ledger: FakeLedger
) -> None:
    ledger.customers[(TENANT, "51")] = "58"
    ledger.products[(TENANT, "p-1")] = "21"
    ledger.products[(TENANT, "p-2")] = "22"
    qbo.refuse["Invoice"] = "2500"
    line = {"DetailType": "SalesItemLineDetail", "Amount": 10, "SalesItemLineDetail": {"ItemRef": {"value": "21"}}}

    with pytest.raises(PermanentError):
        create_document(
            make_run(), "Invoice", {"Line": [line]}, customer_id="58", txn_date=date(2026, 12, 1), profile=US
        )

    assert ledger.customers == {} and ledger.products == {(TENANT, "p-2"): "22"}


def test_outside_the_us_lines_are_sent_tax_excluded(make_run: MakeRun, qbo: FakeQuickBooks) -> None:
    create_document(make_run(), "SalesReceipt", {"Line": []}, customer_id="58", txn_date=date(2026, 12, 1), profile=UK)
    assert qbo.created[0][1]["GlobalTaxCalculation"] == "TaxExcluded"
