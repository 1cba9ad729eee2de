"""The sweeper: finds accepted executions whose job was lost and callbacks that were not sent."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from services.bootstrap import Services
from services.clock import utcnow
from services.store.records import RUNNING

log = logging.getLogger(__name__)
# An execution must sit this long without its job before the sweeper acts, so it never races the
# request that is enqueuing it right now.
GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    requeued: int
    flushes: int


def sweep(services: Services) -> SweepReport:
    """Re-enqueue executions whose job is gone or whose worker died; resend stuck callbacks."""
    queue = services.queue
    requeued = 0
    with services.lock("sweeper", timeout=120):
        for execution in services.executions.to_sweep(queued_before=utcnow() - GRACE):
            # A running execution listed here has an expired lease: its worker is gone.
            if queue.ensure_enqueued(execution.id, force=execution.state == RUNNING):
                requeued += 1
                log.warning("execution %s (%s) had no live job; enqueued it again", execution.id, execution.state)
        portals = services.callbacks.portals_waiting(utcnow() - timedelta(seconds=60))
        for portal_id in portals:
            queue.request_callback_flush(portal_id, force=True)
    return SweepReport(requeued, len(portals))


class SweeperThread(threading.Thread):
    """Runs the sweeper every few seconds beside a worker."""

    def __init__(self, services: Services) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.services = services
        self.stopping = threading.Event()

    def run(self) -> None:
        """Sweep until stopped; a failed sweep is logged and tried again next time."""
        while not self.stopping.wait(self.services.config.sweep_interval):
            try:
                sweep(self.services)
            except Exception:
                log.exception("sweep failed")
