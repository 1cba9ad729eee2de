"""What HubSpot reads back from a custom action: the execution state and the output fields.

The action answers BLOCK (the workflow waits for our callback) and the callback completes the execution with
SUCCESS or FAIL_CONTINUE (the workflow goes on down its failure branch, with our reason).
"""

from __future__ import annotations

from typing import Any

STATE = "hs_execution_state"
EXPIRATION = "hs_expiration_duration"
BLOCK = "BLOCK"
SUCCESS = "SUCCESS"
FAIL_CONTINUE = "FAIL_CONTINUE"


def blocked(expiration: str) -> dict[str, Any]:
    """Return the answer that tells HubSpot to wait for the callback, at most ``expiration`` (ISO 8601)."""
    return {"outputFields": {STATE: BLOCK, EXPIRATION: expiration}}


def succeeded(outputs: dict[str, Any]) -> dict[str, Any]:
    """Return the output fields of a successful execution."""
    return {STATE: SUCCESS, **outputs}


def failed(reason: str, message: str) -> dict[str, Any]:
    """Return the output fields of a failed execution."""
    return {STATE: FAIL_CONTINUE, "failure_reason": reason, "failure_message": message}


def without_state(outputs: dict[str, Any] | None) -> dict[str, Any]:
    """Return output fields without the execution state (to reuse them in another execution)."""
    return {key: value for key, value in (outputs or {}).items() if key != STATE}
