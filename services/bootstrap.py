"""The one place that builds the concrete clients, queue and database from the configuration."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import redis
import requests

from services.config import Config
from services.crypto import TokenCipher
from services.errors import ActionFailure
from services.http import new_session
from services.hubspot import HubSpotClient
from services.oauth import HubSpotTokens, OAuthTokenEndpoint, QuickBooksTokens
from services.queue import JobQueue
from services.quickbooks import QuickBooksClient
from services.ratelimit import WindowLimiter
from services.storage import Store

LOCK_PREFIX = "qbo-actions:lock:"


@dataclass
class Services:
    """Everything a web request or a job needs, built once per process."""

    config: Config
    store: Store
    redis: redis.Redis
    queue: JobQueue
    session: requests.Session = field(default_factory=new_session)

    def lock(self, name: str, timeout: int = 60) -> AbstractContextManager[object]:
        """Return a Redis lock shared by every process of the deployment."""
        return self.redis.lock(LOCK_PREFIX + name, timeout=timeout, blocking_timeout=timeout)

    def quickbooks(self, portal_id: int, realm_id: str) -> QuickBooksClient:
        """Return a client for a company, which must be connected to the portal."""
        connection = self.store.quickbooks_connection(portal_id, realm_id)
        if connection is None or connection.status != "active":
            state = "was disconnected" if connection else "is not connected to this HubSpot account"
            raise ActionFailure(
                "QUICKBOOKS_NOT_CONNECTED",
                f"QuickBooks company {realm_id} {state}. Reconnect it in the app, then retry the action.",
            )
        endpoint = self._token_endpoint(
            "quickbooks",
            self.config.quickbooks_token_url,
            self.config.quickbooks_client_id,
            self.config.quickbooks_client_secret,
        )
        tokens = QuickBooksTokens(self.store, connection.id, endpoint, self.lock)
        return QuickBooksClient(
            self.config.quickbooks_api_base_url,
            realm_id,
            tokens,
            session=self.session,
            timeout=self.config.http_timeout,
        )

    def _token_endpoint(self, service: str, url: str, client_id: str, client_secret: str) -> OAuthTokenEndpoint:
        # Intuit wants the client in a Basic header; HubSpot wants it in the form.
        return OAuthTokenEndpoint(
            service,
            url,
            client_id,
            client_secret,
            session=self.session,
            timeout=self.config.http_timeout,
            basic_auth=service == "quickbooks",
        )

    def hubspot(self, portal_id: int) -> HubSpotClient:
        """Return a client for a portal."""
        endpoint = self._token_endpoint(
            "hubspot",
            self.config.hubspot_token_url,
            self.config.hubspot_client_id,
            self.config.hubspot_client_secret,
        )
        tokens = HubSpotTokens(self.store, portal_id, endpoint, self.lock)
        limiter = WindowLimiter(self.redis, f"hubspot:{portal_id}", limit=self.config.hubspot_calls_per_10s, window=10)
        return HubSpotClient(
            self.config.hubspot_api_base_url,
            portal_id,
            tokens,
            session=self.session,
            timeout=self.config.http_timeout,
            before_call=limiter.acquire,
        )


def connect_redis(url: str) -> redis.Redis:
    """Connect to Redis; ``fakeredis://`` gives an in-process server (the embedded demo)."""
    if url.startswith("fakeredis://"):
        import fakeredis

        return fakeredis.FakeRedis()
    return redis.Redis.from_url(url)


def bootstrap(config: Config, *, redis_connection: redis.Redis | None = None, store: Store | None = None) -> Services:
    """Build the services from configuration; tests and the demo pass their own pieces."""
    connection = redis_connection if redis_connection is not None else connect_redis(config.redis_url)
    return Services(
        config=config,
        store=store or Store.from_url(config.database_url, TokenCipher(config.token_encryption_key)),
        redis=connection,
        queue=JobQueue(connection, config),
    )


_installed: Services | None = None
_install_lock = threading.Lock()


def install(services: Services | None) -> None:
    """Make these the services that jobs in this process use (the worker command and the demo)."""
    global _installed
    _installed = services


def current() -> Services:
    """Return this process's services, building them from the environment on first use."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = bootstrap(Config.from_env())
        return _installed


@contextmanager
def installed(services: Services) -> Iterator[Services]:
    """Install services for the duration of a block."""
    previous = _installed
    install(services)
    try:
        yield services
    finally:
        install(previous)
