"""Action definitions: deciding what to create or update, and the client against stubbed HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from services.hubspot.definitions import CREATE, UNCHANGED, UPDATE, ActionDefinitions, changed_keys, plan
from services.transport.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceError,
    TransientError,
)

BASE_URL = "https://api.hubapi.example"
APP_ID = 4321
KEY = "dev-key"
LIST_URL = f"{BASE_URL}/automation/v4/actions/{APP_ID}"


def ours(name: str, **fields: Any) -> dict[str, Any]:
    """Return one of our definitions, as rendered from a manifest."""
    return {"actionUrl": f"https://qbo.example.com/actions/{name}", "published": True, "labels": {"en": {}}, **fields}


def stored(definition_id: str, definition: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Return a definition as HubSpot lists it: ours plus the keys HubSpot sets."""
    return {"id": definition_id, "revisionId": "3", "archivedAt": None, "functions": [], **definition, **fields}


# plan and changed_keys --------------------------------------------------------------------------------


def test_a_definition_not_stored_is_created() -> None:
    [change] = plan({"create_invoice": ours("create_invoice")}, [])

    assert change.kind == CREATE
    assert change.name == "create_invoice" and change.definition_id is None
    assert change.definition == ours("create_invoice")


def test_a_stored_definition_that_matches_is_unchanged_whatever_the_server_adds() -> None:
    mine = ours("create_invoice")

    [change] = plan({"create_invoice": mine}, [stored("17", mine, functions=[{"functionType": "PRE_ACTION"}])])

    assert (change.kind, change.definition_id, change.changed_keys) == (UNCHANGED, "17", ())


def test_a_stored_definition_that_differs_is_updated_naming_the_changed_keys_in_our_order() -> None:
    mine = ours("create_invoice", objectTypes=["DEAL", "QUOTE"])
    theirs = stored("17", mine, published=False, objectTypes=["DEAL"])

    [change] = plan({"create_invoice": mine}, [theirs])

    assert (change.kind, change.definition_id) == (UPDATE, "17")
    assert change.changed_keys == ("published", "objectTypes")
    assert change.definition == mine


def test_a_nested_difference_counts_and_a_key_missing_on_the_server_counts() -> None:
    mine = ours("create_invoice", labels={"en": {"actionName": "Create invoice"}}, executionRules=[])
    theirs = stored("17", {**mine, "labels": {"en": {"actionName": "Create an invoice"}}})
    del theirs["executionRules"]

    assert changed_keys(mine, theirs) == ("labels", "executionRules")


def test_server_only_keys_are_neither_compared_nor_sent() -> None:
    mine = {**ours("create_invoice"), "id": "99", "revisionId": "1", "archivedAt": None}

    [change] = plan({"create_invoice": mine}, [stored("17", ours("create_invoice"))])

    assert change.kind == UNCHANGED
    assert not {"id", "revisionId", "archivedAt"} & change.definition.keys()


def test_definitions_are_matched_by_action_url_only() -> None:
    invoice, estimate = ours("create_invoice"), ours("create_estimate")
    existing = [
        stored("5", ours("someone_else")),
        stored("6", estimate, published=False),
        stored("7", invoice),
    ]

    changes = plan({"create_invoice": invoice, "create_estimate": estimate, "create_expense": ours("x")}, existing)

    assert [(c.name, c.kind, c.definition_id) for c in changes] == [
        ("create_invoice", UNCHANGED, "7"),
        ("create_estimate", UPDATE, "6"),
        ("create_expense", CREATE, None),
    ]


def test_archived_definitions_do_not_count_and_the_first_live_match_is_the_one_kept() -> None:
    mine = ours("create_invoice")
    existing = [
        stored("3", mine, archivedAt="2024-01-01T00:00:00Z"),
        stored("4", mine, published=False),
        stored("8", mine),
    ]

    [change] = plan({"create_invoice": mine}, existing)

    assert (change.kind, change.definition_id, change.also_matching) == (UPDATE, "4", ("8",))


def test_only_archived_matches_mean_create() -> None:
    mine = ours("create_invoice")

    [change] = plan({"create_invoice": mine}, [stored("3", mine, archivedAt="2024-01-01T00:00:00Z")])

    assert change.kind == CREATE


def test_two_of_ours_with_one_url_are_refused() -> None:
    with pytest.raises(ValueError, match="actions/create_invoice"):
        plan({"a": ours("create_invoice"), "b": ours("create_invoice", published=False)}, [])


# The client -------------------------------------------------------------------------------------------


@pytest.fixture
def client() -> ActionDefinitions:
    return ActionDefinitions(BASE_URL + "/", APP_ID, KEY, session=requests.Session(), timeout=5, page_size=2)


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


