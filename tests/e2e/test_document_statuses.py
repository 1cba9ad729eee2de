"""The document's later life on the HubSpot record, over HTTP: QuickBooks' simulator notifies our webhook endpoint,
the jobs read the changes and send the record's properties and payments to HubSpot's simulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import text

from actions.cli import cli
from services.bootstrap import Services
from services.clock import utcnow
from services.hubspot.properties import payment_event_template
from services.work import statuses
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal, seed_payment
from tests.builders import invoice_by_hand, sales_inputs
from tests.conftest import WEBHOOK_TOKEN, Perform, connect_standard

REALM_2 = "9130356"
DEVELOPER_KEY = "sim-developer-key"


@pytest.fixture
def deliver(server: str, sims: Simulators, run_jobs: Callable[..., None]) -> Callable[..., dict[str, Any]]:
    """Point the QuickBooks simulator's webhooks at our server; deliver what is queued and run the jobs."""
    sims.quickbooks_webhooks(f"{server}/webhooks/quickbooks", WEBHOOK_TOKEN, auto=False)

    def send(**options: Any) -> dict[str, Any]:
        answer = sims.deliver_webhooks(**options)
        assert all(d["status"] == 200 for d in answer["deliveries"]), answer
        run_jobs()
        return answer

    return send


def booked_invoice(perform: Perform, sims: Simulators, **inputs: Any) -> tuple[str, dict[str, Any]]:
    """Run the invoice action for a new deal; return the deal and the invoice."""
    deal = seed_deal(sims)["deal"]
    execution = perform(deal, inputs=sales_inputs(**{"create_missing_products": "yes", **inputs}))
    assert execution.state == "succeeded", execution.failure_message
    invoice = sims.qbo_api(
        "GET",
        f"invoice/{execution.output_fields['quickbooks_id']}",  # type: ignore[index]
        realm_id=inputs.get("quickbooks_account", REALM_ID),
    )["Invoice"]
    return deal, invoice


def pay(sims: Simulators, invoice: dict[str, Any], amount: float, realm_id: str = REALM_ID) -> dict[str, Any]:
    """Record a customer's payment of an invoice in QuickBooks, as a bookkeeper would."""
    body = {
        "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
        "TotalAmt": amount,
        "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
    }
    return sims.qbo_api("POST", "payment", json=body, realm_id=realm_id)["Payment"]  # type: ignore[no-any-return]


def record(sims: Simulators, deal: str) -> dict[str, Any]:
    return sims.hubspot_record("deals", deal)


def test_an_invoice_paid_in_two_payments_goes_partially_paid_then_paid(
    perform: Perform, sims: Simulators, settings: Any, deliver: Callable[..., dict[str, Any]]
) -> None:
    deal, invoice = booked_invoice(perform, sims)
    # What the action knew shows at once (the properties are set up on the way, the portal predating them).
    shown = record(sims, deal)
    assert shown["qbo_invoice_status"] == "awaiting_payment" and shown["qbo_invoice_number"] == invoice["DocNumber"]
    deliver()
    shown = record(sims, deal)
    assert shown["qbo_invoice_recipient_name"] == "Ann O'Brien" and shown["qbo_invoice_total"] == "399.50"

    pay(sims, invoice, 100)
    deliver()
    shown = record(sims, deal)
    assert shown["qbo_invoice_status"] == "partially_paid"
    assert float(shown["qbo_invoice_balance"]) == 299.5 and float(shown["qbo_invoice_amount_paid"]) == 100
    assert shown["qbo_invoice_last_payment_date"] == utcnow().date().isoformat()

    pay(sims, invoice, 299.5)
    deliver()
    shown = record(sims, deal)
    assert shown["qbo_invoice_status"] == "paid" and float(shown["qbo_invoice_balance"]) == 0
    assert sims.property_history("deals", deal, "qbo_invoice_status") == ["awaiting_payment", "partially_paid", "paid"]
    notes = [n["hs_note_body"] for n in sims.notes_of("deals", deal)]
    assert len(notes) == 2 and "100.00" in notes[0] and "299.50" in notes[1]


