"""Tests of the HubSpot simulator over real HTTP, including with the official hubspot-api-client."""

from __future__ import annotations

import time

import hubspot
import pytest
import requests
from hubspot.automation.actions import (
    BatchInputCallbackCompletionBatchRequest,
    CallbackCompletionBatchRequest,
    CallbackCompletionRequest,
)
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import (
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
)

from simulators.hubspot import HubSpotSimulator, create_app, evaluate_filter_groups
from simulators.serve import start_in_thread

PORTAL = 101
TOKEN = "tok-101"
REFRESH = "rt-101"
OTHER_PORTAL = 202
OTHER_TOKEN = "tok-202"


@pytest.fixture(scope="module")
def shared_sim() -> HubSpotSimulator:
    """Return the simulator the module's server serves."""
    return HubSpotSimulator()


@pytest.fixture(scope="module")
def server(shared_sim):
    """Serve the simulator over HTTP for the module."""
    running = start_in_thread(create_app(shared_sim))
    yield running
    running.stop()


@pytest.fixture
def sim(server, shared_sim) -> HubSpotSimulator:
    """Return the served simulator, reset, with two portals."""
    state = shared_sim
    state.reset()
    state.add_portal(PORTAL, TOKEN, REFRESH)
    state.add_portal(OTHER_PORTAL, OTHER_TOKEN)
    return state


@pytest.fixture
def call(server, sim):
    """Return a function making an API request with the portal's token by default."""

    def _call(method: str, path: str, token: str | None = TOKEN, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, server.base_url + path, headers=headers, timeout=10, **kwargs)

    return _call


@pytest.fixture
def admin(server, sim):
    """Return a function calling a /_sim/ test control."""

    def _admin(method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{server.base_url}/_sim{path}", timeout=10, **kwargs)

    return _admin


@pytest.fixture
def deal(admin) -> dict:
    """Seed deal 614 with two contacts (52 first) and two line items, through the HTTP controls."""
    for contact_id, email in (("51", "ann@example.com"), ("52", "bob@example.com")):
        admin(
            "POST",
            "/objects",
            json={
                "portal_id": PORTAL,
                "type": "contacts",
                "id": contact_id,
                "properties": {"email": email, "firstname": contact_id},
            },
        )
    for item_id, quantity in (("7", 2), ("8", 1)):
        admin(
            "POST",
            "/objects",
            json={
                "portal_id": PORTAL,
                "type": "line_items",
                "id": item_id,
                "properties": {"name": f"Item {item_id}", "quantity": quantity, "price": "10"},
            },
        )
    created = admin(
        "POST",
        "/objects",
        json={
            "portal_id": PORTAL,
            "type": "deals",
            "id": "614",
            "properties": {"dealname": "Acme renewal", "amount": 1200},
            "associations": {"contacts": ["52", "51"], "line_items": ["7", "8"]},
        },
    )
    assert created.status_code == 201
    return created.json()


@pytest.fixture
def client(server, sim) -> hubspot.HubSpot:
    """Return the official client, pointed at the simulator through its ``host`` setting."""
    return hubspot.HubSpot(access_token=TOKEN, host=server.base_url)


# --- Objects --------------------------------------------------------------------------------------


def test_read_object_returns_requested_properties_and_ordered_associations(call, deal):
    response = call(
        "GET",
        "/crm/v3/objects/deals/614?properties=dealname,amount,closedate"
        "&associations=contacts,line_items,quotes,widgets",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "614" and body["archived"] is False
    assert body["properties"]["dealname"] == "Acme renewal"
    assert body["properties"]["amount"] == "1200"
    assert body["properties"]["closedate"] is None
    assert body["properties"]["hs_object_id"] == "614"
    assert set(body["properties"]) == {
        "dealname",
        "amount",
        "closedate",
        "hs_object_id",
        "createdate",
        "hs_lastmodifieddate",
    }
    assert body["associations"]["contacts"]["results"] == [
        {"id": "52", "type": "deal_to_contact"},
        {"id": "51", "type": "deal_to_contact"},
    ]
    assert [r["id"] for r in body["associations"]["line_items"]["results"]] == ["7", "8"]
    assert "quotes" not in body["associations"]


def test_type_id_path_reads_the_same_object_as_the_name_path(call, deal):
    by_id = call("GET", "/crm/v3/objects/0-3/614?properties=dealname").json()
    by_name = call("GET", "/crm/v3/objects/deals/614?properties=dealname").json()
    assert by_id == by_name


def test_unknown_object_answers_404_object_not_found(call, deal):
    response = call("GET", "/crm/v3/objects/deals/999")
    assert response.status_code == 404
    body = response.json()
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["message"] == "Object not found. objectId are usually numeric."
    assert body["status"] == "error" and body["correlationId"]


def test_objects_are_visible_to_their_own_portal_only(call, deal):
    assert call("GET", "/crm/v3/objects/deals/614", token=OTHER_TOKEN).status_code == 404


def test_create_then_update_object_stores_string_properties(call, sim, deal):
    created = call(
        "POST",
        "/crm/v3/objects/line_items",
        json={
            "properties": {"name": "Setup", "quantity": 3},
            "associations": [
                {
                    "to": {"id": "614"},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}],
                }
            ],
        },
    )
    assert created.status_code == 201
    item_id = created.json()["id"]
    assert item_id.isdigit() and created.json()["properties"]["quantity"] == "3"
    assert sim.associated_ids(PORTAL, "deals", "614", "line_items") == ["7", "8", item_id]

    updated = call("PATCH", f"/crm/v3/objects/line_items/{item_id}", json={"properties": {"quantity": "4"}})
    assert updated.status_code == 200
    assert sim.get_object(PORTAL, "line_items", item_id)["properties"]["quantity"] == "4"


