"""A batch's request and what each member's answer means."""

from __future__ import annotations

from services.books.batching import batch_request, read_answers, whole_batch_fault
from services.clock import utcnow
from services.store.records import BatchItem
from services.transport.errors import PermanentError


def item(bid: str, entity: str = "Invoice") -> BatchItem:
    return BatchItem(f"e-{bid}", f"document:{entity}", 1, "9130355", entity, {"Line": [bid]}, "b-1", bid, utcnow())


def test_each_member_is_a_create_under_its_bid() -> None:
    assert batch_request([item("1"), item("2", "SalesReceipt")]) == [
        {"bId": "1", "operation": "create", "Invoice": {"Line": ["1"]}},
        {"bId": "2", "operation": "create", "SalesReceipt": {"Line": ["2"]}},
    ]


def test_answers_split_into_documents_and_faults() -> None:
    fault = {"type": "ValidationFault", "Error": [{"code": "6000", "Message": "Bad"}]}
    answers = [
        {"bId": "1", "Invoice": {"Id": "130", "DocNumber": "1001", "TotalAmt": 10, "CurrencyRef": {"value": "USD"}}},
        {"bId": "2", "Fault": fault},
        {"bId": "3"},
    ]

    documents, faults = read_answers([item("1"), item("2"), item("3")], answers)

    assert documents == {"1": {"id": "130", "number": "1001", "total": 10, "currency": "USD", "due_date": None}}
    assert faults["2"] == {"Fault": fault}
    # Neither a document nor a fault is never taken for success.
    assert faults["3"]["Fault"]["type"] == "SystemFault"


def test_a_refused_batch_gives_each_member_its_fault() -> None:
    body = {"Fault": {"type": "ValidationFault", "Error": [{"code": "2020", "Message": "Required param missing"}]}}
    with_body = PermanentError("QuickBooks: Required param missing", service="quickbooks", code="2020", body=body)
    without = PermanentError("QuickBooks: Bad Request", service="quickbooks", code=None, body="<html>")

    assert whole_batch_fault(with_body) == body
    assert whole_batch_fault(without)["Fault"]["Error"][0]["Message"] == "QuickBooks: Bad Request"
