"""Errors raised by the clients and the action handlers.

ServiceError                 a remote API answered badly or not at all (classified once, in the clients)
├── TransientError           worth another attempt later: connection errors, timeouts, 5xx
│   ├── RateLimitedError     429; carries the server's Retry-After when it sent one
│   └── DocumentBusyError    another execution is booking the same payment document
├── AuthenticationError      401 that survived a token refresh
├── ConnectionRevokedError   the OAuth grant is gone (invalid_grant, 403): the user must reconnect
└── PermanentError           any other 4xx, or a fault in a 200: the request itself is wrong
    └── NotFoundError        404 / QuickBooks 610

ActionFailure                the action cannot succeed; reported to HubSpot as FAIL_CONTINUE
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


class DocumentBusyError(TransientError):
    """Another execution is booking the same document right now; look again later."""


class AuthenticationError(ServiceError):
    """The server rejected our credentials even after a refresh."""


class ConnectionRevokedError(ServiceError):
    """The OAuth connection was revoked or expired; only reconnecting helps."""


class PermanentError(ServiceError):
    """The request was rejected and sending it again will not change that."""


class NotFoundError(PermanentError):
    """The object asked for does not exist."""


class ActionFailure(Exception):
    """The action ends in failure with a stable reason code and a sentence for people."""

    def __init__(self, reason: str, message: str, **details: Any) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.details = details