def test_admin_object_view_shows_all_properties_and_associations(admin, deal):
    view = admin("GET", f"/objects/{PORTAL}/deals/614").json()
    assert view["properties"]["dealname"] == "Acme renewal"
    assert view["associations"] == {"contacts": ["52", "51"], "line_items": ["7", "8"]}
    assert admin("GET", f"/objects/{PORTAL}/deals/615").status_code == 404


def test_batch_read_with_a_missing_id_answers_207_with_the_found_objects(call, deal):
    response = call(
        "POST",
        "/crm/v3/objects/line_items/batch/read",
        json={"inputs": [{"id": "7"}, {"id": "9"}, {"id": "8"}], "properties": ["name", "quantity"]},
    )
    assert response.status_code == 207
    body = response.json()
    assert [r["id"] for r in body["results"]] == ["7", "8"]
    assert body["results"][0]["properties"]["quantity"] == "2"
    assert body["numErrors"] == 1
    error = body["errors"][0]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"] == {"ids": ["9"]}
    assert error["message"].startswith("Could not get some LINE_ITEM objects")


def test_batch_read_over_100_inputs_answers_400(call, deal):
    inputs = [{"id": str(n)} for n in range(101)]
    response = call("POST", "/crm/v3/objects/line_items/batch/read", json={"inputs": inputs, "properties": []})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_batch_read_by_id_property(call, deal):
    response = call(
        "POST",
        "/crm/v3/objects/contacts/batch/read",
        json={"inputs": [{"id": "bob@example.com"}], "properties": ["email"], "idProperty": "email"},
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == ["52"]


def test_properties_api_lists_commerce_payment_properties(call):
    response = call("GET", "/crm/v3/properties/commerce_payments")
    names = {item["name"] for item in response.json()["results"]}
    assert {
        "hs_initial_amount",
        "hs_initiated_date",
        "hs_latest_status",
        "hs_fees_amount",
        "hs_payment_source_name",
    } <= names


# --- Associations v4 ------------------------------------------------------------------------------


def test_v4_association_read_keeps_order_and_type_ids(call, deal):
    response = call("GET", "/crm/v4/objects/deals/614/associations/contacts")
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"toObjectId": 52, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]},
        {"toObjectId": 51, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]},
    ]
    reverse = call("GET", "/crm/v4/objects/0-1/51/associations/0-3").json()["results"]
    assert reverse == [
        {"toObjectId": 614, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 4, "label": None}]}
    ]


def test_v4_batch_read_reports_objects_without_associations_with_207(call, deal):
    response = call(
        "POST",
        "/crm/v4/associations/deals/line_items/batch/read",
        json={"inputs": [{"id": "614"}, {"id": "700"}]},
    )
    assert response.status_code == 207
    body = response.json()
    assert body["results"] == [
        {
            "from": {"id": "614"},
            "to": [
                {
                    "toObjectId": 7,
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 19, "label": None}],
                },
                {
                    "toObjectId": 8,
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 19, "label": None}],
                },
            ],
        }
    ]
    assert body["errors"][0]["context"]["fromObjectId"] == ["700"]
    assert body["errors"][0]["message"] == "No line_item is associated with deal 700."


