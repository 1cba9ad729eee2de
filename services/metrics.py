"""Prometheus metrics: what every process counts, and how the web process and the worker show it.

The counters and histograms live in the process that counts (a gunicorn worker, the RQ worker, the sweeper).
Under gunicorn several processes count at once: prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
set by gunicorn.conf.py) keeps their values in files that /metrics adds up. What is read from the database
and Redis when Prometheus scrapes (the backlog) is the web process's only, through ``BacklogCollector``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# prometheus_client chooses multiprocess mode from this variable when it is imported; so do we.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# How an execution ended: the runner's outcomes, a hold that ran out (failed), and an operator's decisions.
SUCCEEDED, FAILED, HELD, CANCELLED, BOOKED = "succeeded", "failed", "held", "cancelled", "booked"
OUTCOMES = frozenset({SUCCEEDED, FAILED, HELD, CANCELLED, BOOKED})
# A response without an HTTP status: the connection failed or timed out.
NO_ANSWER = "error"

EXECUTIONS_ACCEPTED = Counter(
    "qbo_actions_executions_accepted", "Executions accepted from HubSpot (a repeated callbackId is not).", ["action"]
)
EXECUTIONS_FINISHED = Counter(
    "qbo_actions_executions_finished",
    "Executions that ended: outcome succeeded, failed, held, cancelled or booked; reason empty on success.",
    ["action", "outcome", "reason"],
)
REMOTE_CALLS = Counter(
    "qbo_actions_remote_calls",
    "HTTP calls to QuickBooks or HubSpot, by answer status ('error': no answer).",
    ["service", "status"],
)
RETRIES = Counter(
    "qbo_actions_retries", "Executions handed back for a later attempt, by the service that failed.", ["service"]
)
ACCEPT_SECONDS = Histogram(
    "qbo_actions_accept_seconds",
    "Time the execution endpoint took to accept an execution.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
EXECUTIONS_RELAYED = Counter(
    "qbo_actions_executions_relayed", "Accepted executions whose job the relay queued (from the outbox)."
)
RELAY_WAIT_SECONDS = Histogram(
    "qbo_actions_relay_wait_seconds",
    "Time from accepting an execution to queuing its job through the relay: the longest of each batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EXECUTION_SECONDS = Histogram(
    "qbo_actions_execution_seconds",
    "Time from accepting an execution to sending its callback to HubSpot.",
    ["action"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400),
)
NOTIFICATIONS = Counter(
    "qbo_actions_quickbooks_notifications",
    "Intuit change notifications received: new (to apply), repeated (already recorded) or ignored.",
    ["result"],
)
STATUS_UPDATES = Counter(
    "qbo_actions_status_updates",
    "HubSpot records whose QuickBooks properties were sent, and payments posted on their timelines.",
    ["kind"],
)


STATUS_UPDATES_REFUSED = Counter(
    "qbo_actions_status_updates_refused",
    "Batches of record statuses (or payment posts) HubSpot refused as a whole; the next change sends them again.",
    ["object_type"],
)


def status_updates_refused(object_type: str) -> None:
    """Count a batch of statuses HubSpot refused."""
    STATUS_UPDATES_REFUSED.labels(object_type=object_type).inc()


def notifications(new: int, repeated: int, ignored: int) -> None:
    """Count the events of a notification delivery."""
    for result, count in (("new", new), ("repeated", repeated), ("ignored", ignored)):
        if count:
            NOTIFICATIONS.labels(result=result).inc(count)


def status_updates(records: int, payments: int) -> None:
    """Count records whose properties went to HubSpot and payments posted on timelines."""
    if records:
        STATUS_UPDATES.labels(kind="record").inc(records)
    if payments:
        STATUS_UPDATES.labels(kind="payment").inc(payments)


def accepted(action: str) -> None:
    """Count an execution accepted for the first time."""
    EXECUTIONS_ACCEPTED.labels(action=action).inc()


def relayed(count: int, longest_wait: float) -> None:
    """Count executions the relay queued, and how long the first of them waited since it was accepted."""
    EXECUTIONS_RELAYED.inc(count)
    RELAY_WAIT_SECONDS.observe(max(0.0, longest_wait))


def finished(action: str, outcome: str, reason: str | None = None) -> None:
    """Count an execution that ended; ``outcome`` is one of OUTCOMES (an unknown one would grow the series)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {sorted(OUTCOMES)}")
    EXECUTIONS_FINISHED.labels(action=action, outcome=outcome, reason=reason or "").inc()


