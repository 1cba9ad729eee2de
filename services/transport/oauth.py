"""OAuth 2.0: the token endpoint, and access tokens that refresh themselves once across the deployment.

Nothing here knows where tokens are kept: a TokenVault (the store's, in production) loads and saves them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import requests

from services.transport.errors import ConnectionRevokedError, PermanentError, TransientError
from services.transport.http import json_or_none, rate_limited, send

LockFactory = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class TokenSet:
    """Decrypted OAuth tokens of one connection."""

    access_token: str | None
    access_expires_at: datetime | None
    refresh_token: str

    def access_token_valid(self, margin: int = 60) -> bool:
        """Tell whether the access token can still be used for ``margin`` seconds."""
        return bool(
            self.access_token
            and self.access_expires_at
            and self.access_expires_at > datetime.now(UTC) + timedelta(seconds=margin)
        )


@dataclass(frozen=True)
class TokenGrant:
    """What a token endpoint handed out."""

    access_token: str
    refresh_token: str
    expires_at: datetime


class TokenProvider(Protocol):
    """Hands a client a usable access token, and a fresh one when the old one was rejected."""

    def access_token(self) -> str: ...

    def refresh(self, rejected_token: str | None) -> str: ...


class OAuthTokenEndpoint:
    """Exchanges a refresh token at an OAuth 2.0 token endpoint."""

    def __init__(
        self,
        service: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session,
        timeout: float,
        basic_auth: bool,
    ) -> None:
        self.service = service
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.session = session
        self.timeout = timeout
        # Intuit wants the client in a Basic header; HubSpot wants it in the form.
        self.basic_auth = basic_auth

    def refresh(self, refresh_token: str) -> TokenGrant:
        """Trade a refresh token for a new grant; a dead grant raises ConnectionRevokedError."""
        return self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token}, refresh_token)

    def exchange_code(self, code: str, redirect_uri: str) -> TokenGrant:
        """Trade an authorization code (the install or connect flow) for a grant; a bad code is PermanentError."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return self._grant(form, None)

    def revoke(self, revoke_url: str, token: str) -> None:
        """Revoke a token (Intuit: JSON body, Basic auth); an already dead token counts as revoked."""
        response = send(
            self.session,
            self.service,
            "POST",
            revoke_url,
            json={"token": token},
            headers={**self._client_headers(), "Content-Type": "application/json"},
            timeout=self.timeout,
        )
        if response.status_code in (200, 204) or response.status_code == 400:
            return
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(
                f"{self.service} revoke endpoint failed", service=self.service, http_status=response.status_code
            )
        raise PermanentError(
            f"{self.service} revoke endpoint refused the token", service=self.service, http_status=response.status_code
        )

    def _client_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.basic_auth:
            pair = f"{self.client_id}:{self.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    def _grant(self, form: dict[str, str], refresh_token: str | None) -> TokenGrant:
        headers = self._client_headers()
        if not self.basic_auth:
            form = {**form, "client_id": self.client_id, "client_secret": self.client_secret}
        response = send(
            self.session, self.service, "POST", self.token_url, data=form, headers=headers, timeout=self.timeout
        )
        body = json_or_none(response) or {}
        request_id = response.headers.get("intuit_tid") or body.get("correlationId")
        if response.status_code == 200 and body.get("access_token") and (body.get("refresh_token") or refresh_token):
            return TokenGrant(
                access_token=body["access_token"],
                refresh_token=body.get("refresh_token") or refresh_token or "",
                expires_at=datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 1800))),
            )
        if response.status_code == 429:
            raise rate_limited(self.service, response, f"{self.service} token endpoint throttled us")
        if response.status_code >= 500:
            raise TransientError(
                f"{self.service} token endpoint failed",
                service=self.service,
                http_status=response.status_code,
                request_id=request_id,
            )
        error = str(body.get("error") or body.get("status") or "")
        if refresh_token is not None and error in ("invalid_grant", "BAD_REFRESH_TOKEN"):
            raise ConnectionRevokedError(
                f"The {self.service} connection was revoked or has expired",
                service=self.service,
                http_status=response.status_code,
                code=error,
                request_id=request_id,
            )
        what = "refresh" if refresh_token is not None else "authorization code"
        raise PermanentError(
            f"{self.service} token endpoint refused the {what}: {error or response.status_code}",
            service=self.service,
            http_status=response.status_code,
            code=error or None,
            request_id=request_id,
            body=body,
        )


class TokenVault(Protocol):
    """Where one connection's tokens are kept."""

    def load(self) -> TokenSet:
        """Return the stored tokens (ConnectionRevokedError when there are none)."""
        ...

    def save(self, grant: TokenGrant) -> None:
        """Store a new grant, both tokens in one transaction, so the newest refresh token is never lost."""
        ...

    def revoked(self) -> None:
        """Record that the grant is gone."""
        ...


class RefreshingTokens:
    """A TokenProvider over a vault: refreshed by one worker at a time across the deployment."""

    def __init__(self, vault: TokenVault, endpoint: OAuthTokenEndpoint, lock: LockFactory, lock_name: str) -> None:
        self.vault = vault
        self.endpoint = endpoint
        self.lock = lock
        self.lock_name = lock_name

    def access_token(self) -> str:
        """Return the stored access token, refreshing it first when it is about to expire."""
        tokens = self.vault.load()
        if tokens.access_token and tokens.access_token_valid():
            return tokens.access_token
        return self.refresh(tokens.access_token)

    def refresh(self, rejected_token: str | None) -> str:
        """Refresh under a lock; a worker that waited uses the token the other one stored."""
        with self.lock(f"refresh:{self.lock_name}"):
            tokens = self.vault.load()
            if tokens.access_token and tokens.access_token != rejected_token and tokens.access_token_valid():
                return tokens.access_token
            try:
                grant = self.endpoint.refresh(tokens.refresh_token)
            except ConnectionRevokedError:
                self.vault.revoked()
                raise
            self.vault.save(grant)
            return grant.access_token
