"""The QuickBooks Online client against stubbed HTTP: query parameters, token refresh, error classes."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import responses
from responses import matchers

from services.quickbooks.client import QuickBooksClient, batch_item_error
from services.quickbooks.query import quote
from services.transport.errors import (
    AuthenticationError,
    ConnectionRevokedError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceError,
    TransientError,
)
from tests.fakes import FakeTokens, RecordingGate

BASE_URL = "https://sandbox-quickbooks.api.intuit.com/v3"
REALM_ID = "9130355"
COMPANY = f"{BASE_URL}/company/{REALM_ID}"


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def client(tokens: FakeTokens) -> QuickBooksClient:
    return QuickBooksClient(BASE_URL, REALM_ID, tokens, session=requests.Session(), timeout=5)


def invoice(**overrides: Any) -> dict[str, Any]:
    """Return an invoice create body."""
    return {
        "CustomerRef": {"value": "58"},
        "Line": [
            {"Amount": 100, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}
        ],
        **overrides,
    }


def fault(
    code: str,
    message: str = "A business validation error has occurred",
    detail: str = "",
    kind: str = "ValidationFault",
) -> dict[str, Any]:
    """Return a QuickBooks Fault body as Intuit documents it."""
    return {
        "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}], "type": kind},
        "time": "2025-09-29T09:17:31.892-07:00",
    }


def gateway_fault(code: str, message: str, detail: str, kind: str = "AUTHENTICATION") -> dict[str, Any]:
    """Return the lowercase fault body of Intuit's API gateway."""
    return {"fault": {"error": [{"message": message, "detail": detail, "code": code, "element": None}], "type": kind}}


def params(**extra: str) -> Any:
    """Match exactly these query parameters plus minorversion=75."""
    return matchers.query_param_matcher({"minorversion": "75", **extra})


def bearer(token: str) -> Any:
    return matchers.header_matcher({"Authorization": f"Bearer {token}", "Accept": "application/json"})


def failing_read(client: QuickBooksClient) -> ServiceError:
    """Read invoice 145 and return the error it raised."""
    with pytest.raises(ServiceError) as raised:
        client.read("Invoice", "145")
    return raised.value


# Query parameters and headers --------------------------------------------------------------------


def test_create_sends_minorversion_and_requestid_as_query_parameters(
    http: responses.RequestsMock, client: QuickBooksClient
) -> None:
    http.post(
        f"{COMPANY}/invoice",
        match=[params(requestid="exec-1-invoice"), bearer("access-1"), matchers.json_params_matcher(invoice())],
        json={"Invoice": {"Id": "145", "DocNumber": "1001"}, "time": "2025-09-29T09:17:31.892-07:00"},
    )
    assert client.create("Invoice", invoice(), requestid="exec-1-invoice") == {"Id": "145", "DocNumber": "1001"}


