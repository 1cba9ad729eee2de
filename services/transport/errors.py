"""Errors of remote calls, classified once, where the answer is read (the clients and the token endpoint).

ServiceError                 a remote API answered badly or not at all
├── TransientError           worth another attempt later: connection errors, timeouts, 5xx
│   ├── RateLimitedError     429; carries the server's Retry-After when it sent one
│   └── InfrastructureError  our own database, Redis or job time limit failed (service "database", "redis", "worker")
├── AuthenticationError      401 that survived a token refresh
├── ConnectionRevokedError   the OAuth grant is gone (invalid_grant, 403): the user must reconnect
└── PermanentError           any other 4xx, or a fault in a 200: the request itself is wrong
    └── NotFoundError        404 / QuickBooks 610

The bookkeeping rules add their own (services.books.failures): ActionFailure, the reason an action ends in
failure, and DocumentBusyError, a TransientError for a payment document another execution is booking.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A remote API call failed; carries what the server said."""

    def __init__(
        self,
        message: str,
        *,
        service: str,
        http_status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.http_status = http_status
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        prefix = f"Request {self.request_id}: " if self.request_id else ""
        status = f" (HTTP {self.http_status}" + (f", code {self.code})" if self.code else ")")
        return f"{prefix}{self.message}{status if self.http_status else ''}"


class TransientError(ServiceError):
    """The call may succeed if tried again later."""


class RateLimitedError(TransientError):
    """The server throttled us."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InfrastructureError(TransientError):
    """The server's own database or Redis failed, or a job ran out of time: try again once they are back."""


class AuthenticationError(ServiceError):
    """The server rejected our credentials even after a refresh."""


class ConnectionRevokedError(ServiceError):
    """The OAuth connection was revoked or expired; only reconnecting helps."""


class PermanentError(ServiceError):
    """The request was rejected and sending it again will not change that."""


class NotFoundError(PermanentError):
    """The object asked for does not exist."""
