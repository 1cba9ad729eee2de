"""QuickBooks simulator change notifications (webhooks) and change data capture, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta

import pytest
import requests
from flask import Flask, request

from simulators.quickbooks import QuickBooksSimulator, create_app
from simulators.scenario import QBO_ACCESS_TOKEN, REALM_ID, Simulators
from simulators.serve import start_in_thread

OTHER_REALM = "9130356"
VERIFIER = "verifier-token-1"
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Clock:
    """A simulator clock that stands still until a test moves it (CDC times have one-second resolution)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Receiver:
    """The app's webhook endpoint: records raw bodies and headers, answers queued statuses, then 200."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.statuses: deque[int] = deque()

    def app(self) -> Flask:
        app = Flask("quickbooks_webhook_receiver")

        @app.post("/webhooks/quickbooks")
        def hook():
            with self.lock:
                self.bodies.append(request.get_data())
                self.headers.append(dict(request.headers))
                status = self.statuses.popleft() if self.statuses else 200
            return "", status

        return app

    def clear(self) -> None:
        with self.lock:
            self.bodies.clear()
            self.headers.clear()
            self.statuses.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list:
        """Wait until ``count`` deliveries arrived; return their parsed bodies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.bodies) >= count:
                    return [json.loads(body) for body in self.bodies]
            time.sleep(0.02)
        raise AssertionError(f"expected {count} deliveries, got {len(self.bodies)}")


