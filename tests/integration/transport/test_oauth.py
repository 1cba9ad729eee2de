"""Token refresh at Intuit and HubSpot, and the per-connection token providers on real repositories."""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import fakeredis
import pytest
import requests
import responses
from responses import matchers

from services.clock import utcnow
from services.store.repositories import Repositories
from services.transport.errors import ConnectionRevokedError, PermanentError, RateLimitedError, TransientError
from services.transport.oauth import OAuthTokenEndpoint, RefreshingTokens

INTUIT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
HUBSPOT_TOKEN_URL = "https://api.hubapi.com/oauth/v1/token"
PORTAL_ID = 102670506
REALM_ID = "9130355"


def intuit_endpoint() -> OAuthTokenEndpoint:
    return OAuthTokenEndpoint(
        "quickbooks",
        INTUIT_TOKEN_URL,
        "qbo-client",
        "qbo-secret",
        session=requests.Session(),
        timeout=5,
        basic_auth=True,
    )


def hubspot_endpoint() -> OAuthTokenEndpoint:
    return OAuthTokenEndpoint(
        "hubspot",
        HUBSPOT_TOKEN_URL,
        "hs-client",
        "hs-secret",
        session=requests.Session(),
        timeout=5,
        basic_auth=False,
    )


def grant(access: str = "access-new", refresh: str | None = "refresh-new", expires_in: int = 3600) -> dict[str, Any]:
    """Return a token endpoint's answer."""
    body: dict[str, Any] = {"access_token": access, "expires_in": expires_in, "token_type": "bearer"}
    if refresh is not None:
        body["refresh_token"] = refresh
        body["x_refresh_token_expires_in"] = 8726400
    return body


def form(call: Any) -> dict[str, list[str]]:
    return parse_qs(call.request.body)


def assert_about(moment: datetime | None, expected: datetime) -> None:
    assert moment is not None
    assert abs((moment - expected).total_seconds()) < 5


# OAuthTokenEndpoint ------------------------------------------------------------------------------


def test_intuit_gets_the_client_in_a_basic_header_and_the_refresh_token_in_a_form(
    http: responses.RequestsMock,
) -> None:
    basic = "Basic " + base64.b64encode(b"qbo-client:qbo-secret").decode()
    http.post(
        INTUIT_TOKEN_URL,
        match=[
            matchers.header_matcher(
                {
                    "Authorization": basic,
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                }
            ),
            matchers.urlencoded_params_matcher({"grant_type": "refresh_token", "refresh_token": "refresh-old"}),
        ],
        json=grant(expires_in=3600),
    )

    result = intuit_endpoint().refresh("refresh-old")

    assert result.access_token == "access-new"
    assert result.refresh_token == "refresh-new"
    assert_about(result.expires_at, utcnow() + timedelta(seconds=3600))
    assert "client_secret" not in form(http.calls[0])


def test_hubspot_gets_the_client_id_and_secret_in_the_form(http: responses.RequestsMock) -> None:
    http.post(
        HUBSPOT_TOKEN_URL,
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": "hs-refresh",
                    "client_id": "hs-client",
                    "client_secret": "hs-secret",
                }
            )
        ],
        json=grant("hs-access-new", refresh="hs-refresh", expires_in=1800),
    )

    result = hubspot_endpoint().refresh("hs-refresh")

    assert result.access_token == "hs-access-new"
    assert_about(result.expires_at, utcnow() + timedelta(seconds=1800))
    assert "Authorization" not in http.calls[0].request.headers


def test_a_grant_without_a_new_refresh_token_keeps_the_old_one(http: responses.RequestsMock) -> None:
    http.post(HUBSPOT_TOKEN_URL, json=grant("hs-access-new", refresh=None))
    assert hubspot_endpoint().refresh("hs-refresh").refresh_token == "hs-refresh"


def test_intuit_invalid_grant_means_the_connection_was_revoked(http: responses.RequestsMock) -> None:
    http.post(INTUIT_TOKEN_URL, status=400, headers={"intuit_tid": "1-abc"}, json={"error": "invalid_grant"})
    with pytest.raises(ConnectionRevokedError) as raised:
        intuit_endpoint().refresh("refresh-dead")
    assert raised.value.code == "invalid_grant"
    assert raised.value.request_id == "1-abc"
    assert raised.value.service == "quickbooks"


