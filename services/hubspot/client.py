"""HubSpot API client (CRM reads and workflow callbacks): one session, timeouts, errors classified here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from services.transport.errors import (
    AuthenticationError,
    NotFoundError,
    PermanentError,
    ServiceError,
    TransientError,
)
from services.transport.gate import CallGate, OpenGate
from services.transport.http import json_or_none, rate_limited, retry_after_seconds, send
from services.transport.oauth import TokenProvider

SERVICE = "hubspot"
BATCH_LIMIT = 100
# Association batch reads take up to 1,000 ids (since February 2025).
ASSOCIATION_BATCH_LIMIT = 1000


@dataclass(frozen=True)
class CrmObject:
    """A CRM record: its id, the properties asked for, and associated ids in association order."""

    id: str
    properties: dict[str, Any]
    associations: dict[str, list[str]] = field(default_factory=dict)


def chunks(items: Sequence[Any], size: int = BATCH_LIMIT) -> Iterable[Sequence[Any]]:
    """Split a sequence into batches of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def error_of(response: requests.Response) -> ServiceError:
    """Classify a failed HubSpot answer once, for every HubSpot call (its message never repeats the URL)."""
    body = json_or_none(response)
    info = body if isinstance(body, dict) else {}
    message = f"HubSpot: {info.get('message') or response.reason or response.status_code}"
    kwargs: dict[str, Any] = {
        "service": SERVICE,
        "http_status": response.status_code,
        "code": info.get("category") or info.get("errorType"),
        "request_id": info.get("correlationId") or response.headers.get("X-HubSpot-Correlation-Id"),
        "body": body if body is not None else response.text[:2000],
    }
    if response.status_code == 429:
        return rate_limited(
            SERVICE, response, message, code=kwargs["code"], request_id=kwargs["request_id"], body=kwargs["body"]
        )
    if response.status_code >= 500:
        return TransientError(message, **kwargs)
    if response.status_code == 401:
        return AuthenticationError(message, **kwargs)
    if response.status_code == 404:
        return NotFoundError(message, **kwargs)
    return PermanentError(message, **kwargs)


def portal_of_token(session: requests.Session, base_url: str, access_token: str, *, timeout: float) -> int:
    """Return the portal (hub_id) an access token belongs to (`GET /oauth/v1/access-tokens/{token}`)."""
    url = f"{base_url.rstrip('/')}/oauth/v1/access-tokens/{access_token}"
    response = send(session, SERVICE, "GET", url, headers={"Accept": "application/json"}, timeout=timeout)
    body = json_or_none(response)
    if response.status_code == 200 and isinstance(body, dict) and str(body.get("hub_id", "")).isdecimal():
        return int(body["hub_id"])
    raise error_of(response)


