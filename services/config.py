"""Configuration read once from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

QUICKBOOKS_API_BASE_URLS = {
    "production": "https://quickbooks.api.intuit.com/v3",
    "sandbox": "https://sandbox-quickbooks.api.intuit.com/v3",
}
QUICKBOOKS_APP_URLS = {
    "production": "https://app.qbo.intuit.com",
    "sandbox": "https://app.sandbox.qbo.intuit.com",
}
QUICKBOOKS_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
QUICKBOOKS_AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
QUICKBOOKS_REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
HUBSPOT_API_BASE_URL = "https://api.hubapi.com"
HUBSPOT_AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
# What the actions need: workflow actions and callbacks, and reading the records they book.
HUBSPOT_SCOPES = (
    "automation",
    "crm.objects.contacts.read",
    "crm.objects.deals.read",
    "crm.objects.quotes.read",
    "crm.objects.line_items.read",
    "e-commerce",
    "crm.objects.commercepayments.read",
    # The document's later life on the record: its properties (created on install), their values, the timeline.
    "crm.objects.deals.write",
    "crm.schemas.deals.write",
    "crm.objects.quotes.write",
    "crm.schemas.quotes.write",
    "crm.objects.commercepayments.write",
    "timeline",
)

REQUIRED = (
    "HUBSPOT_CLIENT_ID",
    "HUBSPOT_CLIENT_SECRET",
    "QUICKBOOKS_CLIENT_ID",
    "QUICKBOOKS_CLIENT_SECRET",
    "SECRET_KEY",
    "TOKEN_ENCRYPTION_KEY",
    "REDIS_URL",
)


# Settings that are calls per window or at once: each must let at least one call through.
RATE_LIMITS = (
    "hubspot_calls_per_10s",
    "quickbooks_calls_per_minute",
    "quickbooks_calls_per_second",
    "quickbooks_concurrency",
    "quickbooks_batches_per_minute",
)


# When documents go to QuickBooks in batches: always, never, or while the company is busy.
BATCH_WRITES = ("auto", "on", "off")


# How the execution endpoint has an accepted execution's job queued (see services/work/intake.py).
ACCEPT_ENQUEUE = ("relay", "direct")


class ConfigError(Exception):
    """The environment does not hold a usable configuration."""


def parse_templates(text: str) -> dict[str, str]:
    """Parse "deals=1001,quotes=1002" into template ids by record type."""
    templates: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        object_type, _, template_id = pair.partition("=")
        if not object_type.strip() or not template_id.strip():
            raise ConfigError(f"HUBSPOT_TIMELINE_TEMPLATES: expected type=id pairs, not {pair!r}.")
        templates[object_type.strip().lower()] = template_id.strip()
    return templates


# ISO 8601 durations as HubSpot takes them for hs_expiration_duration: P1D, PT12H, P1WT1H.
_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)


def parse_duration(text: str) -> timedelta:
    """Return the length of an ISO 8601 duration of weeks, days, hours, minutes and seconds."""
    match = _DURATION.fullmatch(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P7D, PT12H or P1WT1H")
    return timedelta(**{unit: int(value) for unit, value in match.groupdict().items() if value})


@dataclass(frozen=True)
class Config:
    """Everything the web and worker processes need to know about their surroundings."""

    hubspot_client_id: str
    hubspot_client_secret: str
    quickbooks_client_id: str
    quickbooks_client_secret: str
    secret_key: str
    token_encryption_key: str
    redis_url: str
    database_url: str = "sqlite:///instance/qbo-actions.sqlite3"
    public_base_url: str | None = None
    hubspot_api_base_url: str = HUBSPOT_API_BASE_URL
    # Only `qbo-actions manifests publish` needs it: HubSpot manages action definitions with this key.
    hubspot_developer_api_key: str | None = None
    quickbooks_environment: str = "production"
    quickbooks_api_base_url: str = QUICKBOOKS_API_BASE_URLS["production"]
    quickbooks_token_url: str = QUICKBOOKS_TOKEN_URL
    quickbooks_app_url: str = QUICKBOOKS_APP_URLS["production"]
    quickbooks_authorize_url: str = QUICKBOOKS_AUTHORIZE_URL
    quickbooks_revoke_url: str = QUICKBOOKS_REVOKE_URL
    hubspot_authorize_url: str = HUBSPOT_AUTHORIZE_URL
    hubspot_scopes: tuple[str, ...] = HUBSPOT_SCOPES
    queue_name: str = "qbo-actions"
    # Seconds a finished execution's callback waits, so that a burst's callbacks go to HubSpot 100 at a time (0: none).
    callback_flush_delay: int = 2
    # Intuit's webhook verifier token (the app's Webhooks page); unset, change notifications are refused.
    quickbooks_webhook_verifier_token: str | None = None
    # How often each connected company's changes are read (change data capture), catching missed notifications.
    cdc_interval: int = 900
    # A wait before document statuses go to HubSpot, so a burst or a trickle goes many records a call (HubSpot's own
    # integration takes minutes; seconds are plenty).
    status_flush_delay: int = 5
    # The app's timeline event templates for payments, per record type (`qbo-actions publish` creates them and
    # prints the setting: "deals=1001,quotes=1002,commerce_payments=1003"); a type without one gets a note.
    hubspot_timeline_templates: Mapping[str, str] = field(default_factory=dict)
    # How long records read in batches for a portal's waiting executions are kept for them (0: no batching).
    record_snapshot_seconds: int = 180
    # Executions are spread over this many queues, one portal to a lane, served in turn (fairness).
    queue_lanes: int = 16
    # Seconds between attempts after a transient failure; its length is the number of retries.
    retry_intervals: tuple[int, ...] = (10, 30, 60, 300, 900, 1800)
    job_timeout: int = 300
    # A running execution whose worker stopped renewing its lease for this long is taken over.
    lease_seconds: int = 360
    sweep_interval: int = 30
    # Seconds to wait after QuickBooks throttles us without saying how long (Intuit asks for 60).
    quickbooks_throttle_backoff: int = 60
    # Intuit's throttles per company (realm) and app: calls a minute and a second, calls at once, batches a minute.
    quickbooks_calls_per_minute: int = 500
    quickbooks_calls_per_second: int = 10
    quickbooks_concurrency: int = 10
    quickbooks_batches_per_minute: int = 40
    # Documents go to QuickBooks in batches of up to 30 (one POST /batch): on, off, or auto (only while the
    # company is busy: quickbooks_batch_above calls in the last minute, or a batch sent in it).
    quickbooks_batch_writes: str = "auto"
    quickbooks_batch_above: int = 250
    # How long a batch with room left waits for more documents before it goes out (milliseconds).
    quickbooks_batch_fill_ms: int = 1000
    # HubSpot allows an OAuth app 110 calls per 10 s per portal. No margin: the shared limiter is exact across
    # processes (one atomic count on one clock), and its window is stretched for the network's jitter.
    hubspot_calls_per_10s: int = 110
    http_timeout: float = 30.0
    signature_max_age: int = 300
    # Finished executions older than this many days are deleted by the sweeper once a day (0: kept for ever).
    retention_days: int = 0
    # Proxies in front of the app whose X-Forwarded-Proto and -Host are believed (0: none, headers ignored).
    trusted_proxies: int = 0
    # How long HubSpot waits for our callback before the workflow goes on without us (HubSpot's default).
    callback_expiration: str = "P7D"
    # Operators' tokens: HS256 signed with this secret (minted by `qbo-actions ops token`), and/or RS256/ES256
    # from an identity provider's key set. Without either, the console and its API refuse everyone.
    ops_jwt_secret: str | None = None
    ops_jwks_url: str | None = None
    ops_jwt_issuer: str = "qbo-actions"
    ops_jwt_audience: str = "qbo-actions-ops"
    # Behind an identity-aware proxy: the header carrying the proxy's signed JWT (checked like a bearer token).
    ops_proxy_jwt_header: str | None = None
    # The claim of a token that names the role (a string, or a list whose highest role counts).
    ops_jwt_role_claim: str = "role"
    # How an accepted execution's job is queued: "relay" (the request commits it with an outbox entry, grouped with
    # its process's other requests, and a relay thread queues jobs in batches) or "direct" (the request queues it).
    accept_enqueue: str = "relay"
    # Port of the worker's Prometheus endpoint (0: none).
    worker_metrics_port: int = 0
    # When set, /metrics answers only requests with `Authorization: Bearer <this>`.
    metrics_token: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from environment variables, failing on missing required ones."""
        env = os.environ if environ is None else environ
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            raise ConfigError(
                "Missing required environment variables: "
                + ", ".join(missing)
                + ". See README.md, section Configuration."
            )
        environment = env.get("QUICKBOOKS_ENVIRONMENT", "production")
        if environment not in QUICKBOOKS_API_BASE_URLS:
            raise ConfigError("QUICKBOOKS_ENVIRONMENT must be 'production' or 'sandbox'.")
        try:
            intervals = tuple(int(v) for v in env.get("RETRY_INTERVALS", "10,30,60,300,900,1800").split(","))
            numbers: dict[str, Any] = {
                name: int(env[key])
                for name, key in (
                    ("job_timeout", "JOB_TIMEOUT"),
                    ("lease_seconds", "LEASE_SECONDS"),
                    ("sweep_interval", "SWEEP_INTERVAL"),
                    ("quickbooks_throttle_backoff", "QUICKBOOKS_THROTTLE_BACKOFF"),
                    ("hubspot_calls_per_10s", "HUBSPOT_CALLS_PER_10S"),
                    ("quickbooks_calls_per_minute", "QUICKBOOKS_CALLS_PER_MINUTE"),
                    ("quickbooks_calls_per_second", "QUICKBOOKS_CALLS_PER_SECOND"),
                    ("quickbooks_concurrency", "QUICKBOOKS_CONCURRENCY"),
                    ("quickbooks_batches_per_minute", "QUICKBOOKS_BATCHES_PER_MINUTE"),
                    ("quickbooks_batch_above", "QUICKBOOKS_BATCH_ABOVE"),
                    ("quickbooks_batch_fill_ms", "QUICKBOOKS_BATCH_FILL_MS"),
                    ("signature_max_age", "SIGNATURE_MAX_AGE"),
                    ("trusted_proxies", "TRUSTED_PROXIES"),
                    ("retention_days", "RETENTION_DAYS"),
                    ("worker_metrics_port", "WORKER_METRICS_PORT"),
                    ("queue_lanes", "QUEUE_LANES"),
                    ("record_snapshot_seconds", "RECORD_SNAPSHOT_SECONDS"),
                    ("callback_flush_delay", "CALLBACK_FLUSH_DELAY"),
                    ("cdc_interval", "CDC_INTERVAL"),
                    ("status_flush_delay", "STATUS_FLUSH_DELAY"),
                )
                if env.get(key)
            }
            http_timeout = float(env.get("HTTP_TIMEOUT", "30"))
        except ValueError as exc:
            raise ConfigError(f"A numeric setting is not a number: {exc}") from exc
        if numbers.get("queue_lanes", cls.queue_lanes) < 1:
            raise ConfigError("QUEUE_LANES must be at least 1.")
        for name in RATE_LIMITS:
            if numbers.get(name, 1) < 1:
                raise ConfigError(f"{name.upper()} must be at least 1.")
        batch_writes = (env.get("QUICKBOOKS_BATCH_WRITES") or cls.quickbooks_batch_writes).strip().lower()
        if batch_writes not in BATCH_WRITES:
            raise ConfigError(f"QUICKBOOKS_BATCH_WRITES must be one of {', '.join(BATCH_WRITES)}.")
        accept_enqueue = (env.get("ACCEPT_ENQUEUE") or cls.accept_enqueue).strip().lower()
        if accept_enqueue not in ACCEPT_ENQUEUE:
            raise ConfigError(f"ACCEPT_ENQUEUE must be one of {', '.join(ACCEPT_ENQUEUE)}.")
        lease = numbers.get("lease_seconds", cls.lease_seconds)
        job_timeout = numbers.get("job_timeout", cls.job_timeout)
        if lease <= job_timeout + http_timeout:
            # A run that outlives its lease can be taken over while it still writes.
            raise ConfigError(
                f"LEASE_SECONDS ({lease}) must exceed JOB_TIMEOUT + HTTP_TIMEOUT ({job_timeout} + {http_timeout:g}), "
                "so that no run is taken over while it is still allowed to write."
            )
        callback_expiration = env.get("CALLBACK_EXPIRATION") or cls.callback_expiration
        try:
            if parse_duration(callback_expiration) <= timedelta(0):
                raise ValueError("it must be longer than nothing")
        except ValueError as exc:
            raise ConfigError(f"CALLBACK_EXPIRATION: {exc}") from exc
        public_base_url = env.get("PUBLIC_BASE_URL") or None
        return cls(
            hubspot_client_id=env["HUBSPOT_CLIENT_ID"],
            hubspot_client_secret=env["HUBSPOT_CLIENT_SECRET"],
            quickbooks_client_id=env["QUICKBOOKS_CLIENT_ID"],
            quickbooks_client_secret=env["QUICKBOOKS_CLIENT_SECRET"],
            secret_key=env["SECRET_KEY"],
            token_encryption_key=env["TOKEN_ENCRYPTION_KEY"],
            redis_url=env["REDIS_URL"],
            database_url=env.get("DATABASE_URL") or cls.database_url,
            public_base_url=public_base_url.rstrip("/") if public_base_url else None,
            hubspot_api_base_url=(env.get("HUBSPOT_API_BASE_URL") or HUBSPOT_API_BASE_URL).rstrip("/"),
            hubspot_developer_api_key=env.get("HUBSPOT_DEVELOPER_API_KEY") or None,
            quickbooks_environment=environment,
            quickbooks_api_base_url=(
                env.get("QUICKBOOKS_API_BASE_URL") or QUICKBOOKS_API_BASE_URLS[environment]
            ).rstrip("/"),
            quickbooks_token_url=env.get("QUICKBOOKS_TOKEN_URL") or QUICKBOOKS_TOKEN_URL,
            quickbooks_app_url=(env.get("QUICKBOOKS_APP_URL") or QUICKBOOKS_APP_URLS[environment]).rstrip("/"),
            quickbooks_authorize_url=env.get("QUICKBOOKS_AUTHORIZE_URL") or QUICKBOOKS_AUTHORIZE_URL,
            quickbooks_revoke_url=env.get("QUICKBOOKS_REVOKE_URL") or QUICKBOOKS_REVOKE_URL,
            hubspot_authorize_url=env.get("HUBSPOT_AUTHORIZE_URL") or HUBSPOT_AUTHORIZE_URL,
            hubspot_scopes=tuple((env.get("HUBSPOT_SCOPES") or " ".join(HUBSPOT_SCOPES)).replace(",", " ").split()),
            queue_name=env.get("QUEUE_NAME", cls.queue_name),
            retry_intervals=intervals,
            http_timeout=http_timeout,
            callback_expiration=callback_expiration.strip().upper(),
            ops_jwt_secret=env.get("OPS_JWT_SECRET") or None,
            ops_jwks_url=env.get("OPS_JWKS_URL") or None,
            ops_jwt_issuer=env.get("OPS_JWT_ISSUER") or cls.ops_jwt_issuer,
            ops_jwt_audience=env.get("OPS_JWT_AUDIENCE") or cls.ops_jwt_audience,
            ops_proxy_jwt_header=env.get("OPS_PROXY_JWT_HEADER") or None,
            ops_jwt_role_claim=env.get("OPS_JWT_ROLE_CLAIM") or cls.ops_jwt_role_claim,
            metrics_token=env.get("METRICS_TOKEN") or None,
            quickbooks_webhook_verifier_token=env.get("QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN") or None,
            hubspot_timeline_templates=parse_templates(env.get("HUBSPOT_TIMELINE_TEMPLATES") or ""),
            accept_enqueue=accept_enqueue,
            quickbooks_batch_writes=batch_writes,
            **numbers,
        )

    def with_overrides(self, **changes: object) -> Config:
        """Return a copy with some settings changed (tests and the demo)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def callback_expiry(self) -> timedelta:
        """Return how long HubSpot waits for an execution's callback."""
        return parse_duration(self.callback_expiration)

    @property
    def hubspot_token_url(self) -> str:
        """Return HubSpot's OAuth token endpoint."""
        return f"{self.hubspot_api_base_url}/oauth/v1/token"