def test_put_default_association_links_both_ways(call, sim, deal):
    sim.add_object(PORTAL, "quotes", {"hs_title": "Q1"}, object_id="900")
    response = call("PUT", "/crm/v4/objects/quotes/900/associations/default/contacts/51")
    assert response.status_code == 200
    spec = response.json()["results"][0]["associationSpec"]
    assert spec == {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 69}
    assert sim.associated_ids(PORTAL, "contacts", "51", "quotes") == ["900"]


# --- Search ---------------------------------------------------------------------------------------


@pytest.fixture
def contacts(sim):
    """Seed contacts for search tests."""
    rows = [
        {"email": "Ann@Example.com", "firstname": "Ann", "lifecyclestage": "customer", "zip": "1000"},
        {"email": "bob@example.com", "firstname": "Bob", "lifecyclestage": "lead", "zip": "250"},
        {"email": "cy@other.org", "firstname": "Cy", "lifecyclestage": "lead", "phone": "555"},
    ]
    return [sim.add_object(PORTAL, "contacts", row)["id"] for row in rows]


def _search(call, *groups, **extra) -> requests.Response:
    """Search contacts with the given filter groups."""
    body = {"filterGroups": [{"filters": list(group)} for group in groups], "properties": ["email"], **extra}
    return call("POST", "/crm/v3/objects/contacts/search", json=body)


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ([[{"propertyName": "email", "operator": "EQ", "value": "ann@example.COM"}]], [0]),
        ([[{"propertyName": "firstname", "operator": "IN", "values": ["bob", "cy"]}]], [1, 2]),
        ([[{"propertyName": "phone", "operator": "HAS_PROPERTY"}]], [2]),
        ([[{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@example.com"}]], [0, 1]),
        ([[{"propertyName": "zip", "operator": "GT", "value": "300"}]], [0]),
        (
            [
                [{"propertyName": "firstname", "operator": "EQ", "value": "Cy"}],
                [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}],
            ],
            [0, 2],
        ),
        (
            [
                [
                    {"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"},
                    {"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"},
                ]
            ],
            [1],
        ),
    ],
    ids=["eq-case-insensitive", "in", "has-property", "contains-token", "gt-numeric", "or-of-groups", "and"],
)
def test_search_operators(call, contacts, groups, expected):
    response = _search(call, *groups)
    assert response.status_code == 200
    body = response.json()
    assert [r["id"] for r in body["results"]] == [contacts[i] for i in expected]
    assert body["total"] == len(expected)
    assert set(body["results"][0]["properties"]) >= {"email", "hs_object_id"}


def test_search_pages_with_limit_and_after(call, contacts):
    first = _search(call, limit=2).json()
    assert [r["id"] for r in first["results"]] == contacts[:2] and first["total"] == 3
    second = _search(call, limit=2, after=first["paging"]["next"]["after"]).json()
    assert [r["id"] for r in second["results"]] == contacts[2:] and "paging" not in second


def test_search_sorts_descending(call, contacts):
    body = _search(call, sorts=[{"propertyName": "firstname", "direction": "DESCENDING"}]).json()
    assert [r["id"] for r in body["results"]] == list(reversed(contacts))


def test_search_rejects_bad_limit_and_operator(call, contacts):
    assert _search(call, limit=201).status_code == 400
    bad = _search(call, [{"propertyName": "email", "operator": "LIKE", "value": "x"}])
    assert bad.status_code == 400 and "LIKE" in bad.json()["message"]


def test_evaluate_filter_groups_handles_ranges_negations_and_dates():
    props = {"amount": "150", "stage": "won", "closedate": "2024-03-01T00:00:00Z", "note": None}
    assert evaluate_filter_groups(
        [
            {
                "filters": [
                    {"propertyName": "amount", "operator": "BETWEEN", "value": "100", "highValue": 200},
                    {"propertyName": "stage", "operator": "NOT_IN", "values": ["lost"]},
                    {"propertyName": "note", "operator": "NEQ", "value": "x"},
                    {"propertyName": "closedate", "operator": "GTE", "value": "1704067200000"},
                    {"propertyName": "amount", "operator": "LT", "value": 1000},
                ]
            }
        ],
        props,
    )
    assert not evaluate_filter_groups(
        [{"filters": [{"propertyName": "amount", "operator": "LTE", "value": 149}]}], props
    )
    assert evaluate_filter_groups([], props)
    with pytest.raises(ValueError):
        evaluate_filter_groups([{"filters": [{"propertyName": "amount", "operator": "NOPE"}]}], props)


# --- Callbacks ------------------------------------------------------------------------------------


def test_single_callback_completion_is_recorded(call, admin):
    response = call(
        "POST",
        "/automation/v4/actions/callbacks/ap-1-2-3/complete",
        json={"outputFields": {"hs_execution_state": "SUCCESS", "quickbooks_id": "145"}},
    )
    assert response.status_code == 204
    records = admin("GET", "/callbacks", params={"callbackId": "ap-1-2-3"}).json()
    assert len(records) == 1
    assert records[0]["portal_id"] == PORTAL
    assert records[0]["output_fields"] == {"hs_execution_state": "SUCCESS", "quickbooks_id": "145"}
    assert records[0]["received_at"] and records[0]["duplicate"] is False


def test_batch_callback_completion_records_in_order_and_flags_duplicates(call, sim):
    call(
        "POST",
        "/automation/v4/actions/callbacks/cb-1/complete",
        json={"outputFields": {"hs_execution_state": "SUCCESS"}},
    )
    response = call(
        "POST",
        "/automation/v4/actions/callbacks/complete",
        json={
            "inputs": [
                {"callbackId": "cb-2", "outputFields": {"hs_execution_state": "FAIL_CONTINUE"}},
                {"callbackId": "cb-1", "outputFields": {"hs_execution_state": "SUCCESS"}},
            ]
        },
    )
    assert response.status_code == 204
    assert [c["callback_id"] for c in sim.completions()] == ["cb-1", "cb-2", "cb-1"]
    assert sim.duplicates == 1
    assert [c["duplicate"] for c in sim.completions("cb-1")] == [False, True]


def test_invalid_execution_state_answers_400_and_records_nothing(call, sim):
    single = call(
        "POST",
        "/automation/v4/actions/callbacks/cb-1/complete",
        json={"outputFields": {"hs_execution_state": "DONE"}},
    )
    assert single.status_code == 400 and "hs_execution_state" in single.json()["message"]
    batch = call(
        "POST",
        "/automation/v4/actions/callbacks/complete",
        json={
            "inputs": [
                {"callbackId": "cb-2", "outputFields": {"hs_execution_state": "SUCCESS"}},
                {"callbackId": "cb-3", "outputFields": {}},
            ]
        },
    )
    assert batch.status_code == 400
    assert sim.completions() == []


def test_batch_callback_over_100_inputs_answers_400(call, sim):
    inputs = [{"callbackId": f"cb-{n}", "outputFields": {"hs_execution_state": "SUCCESS"}} for n in range(101)]
    assert call("POST", "/automation/v4/actions/callbacks/complete", json={"inputs": inputs}).status_code == 400
    assert sim.completions() == []


def test_callbacks_can_be_cleared(call, admin):
    call(
        "POST",
        "/automation/v4/actions/callbacks/cb-1/complete",
        json={"outputFields": {"hs_execution_state": "BLOCK"}},
    )
    assert admin("DELETE", "/callbacks").status_code == 204
    assert admin("GET", "/callbacks").json() == []


# --- Authentication and OAuth ---------------------------------------------------------------------


def test_unknown_or_missing_token_answers_401_invalid_authentication(call):
    for token in ("nope", None):
        response = call("GET", "/crm/v3/objects/deals/1", token=token)
        assert response.status_code == 401
        assert response.json()["category"] == "INVALID_AUTHENTICATION"
        assert response.json()["message"].startswith("Authentication credentials not found")


def test_expired_token_answers_401_expired_authentication(call, admin):
    assert admin("POST", "/tokens/expire", json={"access_token": TOKEN}).status_code == 200
    response = call("GET", "/crm/v3/objects/deals/1")
    assert response.status_code == 401
    assert response.json()["category"] == "EXPIRED_AUTHENTICATION"


def _token_form(**fields) -> dict:
    """Return a refresh_token grant form with the simulator's client credentials."""
    return {
        "grant_type": "refresh_token",
        "client_id": "sim-hs-client",
        "client_secret": "sim-hs-secret",
        "refresh_token": REFRESH,
        **fields,
    }


def test_refresh_issues_a_working_token_and_keeps_the_refresh_token(call, admin, sim):
    admin("POST", "/tokens/expire", json={"access_token": TOKEN})
    response = call("POST", "/oauth/v1/token", token=None, data=_token_form())
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["refresh_token"] == REFRESH
    assert tokens["expires_in"] == 1800 and tokens["token_type"] == "bearer"
    assert tokens["access_token"] != TOKEN
    assert call("GET", "/crm/v3/properties/deals", token=tokens["access_token"]).status_code == 200
    assert sim.refresh_count(PORTAL) == 1
    assert admin("GET", "/stats").json()["refreshes"][str(PORTAL)] == 1
    info = call("GET", f"/oauth/v1/access-tokens/{tokens['access_token']}", token=None).json()
    assert info["hub_id"] == PORTAL and info["token_type"] == "access" and info["expires_in"] > 0


def test_bad_refresh_token_and_bad_client_answer_400(call):
    bad_token = call("POST", "/oauth/v1/token", token=None, data=_token_form(refresh_token="nope"))
    assert bad_token.status_code == 400
    assert bad_token.json()["status"] == "BAD_REFRESH_TOKEN"
    assert bad_token.json()["message"] == "missing or unknown refresh token"
    bad_client = call("POST", "/oauth/v1/token", token=None, data=_token_form(client_id="other"))
    assert bad_client.status_code == 400 and bad_client.json()["status"] == "BAD_CLIENT_ID"


def test_authorization_code_is_exchanged_once(call, admin):
    admin("POST", "/auth-codes", json={"code": "c-1", "portal_id": OTHER_PORTAL, "redirect_uri": "https://x/cb"})
    form = {
        "grant_type": "authorization_code",
        "client_id": "sim-hs-client",
        "client_secret": "sim-hs-secret",
        "code": "c-1",
        "redirect_uri": "https://x/cb",
    }
    first = call("POST", "/oauth/v1/token", token=None, data=form)
    assert first.status_code == 200 and first.json()["refresh_token"]
    info = call("GET", f"/oauth/v1/access-tokens/{first.json()['access_token']}", token=None).json()
    assert info["hub_id"] == OTHER_PORTAL
    assert call("POST", "/oauth/v1/token", token=None, data=form).json()["status"] == "BAD_AUTH_CODE"


# --- Rate limits, faults, request log -------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(call, admin):
    admin("POST", "/settings", json={"limit_per_10s": 3})
    statuses = [call("GET", "/crm/v3/properties/deals").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = call("GET", "/crm/v3/properties/deals")
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["errorType"] == "RATE_LIMIT" and limited.json()["policyName"] == "SECONDLY"
    assert call("GET", "/crm/v3/properties/deals", token=OTHER_TOKEN).status_code == 200


def test_retry_after_can_be_turned_off(call, sim):
    sim.configure(limit_per_10s=1, send_retry_after=False)
    call("GET", "/crm/v3/properties/deals")
    limited = call("GET", "/crm/v3/properties/deals")
    assert limited.status_code == 429 and "Retry-After" not in limited.headers


def test_search_is_limited_to_four_requests_per_second(call, contacts):
    started = time.monotonic()
    statuses = [_search(call).status_code for _ in range(5)]
    if time.monotonic() - started < 1.0:
        assert statuses == [200, 200, 200, 200, 429]


def test_injected_faults_answer_the_next_matching_requests(call, admin, deal):
    admin(
        "POST",
        "/faults",
        json={"method": "GET", "path": r"^/crm/v3/objects/deals/", "status": 503, "count": 2},
    )
    admin(
        "POST",
        "/faults",
        json={
            "path": "batch/read",
            "status": 429,
            "headers": {"Retry-After": "2"},
            "body": {"status": "error", "message": "custom"},
        },
    )
    statuses = [call("GET", "/crm/v3/objects/deals/614").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    limited = call("POST", "/crm/v3/objects/line_items/batch/read", json={"inputs": [{"id": "7"}]})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.json() == {"status": "error", "message": "custom"}
    logged = [(r["method"], r["path"], r["status"]) for r in admin("GET", "/requests").json()]
    assert logged[-4:] == [
        ("GET", "/crm/v3/objects/deals/614", 503),
        ("GET", "/crm/v3/objects/deals/614", 503),
        ("GET", "/crm/v3/objects/deals/614", 200),
        ("POST", "/crm/v3/objects/line_items/batch/read", 429),
    ]


def test_fault_delay_and_clearing(call, admin, deal):
    admin("POST", "/faults", json={"path": "deals", "status": 500, "delay": 0.3, "count": 5})
    started = time.monotonic()
    assert call("GET", "/crm/v3/objects/deals/614").status_code == 500
    assert time.monotonic() - started >= 0.3
    assert admin("DELETE", "/faults").status_code == 204
    assert call("GET", "/crm/v3/objects/deals/614").status_code == 200


def test_request_log_records_api_calls_only(call, admin):
    call("GET", "/crm/v3/objects/deals/1?properties=amount")
    logged = admin("GET", "/requests").json()
    assert logged == [
        {
            "method": "GET",
            "path": "/crm/v3/objects/deals/1",
            "query": {"properties": ["amount"]},
            "body": None,
            "status": 404,
            "portal_id": PORTAL,
        }
    ]
    assert admin("DELETE", "/requests").status_code == 204
    assert admin("GET", "/requests").json() == []


def test_admin_portals_and_reset(server, admin):
    assert admin("POST", "/portals", json={"portal_id": 303, "access_token": "tok-303"}).status_code == 201
    headers = {"Authorization": "Bearer tok-303"}
    assert requests.get(f"{server.base_url}/crm/v3/properties/deals", headers=headers, timeout=10).ok
    admin("POST", "/reset")
    assert requests.get(f"{server.base_url}/crm/v3/properties/deals", headers=headers, timeout=10).status_code == 401


# --- The official hubspot-api-client --------------------------------------------------------------


def test_client_reads_a_deal_with_associations(client, deal):
    found = client.crm.deals.basic_api.get_by_id(
        "614", properties=["dealname", "amount"], associations=["contacts", "line_items"]
    )
    assert found.id == "614" and found.properties["dealname"] == "Acme renewal"
    assert [a.id for a in found.associations["contacts"].results] == ["52", "51"]
    assert [a.id for a in found.associations["line_items"].results] == ["7", "8"]


def test_client_batch_reads_line_items(client, deal):
    batch = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id="7"), SimplePublicObjectId(id="8")],
        properties=["name", "quantity", "price"],
        properties_with_history=[],
    )
    answer = client.crm.line_items.batch_api.read(batch)
    assert answer.status == "COMPLETE"
    assert {r.id: r.properties["quantity"] for r in answer.results} == {"7": "2", "8": "1"}


