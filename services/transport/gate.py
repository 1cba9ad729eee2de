"""The gate a client passes for every request: limits shared with every other process, and news of 429s.

The clients know only this protocol; ``services.transport.ratelimit`` implements it over Redis, and the
composition root chooses the limits (per QuickBooks company, per HubSpot portal).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

# Kinds of request a gate may limit differently: QuickBooks counts batch requests against a limit of their own.
CALL = "call"
BATCH = "batch"


class CallGate(Protocol):
    """Waits until a request may go, holds its place while it is out, and hears when the server throttled anyway."""

    def slot(self, kind: str = CALL) -> AbstractContextManager[None]:
        """Wait for room under the limits of ``kind``; hold it while the request is out."""
        ...

    def throttled(self, retry_after: float | None) -> None:
        """Hear that the server answered 429 (with its Retry-After, when it sent one) and hold back every sender."""
        ...

    def recent(self, kind: str, limit_name: str) -> int:
        """Return about how many requests of ``kind`` went out in the window of one of its limits."""
        ...


class OpenGate:
    """No limits: every request goes at once (clients built without a gate, and unit tests)."""

    @contextmanager
    def slot(self, kind: str = CALL) -> Iterator[None]:
        """Let the request go."""
        yield

    def throttled(self, retry_after: float | None) -> None:
        """Nothing to slow down; the error still reaches the retry rule."""

    def recent(self, kind: str, limit_name: str) -> int:
        """Count nothing: an open gate keeps no log."""
        return 0
