"""The action definitions in manifests/, with the public base URL filled in, and their publication at HubSpot."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from actions.registry import all_actions
from services.hubspot.definitions import CREATE, UNCHANGED, ActionDefinitions, Change, plan

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
PLACEHOLDER = "{{PUBLIC_BASE_URL}}"
# Plain http is only for a server on this machine (the simulators and the tests).
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def load(name: str) -> dict[str, Any]:
    """Return a definition as stored, with the placeholder."""
    return json.loads((MANIFESTS / name).read_text())  # type: ignore[no-any-return]


def render(definition: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Return the definition with every URL pointing at ``base_url``."""
    base = base_url.rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ValueError("the base URL must start with https://")
    return json.loads(json.dumps(definition).replace(PLACEHOLDER, base))  # type: ignore[no-any-return]


def render_all(base_url: str) -> dict[str, dict[str, Any]]:
    """Return every action's definition, keyed by file name."""
    return {spec.manifest: render(load(spec.manifest), base_url) for spec in all_actions()}


def render_by_action(base_url: str) -> dict[str, dict[str, Any]]:
    """Return every action's definition, keyed by action name."""
    return {spec.name: render(load(spec.manifest), base_url) for spec in all_actions()}


def checked_base_url(base_url: str) -> str:
    """Return the base URL without its trailing slash; raise ValueError unless it is one HubSpot should call."""
    text = base_url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{base_url!r} is not a URL such as https://qbo.example.com")
    # HubSpot sends record data and signed requests to these URLs; over plain http anyone on the way reads them.
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise ValueError(f"{base_url} must use https:// (http:// only for 127.0.0.1 or localhost)")
    if parts.query or parts.fragment:
        raise ValueError(f"{base_url} must not have a query or a fragment")
    return text.rstrip("/")


def publish(
    definitions: ActionDefinitions, ours: Mapping[str, Mapping[str, Any]], *, dry_run: bool = False
) -> Iterator[Change]:
    """Create or update our definitions at HubSpot, yielding each change once made; a dry run sends nothing."""
    for change in plan(ours, definitions.list_all()):
        if dry_run or change.kind == UNCHANGED:
            yield change
        elif change.kind == CREATE:
            created = definitions.create(change.definition)
            yield replace(change, definition_id=str(created.get("id", "?")))
        else:
            definitions.update(str(change.definition_id), change.definition)
            yield change


@functools.cache
def reason_labels() -> dict[str, str]:
    """Return the label HubSpot shows for each failure reason, from the definitions' failure_reason options."""
    labels: dict[str, str] = {}
    for spec in all_actions():
        for output in load(spec.manifest).get("outputFields", []):
            if output["typeDefinition"]["name"] == "failure_reason":
                labels.update({o["value"]: o["label"] for o in output["typeDefinition"].get("options", [])})
    return labels