def test_payments_go_on_the_timeline_once_each_with_a_template(
    perform: Perform, sims: Simulators, settings: Any, services: Services, deliver: Callable[..., dict[str, Any]]
) -> None:
    sims.hubspot_settings(developer_api_key=DEVELOPER_KEY)
    template = sims.http.post(
        f"{sims.hubspot_url}/crm/v3/timeline/1234/event-templates",
        params={"hapikey": DEVELOPER_KEY},
        json=payment_event_template("deals"),
        timeout=10,
    )
    assert template.status_code == 201, template.text
    services.config = services.config.with_overrides(hubspot_timeline_templates={"deals": template.json()["id"]})
    deal, invoice = booked_invoice(perform, sims)
    pay(sims, invoice, 150)
    deliver()
    # The same payment told again (CDC) posts nothing new.
    statuses.read_changes(services, REALM_ID)
    statuses.push_statuses(services, PORTAL_ID)
    events = sims.timeline_events("deals", deal)
    assert len(events) == 1 and events[0]["tokens"]["amount"] == "150.00"
    assert events[0]["tokens"]["invoice_number"] == invoice["DocNumber"]
    assert sims.notes_of("deals", deal) == []


def test_a_voided_and_a_deleted_invoice(
    perform: Perform, sims: Simulators, settings: Any, deliver: Callable[..., dict[str, Any]]
) -> None:
    voided_deal, voided = booked_invoice(perform, sims)
    deleted_deal, deleted = booked_invoice(perform, sims)
    sims.qbo_api(
        "POST", "invoice", params={"operation": "void"}, json={"Id": voided["Id"], "SyncToken": voided["SyncToken"]}
    )
    sims.qbo_api(
        "POST", "invoice", params={"operation": "delete"}, json={"Id": deleted["Id"], "SyncToken": deleted["SyncToken"]}
    )
    deliver()
    assert record(sims, voided_deal)["qbo_invoice_status"] == "voided"
    gone = record(sims, deleted_deal)
    assert gone["qbo_invoice_status"] == "deleted" and gone["qbo_invoice_number"] == deleted["DocNumber"]


def test_an_estimate_accepted_shows_accepted(
    perform: Perform, sims: Simulators, settings: Any, deliver: Callable[..., dict[str, Any]]
) -> None:
    deal = seed_deal(sims)["deal"]
    execution = perform(deal, action="create_estimate", inputs=sales_inputs(create_missing_products="yes"))
    assert execution.state == "succeeded"
    assert record(sims, deal)["qbo_estimate_status"] == "pending"
    estimate = sims.qbo_api("GET", f"estimate/{execution.output_fields['quickbooks_id']}")["Estimate"]  # type: ignore[index]
    sims.qbo_api(
        "POST",
        "estimate",
        json={"Id": estimate["Id"], "SyncToken": estimate["SyncToken"], "sparse": True, "TxnStatus": "Accepted"},
    )
    deliver()
    assert record(sims, deal)["qbo_estimate_status"] == "accepted"


def signed(body: bytes, token: str = WEBHOOK_TOKEN) -> dict[str, str]:
    digest = hmac.new(token.encode(), body, hashlib.sha256).digest()
    return {"intuit-signature": base64.b64encode(digest).decode(), "Content-Type": "application/json"}


def event(
    entity_id: str, *, event_id: str = "e-1", realm_id: str = REALM_ID, kind: str = "invoice.updated"
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "type": f"qbo.{kind}.v1",
        "time": "2026-12-02T10:00:00.123456789Z",
        "intuitentityid": entity_id,
        "intuitaccountid": realm_id,
        "data": {},
    }


def notify(server: str, events: list[dict[str, Any]]) -> requests.Response:
    """Deliver CloudEvents to our endpoint as Intuit would, signed."""
    body = json.dumps(events).encode()
    return requests.post(f"{server}/webhooks/quickbooks", data=body, headers=signed(body), timeout=10)


def test_a_bad_signature_is_refused_and_changes_nothing(server: str, services: Services) -> None:
    body = json.dumps([event("145")]).encode()
    for headers in ({"intuit-signature": "bm9wZQ=="}, {}, signed(body, "another-token")):
        answer = requests.post(f"{server}/webhooks/quickbooks", data=body, headers=headers, timeout=10)
        assert answer.status_code == 401 and "signature" in answer.json()["message"]
    assert services.database.count("quickbooks_events") == 0
    garbage = b"not json"
    answer = requests.post(f"{server}/webhooks/quickbooks", data=garbage, headers=signed(garbage), timeout=10)
    assert answer.status_code == 400 and services.database.count("quickbooks_events") == 0


