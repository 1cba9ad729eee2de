"""Corrected inputs for an edit-and-retry: the overrides merged into the recorded inputs, checked like HubSpot's."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from actions.registry import by_name
from actions.schemas import problems
from services.ops.operations import InvalidRequest
from services.store.records import Execution

# The company is who the document is booked for: changing it is a new execution, not a correction.
FIXED_INPUTS = ("quickbooks_account",)


def editable_inputs(action: str) -> list[str]:
    """Return the input names an operator may correct for an action, in the schema's order."""
    schema = by_name()[action].input_schema()
    return [name for name in schema.fields if name not in FIXED_INPUTS]


def corrected_inputs(execution: Execution, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the execution's inputs with ``overrides`` applied, validated by the action's input schema."""
    spec = by_name().get(execution.action)
    if spec is None:
        raise InvalidRequest(f"Unknown action {execution.action!r}.")
    fixed = sorted(name for name in overrides if name in FIXED_INPUTS and overrides[name] != execution.inputs.get(name))
    if fixed:
        raise InvalidRequest(
            f"{', '.join(fixed)} cannot change: it names the QuickBooks company the document belongs to. "
            "Enroll the record again in an action set to the other company."
        )
    try:
        return spec.input_schema().load({**execution.inputs, **overrides})  # type: ignore[no-any-return]
    except ValidationError as invalid:
        raise InvalidRequest(f"Invalid inputs: {problems(invalid)}") from invalid