def test_hubspot_bad_refresh_token_means_the_connection_was_revoked(http: responses.RequestsMock) -> None:
    http.post(
        HUBSPOT_TOKEN_URL,
        status=400,
        json={"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token", "correlationId": "c-1"},
    )
    with pytest.raises(ConnectionRevokedError) as raised:
        hubspot_endpoint().refresh("hs-refresh-dead")
    assert raised.value.code == "BAD_REFRESH_TOKEN"
    assert raised.value.request_id == "c-1"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_token_endpoint_server_error_is_transient(http: responses.RequestsMock, status: int) -> None:
    http.post(INTUIT_TOKEN_URL, status=status, body="upstream error")
    with pytest.raises(TransientError) as raised:
        intuit_endpoint().refresh("refresh-old")
    assert type(raised.value) is TransientError
    assert raised.value.http_status == status


def test_an_unreachable_token_endpoint_is_transient(http: responses.RequestsMock) -> None:
    http.post(INTUIT_TOKEN_URL, body=requests.ConnectionError("connection refused"))
    with pytest.raises(TransientError):
        intuit_endpoint().refresh("refresh-old")


def test_a_throttled_token_endpoint_is_rate_limited(http: responses.RequestsMock) -> None:
    http.post(INTUIT_TOKEN_URL, status=429, headers={"Retry-After": "30"}, body="")
    with pytest.raises(RateLimitedError) as raised:
        intuit_endpoint().refresh("refresh-old")
    assert raised.value.retry_after == 30.0


def test_a_wrong_client_is_permanent_not_revoked(http: responses.RequestsMock) -> None:
    http.post(INTUIT_TOKEN_URL, status=401, json={"error": "invalid_client"})
    with pytest.raises(PermanentError) as raised:
        intuit_endpoint().refresh("refresh-old")
    assert raised.value.code == "invalid_client"


# QuickBooksTokens on a real Repositories ----------------------------------------------------------------


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def lock(fake_redis: fakeredis.FakeRedis) -> Any:
    return lambda name: fake_redis.lock(name, timeout=10, blocking_timeout=10)


def quickbooks_tokens(
    repos: Repositories, connection_id: int, endpoint: OAuthTokenEndpoint, lock: Any
) -> RefreshingTokens:
    """Return the token provider the bootstrap builds for a QuickBooks connection."""
    return RefreshingTokens(
        repos.connections.quickbooks_vault(connection_id), endpoint, lock, f"quickbooks:{connection_id}"
    )


def hubspot_tokens(repos: Repositories, portal_id: int, endpoint: OAuthTokenEndpoint, lock: Any) -> RefreshingTokens:
    """Return the token provider the bootstrap builds for a HubSpot portal."""
    return RefreshingTokens(repos.connections.portal_vault(portal_id), endpoint, lock, f"hubspot:{portal_id}")


def connect(
    repos: Repositories, *, access: str = "access-old", expires_in: int = 3600, refresh: str = "refresh-old"
) -> int:
    """Store a QuickBooks connection whose access token expires in ``expires_in`` seconds."""
    return repos.connections.save_quickbooks(
        PORTAL_ID, REALM_ID, refresh, access, utcnow() + timedelta(seconds=expires_in), "Sim Co"
    )


