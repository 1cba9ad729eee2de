"""The composition root: the one place that builds the database, queue and API clients from the configuration."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import redis
import requests

from services.config import Config
from services.hubspot.client import HubSpotClient
from services.quickbooks.client import QuickBooksClient
from services.store.attempts import AttemptRepository
from services.store.audit import AuditRepository
from services.store.batches import BatchRepository
from services.store.bookkeeping import BookkeepingRepository
from services.store.bulk import BulkRepository
from services.store.callbacks import CallbackRepository
from services.store.companies import CompanyRepository
from services.store.connections import ConnectionRepository
from services.store.crypto import TokenCipher
from services.store.engine import Database
from services.store.executions import ExecutionRepository
from services.store.followed import FollowedDocuments
from services.store.listing import ExecutionListing
from services.store.outbox import ExecutionOutbox
from services.store.records import Connection
from services.store.repositories import Repositories
from services.store.retention import RetentionRepository
from services.store.stats import StatsRepository
from services.transport.gate import BATCH, CALL
from services.transport.http import new_session
from services.transport.oauth import OAuthTokenEndpoint, RefreshingTokens
from services.transport.ratelimit import RedisCallGate, server_limit
from services.work.intake import ExecutionIntake
from services.work.queue import JobQueue

LOCK_PREFIX = "qbo-actions:lock:"
# HubSpot counts a portal's calls over a rolling 10 s; after a 429 without Retry-After, sending waits that long.
HUBSPOT_WINDOW = 10


@dataclass
class Services:
    """Everything a web request or a job needs, built once per process."""

    config: Config
    repositories: Repositories
    redis: redis.Redis
    queue: JobQueue
    session: requests.Session = field(default_factory=new_session)

    @property
    def database(self) -> Database:
        """Return the database the repositories share."""
        return self.repositories.database

    @property
    def executions(self) -> ExecutionRepository:
        """Return the executions repository."""
        return self.repositories.executions

    @property
    def outbox(self) -> ExecutionOutbox:
        """Return the outbox of accepted executions whose job the relay has not queued yet."""
        return self.repositories.outbox

    @functools.cached_property
    def intake(self) -> ExecutionIntake:
        """Return this process's way of accepting executions (its relay included), built on first use."""
        return ExecutionIntake(self)

    @property
    def attempts(self) -> AttemptRepository:
        """Return the attempts repository."""
        return self.repositories.attempts

    @property
    def callbacks(self) -> CallbackRepository:
        """Return the callbacks repository."""
        return self.repositories.callbacks

    @property
    def connections(self) -> ConnectionRepository:
        """Return the connections repository."""
        return self.repositories.connections

    @property
    def companies(self) -> CompanyRepository:
        """Return the companies repository."""
        return self.repositories.companies

    @property
    def bookkeeping(self) -> BookkeepingRepository:
        """Return the bookkeeping repository (steps, mappings, payment claims)."""
        return self.repositories.bookkeeping

    @property
    def retention(self) -> RetentionRepository:
        """Return the retention repository (purging old finished executions)."""
        return self.repositories.retention

    @property
    def stats(self) -> StatsRepository:
        """Return the statistics repository (the metrics' counts and ages)."""
        return self.repositories.stats

    @property
    def listing(self) -> ExecutionListing:
        """Return the operators' queries over executions."""
        return self.repositories.listing

    @property
    def audit(self) -> AuditRepository:
        """Return the audit trail of operators' changes."""
        return self.repositories.audit

    @property
    def bulk(self) -> BulkRepository:
        """Return the bulk operations repository."""
        return self.repositories.bulk

    @property
    def batches(self) -> BatchRepository:
        """Return the QuickBooks batches repository (parked document writes, batches in flight)."""
        return self.repositories.batches

    @property
    def followed(self) -> FollowedDocuments:
        """Return the documents followed on HubSpot records, their payments and Intuit's notifications."""
        return self.repositories.followed

    def lock(self, name: str, timeout: int = 60, *, wait: bool = True) -> AbstractContextManager[object]:
        """Return a Redis lock shared by every process of the deployment; entering it raises redis' LockError
        when it is held past ``timeout`` seconds (at once when ``wait`` is false)."""
        return self.redis.lock(LOCK_PREFIX + name, timeout=timeout, blocking=wait, blocking_timeout=timeout)

    def quickbooks(self, connection: Connection) -> QuickBooksClient:
        """Return a client for a connected company, its tokens refreshed through the connection's vault."""
        endpoint = self.token_endpoint("quickbooks")
        tokens = RefreshingTokens(
            self.connections.quickbooks_vault(connection.id), endpoint, self.lock, f"quickbooks:{connection.id}"
        )
        return QuickBooksClient(
            self.config.quickbooks_api_base_url,
            connection.realm_id,
            tokens,
            session=self.session,
            timeout=self.config.http_timeout,
            gate=self.quickbooks_gate(connection.realm_id),
        )

    def quickbooks_gate(self, realm_id: str) -> RedisCallGate:
        """Return the gate every process shares for one company: Intuit's limits per realm and app."""
        config = self.config
        per_call = (
            server_limit("minute", config.quickbooks_calls_per_minute, 60),
            server_limit("second", config.quickbooks_calls_per_second, 1),
        )
        batches = server_limit("batches", config.quickbooks_batches_per_minute, 60)
        return RedisCallGate(
            self.redis,
            f"quickbooks:{realm_id}",
            service="quickbooks",
            limits={CALL: per_call, BATCH: (*per_call, batches)},
            concurrency=config.quickbooks_concurrency,
            request_timeout=config.http_timeout,
            backoff=config.quickbooks_throttle_backoff,
        )

    def hubspot(self, portal_id: int) -> HubSpotClient:
        """Return a client for a portal, under the portal's rate limit shared by every worker."""
        endpoint = self.token_endpoint("hubspot")
        tokens = RefreshingTokens(self.connections.portal_vault(portal_id), endpoint, self.lock, f"hubspot:{portal_id}")
        return HubSpotClient(
            self.config.hubspot_api_base_url,
            portal_id,
            tokens,
            session=self.session,
            timeout=self.config.http_timeout,
            gate=self.hubspot_gate(portal_id),
        )

    def hubspot_gate(self, portal_id: int) -> RedisCallGate:
        """Return the gate every process shares for one portal: HubSpot's limit per portal and app."""
        return RedisCallGate(
            self.redis,
            f"hubspot:{portal_id}",
            service="hubspot",
            limits={CALL: (server_limit("window", self.config.hubspot_calls_per_10s, HUBSPOT_WINDOW),)},
            request_timeout=self.config.http_timeout,
            backoff=HUBSPOT_WINDOW,
        )

    def token_endpoint(self, service: str) -> OAuthTokenEndpoint:
        """Return the OAuth token endpoint of "quickbooks" (Intuit) or "hubspot", with our app's client."""
        config = self.config
        if service == "quickbooks":
            url, client_id, secret = (
                config.quickbooks_token_url,
                config.quickbooks_client_id,
                config.quickbooks_client_secret,
            )
        else:
            url, client_id, secret = config.hubspot_token_url, config.hubspot_client_id, config.hubspot_client_secret
        # Intuit wants the client in a Basic header; HubSpot wants it in the form.
        return OAuthTokenEndpoint(
            service,
            url,
            client_id,
            secret,
            session=self.session,
            timeout=config.http_timeout,
            basic_auth=service == "quickbooks",
        )


def connect_redis(url: str) -> redis.Redis:
    """Connect to Redis; ``fakeredis://`` gives an in-process server (the embedded demo)."""
    if url.startswith("fakeredis://"):
        import fakeredis

        return fakeredis.FakeRedis()
    return redis.Redis.from_url(url)


def bootstrap(
    config: Config, *, redis_connection: redis.Redis | None = None, repositories: Repositories | None = None
) -> Services:
    """Build the services from configuration; tests and the demo pass their own pieces."""
    connection = redis_connection if redis_connection is not None else connect_redis(config.redis_url)
    return Services(
        config=config,
        repositories=repositories or Repositories.open(config.database_url, TokenCipher(config.token_encryption_key)),
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