def test_the_same_event_twice_is_applied_once(
    server: str, perform: Perform, sims: Simulators, settings: Any, services: Services, run_jobs: Callable[..., None]
) -> None:
    deal, invoice = booked_invoice(perform, sims)
    pay(sims, invoice, 50)
    started = time.monotonic()
    for _ in range(2):
        assert notify(server, [event(invoice["Id"], event_id="same-event")]).status_code == 200
    assert time.monotonic() - started < 2  # answered at once, the work queued
    assert services.database.count("quickbooks_events") == 1
    run_jobs()
    assert record(sims, deal)["qbo_invoice_status"] == "partially_paid"
    assert len(sims.notes_of("deals", deal)) == 1


def test_events_out_of_order_leave_the_newest_state(
    perform: Perform, sims: Simulators, settings: Any, services: Services, deliver: Callable[..., dict[str, Any]]
) -> None:
    deal, invoice = booked_invoice(perform, sims)
    pay(sims, invoice, 99.5)
    older = sims.qbo_api("GET", f"invoice/{invoice['Id']}")["Invoice"]
    pay(sims, invoice, 300)
    deliver(order="reversed", split=True)
    assert record(sims, deal)["qbo_invoice_status"] == "paid"
    # A job that read the invoice before the last payment and applies it late changes nothing.
    connection = services.connections.quickbooks(PORTAL_ID, REALM_ID)
    assert connection is not None
    assert statuses.Changes(services, REALM_ID, services.quickbooks(connection)).apply({"Invoice": [older]}, []) == 0
    statuses.push_statuses(services, PORTAL_ID)
    assert record(sims, deal)["qbo_invoice_status"] == "paid"


def test_a_dropped_notification_is_repaired_by_change_data_capture(
    perform: Perform,
    sims: Simulators,
    settings: Any,
    services: Services,
    deliver: Callable[..., dict[str, Any]],
    run_jobs: Callable[..., None],
) -> None:
    deal, invoice = booked_invoice(perform, sims)
    deliver()
    pay(sims, invoice, 399.5)
    queued = sims.queued_webhooks()
    deliver(drop=list(range(len(queued))))
    assert record(sims, deal)["qbo_invoice_status"] == "awaiting_payment"
    # The sweeper asks for a change capture of every company with followed documents, once per CDC_INTERVAL.
    statuses.request_due_work(services)
    run_jobs()
    assert record(sims, deal)["qbo_invoice_status"] == "paid"
    assert len(sims.notes_of("deals", deal)) == 1
    cdc = [r for r in sims.qbo_requests() if r["path"].endswith("/cdc")]
    assert len(cdc) == 1
    # Within the interval the sweeper asks for none.
    statuses.request_due_work(services)
    run_jobs()
    assert len([r for r in sims.qbo_requests() if r["path"].endswith("/cdc")]) == 1


def test_events_of_two_companies_in_one_delivery(
    perform: Perform, sims: Simulators, settings: Any, services: Services, deliver: Callable[..., dict[str, Any]]
) -> None:
    sims.add_company(REALM_2)
    connect_standard(services, realm_id=REALM_2)
    services.companies.save_settings(
        REALM_2, {"contact_sync": {"mode": "legacy"}, "default_income_account": sims.account_id("Services", REALM_2)}
    )
    first_deal, first = booked_invoice(perform, sims)
    second_deal, second = booked_invoice(perform, sims, quickbooks_account=REALM_2)
    pay(sims, first, 399.5)
    pay(sims, second, 100, realm_id=REALM_2)
    answer = deliver()
    assert len(answer["deliveries"]) == 1
    assert record(sims, first_deal)["qbo_invoice_status"] == "paid"
    assert record(sims, second_deal)["qbo_invoice_status"] == "partially_paid"


