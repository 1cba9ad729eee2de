"""The action definitions in manifests/, with the public base URL filled in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actions.registry import all_actions

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
PLACEHOLDER = "{{PUBLIC_BASE_URL}}"


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