def test_update_sends_minorversion_and_requestid(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    body = {"Id": "58", "SyncToken": "0", "sparse": True, "DisplayName": "Acme"}
    http.post(f"{COMPANY}/customer", match=[params(requestid="exec-1-customer")], json={"Customer": {"Id": "58"}})
    assert client.update("Customer", body, requestid="exec-1-customer") == {"Id": "58"}


def test_reads_send_minorversion(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.get(f"{COMPANY}/invoice/145", match=[params(), bearer("access-1")], json={"Invoice": {"Id": "145"}})
    http.get(f"{COMPANY}/companyinfo/{REALM_ID}", match=[params()], json={"CompanyInfo": {"Country": "US"}})
    http.get(f"{COMPANY}/preferences", match=[params()], json={"Preferences": {"TaxPrefs": {}}})
    http.get(f"{COMPANY}/query", match=[params(query="select * from Term")], json={"QueryResponse": {}})

    assert client.read("Invoice", "145") == {"Id": "145"}
    assert client.company_info() == {"Country": "US"}
    assert client.preferences() == {"TaxPrefs": {}}
    assert client.query("select * from Term") == []
    assert all("minorversion=75" in call.request.url for call in http.calls)
    assert client.calls == 4


# Token refresh -----------------------------------------------------------------------------------


def test_a_401_refreshes_once_and_repeats_the_request_with_the_same_requestid(
    http: responses.RequestsMock, client: QuickBooksClient, tokens: FakeTokens
) -> None:
    expired = http.post(
        f"{COMPANY}/invoice",
        match=[params(requestid="exec-1-invoice"), bearer("access-1")],
        status=401,
        json=gateway_fault("3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401", "Token expired"),
    )
    repeated = http.post(
        f"{COMPANY}/invoice",
        match=[params(requestid="exec-1-invoice"), bearer("access-2")],
        json={"Invoice": {"Id": "145"}},
    )

    assert client.create("Invoice", invoice(), requestid="exec-1-invoice") == {"Id": "145"}
    assert tokens.refreshed == ["access-1"]
    assert expired.call_count == 1 and repeated.call_count == 1
    assert http.calls[0].request.body == http.calls[1].request.body
    assert client.calls == 2


def test_a_second_401_is_an_authentication_error_without_another_refresh(
    http: responses.RequestsMock, client: QuickBooksClient, tokens: FakeTokens
) -> None:
    body = gateway_fault(
        "3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401", "Malformed bearer token"
    )
    http.get(f"{COMPANY}/invoice/145", match=[bearer("access-1")], status=401, json=body)
    http.get(f"{COMPANY}/invoice/145", match=[bearer("access-2")], status=401, json=body)

    error = failing_read(client)

    assert type(error) is AuthenticationError
    assert tokens.refreshed == ["access-1"]
    assert len(http.calls) == 2


def test_the_lowercase_gateway_fault_is_parsed(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    body = gateway_fault(
        "3200",
        "message=AuthenticationFailed; errorCode=003200; statusCode=401",
        "Malformed bearer token: too short or too long",
    )
    http.get(f"{COMPANY}/invoice/145", status=401, json=body)
    http.get(f"{COMPANY}/invoice/145", status=401, json=body)

    error = failing_read(client)

    assert error.code == "3200"
    assert error.detail == "Malformed bearer token: too short or too long"
    assert "AuthenticationFailed" in error.message
    assert error.body == body


# Classification ----------------------------------------------------------------------------------


def test_a_429_is_rate_limited_with_the_retry_after_header(
    http: responses.RequestsMock, client: QuickBooksClient
) -> None:
    http.get(
        f"{COMPANY}/invoice/145",
        status=429,
        headers={"Retry-After": "7", "intuit_tid": "1-abc"},
        body='<Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message></Error>',
        content_type="application/xml",
    )
    error = failing_read(client)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 7.0
    assert error.http_status == 429
    assert error.request_id == "1-abc"


def test_a_429_without_retry_after_is_rate_limited_without_a_delay(
    http: responses.RequestsMock, client: QuickBooksClient
) -> None:
    http.get(f"{COMPANY}/invoice/145", status=429, json=fault("3001", "ThrottleExceeded"))
    error = failing_read(client)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient(http: responses.RequestsMock, client: QuickBooksClient, status: int) -> None:
    http.get(f"{COMPANY}/invoice/145", status=status, body="<html>Service Unavailable</html>")
    error = failing_read(client)
    assert type(error) is TransientError
    assert error.http_status == status
    assert error.body == "<html>Service Unavailable</html>"


@pytest.mark.parametrize(
    "failure",
    [requests.ConnectionError("connection refused"), requests.ReadTimeout("read timed out")],
    ids=["connection-error", "timeout"],
)
def test_a_network_failure_is_transient(
    http: responses.RequestsMock, client: QuickBooksClient, failure: Exception
) -> None:
    http.get(f"{COMPANY}/invoice/145", body=failure)
    error = failing_read(client)
    assert type(error) is TransientError
    assert error.service == "quickbooks"
    assert error.http_status is None
    assert error.__cause__ is failure


def test_a_validation_fault_is_permanent_with_code_message_detail_and_request_id(
    http: responses.RequestsMock, client: QuickBooksClient
) -> None:
    http.post(
        f"{COMPANY}/invoice",
        status=400,
        headers={"intuit_tid": "1-6512b9c4-7aa1b2"},
        json=fault(
            "6000", "A business validation error has occurred", "Make sure all your transactions have a GST/HST rate"
        ),
    )
    with pytest.raises(ServiceError) as raised:
        client.create("Invoice", invoice(), requestid="exec-1-invoice")

    error = raised.value
    assert type(error) is PermanentError
    assert error.http_status == 400
    assert error.code == "6000"
    assert error.detail == "Make sure all your transactions have a GST/HST rate"
    assert error.request_id == "1-6512b9c4-7aa1b2"
    assert "A business validation error has occurred" in error.message
    assert str(error).startswith("Request 1-6512b9c4-7aa1b2: ")


def test_object_not_found_610_is_not_found(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.get(f"{COMPANY}/invoice/145", status=400, json=fault("610", "Object Not Found", "Invoice 145 was deleted"))
    error = failing_read(client)
    assert isinstance(error, NotFoundError)
    assert error.code == "610"


def test_a_404_is_not_found(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.get(f"{COMPANY}/invoice/145", status=404, body="")
    assert isinstance(failing_read(client), NotFoundError)


def test_a_403_means_the_connection_was_revoked(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.get(
        f"{COMPANY}/invoice/145",
        status=403,
        json=gateway_fault(
            "3100", "message=AuthorizationFailed; errorCode=003100; statusCode=403", "", "AUTHORIZATION"
        ),
    )
    error = failing_read(client)
    assert isinstance(error, ConnectionRevokedError)
    assert error.code == "3100"


def test_a_fault_in_a_200_is_permanent(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.post(
        f"{COMPANY}/invoice", status=200, json=fault("6140", "Duplicate Document Number Error", "DocNumber=HS-614")
    )
    with pytest.raises(ServiceError) as raised:
        client.create("Invoice", invoice(DocNumber="HS-614"), requestid="exec-1-invoice")
    assert type(raised.value) is PermanentError
    assert raised.value.code == "6140"
    assert raised.value.http_status == 200


def test_a_200_that_is_not_json_is_transient(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.get(f"{COMPANY}/invoice/145", status=200, body="<html>maintenance</html>")
    assert type(failing_read(client)) is TransientError


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (fault("3001", "ThrottleExceeded"), TransientError),
        (fault("10000", "An application error has occurred", kind="SystemFault"), TransientError),
        (fault("2500", "Invalid Reference Id"), PermanentError),
    ],
    ids=["throttle-code", "system-fault", "invalid-reference"],
)
def test_a_400_is_classified_by_its_fault(
    http: responses.RequestsMock, client: QuickBooksClient, body: dict[str, Any], expected: type[ServiceError]
) -> None:
    http.get(f"{COMPANY}/invoice/145", status=400, json=body)
    assert type(failing_read(client)) is expected


# Queries -----------------------------------------------------------------------------------------


def test_query_url_encodes_the_statement_and_returns_the_entities(
    http: responses.RequestsMock, client: QuickBooksClient
) -> None:
    statement = "select * from Customer where DisplayName = " + quote("O'Brien & Sons")
    customers = [{"Id": "58", "DisplayName": "O'Brien & Sons"}]
    http.get(
        f"{COMPANY}/query",
        match=[params(query=statement)],
        json={"QueryResponse": {"Customer": customers, "startPosition": 1, "maxResults": 1}},
    )

    assert client.query(statement) == customers
    raw_query = http.calls[0].request.url.split("?", 1)[1]
    assert "query=select+%2A+from+Customer+where+DisplayName+%3D+%27O%5C%27Brien+%26+Sons%27" in raw_query


def test_a_query_without_hits_returns_an_empty_list(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.get(f"{COMPANY}/query", json={"QueryResponse": {}, "time": "2025-09-29T09:17:31.892-07:00"})
    assert client.query("select * from Item where Sku = 'none'") == []


def test_query_page_asks_for_one_page_of_at_most_1000(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.get(
        f"{COMPANY}/query",
        match=[params(query="SELECT * FROM Item WHERE Active = true STARTPOSITION 1001 MAXRESULTS 1000")],
        json={"QueryResponse": {"Item": [{"Id": "1"}]}},
    )
    assert client.query_page("Item", "Active = true", start=1001, size=5000) == [{"Id": "1"}]


def test_quote_escapes_an_apostrophe_with_a_backslash() -> None:
    assert quote("O'Brien") == "'O\\'Brien'"


def test_quote_escapes_a_backslash_before_the_apostrophes() -> None:
    assert quote("a\\'b") == "'a\\\\\\'b'"


# The company's gate ------------------------------------------------------------------------------


def test_every_request_goes_through_the_gate_including_the_one_after_a_refresh(
    http: responses.RequestsMock, tokens: FakeTokens
) -> None:
    gate = RecordingGate()
    client = QuickBooksClient(BASE_URL, REALM_ID, tokens, session=requests.Session(), timeout=5, gate=gate)
    http.get(f"{COMPANY}/invoice/145", status=401, json=fault("3200", "AuthenticationFailed"))
    http.get(f"{COMPANY}/invoice/145", json={"Invoice": {"Id": "145"}})

    client.read("Invoice", "145")

    assert gate.kinds == ["call", "call"]
    assert gate.throttles == []


def test_a_batch_request_is_a_batch_for_the_gate(http: responses.RequestsMock, tokens: FakeTokens) -> None:
    gate = RecordingGate()
    client = QuickBooksClient(BASE_URL, REALM_ID, tokens, session=requests.Session(), timeout=5, gate=gate)
    http.post(f"{COMPANY}/batch", json={"BatchItemResponse": []})

    client._request("POST", "batch", json={"BatchItemRequest": []})

    assert gate.kinds == ["batch"]


@pytest.mark.parametrize(("headers", "told"), [({}, None), ({"Retry-After": "7"}, 7.0)])
def test_a_429_is_told_to_the_gate_with_its_retry_after(
    http: responses.RequestsMock, tokens: FakeTokens, headers: dict[str, str], told: float | None
) -> None:
    gate = RecordingGate()
    client = QuickBooksClient(BASE_URL, REALM_ID, tokens, session=requests.Session(), timeout=5, gate=gate)
    http.get(f"{COMPANY}/invoice/145", status=429, headers=headers, body='<Error code="3001"/>')

    assert isinstance(failing_read(client), RateLimitedError)
    assert gate.throttles == [told]
    assert gate.open == 0


# Batch -------------------------------------------------------------------------------------------


def batch_items() -> list[dict[str, Any]]:
    """Return two invoice creates and a query, as BatchItemRequests."""
    return [
        {"bId": "1", "operation": "create", "Invoice": invoice(DocNumber="HS-1")},
        {"bId": "2", "operation": "create", "Invoice": invoice(DocNumber="HS-2")},
        {"bId": "3", "Query": "select * from Item"},
    ]


def test_batch_posts_the_items_and_returns_the_answers_in_request_order(
    http: responses.RequestsMock, tokens: FakeTokens
) -> None:
    gate = RecordingGate()
    client = QuickBooksClient(BASE_URL, REALM_ID, tokens, session=requests.Session(), timeout=5, gate=gate)
    duplicate = fault("6140", "Duplicate Document Number Error", "DocNumber=HS-2")["Fault"]
    answers = [
        {"QueryResponse": {"Item": [{"Id": "1"}]}, "bId": "3"},
        {"Fault": duplicate, "bId": "2"},
        {"Invoice": {"Id": "145", "DocNumber": "HS-1"}, "bId": "1"},
    ]
    http.post(
        f"{COMPANY}/batch",
        match=[
            params(requestid="exec-1-b1"),
            bearer("access-1"),
            matchers.json_params_matcher({"BatchItemRequest": batch_items()}),
        ],
        json={"BatchItemResponse": answers, "time": "2025-09-29T09:17:31.892-07:00"},
    )

    result = client.batch(batch_items(), requestid="exec-1-b1")

    assert result == [answers[2], answers[1], answers[0]]
    assert gate.kinds == ["batch"]
    assert client.calls == 1


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, '<Error code="3001"/>', RateLimitedError),
        (500, "<html>Internal Server Error</html>", TransientError),
        (503, "", TransientError),
        (400, fault("6000", detail="A batch may have at most 30 BatchItemRequest items"), PermanentError),
    ],
    ids=["429", "500", "503", "400"],
)
def test_a_failed_batch_request_raises_the_usual_errors(
    http: responses.RequestsMock, client: QuickBooksClient, status: int, body: Any, expected: type[ServiceError]
) -> None:
    if isinstance(body, dict):
        http.post(f"{COMPANY}/batch", status=status, json=body)
    else:
        http.post(f"{COMPANY}/batch", status=status, body=body)
    with pytest.raises(ServiceError) as raised:
        client.batch(batch_items(), requestid="exec-1-b1")
    assert type(raised.value) is expected
    assert raised.value.http_status == status


def test_a_batch_answer_without_an_item_is_transient(http: responses.RequestsMock, client: QuickBooksClient) -> None:
    http.post(f"{COMPANY}/batch", json={"BatchItemResponse": [{"Invoice": {"Id": "145"}, "bId": "1"}]})
    with pytest.raises(TransientError, match="lacks items 2, 3"):
        client.batch(batch_items(), requestid="exec-1-b1")


@pytest.mark.parametrize(
    ("items", "requestid"),
    [
        ([{"bId": str(n), "Query": "select * from Item"} for n in range(31)], "exec-1-b1"),
        ([{"bId": "1", "Query": "select * from Item"}, {"bId": "1", "Query": "select * from Term"}], "exec-1-b1"),
        ([{"bId": "12345678901", "Query": "select * from Item"}], "exec-1-b1"),
        ([{"Query": "select * from Item"}], "exec-1-b1"),
        ([{"bId": "1", "Query": "select * from Item"}], "r" * 37),
    ],
    ids=["31-items", "repeated-bid", "long-bid", "no-bid", "long-requestid"],
)
def test_a_batch_outside_intuits_limits_is_refused_before_sending(
    client: QuickBooksClient, items: list[dict[str, Any]], requestid: str
) -> None:
    with pytest.raises(ValueError):
        client.batch(items, requestid=requestid)
    assert client.calls == 0


def test_an_empty_batch_sends_nothing(client: QuickBooksClient) -> None:
    assert client.batch([], requestid="exec-1-b1") == []
    assert client.calls == 0


@pytest.mark.parametrize(
    ("code", "expected"),
    [("6140", PermanentError), ("610", NotFoundError), ("3100", ConnectionRevokedError)],
    ids=["duplicate-doc-number", "not-found", "reconnect"],
)
def test_an_item_fault_becomes_the_error_a_single_call_raises(
    http: responses.RequestsMock, client: QuickBooksClient, code: str, expected: type[ServiceError]
) -> None:
    body = fault(code, f"Error {code}", f"Detail of {code}")
    http.post(f"{COMPANY}/invoice", status=200, json=body)
    with pytest.raises(ServiceError) as single:
        client.create("Invoice", invoice(DocNumber="HS-614"), requestid="exec-1-invoice")

    from_item = batch_item_error({"Fault": body["Fault"], "bId": "1"}, request_id="1-abc")

    assert type(from_item) is type(single.value) is expected
    assert (from_item.code, from_item.message, from_item.detail, from_item.http_status) == (
        single.value.code,
        single.value.message,
        single.value.detail,
        200,
    )
    assert from_item.request_id == "1-abc"
    assert from_item.body == {"Fault": body["Fault"]}
