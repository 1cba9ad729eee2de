"""The sweeper: finds accepted executions whose job was lost and callbacks that were not sent."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from services import metrics
from services.bootstrap import Services
from services.clock import utcnow
from services.store.records import RUNNING
from services.work import statuses
from services.work.faults import INFRASTRUCTURE_FAULTS, infrastructure_error
from services.work.relay import RELAY_GRACE, relay_waiting

log = logging.getLogger(__name__)
# An execution must sit this long without its job before the sweeper acts, so it never races the
# request (direct) or the relay that is enqueuing it right now.
GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    requeued: int
    flushes: int
    purged: int = 0
    # Accepted executions left in the outbox past RELAY_GRACE, queued by the sweeper.
    relayed: int = 0


# One purge a day across every sweeper of the deployment.
PURGE_FLAG = "qbo-actions:purged-today"


def sweep(services: Services) -> SweepReport:
    """Re-enqueue executions whose job is gone or whose worker died; resend stuck callbacks."""
    queue = services.queue
    requeued = 0
    # Before the lock (relays never race each other) and before the look for lost jobs, which would queue these too.
    relayed = relay_waiting(services.outbox, queue, accepted_before=utcnow() - RELAY_GRACE)
    if relayed:
        log.warning("queued %s accepted executions no relay had queued within %s", relayed, RELAY_GRACE)
    with services.lock("sweeper", timeout=120):
        for execution in services.executions.to_sweep(queued_before=utcnow() - GRACE):
            # A running execution listed here has an expired lease: its worker is gone.
            if queue.ensure_enqueued(execution.id, execution.portal_id, force=execution.state == RUNNING):
                requeued += 1
                log.warning("execution %s (%s) had no live job; enqueued it again", execution.id, execution.state)
        # Documents parked for a batch whose sender was lost, or a batch whose answer was (the sender settles it).
        for tenant in services.batches.tenants_waiting(utcnow() - GRACE):
            queue.request_batches(tenant.portal_id, tenant.realm_id, force=True)
        for released in services.executions.release_holds(utcnow()):
            log.warning("execution %s: its hold ran out; reporting %s", released.id, released.failure_reason)
            metrics.finished(released.action, metrics.FAILED, released.failure_reason)
            queue.request_callback_flush(released.portal_id)
        # A flush normally follows within moments; give it two sweeps (a minute by default) before forcing one.
        waiting_since = utcnow() - timedelta(seconds=max(5, 2 * services.config.sweep_interval))
        portals = services.callbacks.portals_waiting(waiting_since)
        for portal_id in portals:
            queue.request_callback_flush(portal_id, force=True)
    # Outside the sweeper lock: a long purge must not outlive it, and the daily flag already lets only one run.
    purged = purge_daily(services)
    statuses.request_due_work(services)
    statuses.check_daily(services)
    return SweepReport(requeued, len(portals), purged, relayed)


def purge_daily(services: Services) -> int:
    """Delete finished executions older than RETENTION_DAYS, at most once a day; return how many."""
    days = services.config.retention_days
    if days <= 0 or not services.redis.set(PURGE_FLAG, "1", nx=True, ex=int(timedelta(days=1).total_seconds())):
        return 0
    purged = services.retention.purge_finished(utcnow() - timedelta(days=days))
    log.info("deleted %s executions finished more than %s days ago", purged, days)
    return purged


def sweep_forever(services: Services, stopping: threading.Event) -> None:
    """Sweep every SWEEP_INTERVAL seconds until ``stopping`` is set (the `sweeper` process of the Procfile).

    It runs in a process of its own, never as a thread of the RQ worker: the worker runs its jobs in its main
    thread under a SIGALRM time limit and forks its scheduler, and a fork taken while this thread held a lock
    (logging's, a pool's) could hang the scheduler.
    """
    interval = services.config.sweep_interval
    while not stopping.wait(interval):
        try:
            sweep(services)
        except INFRASTRUCTURE_FAULTS as fault:
            log.warning("sweep skipped: %s; trying again in %s s", infrastructure_error(fault), interval)
        except Exception:
            log.exception("sweep failed")
