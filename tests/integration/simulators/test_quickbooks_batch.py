"""The QuickBooks simulator's batch endpoint over real HTTP, with plain requests, our client and python-quickbooks."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from intuitlib.client import AuthClient

from services.quickbooks.client import QuickBooksClient, batch_item_error
from services.transport.errors import NotFoundError, PermanentError, RateLimitedError, TransientError
from simulators.quickbooks import QuickBooksSimulator, create_app
from simulators.serve import start_in_thread
from tests.fakes import FakeTokens

REALM, OTHER_REALM = "9130350000000001", "9130350000000002"
TOKEN, OTHER_TOKEN = "access-1", "access-other"
REFRESH = "refresh-token-1"


class Api:
    """Plain HTTP to one simulated company: batches, single creates and queries."""

    def __init__(self, base_url: str, token: str = TOKEN, realm: str = REALM):
        self.base_url, self.token, self.realm = base_url, token, realm

    def post(self, path: str, body: Any, **params: str) -> requests.Response:
        return requests.post(
            f"{self.base_url}/v3/company/{self.realm}/{path}",
            json=body,
            params={"minorversion": "75", **params},
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            timeout=10,
        )

    def batch(self, items: list[dict], **params: str) -> requests.Response:
        return self.post("batch", {"BatchItemRequest": items}, **params)

    def answers(self, items: list[dict], **params: str) -> list[dict]:
        """Send a batch that must succeed as a request; return its BatchItemResponse."""
        response = self.batch(items, **params)
        assert response.status_code == 200, response.text
        return response.json()["BatchItemResponse"]

    def create(self, entity: str, body: dict) -> dict:
        response = self.post(entity.lower(), body)
        assert response.status_code == 200, response.text
        return response.json()[entity]


@pytest.fixture(scope="module")
def running():
    """One simulator server for the module."""
    app = create_app(QuickBooksSimulator())
    server = start_in_thread(app)
    yield app.config["SIMULATOR"], server
    server.stop()


@pytest.fixture
def sim(running) -> QuickBooksSimulator:
    sim = running[0]
    sim.reset()
    for realm, token in ((REALM, TOKEN), (OTHER_REALM, OTHER_TOKEN)):
        sim.add_company(realm)
        sim.add_token(token, realm)
    sim.add_refresh_token(REFRESH, REALM)
    return sim


@pytest.fixture
def server(running, sim):
    return running[1]


@pytest.fixture
def api(server) -> Api:
    return Api(server.base_url)


def create(bid: str, entity: str, body: dict, operation: str = "create") -> dict:
    return {"bId": bid, "operation": operation, entity: body}


def customer(bid: str, name: str) -> dict:
    return create(bid, "Customer", {"DisplayName": name})


def service_item(api: Api, name: str = "Consulting") -> dict:
    return api.create("Item", {"Name": name, "Type": "Service", "IncomeAccountRef": {"value": "4"}})


def invoice(customer_id: str, item_id: str, amount: float = 200.0, **fields: Any) -> dict:
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": amount,
        "SalesItemLineDetail": {"ItemRef": {"value": item_id}, "Qty": 2, "UnitPrice": 100.0},
    }
    return {"CustomerRef": {"value": customer_id}, "Line": [line], **fields}


def names(sim: QuickBooksSimulator, entity: str = "Customer", realm: str = REALM) -> list[str]:
    return [c.get("DisplayName") or c["Name"] for c in sim.list_entities(realm, entity)]


def fault_code(answer: dict) -> str:
    return answer["Fault"]["Error"][0]["code"]


# --- items ---------------------------------------------------------------------------------------------


def test_a_batch_of_creates_and_a_query_answers_each_item_in_request_order(api, sim):
    response = api.batch(
        [
            customer("1", "Acme"),
            {"bId": "2", "Query": "select * from Term where Name = 'Net 30'"},
            create("3", "Item", {"Name": "Design", "Type": "Service", "IncomeAccountRef": {"value": "4"}}),
            {"bId": "4", "Query": "select * from Customer"},
        ],
        requestid="b-1",
    )

    assert response.status_code == 200 and response.headers["intuit_tid"]
    body = response.json()
    assert set(body) == {"BatchItemResponse", "time"}
    answers = body["BatchItemResponse"]
    assert [sorted(answer) for answer in answers] == [
        ["Customer", "bId"],
        ["QueryResponse", "bId"],
        ["Item", "bId"],
        ["QueryResponse", "bId"],
    ]
    assert [answer["bId"] for answer in answers] == ["1", "2", "3", "4"]
    assert answers[0]["Customer"] == sim.get_entity(REALM, "Customer", answers[0]["Customer"]["Id"])
    assert answers[1]["QueryResponse"]["Term"][0]["DueDays"] == 30
    assert answers[2]["Item"]["IncomeAccountRef"] == {"value": "4", "name": "Services"}
    assert answers[3]["QueryResponse"] == {}  # no item sees what another item of its batch did
    assert names(sim) == ["Acme"]


def test_a_batch_of_invoices_creates_the_same_invoices_as_separate_posts(api, server):
    other = Api(server.base_url, OTHER_TOKEN, OTHER_REALM)
    for company in (api, other):
        company.create("Customer", {"DisplayName": "Acme"})
        service_item(company)
    bodies = [invoice("1", "1"), invoice("1", "1", TxnDate="2025-03-01", SalesTermRef={"value": "3"})]

    batched = [
        answer["Invoice"] for answer in api.answers([create(str(n), "Invoice", b) for n, b in enumerate(bodies)])
    ]
    separate = [other.create("Invoice", body) for body in bodies]

    def comparable(document: dict) -> dict:
        return {key: value for key, value in document.items() if key != "MetaData"}

    assert [comparable(d) for d in batched] == [comparable(d) for d in separate]
    assert [d["DocNumber"] for d in batched] == ["1001", "1002"]


def test_a_fault_in_one_item_leaves_the_others_created(api, sim):
    api.create("Customer", {"DisplayName": "Taken"})
    item = service_item(api)

    answers = api.answers(
        [
            customer("1", "Taken"),
            create("2", "Invoice", invoice("1", item["Id"], amount=150.0)),
            customer("3", "Fresh"),
            create("4", "Invoice", invoice("1", item["Id"])),
            {"bId": "5", "Query": "select * from Nothing"},
            {"bId": "6", "operation": "merge", "Customer": {"DisplayName": "X"}},
            {"bId": "7", "operation": "create"},
        ]
    )

    assert [answer["bId"] for answer in answers] == ["1", "2", "3", "4", "5", "6", "7"]
    assert fault_code(answers[0]) == "6240"
    assert fault_code(answers[1]) == "6070"
    assert answers[0]["Fault"]["type"] == "ValidationFault" and "time" not in answers[0]
    assert answers[2]["Customer"]["DisplayName"] == "Fresh"
    assert answers[3]["Invoice"]["TotalAmt"] == 200.0
    assert [fault_code(answer) for answer in answers[4:]] == ["4000", "2170", "500"]
    assert names(sim) == ["Taken", "Fresh"]
    assert len(sim.list_entities(REALM, "Invoice")) == 1


def test_update_with_void_and_delete_items_act_like_the_single_operations(api, sim):
    api.create("Customer", {"DisplayName": "Acme"})
    item = service_item(api)
    first = api.create("Invoice", invoice("1", item["Id"]))
    second = api.create("Invoice", invoice("1", item["Id"]))

    answers = api.answers(
        [
            {
                "bId": "1",
                "operation": "update",
                "optionsData": "void",
                "Invoice": {"Id": first["Id"], "SyncToken": "0"},
            },
            {"bId": "2", "operation": "delete", "Invoice": {"Id": second["Id"], "SyncToken": "0"}},
            {"bId": "3", "operation": "update", "Invoice": {"Id": first["Id"], "SyncToken": "0", "sparse": True}},
        ]
    )

    assert answers[0]["Invoice"]["TotalAmt"] == 0.0 and answers[0]["Invoice"]["PrivateNote"] == "Voided"
    assert answers[1]["Invoice"] == {"domain": "QBO", "status": "Deleted", "Id": second["Id"]}
    assert fault_code(answers[2]) == "5010"  # the void above already moved the SyncToken on
    assert [i["Id"] for i in sim.list_entities(REALM, "Invoice")] == [first["Id"]]


# --- request-level rules --------------------------------------------------------------------------------


def test_more_than_30_items_is_refused_as_a_whole(api, sim):
    refused = api.batch([customer(str(n), f"C{n}") for n in range(31)])

    assert refused.status_code == 400
    assert refused.json()["Fault"]["type"] == "ValidationFault"
    assert refused.json()["Fault"]["Error"][0]["element"] == "BatchItemRequest"
    assert names(sim) == []
    assert len(api.answers([customer(str(n), f"C{n}") for n in range(30)])) == 30


def test_requestid_and_bid_lengths(api, sim):
    too_long = api.batch([customer("1", "A")], requestid="r" * 37)
    assert too_long.status_code == 400 and fault_code(too_long.json()) == "2050"

    long_bid = api.batch([customer("b" * 11, "A")], requestid="r" * 36)
    assert long_bid.status_code == 400 and fault_code(long_bid.json()) == "2050"
    assert long_bid.json()["Fault"]["Error"][0]["element"] == "bId"
    assert names(sim) == []

    assert api.answers([customer("b" * 10, "A")], requestid="s" * 36)[0]["Customer"]["DisplayName"] == "A"
    assert api.answers([customer("b" * 36, "B")])[0]["Customer"]["DisplayName"] == "B"  # no requestid, no limit


def test_a_missing_or_repeated_bid_is_refused(api, sim):
    assert api.batch([{"operation": "create", "Customer": {"DisplayName": "A"}}]).status_code == 400
    assert api.batch([customer("1", "A"), customer("1", "B")]).status_code == 400
    assert api.post("batch", {"Nope": []}).status_code == 400
    assert names(sim) == []


def test_a_repeated_requestid_replays_the_first_answer_without_doing_anything(api, sim):
    items = [customer("1", "Once"), customer("2", "Twice")]
    first = api.batch(items, requestid="batch-1")
    again = api.batch(items, requestid="batch-1")

    assert again.status_code == 200 and again.json() == first.json()
    assert names(sim) == ["Once", "Twice"]
    log = [entry for entry in sim.request_log() if entry["path"].endswith("/batch")]
    assert [(entry["status"], entry["items"], entry["requestid"]) for entry in log] == [
        (200, 2, "batch-1"),
        (200, 2, "batch-1"),
    ]


# --- injected faults ------------------------------------------------------------------------------------


def test_a_fault_after_commit_loses_the_answer_and_the_replay_returns_the_documents(api, sim, server):
    requests.post(
        f"{server.base_url}/_sim/faults",
        json={"status": 500, "method": "POST", "path": "/batch$", "after_commit": True},
        timeout=10,
    ).raise_for_status()
    items = [customer("1", "Lost"), customer("2", "Found")]

    lost = api.batch(items, requestid="batch-2")
    assert lost.status_code == 500 and fault_code(lost.json()) == "10000"
    stored = sim.list_entities(REALM, "Customer")
    assert [c["DisplayName"] for c in stored] == ["Lost", "Found"]

    replayed = api.answers(items, requestid="batch-2")
    assert [answer["Customer"] for answer in replayed] == stored
    assert names(sim) == ["Lost", "Found"]


def test_a_fault_before_commit_does_nothing(api, sim):
    sim.add_fault(503, path="/batch$")
    assert api.batch([customer("1", "Later")], requestid="batch-3").status_code == 503
    assert names(sim) == []
    assert api.answers([customer("1", "Later")], requestid="batch-3")[0]["Customer"]["DisplayName"] == "Later"


def test_an_item_fault_fails_only_the_matching_item(api, sim, server):
    api.create("Customer", {"DisplayName": "Acme"})
    item = service_item(api)
    sim.add_fault(400, path="^/invoice$", batch_item=True)
    duplicate = {"Fault": {"type": "ValidationFault", "Error": [{"Message": "Duplicate", "code": "6140"}]}}
    requests.post(
        f"{server.base_url}/_sim/faults",
        json={"status": 400, "path": "^/customer$", "batch_item": True, "after_commit": True, "body": duplicate},
        timeout=10,
    ).raise_for_status()

    answers = api.answers(
        [
            create("1", "Invoice", invoice("1", item["Id"])),
            create("2", "Invoice", invoice("1", item["Id"])),
            customer("3", "Committed"),
        ]
    )

    assert fault_code(answers[0]) == "6000" and answers[0]["Fault"]["type"] == "ValidationFault"
    assert answers[1]["Invoice"]["DocNumber"] == "1001"
    assert answers[2]["Fault"] == duplicate["Fault"]
    assert names(sim) == ["Acme", "Committed"]  # after_commit: the customer was created, only its answer failed
    assert sim.faults == []
    assert api.post("invoice", invoice("1", item["Id"])).status_code == 200  # item faults never hit single calls


@pytest.mark.parametrize(
    ("status", "body", "delay"),
    [(429, None, 0.0), (401, None, 0.0), (None, None, 0.0), (400, "text", 0.0), (400, None, 1.0)],
    ids=["throttle", "gateway", "delay-only", "text-body", "delay"],
)
def test_an_item_fault_must_be_a_fault_object(sim, status, body, delay):
    with pytest.raises(ValueError):
        sim.add_fault(status, path="^/invoice$", batch_item=True, body=body, delay=delay)


# --- throttles ------------------------------------------------------------------------------------------


def test_the_41st_batch_in_a_minute_is_throttled_but_single_calls_go_on(api, sim):
    statuses = [api.batch([{"bId": "1", "Query": "select * from Term"}]).status_code for _ in range(41)]

    assert statuses == [200] * 40 + [429]
    throttled = api.batch([{"bId": "1", "Query": "select * from Term"}])
    assert throttled.status_code == 429 and 'code="3001"' in throttled.text
    assert api.post("customer", {"DisplayName": "Single"}).status_code == 200
    assert Api(api.base_url, OTHER_TOKEN, OTHER_REALM).batch([customer("1", "A")]).status_code == 200


def test_a_batch_counts_as_one_request_against_the_per_minute_throttle(api, sim):
    sim.configure(throttle_per_minute=2)
    assert api.batch([customer(str(n), f"C{n}") for n in range(5)]).status_code == 200
    assert api.post("customer", {"DisplayName": "Single"}).status_code == 200
    assert api.post("customer", {"DisplayName": "Third"}).status_code == 429
    assert api.batch([customer("1", "Late")]).status_code == 429


def test_the_request_log_records_a_batch_once_with_its_item_count(api, sim):
    api.batch([customer(str(n), f"C{n}") for n in range(3)])
    api.batch([customer(str(n), f"C{n}") for n in range(31)])
    api.post("customer", {"DisplayName": "Single"})

    log = sim.request_log()
    assert [(entry["path"].rsplit("/", 1)[1], entry["status"], entry.get("items")) for entry in log] == [
        ("batch", 200, 3),
        ("batch", 400, 31),
        ("customer", 200, None),
    ]


# --- clients against the simulator ----------------------------------------------------------------------


def test_our_client_batch_against_the_simulator(server, sim):
    client = QuickBooksClient(f"{server.base_url}/v3", REALM, FakeTokens(TOKEN), session=requests.Session())
    items = [customer("c1", "Acme"), customer("c2", "acme"), create("i1", "Invoice", invoice("999", "1"))]
    answers = client.batch(items, requestid="client-batch-1")

    assert answers[0]["Customer"]["DisplayName"] == "Acme"
    duplicate, unknown = batch_item_error(answers[1]), batch_item_error(answers[2])
    assert type(duplicate) is PermanentError and duplicate.code == "6240"
    assert type(unknown) is PermanentError and unknown.code == "2500"
    assert client.batch(items, requestid="client-batch-1") == answers  # replayed

    sim.add_fault(503, path="/batch$")
    with pytest.raises(TransientError):
        client.batch([customer("c3", "Later")], requestid="client-batch-2")
    sim.add_fault(400, path="/batch$")
    with pytest.raises(PermanentError):
        client.batch([customer("c3", "Later")], requestid="client-batch-2")
    sim.configure(batch_per_minute=0)
    with pytest.raises(RateLimitedError):
        client.batch([customer("c3", "Later")], requestid="client-batch-2")
    assert names(sim) == ["Acme"]


def test_an_item_fault_becomes_the_error_of_the_single_call(server, sim):
    client = QuickBooksClient(f"{server.base_url}/v3", REALM, FakeTokens(TOKEN), session=requests.Session())
    body = {"Id": "404", "SyncToken": "0", "DisplayName": "Ghost", "sparse": True}

    [answer] = client.batch([create("1", "Customer", body, "update")], requestid="ghost-batch")
    with pytest.raises(NotFoundError) as single:
        client.update("Customer", body, requestid="ghost-single")

    from_item = batch_item_error(answer)
    assert type(from_item) is NotFoundError
    assert (from_item.code, from_item.message, from_item.detail) == (
        single.value.code,
        single.value.message,
        single.value.detail,
    )


@pytest.fixture
def qb(server, monkeypatch):
    from quickbooks import QuickBooks

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the simulator speaks plain http
    auth = AuthClient(
        "sim-client",
        "sim-secret",
        "http://localhost/callback",
        environment=f"{server.base_url}/.well-known/openid_configuration/",
        refresh_token=REFRESH,
    )
    client = QuickBooks(auth_client=auth, refresh_token=REFRESH, company_id=REALM, minorversion=75)
    client.api_url_v3 = f"{server.base_url}/v3"
    return client


def test_python_quickbooks_batch_create_parses_successes_and_faults(qb, sim):
    from quickbooks.batch import batch_create
    from quickbooks.objects.base import Ref
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.item import Item

    sim.seed_entity(REALM, "Customer", {"DisplayName": "Existing", "Active": True})
    objects: list[Any] = []
    for name in ("Batch One", "Batch Two", "Existing"):
        party = Customer()
        party.DisplayName = name
        objects.append(party)
    for name in ("Design", "Support"):
        product = Item()
        product.Name, product.Type = name, "Service"
        product.IncomeAccountRef = Ref()
        product.IncomeAccountRef.value = "4"
        objects.append(product)

    result = batch_create(objects, qb=qb)

    assert [type(o).__name__ for o in result.successes] == ["Customer", "Customer", "Item", "Item"]
    assert [o.Id for o in result.successes if isinstance(o, Customer)] == ["2", "3"]
    assert [o.FullyQualifiedName for o in result.successes if isinstance(o, Item)] == ["Design", "Support"]
    [fault] = result.faults
    assert fault.type == "ValidationFault" and fault.Error[0].code == "6240"
    assert fault.original_object.DisplayName == "Existing"
    assert names(sim) == ["Existing", "Batch One", "Batch Two"]
    assert [entry.get("items") for entry in sim.request_log() if entry["path"].endswith("/batch")] == [5]