class HubSpotClient:
    """Talks to HubSpot on behalf of one portal."""

    def __init__(
        self,
        base_url: str,
        portal_id: int,
        tokens: TokenProvider,
        *,
        session: requests.Session,
        timeout: float = 30.0,
        gate: CallGate | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.portal_id = portal_id
        # Every request passes the portal's gate: its rate limit, shared by every process.
        self.gate = gate if gate is not None else OpenGate()
        self.tokens = tokens
        self.session = session
        self.timeout = timeout
        self.calls = 0

    # CRM reads ----------------------------------------------------------------------------------

    def read_object(
        self,
        object_type: str,
        object_id: str,
        properties: Sequence[str],
        associations: Sequence[str] = (),
    ) -> CrmObject:
        """Read one record with its properties and the ids of its associated records."""
        params = {"properties": ",".join(properties)}
        if associations:
            params["associations"] = ",".join(associations)
        body = self._request("GET", f"/crm/v3/objects/{object_type}/{object_id}", params=params)
        linked = {
            name: [str(item["id"]) for item in value.get("results", [])]
            for name, value in (body.get("associations") or {}).items()
        }
        # HubSpot may key associations by a type name that differs from the one asked for.
        for name in associations:
            linked.setdefault(name, linked.pop(name.replace("_", " "), []))
        return CrmObject(str(body["id"]), body.get("properties") or {}, linked)

    def batch_read(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[CrmObject]:
        """Read records in batches of 100, in the order of ``ids``; missing ones are left out."""
        found: dict[str, CrmObject] = {}
        for batch in chunks(list(dict.fromkeys(ids))):
            body = self._request(
                "POST",
                f"/crm/v3/objects/{object_type}/batch/read",
                json={"inputs": [{"id": str(i)} for i in batch], "properties": list(properties)},
                partial_ok=True,
            )
            for result in body.get("results", []):
                found[str(result["id"])] = CrmObject(str(result["id"]), result.get("properties") or {})
        return [found[str(i)] for i in ids if str(i) in found]

    def search(
        self, object_type: str, filter_groups: list[dict[str, Any]], properties: Sequence[str], limit: int = 10
    ) -> list[CrmObject]:
        """Return the first records matching CRM-search filter groups."""
        body = self._request(
            "POST",
            f"/crm/v3/objects/{object_type}/search",
            json={"filterGroups": filter_groups, "properties": list(properties), "limit": limit},
        )
        return [CrmObject(str(r["id"]), r.get("properties") or {}) for r in body.get("results", [])]

    def associations(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        """Return the ids associated with a record (v4), in association order."""
        ids: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": "500", **({"after": after} if after else {})}
            body = self._request(
                "GET", f"/crm/v4/objects/{from_type}/{object_id}/associations/{to_type}", params=params
            )
            ids.extend(str(item["toObjectId"]) for item in body.get("results", []))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return ids

    def batch_associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """Return the ids associated with each record (v4 batch, 1,000 a call), in association order.

        Records with nothing associated are left out (HubSpot names them in a 207's errors).
        """
        linked: dict[str, list[str]] = {}
        for batch in chunks(list(dict.fromkeys(ids)), ASSOCIATION_BATCH_LIMIT):
            body = self._request(
                "POST",
                f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
                json={"inputs": [{"id": str(i)} for i in batch]},
                partial_ok=True,
            )
            for result in body.get("results", []):
                from_id = str((result.get("from") or {}).get("id"))
                linked.setdefault(from_id, []).extend(str(item["toObjectId"]) for item in result.get("to", []))
        return linked

    # Writes: properties of records, the schema they need, the timeline --------------------------------------

    def batch_update(self, object_type: str, updates: Sequence[tuple[str, dict[str, str]]]) -> list[dict[str, Any]]:
        """Set properties of records, 100 per request; return the errors of records HubSpot did not update."""
        errors: list[dict[str, Any]] = []
        for batch in chunks(list(updates)):
            body = self._request(
                "POST",
                f"/crm/v3/objects/{object_type}/batch/update",
                json={"inputs": [{"id": str(record_id), "properties": values} for record_id, values in batch]},
                partial_ok=True,
            )
            errors.extend(e for e in body.get("errors") or [] if isinstance(e, dict))
        return errors

    def property_group(self, object_type: str, name: str) -> dict[str, Any] | None:
        """Return a property group of a record type, or None when there is none."""
        try:
            return self._request("GET", f"/crm/v3/properties/{object_type}/groups/{name}")
        except NotFoundError:
            return None

    def create_property_group(self, object_type: str, name: str, label: str) -> None:
        """Create a property group (one that exists already is left as it is)."""
        try:
            self._request(
                "POST",
                f"/crm/v3/properties/{object_type}/groups",
                json={"name": name, "label": label, "displayOrder": -1},
            )
        except PermanentError as error:
            if error.http_status != 409:
                raise

    def properties(self, object_type: str) -> dict[str, dict[str, Any]]:
        """Return the properties of a record type by name."""
        body = self._request("GET", f"/crm/v3/properties/{object_type}")
        return {str(p["name"]): p for p in body.get("results") or [] if isinstance(p, dict) and p.get("name")}

    def create_properties(self, object_type: str, definitions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create properties, 100 per request; return the errors of the ones HubSpot refused."""
        errors: list[dict[str, Any]] = []
        for batch in chunks(list(definitions)):
            body = self._request(
                "POST", f"/crm/v3/properties/{object_type}/batch/create", json={"inputs": list(batch)}, partial_ok=True
            )
            errors.extend(e for e in body.get("errors") or [] if isinstance(e, dict))
        return errors

    def update_property(self, object_type: str, name: str, definition: dict[str, Any]) -> None:
        """Change a property's label, type, group or options."""
        changes = {k: v for k, v in definition.items() if k != "name"}
        self._request("PATCH", f"/crm/v3/properties/{object_type}/{name}", json=changes)

    def create_timeline_events(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Post timeline events, 100 per request; return the errors (an event whose id exists is a CONFLICT)."""
        errors: list[dict[str, Any]] = []
        for batch in chunks(list(events)):
            body = self._request(
                "POST", "/crm/v3/timeline/events/batch/create", json={"inputs": list(batch)}, partial_ok=True
            )
            errors.extend(e for e in body.get("errors") or [] if isinstance(e, dict))
        return errors

    def create_notes(self, object_type: str, notes: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
        """Create notes (record id, text, timestamp) and associate each with its record, 100 per request; return
        the errors of associations HubSpot refused."""
        errors: list[dict[str, Any]] = []
        for batch in chunks(list(notes)):
            if len({text for _, text, _ in batch}) < len(batch):
                # HubSpot answers a batch create in an order of its own and notes are matched back by their
                # body: identical bodies (one invoice on two records) go one request each.
                for note in batch:
                    errors.extend(self._create_notes(object_type, [note]))
            else:
                errors.extend(self._create_notes(object_type, batch))
        return errors

    def _create_notes(self, object_type: str, batch: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
        body = self._request(
            "POST",
            "/crm/v3/objects/notes/batch/create",
            json={"inputs": [{"properties": {"hs_note_body": text, "hs_timestamp": at}} for _, text, at in batch]},
        )
        record_of = {text: record_id for record_id, text, _ in batch}
        pairs = [
            (str(r["id"]), record_of[str((r.get("properties") or {}).get("hs_note_body"))])
            for r in body.get("results") or []
            if str((r.get("properties") or {}).get("hs_note_body")) in record_of
        ]
        if len(pairs) != len(batch):
            raise PermanentError("HubSpot: the notes were not all created", service=SERVICE, body=body)
        answer = self._request(
            "POST",
            f"/crm/v4/associations/notes/{object_type}/batch/associate/default",
            json={"inputs": [{"from": {"id": note_id}, "to": {"id": record_id}} for note_id, record_id in pairs]},
            partial_ok=True,
        )
        return [e for e in answer.get("errors") or [] if isinstance(e, dict)]

    # Workflow callbacks -------------------------------------------------------------------------

    def complete_callbacks(self, completions: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Complete blocked executions, 100 per request (one call for one callback)."""
        if len(completions) == 1:
            callback_id, output_fields = completions[0]
            self._request(
                "POST",
                f"/automation/v4/actions/callbacks/{callback_id}/complete",
                json={"outputFields": output_fields},
            )
            return
        for batch in chunks(list(completions)):
            self._request(
                "POST",
                "/automation/v4/actions/callbacks/complete",
                json={"inputs": [{"callbackId": cid, "outputFields": fields} for cid, fields in batch]},
            )

    # Transport -----------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        partial_ok: bool = False,
    ) -> dict[str, Any]:
        url = self.base_url + path
        token = self.tokens.access_token()
        response = self._send(method, url, params, json, token)
        if response.status_code == 401:
            token = self.tokens.refresh(token)
            response = self._send(method, url, params, json, token)
        if response.status_code in (200, 201) or (partial_ok and response.status_code == 207):
            return json_or_none(response) or {}
        if response.status_code == 204:
            return {}
        raise error_of(response)

    def _send(self, method: str, url: str, params: dict[str, str] | None, body: Any, token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        with self.gate.slot():
            self.calls += 1
            response = send(
                self.session,
                SERVICE,
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                timeout=self.timeout,
            )
            if response.status_code == 429:
                self.gate.throttled(retry_after_seconds(response))
        return response