def test_a_valid_stored_token_is_used_without_a_refresh(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    connection_id = connect(sqlite_repos, expires_in=3600)
    tokens = quickbooks_tokens(sqlite_repos, connection_id, intuit_endpoint(), lock)
    assert tokens.access_token() == "access-old"
    assert len(http.calls) == 0


def test_an_expired_token_is_refreshed_and_both_new_tokens_are_stored(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    connection_id = connect(sqlite_repos, expires_in=-10)
    http.post(
        INTUIT_TOKEN_URL,
        match=[matchers.urlencoded_params_matcher({"grant_type": "refresh_token", "refresh_token": "refresh-old"})],
        json=grant("access-new", "refresh-new", expires_in=3600),
    )

    assert quickbooks_tokens(sqlite_repos, connection_id, intuit_endpoint(), lock).access_token() == "access-new"

    stored = sqlite_repos.connections.quickbooks_tokens(connection_id)
    assert stored.access_token == "access-new"
    assert stored.refresh_token == "refresh-new"
    assert_about(stored.access_expires_at, utcnow() + timedelta(seconds=3600))
    connection = sqlite_repos.connections.quickbooks(PORTAL_ID, REALM_ID)
    assert connection is not None and connection.refreshed_at is not None


def test_a_token_about_to_expire_is_refreshed_early(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    connection_id = connect(sqlite_repos, expires_in=30)
    http.post(INTUIT_TOKEN_URL, json=grant("access-new"))
    assert quickbooks_tokens(sqlite_repos, connection_id, intuit_endpoint(), lock).access_token() == "access-new"


def test_a_revoked_grant_marks_the_connection_revoked(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    connection_id = connect(sqlite_repos, expires_in=-10)
    http.post(INTUIT_TOKEN_URL, status=400, json={"error": "invalid_grant"})

    with pytest.raises(ConnectionRevokedError):
        quickbooks_tokens(sqlite_repos, connection_id, intuit_endpoint(), lock).access_token()

    connection = sqlite_repos.connections.quickbooks(PORTAL_ID, REALM_ID)
    assert connection is not None and connection.status == "revoked"
    assert sqlite_repos.connections.quickbooks_tokens(connection_id).access_token is None


def test_a_rejected_token_is_refreshed_even_before_it_expires(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    connection_id = connect(sqlite_repos, expires_in=3600)
    http.post(INTUIT_TOKEN_URL, json=grant("access-new"))
    assert quickbooks_tokens(sqlite_repos, connection_id, intuit_endpoint(), lock).refresh("access-old") == "access-new"
    assert sqlite_repos.connections.quickbooks_tokens(connection_id).access_token == "access-new"


def test_a_worker_whose_token_was_already_replaced_uses_the_stored_one(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    connection_id = connect(sqlite_repos, access="access-from-other-worker", expires_in=3600)
    tokens = quickbooks_tokens(sqlite_repos, connection_id, intuit_endpoint(), lock)
    assert tokens.refresh("access-old") == "access-from-other-worker"
    assert len(http.calls) == 0


def test_two_threads_refreshing_at_once_call_the_token_endpoint_once(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    connection_id = connect(sqlite_repos, expires_in=-10)
    calls: list[str] = []

    def slow_grant(request: Any) -> tuple[int, dict[str, str], str]:
        calls.append(parse_qs(request.body)["refresh_token"][0])
        time.sleep(0.2)
        return (
            200,
            {"Content-Type": "application/json"},
            '{"access_token": "access-new", "refresh_token": "refresh-new", "expires_in": 3600}',
        )

    http.add_callback(responses.POST, INTUIT_TOKEN_URL, callback=slow_grant)
    start = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        tokens = quickbooks_tokens(sqlite_repos, connection_id, intuit_endpoint(), lock)
        start.wait()
        try:
            results.append(tokens.access_token())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    assert results == ["access-new", "access-new"]
    assert calls == ["refresh-old"]
    assert sqlite_repos.connections.quickbooks_tokens(connection_id).refresh_token == "refresh-new"


# HubSpotTokens -----------------------------------------------------------------------------------


def test_hubspot_tokens_refresh_and_store_the_new_access_token(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    sqlite_repos.connections.save_portal(PORTAL_ID, "hs-refresh", "hs-access-old", utcnow() - timedelta(seconds=5))
    http.post(HUBSPOT_TOKEN_URL, json=grant("hs-access-new", refresh="hs-refresh", expires_in=1800))

    assert hubspot_tokens(sqlite_repos, PORTAL_ID, hubspot_endpoint(), lock).access_token() == "hs-access-new"

    stored = sqlite_repos.connections.portal_tokens(PORTAL_ID)
    assert stored is not None
    assert (stored.access_token, stored.refresh_token) == ("hs-access-new", "hs-refresh")


def test_hubspot_tokens_of_a_portal_that_never_installed_the_app_are_revoked(
    http: responses.RequestsMock, sqlite_repos: Repositories, lock: Any
) -> None:
    with pytest.raises(ConnectionRevokedError):
        hubspot_tokens(sqlite_repos, 999, hubspot_endpoint(), lock).access_token()
    assert len(http.calls) == 0
