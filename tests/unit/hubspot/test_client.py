"""The HubSpot client against stubbed HTTP: CRM reads, batching, paging, callbacks, error classes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from services.hubspot.client import CrmObject, HubSpotClient
from services.transport.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceError,
    TransientError,
)
from tests.fakes import FakeTokens, RecordingGate

BASE_URL = "https://api.hubapi.example"
PORTAL_ID = 102670506


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens("hs-access-1", "hs-access-2")


@pytest.fixture
def client(tokens: FakeTokens) -> HubSpotClient:
    return HubSpotClient(BASE_URL + "/", PORTAL_ID, tokens, session=requests.Session(), timeout=5)


def bearer(token: str) -> Any:
    return matchers.header_matcher({"Authorization": f"Bearer {token}"})


def record(object_id: str | int, **properties: Any) -> dict[str, Any]:
    """Return a CRM record as the batch read answers it."""
    return {"id": str(object_id), "properties": {"hs_object_id": str(object_id), **properties}, "archived": False}


def association_page(ids: list[int], after: str | None = None) -> dict[str, Any]:
    """Return a page of v4 associations."""
    page: dict[str, Any] = {
        "results": [
            {"toObjectId": i, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]}
            for i in ids
        ]
    }
    if after:
        page["paging"] = {"next": {"after": after, "link": "https://api.hubapi.example/next"}}
    return page


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


def failing_read(client: HubSpotClient) -> ServiceError:
    """Read deal 614 and return the error it raised."""
    with pytest.raises(ServiceError) as raised:
        client.read_object("deals", "614", ["dealname"])
    return raised.value


# read_object -------------------------------------------------------------------------------------


def test_read_object_returns_properties_and_associated_ids_in_order(
    http: responses.RequestsMock, client: HubSpotClient
) -> None:
    http.get(
        f"{BASE_URL}/crm/v3/objects/deals/614",
        match=[
            matchers.query_param_matcher({"properties": "dealname,amount", "associations": "contacts,line_items"}),
            bearer("hs-access-1"),
        ],
        json={
            "id": "614",
            "properties": {"dealname": "Acme renewal", "amount": "1200"},
            "associations": {
                "contacts": {
                    "results": [{"id": "51", "type": "deal_to_contact"}, {"id": "7", "type": "deal_to_contact"}]
                },
                "line items": {
                    "results": [{"id": "903", "type": "deal_to_line_item"}, {"id": "901", "type": "deal_to_line_item"}]
                },
            },
        },
    )

    deal = client.read_object("deals", "614", ["dealname", "amount"], ["contacts", "line_items"])

    assert deal == CrmObject(
        "614",
        {"dealname": "Acme renewal", "amount": "1200"},
        {"contacts": ["51", "7"], "line_items": ["903", "901"]},
    )


def test_read_object_without_associations_asks_only_for_properties(
    http: responses.RequestsMock, client: HubSpotClient
) -> None:
    http.get(
        f"{BASE_URL}/crm/v3/objects/contacts/51",
        match=[matchers.query_param_matcher({"properties": "email"})],
        json={"id": "51", "properties": {"email": "ann@acme.com"}},
    )
    assert client.read_object("contacts", "51", ["email"]) == CrmObject("51", {"email": "ann@acme.com"}, {})


def test_read_object_gives_an_empty_list_for_an_association_with_no_records(
    http: responses.RequestsMock, client: HubSpotClient
) -> None:
    http.get(f"{BASE_URL}/crm/v3/objects/deals/614", json={"id": "614", "properties": {}})
    deal = client.read_object("deals", "614", ["dealname"], ["contacts", "line_items"])
    assert deal.associations == {"contacts": [], "line_items": []}


# batch_read --------------------------------------------------------------------------------------


def test_batch_read_splits_more_than_100_ids_and_keeps_their_order(
    http: responses.RequestsMock, client: HubSpotClient
) -> None:
    ids = [str(1000 - i) for i in range(250)]
    url = f"{BASE_URL}/crm/v3/objects/line_items/batch/read"
    for batch in (ids[:100], ids[100:200], ids[200:]):
        http.post(
            url,
            match=[
                matchers.json_params_matcher({"inputs": [{"id": i} for i in batch], "properties": ["name", "price"]})
            ],
            # HubSpot does not promise the order of results.
            json={"status": "COMPLETE", "results": [record(i, name=f"Item {i}") for i in reversed(batch)]},
        )

    found = client.batch_read("line_items", ids, ["name", "price"])

    assert [item.id for item in found] == ids
    assert found[0].properties["name"] == "Item 1000"
    assert [len(sent_json(call)["inputs"]) for call in http.calls] == [100, 100, 50]


def test_batch_read_tolerates_a_207_with_missing_ids(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.post(
        f"{BASE_URL}/crm/v3/objects/line_items/batch/read",
        status=207,
        json={
            "status": "COMPLETE",
            "results": [record(3), record(1)],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": ["2"]}}],
        },
    )
    assert [item.id for item in client.batch_read("line_items", ["1", "2", "3"], ["name"])] == ["1", "3"]


def test_batch_read_asks_for_each_id_once(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.post(
        f"{BASE_URL}/crm/v3/objects/products/batch/read",
        match=[matchers.json_params_matcher({"inputs": [{"id": "5"}, {"id": "6"}], "properties": ["name"]})],
        json={"results": [record(5), record(6)]},
    )
    assert [item.id for item in client.batch_read("products", ["5", "6", "5"], ["name"])] == ["5", "6", "5"]


def test_batch_read_of_no_ids_sends_nothing(http: responses.RequestsMock, client: HubSpotClient) -> None:
    assert client.batch_read("products", [], ["name"]) == []
    assert len(http.calls) == 0


# associations (v4) -------------------------------------------------------------------------------


def test_associations_follow_paging_in_order(http: responses.RequestsMock, client: HubSpotClient) -> None:
    url = f"{BASE_URL}/crm/v4/objects/deals/614/associations/contacts"
    http.get(url, match=[matchers.query_param_matcher({"limit": "500"})], json=association_page([51, 7], after="MjA="))
    http.get(
        url,
        match=[matchers.query_param_matcher({"limit": "500", "after": "MjA="})],
        json=association_page([12], after="NDA="),
    )
    http.get(url, match=[matchers.query_param_matcher({"limit": "500", "after": "NDA="})], json=association_page([3]))

    assert client.associations("deals", "614", "contacts") == ["51", "7", "12", "3"]
    assert len(http.calls) == 3


def test_associations_of_a_record_without_any_are_empty(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.get(f"{BASE_URL}/crm/v4/objects/deals/614/associations/contacts", json={"results": []})
    assert client.associations("deals", "614", "contacts") == []


# complete_callbacks ------------------------------------------------------------------------------


def test_one_callback_is_completed_with_the_single_endpoint(
    http: responses.RequestsMock, client: HubSpotClient
) -> None:
    outputs = {"hs_execution_state": "SUCCESS", "quickbooks_id": "145"}
    http.post(
        f"{BASE_URL}/automation/v4/actions/callbacks/ap-1-2-3-0/complete",
        match=[matchers.json_params_matcher({"outputFields": outputs}), bearer("hs-access-1")],
        status=204,
    )
    client.complete_callbacks([("ap-1-2-3-0", outputs)])
    assert len(http.calls) == 1


def test_many_callbacks_are_completed_in_batches_of_100(http: responses.RequestsMock, client: HubSpotClient) -> None:
    completions = [(f"ap-1-2-{n}-0", {"hs_execution_state": "SUCCESS", "quickbooks_id": str(n)}) for n in range(230)]
    http.post(f"{BASE_URL}/automation/v4/actions/callbacks/complete", status=204)
    http.post(f"{BASE_URL}/automation/v4/actions/callbacks/complete", status=204)
    http.post(f"{BASE_URL}/automation/v4/actions/callbacks/complete", status=204)

    client.complete_callbacks(completions)

    sent = [sent_json(call)["inputs"] for call in http.calls]
    assert [len(batch) for batch in sent] == [100, 100, 30]
    assert [(item["callbackId"], item["outputFields"]) for batch in sent for item in batch] == completions


def test_two_callbacks_use_the_batch_endpoint(http: responses.RequestsMock, client: HubSpotClient) -> None:
    completions = [("ap-1", {"hs_execution_state": "SUCCESS"}), ("ap-2", {"hs_execution_state": "FAIL_CONTINUE"})]
    http.post(
        f"{BASE_URL}/automation/v4/actions/callbacks/complete",
        match=[
            matchers.json_params_matcher(
                {
                    "inputs": [
                        {"callbackId": "ap-1", "outputFields": {"hs_execution_state": "SUCCESS"}},
                        {"callbackId": "ap-2", "outputFields": {"hs_execution_state": "FAIL_CONTINUE"}},
                    ]
                }
            )
        ],
        status=204,
    )
    client.complete_callbacks(completions)
    assert len(http.calls) == 1


# Token refresh and errors ------------------------------------------------------------------------


def test_a_401_refreshes_the_token_and_retries_once(
    http: responses.RequestsMock, client: HubSpotClient, tokens: FakeTokens
) -> None:
    url = f"{BASE_URL}/crm/v3/objects/deals/614"
    http.get(
        url, match=[bearer("hs-access-1")], status=401, json={"status": "error", "category": "EXPIRED_AUTHENTICATION"}
    )
    http.get(url, match=[bearer("hs-access-2")], json={"id": "614", "properties": {"dealname": "Acme"}})

    assert client.read_object("deals", "614", ["dealname"]).properties == {"dealname": "Acme"}
    assert tokens.refreshed == ["hs-access-1"]
    assert client.calls == 2


def test_a_401_after_the_refresh_is_an_authentication_error(
    http: responses.RequestsMock, client: HubSpotClient, tokens: FakeTokens
) -> None:
    url = f"{BASE_URL}/crm/v3/objects/deals/614"
    body = {"status": "error", "message": "Authentication credentials not found", "category": "INVALID_AUTHENTICATION"}
    http.get(url, match=[bearer("hs-access-1")], status=401, json=body)
    http.get(url, match=[bearer("hs-access-2")], status=401, json=body)

    error = failing_read(client)

    assert type(error) is AuthenticationError
    assert error.code == "INVALID_AUTHENTICATION"
    assert tokens.refreshed == ["hs-access-1"]
    assert len(http.calls) == 2


def test_a_429_is_rate_limited_with_retry_after(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.get(
        f"{BASE_URL}/crm/v3/objects/deals/614",
        status=429,
        headers={"Retry-After": "2"},
        json={
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "c0ffee",
            "policyName": "SECONDLY",
        },
    )
    error = failing_read(client)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 2.0
    assert error.code == "RATE_LIMIT"
    assert error.request_id == "c0ffee"
    assert "secondly limit" in error.message


def test_a_429_without_retry_after_has_no_delay(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.get(f"{BASE_URL}/crm/v3/objects/deals/614", status=429, json={"status": "error", "errorType": "RATE_LIMIT"})
    error = failing_read(client)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_transient(http: responses.RequestsMock, client: HubSpotClient, status: int) -> None:
    http.get(
        f"{BASE_URL}/crm/v3/objects/deals/614",
        status=status,
        headers={"X-HubSpot-Correlation-Id": "abc-123"},
        body="Bad gateway",
    )
    error = failing_read(client)
    assert type(error) is TransientError
    assert error.http_status == status
    assert error.request_id == "abc-123"


def test_a_network_failure_is_transient(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.get(f"{BASE_URL}/crm/v3/objects/deals/614", body=requests.ConnectionError("connection reset"))
    assert type(failing_read(client)) is TransientError


def test_a_404_is_not_found(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.get(
        f"{BASE_URL}/crm/v3/objects/deals/614",
        status=404,
        json={
            "status": "error",
            "message": "Object not found.  objectId are usually numeric.",
            "category": "OBJECT_NOT_FOUND",
            "correlationId": "f00",
        },
    )
    error = failing_read(client)
    assert isinstance(error, NotFoundError)
    assert error.code == "OBJECT_NOT_FOUND"
    assert error.request_id == "f00"


def test_another_4xx_is_permanent(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.post(
        f"{BASE_URL}/automation/v4/actions/callbacks/ap-1/complete",
        status=400,
        json={"status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"},
    )
    with pytest.raises(ServiceError) as raised:
        client.complete_callbacks([("ap-1", {"hs_execution_state": "SUCCESS"})])
    assert type(raised.value) is PermanentError
    assert raised.value.code == "VALIDATION_ERROR"


def test_a_207_outside_a_batch_read_is_an_error(http: responses.RequestsMock, client: HubSpotClient) -> None:
    http.post(
        f"{BASE_URL}/automation/v4/actions/callbacks/complete", status=207, json={"errors": [{"status": "error"}]}
    )
    with pytest.raises(PermanentError):
        client.complete_callbacks([("ap-1", {}), ("ap-2", {})])


# The portal's gate -------------------------------------------------------------------------------


def test_every_request_goes_through_the_gate_and_a_429_is_told_to_it(
    http: responses.RequestsMock, tokens: FakeTokens
) -> None:
    gate = RecordingGate()
    client = HubSpotClient(BASE_URL, PORTAL_ID, tokens, session=requests.Session(), timeout=5, gate=gate)
    http.get(f"{BASE_URL}/crm/v3/objects/deals/614", json={"id": "614", "properties": {}})
    http.get(f"{BASE_URL}/crm/v3/objects/deals/614", status=429, headers={"Retry-After": "3"}, json={})

    client.read_object("deals", "614", ["dealname"])
    assert isinstance(failing_read(client), RateLimitedError)

    assert gate.kinds == ["call", "call"]
    assert gate.throttles == [3.0]
    assert gate.open == 0
