"""The rules of a document's later life: its state, its status, the record's properties and its payments."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.books import statuses
from services.books.statuses import DocumentState, Followed
from services.hubspot import properties as p

TODAY = date(2026, 12, 2)


def invoice(**fields: object) -> dict[str, object]:
    document: dict[str, object] = {
        "Id": "145",
        "SyncToken": "2",
        "DocNumber": "1042",
        "TotalAmt": 125.0,
        "Balance": 125.0,
        "DueDate": "2026-12-31",
        "TxnDate": "2026-12-01",
        "CurrencyRef": {"value": "USD"},
        "CustomerRef": {"value": "7", "name": "Acme Inc"},
        "BillEmail": {"Address": "ap@acme.test"},
        "EmailStatus": "NotSet",
        "MetaData": {"LastUpdatedTime": "2026-12-01T10:33:39-08:00"},
    }
    document.update(fields)
    return document


def state(**fields: object) -> DocumentState:
    return statuses.state_of("Invoice", invoice(**fields))


def test_an_invoice_state_reads_what_the_record_shows() -> None:
    read = state()
    assert (read.number, read.total, read.balance, read.due_date) == ("1042", "125.00", "125.00", "2026-12-31")
    assert (read.customer_name, read.customer_email, read.currency) == ("Acme Inc", "ap@acme.test", "USD")
    assert read.updated_at == datetime(2026, 12, 1, 18, 33, 39, tzinfo=UTC) and read.sync_token == 2


def test_statuses_follow_the_balance_the_due_date_and_what_happened() -> None:
    assert statuses.invoice_status(state(), TODAY) == p.AWAITING_PAYMENT
    assert statuses.invoice_status(state(Balance=50.0), TODAY) == p.PARTIALLY_PAID
    assert statuses.invoice_status(state(Balance=0), TODAY) == p.PAID
    assert statuses.invoice_status(state(DueDate="2026-12-01"), TODAY) == p.OVERDUE
    # Paid late is paid; an overdue invoice partly paid is still overdue.
    assert statuses.invoice_status(state(DueDate="2026-11-01", Balance=0), TODAY) == p.PAID
    assert statuses.invoice_status(state(DueDate="2026-11-01", Balance=10), TODAY) == p.OVERDUE
    voided = state(TotalAmt=0, Balance=0, PrivateNote="Voided")
    assert voided.voided and statuses.invoice_status(voided, TODAY) == p.VOIDED
    gone = statuses.state_of("Invoice", {"Id": "145", "status": "Deleted", "MetaData": {}})
    assert gone.deleted and statuses.invoice_status(gone, TODAY) == p.DELETED


def test_a_zero_invoice_that_was_not_voided_is_paid() -> None:
    assert statuses.invoice_status(state(TotalAmt=0, Balance=0, PrivateNote="Created from HubSpot"), TODAY) == p.PAID


def test_estimate_statuses() -> None:
    def estimate(**fields: object) -> DocumentState:
        return statuses.state_of("Estimate", {"Id": "9", "TxnStatus": "Pending", **fields})

    assert statuses.estimate_status(estimate()) == p.ESTIMATE_PENDING
    assert statuses.estimate_status(estimate(TxnStatus="Accepted")) == p.ESTIMATE_ACCEPTED
    assert statuses.estimate_status(estimate(TxnStatus="Rejected")) == p.ESTIMATE_REJECTED
    converted = estimate(TxnStatus="Closed", LinkedTxn=[{"TxnId": "145", "TxnType": "Invoice"}])
    assert statuses.estimate_status(converted) == p.ESTIMATE_CONVERTED


def test_a_newer_state_replaces_an_older_one_and_nothing_replaces_a_deletion() -> None:
    old, new = state(SyncToken="1"), state(SyncToken="2")
    later = state(MetaData={"LastUpdatedTime": "2026-12-01T19:00:00Z"}, SyncToken="0")
    assert statuses.is_newer(new, old) and not statuses.is_newer(old, new) and not statuses.is_newer(new, new)
    assert statuses.is_newer(later, new)
    gone = statuses.deleted_state("Invoice", "145", datetime(2026, 1, 1, tzinfo=UTC))
    assert statuses.is_newer(gone, later) and not statuses.is_newer(later, gone)


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=12))
def test_applying_states_in_any_order_keeps_the_newest(versions: list[tuple[int, int]]) -> None:
    states = [
        state(MetaData={"LastUpdatedTime": f"2026-12-01T10:00:0{second}Z"}, SyncToken=str(token))
        for second, token in versions
    ]
    kept: DocumentState | None = None
    for candidate in states:
        if statuses.is_newer(candidate, kept):
            kept = candidate
    assert kept is not None
    assert (kept.updated_at, kept.sync_token) == max((s.updated_at, s.sync_token) for s in states)


def test_a_state_survives_storage() -> None:
    original = state(LinkedTxn=[{"TxnId": "77", "TxnType": "Payment"}])
    assert original.payment_ids == ("77",)
    assert DocumentState.from_json(original.to_json()) == original


def test_the_record_shows_the_most_recently_updated_invoice() -> None:
    older = Followed(state(Id="1", DocNumber="1001"), "https://qbo/app/invoice?txnId=1")
    newer = Followed(
        state(Id="2", DocNumber="1002", Balance=25.0, MetaData={"LastUpdatedTime": "2026-12-02T09:00:00Z"}),
        "https://qbo/app/invoice?txnId=2",
        last_payment_date="2026-12-02",
    )
    values = statuses.record_properties([newer, older], TODAY)
    assert values[p.INVOICE_NUMBER.name] == "1002" and values[p.INVOICE_STATUS.name] == "partially_paid"
    assert values[p.INVOICE_BALANCE.name] == "25.00" and values[p.INVOICE_AMOUNT_PAID.name] == "100.00"
    assert values[p.INVOICE_LAST_PAYMENT_DATE.name] == "2026-12-02"
    assert values[p.INVOICE_LINK.name].endswith("txnId=2")
    assert values[p.INVOICE_RECIPIENT_EMAIL.name] == "ap@acme.test"
    assert values[p.INVOICE_EMAIL_STATUS.name] == "not_sent"


def test_every_property_value_is_one_hubspot_accepts() -> None:
    documents = [
        Followed(state(), "l1"),
        Followed(statuses.state_of("Estimate", {"Id": "3", "TxnStatus": "Accepted", "TotalAmt": 5}), "l2"),
        Followed(statuses.state_of("SalesReceipt", {"Id": "4", "DocNumber": "S1", "TotalAmt": 5}), "l3"),
        Followed(statuses.state_of("RefundReceipt", {"Id": "5", "DocNumber": "R1", "TotalAmt": 5}), "l4"),
    ]
    values = statuses.record_properties(documents, TODAY)
    specs = {spec.name: spec for spec in p.PROPERTIES}
    assert set(values) == set(specs)
    for name, value in values.items():
        spec = specs[name]
        if spec.options:
            assert value in {o.value for o in spec.options}, name
        if spec.type == "number" and value:
            float(value)
        if spec.type == "date" and value:
            date.fromisoformat(value)


def test_a_deleted_invoice_says_deleted_without_amounts() -> None:
    gone = statuses.deleted_state("Invoice", "145", datetime(2026, 12, 2, tzinfo=UTC))
    values = statuses.record_properties([Followed(gone, "link")], TODAY)
    assert values == {p.INVOICE_NUMBER.name: "", p.INVOICE_STATUS.name: "deleted", p.INVOICE_LINK.name: "link"}


def test_payments_name_the_invoices_they_pay() -> None:
    payment = {
        "Id": "77",
        "TxnDate": "2026-12-02",
        "TotalAmt": 80,
        "CurrencyRef": {"value": "USD"},
        "Line": [
            {"Amount": 50, "LinkedTxn": [{"TxnId": "145", "TxnType": "Invoice"}]},
            {"Amount": 30, "LinkedTxn": [{"TxnId": "146", "TxnType": "Invoice"}]},
            {"Amount": 5, "LinkedTxn": [{"TxnId": "9", "TxnType": "CreditMemo"}]},
        ],
    }
    applied = statuses.payments_applied(payment)
    assert [(a.invoice_id, a.amount, a.paid_on) for a in applied] == [
        ("145", "50.00", "2026-12-02"),
        ("146", "30.00", "2026-12-02"),
    ]
    assert statuses.payments_applied({"Id": "77", "status": "Deleted"}) == []
    event_id = statuses.payment_event_id("9130355", applied[0])
    assert event_id == statuses.payment_event_id("9130355", statuses.payments_applied(payment)[0])
    note = statuses.payment_note(applied[0], state(Balance=75.0), "https://qbo/app/invoice?txnId=145")
    assert "50.00 USD" in note and "1042" in note and "75.00" in note


def test_what_an_action_created_shows_at_once_until_quickbooks_tells_more() -> None:
    created = statuses.created_state(
        {
            "quickbooks_document_type": "Invoice",
            "quickbooks_id": "145",
            "quickbooks_number": "1042",
            "quickbooks_total": 125,
        },
        statuses.EPOCH,
    )
    assert created is not None and created.balance == "125.00"
    assert statuses.invoice_status(created, TODAY) == p.AWAITING_PAYMENT
    assert statuses.is_newer(state(SyncToken="0"), created)
    paid = statuses.created_state(
        {
            "quickbooks_document_type": "Invoice",
            "quickbooks_id": "1",
            "quickbooks_total": 5,
            "quickbooks_payment_id": "8",
        },
        statuses.EPOCH,
    )
    assert paid is not None and statuses.invoice_status(paid, TODAY) == p.PAID
    assert (
        statuses.created_state({"quickbooks_document_type": "Purchase", "quickbooks_id": "3"}, statuses.EPOCH) is None
    )
