"""HubSpot's workflow action definitions of an app (Automation Actions v4), managed with the developer API key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from services.hubspot.client import SERVICE, error_of
from services.transport.http import json_or_none, send

PAGE_SIZE = 100
# Keys HubSpot sets on a stored definition; ours never carry them, and they are never compared or sent.
SERVER_KEYS = frozenset({"id", "revisionId", "archivedAt"})

CREATE = "create"
UPDATE = "update"
UNCHANGED = "unchanged"


class ActionDefinitions:
    """Lists, creates and updates one app's action definitions."""

    def __init__(
        self,
        base_url: str,
        app_id: int,
        api_key: str,
        *,
        session: requests.Session,
        timeout: float = 30.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.api_key = api_key
        self.session = session
        self.timeout = timeout
        self.page_size = page_size

    def list_all(self) -> list[dict[str, Any]]:
        """Return every definition of the app, following the pages."""
        definitions: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params = {"limit": str(self.page_size), **({"after": after} if after else {})}
            body = self._request("GET", f"/automation/v4/actions/{self.app_id}", params=params)
            definitions.extend(body.get("results") or [])
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return definitions

    def create(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Create a definition; return it as stored, with its ``id``."""
        return self._request("POST", f"/automation/v4/actions/{self.app_id}", json=dict(definition))

    def update(self, definition_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the given top-level fields of a definition; return it as stored."""
        return self._request("PATCH", f"/automation/v4/actions/{self.app_id}/{definition_id}", json=dict(definition))

    def timeline_templates(self) -> list[dict[str, Any]]:
        """Return the app's timeline event templates."""
        return list(self._request("GET", f"/crm/v3/timeline/{self.app_id}/event-templates").get("results") or [])

    def create_timeline_template(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """Create a timeline event template; return it with its ``id``."""
        return self._request("POST", f"/crm/v3/timeline/{self.app_id}/event-templates", json=dict(template))

    def update_timeline_template(self, template_id: str, template: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a timeline event template's name, texts and tokens."""
        # HubSpot's update names the template in its body too; the record type of a template cannot change.
        body = {**{k: v for k, v in template.items() if k != "objectType"}, "id": template_id}
        return self._request("PUT", f"/crm/v3/timeline/{self.app_id}/event-templates/{template_id}", json=body)

    def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> dict[str, Any]:
        response = send(
            self.session,
            SERVICE,
            method,
            self.base_url + path,
            params={**(params or {}), "hapikey": self.api_key},
            json=json,
            headers={"Accept": "application/json"},
            timeout=self.timeout,
        )
        if response.status_code in (200, 201):
            body = json_or_none(response)
            return body if isinstance(body, dict) else {}
        raise error_of(response)


# Deciding what to publish ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What publishing does to one of our definitions."""

    name: str
    kind: str  # CREATE, UPDATE or UNCHANGED
    definition: dict[str, Any]
    definition_id: str | None = None
    changed_keys: tuple[str, ...] = ()
    # Other live definitions calling the same actionUrl; left alone, but worth telling the operator.
    also_matching: tuple[str, ...] = ()


def sendable(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Return a definition without the keys only HubSpot sets."""
    return {key: value for key, value in definition.items() if key not in SERVER_KEYS}


def changed_keys(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> tuple[str, ...]:
    """Return our top-level keys whose value differs from the stored definition's, in our order."""
    return tuple(key for key, value in sendable(ours).items() if key not in theirs or theirs[key] != value)


def plan(ours: Mapping[str, Mapping[str, Any]], existing: Sequence[Mapping[str, Any]]) -> list[Change]:
    """Match our definitions (keyed by name) to the stored ones by actionUrl; say what each needs."""
    urls = [definition["actionUrl"] for definition in ours.values()]
    repeated = sorted({url for url in urls if urls.count(url) > 1})
    if repeated:
        raise ValueError(f"several of our definitions call the same actionUrl: {', '.join(repeated)}")
    # An archived definition no longer runs, so it cannot stand for ours.
    live: dict[str, list[Mapping[str, Any]]] = {}
    for stored in existing:
        if not stored.get("archivedAt"):
            live.setdefault(str(stored.get("actionUrl")), []).append(stored)
    changes: list[Change] = []
    for name, definition in ours.items():
        body = sendable(definition)
        matches = live.get(definition["actionUrl"], [])
        if not matches:
            changes.append(Change(name, CREATE, body))
            continue
        # Always the first listed, so that every run updates the same one.
        first, others = matches[0], tuple(str(other["id"]) for other in matches[1:])
        differing = changed_keys(body, first)
        kind = UPDATE if differing else UNCHANGED
        changes.append(Change(name, kind, body, str(first["id"]), differing, others))
    return changes