def logged_deliveries(sims, count: int, timeout: float = 5.0) -> list:
    """Wait until the simulator logged ``count`` deliveries (it logs one after its POST was answered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = sims.webhook_deliveries()
        if len(log) >= count:
            return log
        time.sleep(0.02)
    raise AssertionError(f"expected {count} logged deliveries, got {len(sims.webhook_deliveries())}")


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def running(clock):
    app = create_app(QuickBooksSimulator(clock=clock))
    server = start_in_thread(app)
    yield app.config["SIMULATOR"], server
    server.stop()


@pytest.fixture(scope="module")
def receiving():
    receiver = Receiver()
    server = start_in_thread(receiver.app())
    yield receiver, server
    server.stop()


@pytest.fixture
def receiver(receiving) -> Receiver:
    receiving[0].clear()
    return receiving[0]


@pytest.fixture
def hook_url(receiving) -> str:
    return f"{receiving[1].base_url}/webhooks/quickbooks"


@pytest.fixture
def sim(running, clock) -> QuickBooksSimulator:
    sim = running[0]
    sim.reset()
    clock.now = time.time()
    return sim


@pytest.fixture
def sims(running, sim, receiver) -> Simulators:
    """A company with a seeded customer and item (seeding notifies nobody); webhooks off."""
    sims = Simulators(quickbooks_url=running[1].base_url, hubspot_url="http://127.0.0.1:9")
    sims.add_company()
    seed_sales_lists(sims)
    return sims


def seed_sales_lists(sims: Simulators, realm_id: str = REALM_ID) -> None:
    sims.add_entity("Customer", {"Id": "1", "DisplayName": "Acme Inc", "Active": True}, realm_id)
    item = {"Id": "1", "Name": "Consulting", "Type": "Service", "Active": True}
    sims.add_entity("Item", {**item, "IncomeAccountRef": {"value": sims.account_id("Services", realm_id)}}, realm_id)


def sales_form(amount: float = 200.0, **fields) -> dict:
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": amount,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount},
    }
    return {"CustomerRef": {"value": "1"}, "Line": [line], **fields}


def create(sims: Simulators, entity: str, body: dict, realm_id: str = REALM_ID) -> dict:
    return sims.qbo_api("POST", entity.lower(), realm_id, json=body)[entity]


def signature(body: bytes) -> str:
    return base64.b64encode(hmac.new(VERIFIER.encode(), body, hashlib.sha256).digest()).decode()


def kinds(events: list[dict]) -> list[tuple[str, str]]:
    return [(event["type"], event["intuitentityid"]) for event in events]


def delivered_events(sims: Simulators) -> list[dict]:
    """Deliver what is queued as one POST and return its events (from the queue, as sent)."""
    queued = sims.queued_webhooks()
    outcome = sims.deliver_webhooks()
    assert [d["status"] for d in outcome["deliveries"]] == ([200] if queued else [])
    return queued


# --- notifications -----------------------------------------------------------------------------------


def test_created_invoice_is_one_signed_cloud_event(sims, receiver, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, delay_ms=20)
    invoice = create(sims, "Invoice", sales_form())

    [payload] = receiver.wait_for(1)
    body, headers = receiver.bodies[0], receiver.headers[0]
    assert headers["Intuit-Signature"] == signature(body)
    assert headers["Content-Type"] == "application/json"
    [event] = payload
    assert event["type"] == "qbo.invoice.created.v1"
    assert (event["intuitentityid"], event["intuitaccountid"]) == (invoice["Id"], REALM_ID)
    assert event["specversion"] == "1.0" and event["datacontenttype"] == "application/json"
    assert event["data"] == {} and event["source"].startswith("intuit.")
    assert uuid.UUID(event["id"]).version == 4
    assert EVENT_TIME.match(event["time"])
    [delivery] = logged_deliveries(sims, 1)
    assert delivery["events"] == [event["id"]] and delivery["status"] == 200 and delivery["error"] is None
    assert sims.queued_webhooks() == []


def test_seeding_through_the_admin_endpoints_notifies_nobody(sims, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    sims.add_entity("Customer", {"DisplayName": "Seeded Co"})
    sims.add_entity("Invoice", sales_form(TotalAmt=200.0))
    assert sims.queued_webhooks() == []


def test_applied_payment_notifies_the_payment_and_the_invoice_it_paid(sims, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    invoice = create(sims, "Invoice", sales_form(150.0))
    delivered_events(sims)

    line = {"Amount": 150.0, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
    payment = create(sims, "Payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 150.0, "Line": [line]})

    events = delivered_events(sims)
    assert kinds(events) == [("qbo.payment.created.v1", payment["Id"]), ("qbo.invoice.updated.v1", invoice["Id"])]
    paid = sims.qbo_api("GET", f"invoice/{invoice['Id']}")["Invoice"]
    assert paid["Balance"] == 0.0 and paid["SyncToken"] == "1"


def test_void_and_delete_are_notified(sims, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    kept, doomed = create(sims, "Invoice", sales_form()), create(sims, "Invoice", sales_form())
    delivered_events(sims)

    sims.qbo_api("POST", "invoice", json={"Id": kept["Id"], "SyncToken": "0"}, params={"operation": "void"})
    sims.qbo_api("POST", "invoice", json={"Id": doomed["Id"], "SyncToken": "0"}, params={"operation": "delete"})

    assert kinds(delivered_events(sims)) == [
        ("qbo.invoice.voided.v1", kept["Id"]),
        ("qbo.invoice.deleted.v1", doomed["Id"]),
    ]


def test_sending_an_invoice_emails_it_and_notifies_emailed(sims, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    invoice = create(sims, "Invoice", sales_form())
    delivered_events(sims)

    answer = sims.qbo_api("POST", f"invoice/{invoice['Id']}/send", params={"sendTo": "ann@acme.example"})

    sent = answer["Invoice"]
    assert answer["time"] and sent["EmailStatus"] == "EmailSent" and sent["SyncToken"] == "1"
    assert sent["DeliveryInfo"]["DeliveryType"] == "Email" and sent["DeliveryInfo"]["DeliveryTime"]
    assert sent["BillEmail"]["Address"] == "ann@acme.example"
    assert kinds(delivered_events(sims)) == [("qbo.invoice.emailed.v1", invoice["Id"])]


def test_sending_needs_an_address_and_an_existing_form(sims):
    estimate = create(sims, "Estimate", sales_form())
    with pytest.raises(requests.HTTPError) as no_address:
        sims.qbo_api("POST", f"estimate/{estimate['Id']}/send")
    assert no_address.value.response.status_code == 400
    with pytest.raises(requests.HTTPError) as missing:
        sims.qbo_api("POST", "salesreceipt/999/send", params={"sendTo": "ann@acme.example"})
    assert missing.value.response.json()["Fault"]["Error"][0]["code"] == "610"
    receipt = create(sims, "SalesReceipt", sales_form(BillEmail={"Address": "ann@acme.example"}))
    assert sims.qbo_api("POST", f"salesreceipt/{receipt['Id']}/send")["SalesReceipt"]["EmailStatus"] == "EmailSent"


def test_estimate_accepted_then_closed_by_its_invoice(sims, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    estimate = create(sims, "Estimate", sales_form())
    delivered_events(sims)

    accepted = {"Id": estimate["Id"], "SyncToken": "0", "sparse": True, "TxnStatus": "Accepted"}
    assert create(sims, "Estimate", accepted)["TxnStatus"] == "Accepted"
    assert kinds(delivered_events(sims)) == [("qbo.estimate.updated.v1", estimate["Id"])]
    with pytest.raises(requests.HTTPError) as refused:
        create(sims, "Estimate", {**accepted, "SyncToken": "1", "TxnStatus": "Won"})
    assert refused.value.response.json()["Fault"]["Error"][0]["code"] == "2170"

    link = [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
    invoice = create(sims, "Invoice", sales_form(LinkedTxn=link))

    assert kinds(delivered_events(sims)) == [
        ("qbo.invoice.created.v1", invoice["Id"]),
        ("qbo.estimate.updated.v1", estimate["Id"]),
    ]
    assert sims.qbo_api("GET", f"estimate/{estimate['Id']}")["Estimate"]["TxnStatus"] == "Closed"


def test_batch_items_are_notified_and_failed_items_are_not(sims, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    items = [
        {"bId": "1", "operation": "create", "Customer": {"DisplayName": "Batch One"}},
        {"bId": "2", "operation": "create", "Customer": {"DisplayName": "Batch One"}},  # duplicate name: a Fault
        {"bId": "3", "operation": "create", "Invoice": sales_form()},
    ]

    answers = sims.qbo_api("POST", "batch", json={"BatchItemRequest": items})["BatchItemResponse"]

    customer, fault, invoice = answers
    assert "Fault" in fault
    assert kinds(delivered_events(sims)) == [
        ("qbo.customer.created.v1", customer["Customer"]["Id"]),
        ("qbo.invoice.created.v1", invoice["Invoice"]["Id"]),
    ]


def test_a_request_refused_by_an_injected_fault_changes_nothing_and_notifies_nothing(sims, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    sims.qbo_fault(status=500, path="^/customer$")
    with pytest.raises(requests.HTTPError):
        create(sims, "Customer", {"DisplayName": "Refused"})
    assert sims.queued_webhooks() == []
    sims.qbo_fault(status=500, path="^/customer$", after_commit=True)
    with pytest.raises(requests.HTTPError):
        create(sims, "Customer", {"DisplayName": "Saved Anyway"})
    assert kinds(sims.queued_webhooks()) == [("qbo.customer.created.v1", "2")]


def test_auto_delivery_batches_what_was_queued_within_the_delay(sims, receiver, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, delay_ms=600)
    names = ["Beta LLC", "Gamma GmbH", "Delta SA"]
    ids = [create(sims, "Customer", {"DisplayName": name})["Id"] for name in names]

    [payload] = receiver.wait_for(1)
    time.sleep(0.2)  # nothing else follows
    assert len(receiver.bodies) == 1
    assert kinds(payload) == [("qbo.customer.created.v1", customer_id) for customer_id in ids]


def test_events_of_two_companies_share_one_delivery(sims, receiver, hook_url):
    sims.add_company(OTHER_REALM)
    seed_sales_lists(sims, OTHER_REALM)
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    create(sims, "Invoice", sales_form())
    create(sims, "Invoice", sales_form(), OTHER_REALM)

    sims.deliver_webhooks()

    [payload] = receiver.wait_for(1)
    assert [event["intuitaccountid"] for event in payload] == [REALM_ID, OTHER_REALM]
    assert receiver.headers[0]["Intuit-Signature"] == signature(receiver.bodies[0])


def test_dropped_notification_never_arrives(sims, receiver, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, delay_ms=300)
    sims.drop_webhooks(1)
    create(sims, "Customer", {"DisplayName": "Lost Ltd"})
    kept = create(sims, "Customer", {"DisplayName": "Found Ltd"})

    [payload] = receiver.wait_for(1)
    assert kinds(payload) == [("qbo.customer.created.v1", kept["Id"])]


def test_deliver_reversed_in_one_post(sims, receiver, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    ids = [create(sims, "Customer", {"DisplayName": f"Customer {n}"})["Id"] for n in range(3)]

    outcome = sims.deliver_webhooks(order="reversed")

    [payload] = receiver.wait_for(1)
    assert [event["intuitentityid"] for event in payload] == ids[::-1]
    assert [d["status"] for d in outcome["deliveries"]] == [200] and outcome["dropped"] == []


def test_deliver_split_with_a_dropped_event(sims, receiver, hook_url):
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    ids = [create(sims, "Customer", {"DisplayName": f"Customer {n}"})["Id"] for n in range(3)]
    queued = sims.queued_webhooks()
    assert [event["intuitentityid"] for event in queued] == ids

    outcome = sims.deliver_webhooks(order="reversed", split=True, drop=[1])

    payloads = receiver.wait_for(2)
    assert [[event["intuitentityid"] for event in payload] for payload in payloads] == [[ids[2]], [ids[0]]]
    assert outcome["dropped"] == [queued[1]["id"]]
    assert [d["events"] for d in outcome["deliveries"]] == [[queued[2]["id"]], [queued[0]["id"]]]
    assert sims.queued_webhooks() == []


def test_legacy_format_groups_entities_by_realm(sims, receiver, hook_url):
    sims.add_company(OTHER_REALM)
    seed_sales_lists(sims, OTHER_REALM)
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    sims.qbo("POST", "webhooks/legacy", json={"enabled": True})
    first = create(sims, "Invoice", sales_form())
    other = create(sims, "Customer", {"DisplayName": "Other Co"}, OTHER_REALM)
    sims.qbo_api("POST", "invoice", json={"Id": first["Id"], "SyncToken": "0"}, params={"operation": "delete"})

    sims.deliver_webhooks()

    [payload] = receiver.wait_for(1)
    assert receiver.headers[0]["Intuit-Signature"] == signature(receiver.bodies[0])
    notifications = payload["eventNotifications"]
    assert [n["realmId"] for n in notifications] == [REALM_ID, OTHER_REALM]
    mine = notifications[0]["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in mine] == [
        ("Invoice", first["Id"], "Create"),
        ("Invoice", first["Id"], "Delete"),
    ]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", mine[0]["lastUpdated"])
    theirs = notifications[1]["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in theirs] == [("Customer", other["Id"], "Create")]


def test_delivery_answered_500_is_retried(sims, receiver, hook_url):
    receiver.statuses.extend([500])
    sims.quickbooks_webhooks(hook_url, VERIFIER, delay_ms=20)
    create(sims, "Customer", {"DisplayName": "Retry Co"})

    receiver.wait_for(2)
    assert receiver.bodies[0] == receiver.bodies[1]
    log = logged_deliveries(sims, 2)
    assert [(d["status"], d["attempt"]) for d in log] == [(500, 1), (200, 2)]
    assert log[0]["events"] == log[1]["events"]


def test_unanswered_delivery_is_retried_three_times(sims):
    sims.quickbooks_webhooks("http://127.0.0.1:9/webhooks/quickbooks", VERIFIER, auto=False)
    create(sims, "Customer", {"DisplayName": "Nobody Home"})

    [outcome] = sims.deliver_webhooks()["deliveries"]

    assert outcome["status"] is None and outcome["error"] and outcome["attempt"] == 4
    assert [d["attempt"] for d in sims.webhook_deliveries()] == [1, 2, 3, 4]


def test_webhooks_off_queue_nothing_and_reset_turns_them_off(sims, hook_url):
    create(sims, "Customer", {"DisplayName": "Unwatched"})
    assert sims.queued_webhooks() == []
    sims.quickbooks_webhooks(hook_url, VERIFIER, auto=False)
    create(sims, "Customer", {"DisplayName": "Watched"})
    assert len(sims.queued_webhooks()) == 1
    sims.qbo("POST", "reset")
    assert sims.queued_webhooks() == [] and sims.qbo("GET", "webhooks")["url"] is None


# --- change data capture -------------------------------------------------------------------------------


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def cdc(sims: Simulators, entities: str, since: str) -> list[dict]:
    answer = sims.qbo_api("GET", "cdc", params={"entities": entities, "changedSince": since})
    assert answer["time"]
    [response] = answer["CDCResponse"]
    return response["QueryResponse"]


def test_cdc_returns_what_changed_since_oldest_first(sims, clock):
    older = create(sims, "Invoice", sales_form())
    clock.advance(10)
    since = stamp(clock.now - 5)
    newer = create(sims, "Invoice", sales_form())
    clock.advance(1)
    create(sims, "Invoice", {"Id": older["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "late edit"})

    invoices, payments = cdc(sims, "Invoice,Payment", since)

    assert [i["Id"] for i in invoices["Invoice"]] == [newer["Id"], older["Id"]]
    assert invoices["Invoice"][1]["PrivateNote"] == "late edit" and invoices["Invoice"][1]["SyncToken"] == "1"
    assert (invoices["startPosition"], invoices["maxResults"]) == (1, 2)
    assert payments == {}
    [with_z] = cdc(sims, "Invoice", since.replace("+00:00", "Z"))
    assert with_z == invoices
    [customers] = cdc(sims, "Customer", stamp(clock.now - 60))
    assert [c["Id"] for c in customers["Customer"]] == ["1"]  # seeded ones are current states too


def test_cdc_reports_deleted_entities_as_tombstones(sims, clock):
    invoice = create(sims, "Invoice", sales_form())
    since = stamp(clock.now)
    clock.advance(3)
    sims.qbo_api("POST", "invoice", json={"Id": invoice["Id"], "SyncToken": "0"}, params={"operation": "delete"})

    [invoices] = cdc(sims, "Invoice", since)

    assert invoices["Invoice"] == [
        {"Id": invoice["Id"], "status": "Deleted", "MetaData": {"LastUpdatedTime": stamp(clock.now)}}
    ]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"entities": "Invoice"}, "2020"),
        ({"entities": "Invoice", "changedSince": "yesterday"}, "2010"),
        ({"changedSince": "NOW"}, "2020"),
        ({"entities": "Invoice,Widget", "changedSince": "NOW"}, "2010"),
        ({"entities": "Invoice", "changedSince": "LONG_AGO"}, "6000"),
    ],
)
def test_cdc_refuses_bad_arguments(sims, clock, params, code):
    times = {"NOW": stamp(clock.now), "LONG_AGO": stamp(clock.now - 31 * 86400)}
    params = {key: times.get(value, value) for key, value in params.items()}
    with pytest.raises(requests.HTTPError) as refused:
        sims.qbo_api("GET", "cdc", params=params)
    assert refused.value.response.status_code == 400
    assert refused.value.response.json()["Fault"]["Error"][0]["code"] == code


def test_cdc_goes_through_the_gate_and_the_request_log(sims, running):
    url = f"{running[1].base_url}/v3/company/{REALM_ID}/cdc"
    anonymous = requests.get(url, params={"entities": "Invoice", "changedSince": "2020-01-01"}, timeout=10)
    assert anonymous.status_code == 401
    assert [entry["status"] for entry in sims.qbo_requests() if entry["path"].endswith("/cdc")] == [401]


def test_cdc_cap_pages_by_moving_changed_since(sims, clock):
    sims.quickbooks_config(cdc_max_results=2)
    start = stamp(clock.now)
    ids = []
    for n in range(5):
        clock.advance(1)  # one per second: more than a page within one second could not be paged past
        ids.append(create(sims, "Customer", {"DisplayName": f"Paged {n}"})["Id"])

    seen: list[str] = []
    since = start
    for _ in range(10):
        [page] = cdc(sims, "Customer", since)
        assert len(page["Customer"]) <= 2
        fresh = [c["Id"] for c in page["Customer"] if c["Id"] not in seen]
        if not fresh:
            break
        seen += fresh
        since = page["Customer"][-1]["MetaData"]["LastUpdatedTime"]
    assert seen == ["1", *ids]  # the seeded customer changed at the start time too


def test_python_quickbooks_change_data_capture_reads_the_simulator(sims, running, clock, monkeypatch):
    from intuitlib.client import AuthClient
    from quickbooks import QuickBooks
    from quickbooks.cdc import change_data_capture
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.invoice import Invoice

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the simulator speaks plain http
    base = running[1].base_url
    auth = AuthClient(
        "sim-client",
        "sim-secret",
        "http://localhost/callback",
        environment=f"{base}/.well-known/openid_configuration/",
        access_token=f"{QBO_ACCESS_TOKEN}-{REALM_ID}",
    )
    qb = QuickBooks(auth_client=auth, company_id=REALM_ID, minorversion=75)
    qb.api_url_v3 = f"{base}/v3"
    clock.advance(5)  # past the seeded customer
    since = datetime.fromtimestamp(clock.now, UTC).replace(tzinfo=None) - timedelta(seconds=1)  # naive: UTC
    first, second = create(sims, "Invoice", sales_form()), create(sims, "Invoice", sales_form(90.0))

    changes = change_data_capture([Invoice, Customer], since, qb=qb)

    assert [invoice.Id for invoice in changes.Invoice] == [first["Id"], second["Id"]]
    assert isinstance(changes.Invoice[0], Invoice) and changes.Invoice[1].TotalAmt == 90.0
    assert not hasattr(changes, "Customer")  # seeded before ``since``: no changes
