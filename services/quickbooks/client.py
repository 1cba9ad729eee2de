"""QuickBooks Online Accounting API client: one session, a timeout on every call, errors classified here."""

from __future__ import annotations

from typing import Any

import requests

from services.quickbooks import faults
from services.quickbooks.query import MAX_RESULTS, select
from services.transport.errors import (
    AuthenticationError,
    ConnectionRevokedError,
    NotFoundError,
    PermanentError,
    ServiceError,
    TransientError,
)
from services.transport.http import json_or_none, rate_limited, send
from services.transport.oauth import TokenProvider

SERVICE = "quickbooks"
MINOR_VERSION = "75"


class QuickBooksClient:
    """Talks to one QuickBooks company (realm)."""

    def __init__(
        self,
        base_url: str,
        realm_id: str,
        tokens: TokenProvider,
        *,
        session: requests.Session,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm_id = realm_id
        self.tokens = tokens
        self.session = session
        self.timeout = timeout
        self.calls = 0

    # Public operations ---------------------------------------------------------------------------

    def create(self, entity: str, body: dict[str, Any], *, requestid: str) -> dict[str, Any]:
        """Create an entity; the requestid makes a repeated call return the first result."""
        response = self._request("POST", entity.lower(), json=body, requestid=requestid)
        return response[entity]

    def update(self, entity: str, body: dict[str, Any], *, requestid: str) -> dict[str, Any]:
        """Update an entity (sparse when the body says so)."""
        response = self._request("POST", entity.lower(), json=body, requestid=requestid)
        return response[entity]

    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        """Read one entity by id."""
        return self._request("GET", f"{entity.lower()}/{entity_id}")[entity]

    def query(self, statement: str) -> list[dict[str, Any]]:
        """Run a query and return the entities it found."""
        response = self._request("GET", "query", params={"query": statement})
        result = response.get("QueryResponse", {})
        for value in result.values():
            if isinstance(value, list):
                return value
        return []

    def query_page(self, entity: str, where: str = "", *, start: int = 1, size: int = 100) -> list[dict[str, Any]]:
        """Return one page of entities (STARTPOSITION is 1-based)."""
        return self.query(select(entity, where, start=start, size=size))

    def company_info(self) -> dict[str, Any]:
        """Return the company's CompanyInfo."""
        return self.read("CompanyInfo", self.realm_id)

    def preferences(self) -> dict[str, Any]:
        """Return the company's Preferences."""
        return self._request("GET", "preferences")["Preferences"]

    def terms(self) -> list[dict[str, Any]]:
        """Return every payment term of the company."""
        return self.query(select("Term", size=MAX_RESULTS))

    # Transport -----------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        requestid: str | None = None,
    ) -> dict[str, Any]:
        query = {"minorversion": MINOR_VERSION, **(params or {})}
        if requestid:
            query["requestid"] = requestid
        url = f"{self.base_url}/company/{self.realm_id}/{path}"
        token = self.tokens.access_token()
        response = self._send(method, url, query, json, token)
        if response.status_code == 401:
            # An expired token: refresh, then repeat the same call with the same requestid.
            token = self.tokens.refresh(token)
            response = self._send(method, url, query, json, token)
        return self._parse(response)

    def _send(self, method: str, url: str, query: dict[str, str], body: Any, token: str) -> requests.Response:
        self.calls += 1
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        return send(self.session, SERVICE, method, url, params=query, json=body, headers=headers, timeout=self.timeout)

    def _parse(self, response: requests.Response) -> dict[str, Any]:
        body = json_or_none(response)
        request_id = response.headers.get("intuit_tid")
        if response.status_code == 200 and isinstance(body, dict) and "Fault" not in body:
            return body
        if response.status_code == 429:
            raise rate_limited(SERVICE, response, "QuickBooks throttled the request", request_id=request_id)
        code, message, detail, fault_type = _fault(body)
        kwargs: dict[str, Any] = {
            "service": SERVICE,
            "http_status": response.status_code,
            "code": code,
            "detail": detail,
            "request_id": request_id,
            "body": body if body is not None else response.text[:2000],
        }
        text = f"QuickBooks: {message or response.reason}" + (f" ({detail})" if detail else "")
        error: ServiceError
        if response.status_code >= 500 or (response.status_code == 200 and body is None):
            error = TransientError(text, **kwargs)
        elif response.status_code == 401:
            error = AuthenticationError(text, **kwargs)
        elif response.status_code == 403 or code in faults.RECONNECT:
            error = ConnectionRevokedError(text, **kwargs)
        elif code == faults.THROTTLE_EXCEEDED:
            error = TransientError(text, **kwargs)
        elif response.status_code == 404 or code == faults.OBJECT_NOT_FOUND:
            error = NotFoundError(text, **kwargs)
        elif fault_type == "SystemFault":
            error = TransientError(text, **kwargs)
        else:
            error = PermanentError(text, **kwargs)
        raise error


def _fault(body: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """Return (code, message, detail, type) from a Fault body, in either of Intuit's spellings."""
    if not isinstance(body, dict):
        return None, None, None, None
    fault = body.get("Fault") or body.get("fault") or {}
    errors = fault.get("Error") or fault.get("error") or [{}]
    first = errors[0] if errors else {}
    return (
        str(first.get("code") or first.get("Code") or "") or None,
        first.get("Message") or first.get("message"),
        first.get("Detail") or first.get("detail"),
        fault.get("type"),
    )
