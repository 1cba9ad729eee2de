"""The one place where the clients touch the network: a session, a timeout, transport errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from services import metrics
from services.transport.errors import RateLimitedError, TransientError

USER_AGENT = "qbo-actions/0.1 (+https://github.com/qbo-actions)"


class Session(requests.Session):
    """A requests session that reads the environment's proxy and CA settings once per origin, not per request.

    requests looks them up on every call (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE ...): about a third of its own
    time per call. The environment of a process does not change, so the answer for an origin is kept; NO_PROXY
    still decides per host, since the origin carries the host.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], Any] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        if proxies or not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        try:
            found: Any = self._environment.get(key)
        except TypeError:  # an unhashable verify or cert: ask the environment each time
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        if found is None:
            if len(self._environment) >= 1000:
                self._environment.clear()
            found = self._environment[key] = super().merge_environment_settings(url, {}, stream, verify, cert)
        return {**found, "proxies": dict(found["proxies"])}


def new_session() -> requests.Session:
    """Return a session with our User-Agent; keep one per client and reuse it."""
    session = Session()
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