def remote_call(service: str, status: int | str) -> None:
    """Count a call to a remote API by its HTTP status, or NO_ANSWER."""
    REMOTE_CALLS.labels(service=service, status=str(status)).inc()


def retried(service: str) -> None:
    """Count a retry the runner scheduled after a transient error of ``service``."""
    RETRIES.labels(service=service).inc()


@contextmanager
def time_accept() -> Iterator[None]:
    """Time the block into the accept histogram, when it ends without an exception (the request was accepted)."""
    started = time.perf_counter()
    yield
    ACCEPT_SECONDS.observe(time.perf_counter() - started)


def observe_execution(action: str, seconds: float) -> None:
    """Record how long an execution took from acceptance to its callback."""
    EXECUTION_SECONDS.labels(action=action).observe(max(0.0, seconds))


@dataclass(frozen=True)
class Backlog:
    """What waits, read when Prometheus scrapes; None where its source (database or Redis) could not be read."""

    queued_jobs: int | None = None
    scheduled_jobs: int | None = None
    executions_by_state: Mapping[str, int] = field(default_factory=dict)
    # Seconds; 0 when nothing waits.
    oldest_waiting_execution: float | None = None
    oldest_unsent_callback: float | None = None


class BacklogCollector:
    """Gauges of the backlog, read from ``read`` at every scrape."""

    def __init__(self, read: Callable[[], Backlog]) -> None:
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Yield the queue depth, executions by state and the ages of the oldest waiting work."""
        backlog = self.read()
        if backlog.queued_jobs is not None and backlog.scheduled_jobs is not None:
            depth = GaugeMetricFamily(
                "qbo_actions_queue_depth",
                "Jobs in the RQ queue: waiting for a worker (queued) or for their retry time (scheduled).",
                labels=["state"],
            )
            depth.add_metric(["queued"], backlog.queued_jobs)
            depth.add_metric(["scheduled"], backlog.scheduled_jobs)
            yield depth
        if backlog.executions_by_state:
            states = GaugeMetricFamily("qbo_actions_executions", "Executions recorded, by state.", labels=["state"])
            for state, count in sorted(backlog.executions_by_state.items()):
                states.add_metric([state], count)
            yield states
        if backlog.oldest_waiting_execution is not None:
            yield GaugeMetricFamily(
                "qbo_actions_oldest_waiting_execution_seconds",
                "Age of the oldest execution queued, running or retrying (0: none).",
                value=backlog.oldest_waiting_execution,
            )
        if backlog.oldest_unsent_callback is not None:
            yield GaugeMetricFamily(
                "qbo_actions_oldest_unsent_callback_seconds",
                "Time since the oldest finished execution whose callback is still to be sent finished (0: none).",
                value=backlog.oldest_unsent_callback,
            )


def multiprocess_dir() -> str | None:
    """Return the directory of multiprocess mode, or None when this process counts alone."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def exposition(*collectors: Collector) -> bytes:
    """Render the counters (every process's, in multiprocess mode) and the given collectors in the text format."""
    if multiprocess_dir():
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    read_now = CollectorRegistry()
    for collector in collectors:
        read_now.register(collector)
    # Two registries with no metric name in common: their texts may follow each other.
    return generate_latest(counted) + generate_latest(read_now)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve this process's metrics over HTTP on ``port`` from a daemon thread (the worker, the sweeper)."""
    start_http_server(port, addr=address)
    log.info("metrics served on %s:%s/metrics", address, port)
