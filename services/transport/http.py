"""The one place where the clients touch the network: a session, a timeout, transport errors."""

from __future__ import annotations

from typing import Any

import requests

from services import metrics
from services.transport.errors import RateLimitedError, TransientError

USER_AGENT = "qbo-actions/0.1 (+https://github.com/qbo-actions)"


def new_session() -> requests.Session:
    """Return a session with our User-Agent; keep one per client and reuse it."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def send(
    session: requests.Session, service: str, method: str, url: str, *, timeout: float, **kwargs: Any
) -> requests.Response:
    """Send a request to ``service`` and count its answer; connection failures and timeouts become TransientError."""
    try:
        response = session.request(method, url, timeout=(min(5.0, timeout), timeout), **kwargs)
    except (requests.ConnectionError, requests.Timeout) as exc:
        metrics.remote_call(service, metrics.NO_ANSWER)
        raise TransientError(f"{service} could not be reached: {exc.__class__.__name__}", service=service) from exc
    metrics.remote_call(service, response.status_code)
    return response


def retry_after_seconds(response: requests.Response) -> float | None:
    """Return the Retry-After header in seconds, when the server sent a number."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def rate_limited(service: str, response: requests.Response, message: str, **kwargs: Any) -> RateLimitedError:
    """Build the error for a 429 answer."""
    return RateLimitedError(
        message, service=service, http_status=429, retry_after=retry_after_seconds(response), **kwargs
    )


def json_or_none(response: requests.Response) -> Any:
    """Return the parsed JSON body, or None when the body is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