def test_client_reads_v4_associations(client, deal):
    page = client.crm.associations.v4.basic_api.get_page("deals", "614", "contacts")
    assert [r.to_object_id for r in page.results] == ["52", "51"]
    assert page.results[0].association_types[0].type_id == 3
    batch = BatchInputPublicFetchAssociationsBatchRequest(inputs=[PublicFetchAssociationsBatchRequest(id="614")])
    answer = client.crm.associations.v4.batch_api.get_page("deals", "line_items", batch)
    assert [t.to_object_id for t in answer.results[0].to] == ["7", "8"]


def test_client_searches_with_filter_groups(client, contacts):
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="lifecyclestage", operator="EQ", value="LEAD")])],
        properties=["email"],
        limit=10,
        after="0",
        sorts=[],
    )
    answer = client.crm.contacts.search_api.do_search(public_object_search_request=request)
    assert answer.total == 2
    assert [r.properties["email"] for r in answer.results] == ["bob@example.com", "cy@other.org"]


def test_client_completes_callbacks(client, sim):
    callbacks = client.automation.actions.callbacks_api
    callbacks.complete("cb-1", CallbackCompletionRequest(output_fields={"hs_execution_state": "SUCCESS"}))
    callbacks.complete_batch(
        BatchInputCallbackCompletionBatchRequest(
            inputs=[
                CallbackCompletionBatchRequest(
                    callback_id="cb-2", output_fields={"hs_execution_state": "FAIL_CONTINUE"}
                ),
                CallbackCompletionBatchRequest(callback_id="cb-3", output_fields={"hs_execution_state": "SUCCESS"}),
            ]
        )
    )
    assert [(c["callback_id"], c["output_fields"]["hs_execution_state"]) for c in sim.completions()] == [
        ("cb-1", "SUCCESS"),
        ("cb-2", "FAIL_CONTINUE"),
        ("cb-3", "SUCCESS"),
    ]
    assert sim.duplicates == 0
