"""QuickBooks Online Accounting API client: one session, a timeout on every call, errors classified here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from services.quickbooks import faults
from services.quickbooks.query import MAX_RESULTS, one_of, select
from services.transport.errors import (
    AuthenticationError,
    ConnectionRevokedError,
    NotFoundError,
    PermanentError,
    ServiceError,
    TransientError,
)
from services.transport.gate import BATCH, CALL, CallGate, OpenGate
from services.transport.http import json_or_none, rate_limited, retry_after_seconds, send
from services.transport.oauth import TokenProvider

SERVICE = "quickbooks"
MINOR_VERSION = "75"
# Intuit counts requests to this path against a batch limit of their own as well.
BATCH_PATH = "batch"
# Intuit's batch limits: items per request; with a requestid, its length and each bId's length.
MAX_BATCH_ITEMS = 30
MAX_BATCH_REQUESTID_LENGTH = 36
MAX_BATCH_ID_LENGTH = 10
# Ids per `Id IN (...)` query: short enough for a GET's query string.
READ_MANY_CHUNK = 100


@dataclass(frozen=True)
class Changes:
    """What a change data capture answered: entities by type (deleted ones as Id and status), and its time."""

    entities: dict[str, list[dict[str, Any]]]
    time: str | None


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
        gate: CallGate | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm_id = realm_id
        # Every request passes the company's gate: its limits, shared by every process.
        self.gate = gate if gate is not None else OpenGate()
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

    def read_many(self, entity: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Read entities by id, 100 a query; ids that no longer exist are left out."""
        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(unique), READ_MANY_CHUNK):
            chunk = unique[start : start + READ_MANY_CHUNK]
            found.extend(self.query(select(entity, one_of("Id", chunk), size=MAX_RESULTS)))
        return found

    def changes(self, entities: Sequence[str], changed_since: datetime) -> Changes:
        """Return what changed in the company since a moment (change data capture: at most 30 days back)."""
        response = self._request(
            "GET",
            "cdc",
            params={"entities": ",".join(entities), "changedSince": changed_since.isoformat(timespec="seconds")},
        )
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in entities}
        for block in response.get("CDCResponse") or []:
            for result in (block or {}).get("QueryResponse") or []:
                for name, value in (result or {}).items():
                    if isinstance(value, list):
                        found.setdefault(name, []).extend(v for v in value if isinstance(v, dict))
        return Changes(found, response.get("time"))

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

    def batch(self, items: Sequence[dict[str, Any]], *, requestid: str) -> list[dict[str, Any]]:
        """Send up to 30 BatchItemRequests at once; return each item's answer (entity or Fault) in request order."""
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"a batch has at most {MAX_BATCH_ITEMS} items, not {len(items)}")
        bids = [item.get("bId") for item in items]
        # The short bIds are Intuit's rule for a batch with a requestid, which this client always sends.
        if not all(isinstance(bid, str) and 0 < len(bid) <= MAX_BATCH_ID_LENGTH for bid in bids):
            raise ValueError(f"every batch item needs a bId of 1 to {MAX_BATCH_ID_LENGTH} characters")
        if len(set(bids)) != len(bids):
            raise ValueError("every batch item needs a bId of its own")
        if len(requestid) > MAX_BATCH_REQUESTID_LENGTH:
            raise ValueError(f"a batch requestid has at most {MAX_BATCH_REQUESTID_LENGTH} characters")
        if not items:
            return []
        response = self._request("POST", BATCH_PATH, json={"BatchItemRequest": list(items)}, requestid=requestid)
        # Intuit answers the items in an order of its own; match the answers to the request by bId.
        answers = {
            answer.get("bId"): answer for answer in response.get("BatchItemResponse") or [] if isinstance(answer, dict)
        }
        missing = [bid for bid in bids if bid not in answers]
        if missing:
            message = f"QuickBooks: the batch answer lacks items {', '.join(map(str, missing))}"
            raise TransientError(message, service=SERVICE, body=response)
        return [answers[bid] for bid in bids]

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
        kind = BATCH if path == BATCH_PATH else CALL
        token = self.tokens.access_token()
        response = self._send(method, url, query, json, token, kind)
        if response.status_code == 401:
            # An expired token: refresh, then repeat the same call with the same requestid.
            token = self.tokens.refresh(token)
            response = self._send(method, url, query, json, token, kind)
        return self._parse(response)

    def _send(
        self, method: str, url: str, query: dict[str, str], body: Any, token: str, kind: str
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        with self.gate.slot(kind):
            self.calls += 1
            response = send(
                self.session, SERVICE, method, url, params=query, json=body, headers=headers, timeout=self.timeout
            )
            if response.status_code == 429:
                self.gate.throttled(retry_after_seconds(response))
        return response

    def _parse(self, response: requests.Response) -> dict[str, Any]:
        body = json_or_none(response)
        request_id = response.headers.get("intuit_tid")
        if response.status_code == 200 and isinstance(body, dict) and "Fault" not in body:
            return body
        if response.status_code == 429:
            raise rate_limited(SERVICE, response, "QuickBooks throttled the request", request_id=request_id)
        raise _error(response.status_code, body, response.reason, request_id=request_id, text=response.text)


def batch_item_error(answer: dict[str, Any], *, request_id: str | None = None) -> ServiceError:
    """Return the error a single call would raise for this batch item's Fault (a fault in a 200 answer)."""
    return _error(200, {"Fault": answer.get("Fault") or {}}, "batch item fault", request_id=request_id)


def _error(status: int, body: Any, reason: str, *, request_id: str | None, text: str = "") -> ServiceError:
    """Classify a failed answer (its status and Fault) into the error the rules act on."""
    code, message, detail, fault_type = _fault(body)
    kwargs: dict[str, Any] = {
        "service": SERVICE,
        "http_status": status,
        "code": code,
        "detail": detail,
        "request_id": request_id,
        "body": body if body is not None else text[:2000],
    }
    summary = f"QuickBooks: {message or reason}" + (f" ({detail})" if detail else "")
    if status >= 500 or (status == 200 and body is None):
        return TransientError(summary, **kwargs)
    if status == 401:
        return AuthenticationError(summary, **kwargs)
    if status == 403 or code in faults.RECONNECT:
        return ConnectionRevokedError(summary, **kwargs)
    if code == faults.THROTTLE_EXCEEDED:
        return TransientError(summary, **kwargs)
    if status == 404 or code == faults.OBJECT_NOT_FOUND:
        return NotFoundError(summary, **kwargs)
    if fault_type == "SystemFault":
        return TransientError(summary, **kwargs)
    return PermanentError(summary, **kwargs)


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