def test_list_all_follows_the_pages_with_the_key_and_a_timeout(
    http: responses.RequestsMock, client: ActionDefinitions
) -> None:
    first = http.get(
        LIST_URL,
        match=[matchers.query_param_matcher({"hapikey": KEY, "limit": "2"})],
        json={"results": [{"id": "1"}, {"id": "2"}], "paging": {"next": {"after": "2", "link": "x"}}},
    )
    last = http.get(
        LIST_URL,
        match=[matchers.query_param_matcher({"hapikey": KEY, "limit": "2", "after": "2"})],
        json={"results": [{"id": "3"}]},
    )

    assert [d["id"] for d in client.list_all()] == ["1", "2", "3"]
    assert first.call_count == last.call_count == 1
    assert http.calls[0].request.req_kwargs["timeout"] == (5, 5)


def test_list_all_of_an_app_without_definitions_is_empty(
    http: responses.RequestsMock, client: ActionDefinitions
) -> None:
    http.get(LIST_URL, json={"results": []})

    assert client.list_all() == []


def test_create_posts_the_definition_and_returns_it_as_stored(
    http: responses.RequestsMock, client: ActionDefinitions
) -> None:
    definition = ours("create_invoice")
    http.post(
        LIST_URL,
        match=[matchers.query_param_matcher({"hapikey": KEY}), matchers.json_params_matcher(definition)],
        status=201,
        json={"id": "41", "revisionId": "1", **definition},
    )

    assert client.create(definition)["id"] == "41"


def test_update_patches_the_definition_by_id(http: responses.RequestsMock, client: ActionDefinitions) -> None:
    http.patch(
        f"{LIST_URL}/41",
        match=[matchers.query_param_matcher({"hapikey": KEY})],
        json={"id": "41", "revisionId": "2", "published": False},
    )

    answer = client.update("41", {"published": False})

    assert answer["revisionId"] == "2"
    assert sent_json(http.calls[0]) == {"published": False}


def failing_list(client: ActionDefinitions) -> ServiceError:
    """List the definitions and return the error it raised."""
    with pytest.raises(ServiceError) as raised:
        client.list_all()
    return raised.value


def test_a_401_is_an_authentication_error_that_does_not_repeat_the_key(
    http: responses.RequestsMock, client: ActionDefinitions
) -> None:
    http.get(
        LIST_URL,
        status=401,
        json={"status": "error", "message": "The API key provided is invalid.", "category": "INVALID_AUTHENTICATION"},
    )

    error = failing_list(client)

    assert type(error) is AuthenticationError
    assert (error.http_status, error.code) == (401, "INVALID_AUTHENTICATION")
    assert KEY not in str(error)


def test_a_429_is_rate_limited_with_retry_after(http: responses.RequestsMock, client: ActionDefinitions) -> None:
    http.get(
        LIST_URL,
        status=429,
        headers={"Retry-After": "3"},
        json={"status": "error", "message": "Slow down", "errorType": "RATE_LIMIT", "correlationId": "c0ffee"},
    )

    error = failing_list(client)

    assert isinstance(error, RateLimitedError)
    assert (error.retry_after, error.code, error.request_id) == (3.0, "RATE_LIMIT", "c0ffee")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient(http: responses.RequestsMock, client: ActionDefinitions, status: int) -> None:
    http.get(LIST_URL, status=status, headers={"X-HubSpot-Correlation-Id": "abc"}, body="Bad gateway")

    error = failing_list(client)

    assert type(error) is TransientError
    assert (error.http_status, error.request_id) == (status, "abc")


def test_a_network_failure_is_transient(http: responses.RequestsMock, client: ActionDefinitions) -> None:
    http.get(LIST_URL, body=requests.ConnectionError("connection reset"))

    assert type(failing_list(client)) is TransientError


def test_an_unknown_definition_is_not_found(http: responses.RequestsMock, client: ActionDefinitions) -> None:
    http.patch(
        f"{LIST_URL}/41",
        status=404,
        json={"status": "error", "message": "No action definition 41", "category": "OBJECT_NOT_FOUND"},
    )

    with pytest.raises(NotFoundError):
        client.update("41", {"published": True})


def test_a_refused_definition_is_permanent_with_status_code_and_correlation_id(
    http: responses.RequestsMock, client: ActionDefinitions
) -> None:
    http.post(
        LIST_URL,
        status=400,
        json={
            "status": "error",
            "message": "Some required fields were not set: [actionUrl]",
            "category": "VALIDATION_ERROR",
            "correlationId": "f00",
        },
    )

    with pytest.raises(ServiceError) as raised:
        client.create({"published": True})

    error = raised.value
    assert type(error) is PermanentError
    assert (error.http_status, error.code, error.request_id) == (400, "VALIDATION_ERROR", "f00")
    assert "actionUrl" in error.message