def test_an_unpaid_invoice_is_marked_overdue_by_the_daily_check(
    perform: Perform,
    sims: Simulators,
    settings: Any,
    services: Services,
    run_jobs: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deal, invoice = booked_invoice(perform, sims, payment_terms="3")
    statuses.read_changes(services, REALM_ID)
    run_jobs()
    assert record(sims, deal)["qbo_invoice_status"] == "awaiting_payment"
    due = invoice["DueDate"]
    later = utcnow() + timedelta(days=60)
    monkeypatch.setattr(statuses, "utcnow", lambda: later)
    assert statuses.check_daily(services) == 1
    assert statuses.check_daily(services) == 0  # once a day
    run_jobs()
    shown = record(sims, deal)
    assert shown["qbo_invoice_status"] == "overdue" and shown["qbo_invoice_due_date"] == due


def test_an_invoice_made_by_hand_is_linked_and_followed(
    env: dict[str, str], services: Services, sims: Simulators, server: str, deliver: Callable[..., dict[str, Any]]
) -> None:
    deal = seed_deal(sims)["deal"]
    invoice = invoice_by_hand(sims, 80, customer="Walk-in", number="1042")
    pay(sims, invoice, 30)
    sims.deliver_webhooks()  # nothing follows it yet: these change nothing
    runner = CliRunner(env=env)
    args = ["documents", "link", "--portal-id", str(PORTAL_ID), "--object-type", "DEAL", "--object-id", deal]
    result = runner.invoke(cli, [*args, "--realm-id", REALM_ID, "--invoice-number", "1042"])
    assert result.exit_code == 0, result.output
    assert f"now shows on deals {deal}" in result.output
    missing = runner.invoke(cli, [*args, "--realm-id", REALM_ID, "--invoice-number", "9999"])
    assert missing.exit_code != 0 and "no invoice number 9999" in missing.output
    statuses.push_statuses(services, PORTAL_ID)
    shown = record(sims, deal)
    assert shown["qbo_invoice_number"] == "1042" and shown["qbo_invoice_status"] == "partially_paid"
    assert len(sims.notes_of("deals", deal)) == 1  # the payment made before the link
    pay(sims, invoice, 50)
    deliver()
    assert record(sims, deal)["qbo_invoice_status"] == "paid"


def test_setting_up_the_properties_twice_creates_them_once(
    env: dict[str, str], services: Services, sims: Simulators
) -> None:
    runner = CliRunner(env=env)
    first = runner.invoke(cli, ["hubspot", "setup", "--portal-id", str(PORTAL_ID)])
    assert first.exit_code == 0, first.output
    assert "deals: 21 created, 0 updated" in first.output
    created = sims.hubspot_properties("deals")
    assert [g["name"] for g in created["groups"]] == ["quickbooks"]
    names = {p["name"] for p in created["properties"]}
    assert {"qbo_invoice_status", "qbo_invoice_balance", "qbo_estimate_status", "qbo_refund_receipt_link"} <= names
    second = runner.invoke(cli, ["hubspot", "setup", "--portal-id", str(PORTAL_ID)])
    assert "deals: 0 created, 0 updated" in second.output


def test_a_paid_invoice_and_a_refund_receipt_show_on_the_payment(
    perform: Perform, sims: Simulators, settings: Any, deliver: Callable[..., dict[str, Any]]
) -> None:
    payment = seed_payment(sims)["payment"]
    inputs = {"quickbooks_account": REALM_ID, "create_missing_products": "yes"}
    paid = perform(payment, action="create_paid_invoice", object_type="0-101", inputs=inputs)
    assert paid.state == "succeeded", paid.failure_message
    shown = sims.hubspot_record("commerce_payments", payment)
    assert shown["qbo_invoice_status"] == "paid" and shown["qbo_invoice_balance"] == "0.00"
    deliver()
    shown = sims.hubspot_record("commerce_payments", payment)
    assert shown["qbo_invoice_status"] == "paid" and shown["qbo_invoice_recipient_name"] == "Ann O'Brien"
    # The payment the action booked is on the payment's timeline too.
    assert len(sims.notes_of("commerce_payments", payment)) == 1

    refunded = seed_payment(sims, payment={"hs_latest_status": "refunded", "hs_refunds_amount": "399.5"})["payment"]
    refund = perform(
        refunded,
        action="create_refund_receipt",
        object_type="0-101",
        inputs={**inputs, "refund_account": sims.account_id("Checking")},
    )
    assert refund.state == "succeeded", refund.failure_message
    shown = sims.hubspot_record("commerce_payments", refunded)
    assert shown["qbo_refund_receipt_total"] == "399.50" and shown["qbo_refund_receipt_link"].endswith(
        f"txnId={refund.output_fields['quickbooks_id']}"  # type: ignore[index]
    )


def test_notifications_go_one_round_a_job_and_a_busy_company_holds_no_worker(
    server: str,
    perform: Perform,
    sims: Simulators,
    settings: Any,
    services: Services,
    run_jobs: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deals_and_invoices = [booked_invoice(perform, sims) for _ in range(3)]
    events = [event(invoice["Id"], event_id=f"round-{n}") for n, (_, invoice) in enumerate(deals_and_invoices)]
    assert notify(server, events).status_code == 200

    # Another job holds the company: this one leaves at once, its notices kept for the holder.
    started = time.monotonic()
    with services.lock(f"statuses:{REALM_ID}", timeout=30):
        assert statuses.apply_notices(services, REALM_ID) == "busy"
    assert time.monotonic() - started < 1
    assert len(services.followed.pending_notices(REALM_ID, 10)) == 3

    # Two notices a round: the first job applies two and queues the next round, which applies the last.
    monkeypatch.setattr(statuses, "NOTICES_PER_ROUND", 2)
    assert statuses.apply_notices(services, REALM_ID).startswith("2 notifications")
    assert len(services.followed.pending_notices(REALM_ID, 10)) == 1
    run_jobs()
    assert services.followed.pending_notices(REALM_ID, 10) == []
    for deal, _ in deals_and_invoices:
        assert record(sims, deal)["qbo_invoice_recipient_name"] == "Ann O'Brien"


def test_the_older_notification_format_and_an_emailed_invoice(
    perform: Perform, sims: Simulators, settings: Any, services: Services, deliver: Callable[..., dict[str, Any]]
) -> None:
    sims.qbo("POST", "webhooks/legacy", json={"enabled": True})
    deal, invoice = booked_invoice(perform, sims)
    assert record(sims, deal)["qbo_invoice_email_status"] == "not_sent"
    sims.qbo_api("POST", f"invoice/{invoice['Id']}/send", params={"sendTo": "ap@acme.example"})
    pay(sims, invoice, 50)
    deliver()
    with services.database.engine.connect() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM quickbooks_events"))]
    assert ids and all(i.startswith("legacy:") for i in ids)  # read from the older format
    shown = record(sims, deal)
    assert shown["qbo_invoice_email_status"] == "sent" and shown["qbo_invoice_recipient_email"] == "ap@acme.example"
    assert shown["qbo_invoice_status"] == "partially_paid"


def test_events_of_a_company_nobody_connected_are_kept_and_ignored(server: str, services: Services) -> None:
    answer = notify(
        server,
        [
            event("145", event_id="stranger", realm_id="5550001"),
            event("3", event_id="customer", kind="customer.updated"),
        ],
    )
    assert answer.status_code == 200 and answer.json() == {
        "status": "ok",
        "new": 0,
        "repeated": 0,
        "ignored": 2,
        "skipped": 0,
    }
    assert services.database.count("quickbooks_events") == 2
    assert (
        services.followed.pending_notices("5550001", 10) == [] and services.followed.pending_notices(REALM_ID, 10) == []
    )


def test_a_batch_refused_as_a_whole_goes_again_record_by_record(
    perform: Perform, sims: Simulators, settings: Any, services: Services, deliver: Callable[..., dict[str, Any]]
) -> None:
    first_deal, first = booked_invoice(perform, sims)
    second_deal, second = booked_invoice(perform, sims)
    pay(sims, first, 399.5)
    pay(sims, second, 399.5)
    # HubSpot refuses the two records' batch, and then the first record alone: only the first keeps its old status.
    body = {"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid"}
    sims.hs_fault(method="POST", path="/crm/v3/objects/deals/batch/update$", status=400, count=3, body=body)
    deliver()
    states = {record(sims, first_deal)["qbo_invoice_status"], record(sims, second_deal)["qbo_invoice_status"]}
    assert states == {"awaiting_payment", "paid"}
    assert services.followed.records_to_push(PORTAL_ID, 10) == []  # the refused one is given up, not retried for ever


def test_without_the_scopes_for_statuses_they_wait_for_a_new_install(
    perform: Perform, sims: Simulators, settings: Any, services: Services, deliver: Callable[..., dict[str, Any]]
) -> None:
    deal, invoice = booked_invoice(perform, sims)
    pay(sims, invoice, 399.5)
    body = {
        "status": "error",
        "category": "MISSING_SCOPES",
        "message": "This app hasn't been granted all required scopes",
    }
    sims.hs_fault(method="POST", path="/crm/v3/objects/deals/batch/update$", status=403, count=1, body=body)
    deliver()
    assert record(sims, deal)["qbo_invoice_status"] == "awaiting_payment"
    assert services.followed.records_to_push(PORTAL_ID, 10) == [("deals", deal)]  # kept
    statuses.push_statuses(services, PORTAL_ID)  # granted again (the fault is used up)
    assert record(sims, deal)["qbo_invoice_status"] == "paid"
