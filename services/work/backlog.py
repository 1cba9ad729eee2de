"""The backlog the metrics show at every scrape: the RQ queue, executions by state, the oldest waiting work."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from rq.registry import ScheduledJobRegistry

from services.bootstrap import Services
from services.clock import utcnow
from services.metrics import Backlog, BacklogCollector
from services.work.faults import INFRASTRUCTURE_FAULTS

log = logging.getLogger(__name__)


def read_backlog(services: Services) -> Backlog:
    """Read the queue and the executions table; a source that does not answer is left out, not an error."""
    backlog = Backlog()
    queues = services.queue.all_queues
    try:
        # No cleanup of the registry: a scrape only looks.
        scheduled = sum(ScheduledJobRegistry(queue=queue).get_job_count(cleanup=False) for queue in queues)
        backlog = replace(backlog, queued_jobs=services.queue.depth(), scheduled_jobs=scheduled)
    except INFRASTRUCTURE_FAULTS as fault:
        log.warning("metrics: the queue could not be read: %s", fault)
    try:
        stats = services.stats.executions()
    except INFRASTRUCTURE_FAULTS as fault:
        log.warning("metrics: the executions could not be read: %s", fault)
        return backlog
    now = utcnow()
    return replace(
        backlog,
        executions_by_state=stats.by_state,
        oldest_waiting_execution=_age(stats.oldest_waiting_since, now),
        oldest_unsent_callback=_age(stats.oldest_unsent_callback_since, now),
    )


def _age(since: datetime | None, now: datetime) -> float:
    """Return the seconds since a moment, 0 when there is none."""
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def backlog_collector(services: Services) -> BacklogCollector:
    """Return the collector of the backlog gauges over these services."""
    return BacklogCollector(lambda: read_backlog(services))
