"""The relay: queues the jobs of accepted executions, from the outbox to RQ, in batches, moments after each commit.

Every web process runs one relay thread. A request that accepted an execution wakes it; it takes what the outbox
holds (every process's entries, not only its own) and queues those jobs in one call to Redis, at most once per
TAKE_INTERVAL_SECONDS: alone, an execution is queued at once; under load, each take carries the executions of the
interval. Every relay also looks at the outbox on its own every POLL_SECONDS, so an execution accepted by a process
that died before its relay ran is queued by another one within a second; the sweeper queues whatever is older
than RELAY_GRACE, for when no web process is left.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from services import metrics
from services.clock import utcnow
from services.store.outbox import ExecutionOutbox, Waiting
from services.work.faults import INFRASTRUCTURE_FAULTS, infrastructure_error
from services.work.queue import JobQueue

if TYPE_CHECKING:
    from services.bootstrap import Services

log = logging.getLogger(__name__)
# Executions taken from the outbox at a time: one DELETE, and one script in Redis (which serves nothing else while
# it runs, about 10 µs a job).
RELAY_BATCH = 200
# A relay takes from the outbox at most this often: a lone execution is taken at once, and under load each take
# carries the executions of the interval (a take costs about as much as a few executions' enqueue).
TAKE_INTERVAL_SECONDS = 0.1
# How often a relay looks at the outbox when nobody wakes it (executions of a process that died).
POLL_SECONDS = 0.25
# A relay started by a request (not by the server) stops after this long without one.
IDLE_SECONDS = 10.0
# The sweeper queues executions left in the outbox this long: every live relay would have taken them.
RELAY_GRACE = timedelta(seconds=1)
# A relay that cannot reach the database or Redis says so at most this often.
COMPLAINT_SECONDS = 10.0


def relay_waiting(
    outbox: ExecutionOutbox,
    queue: JobQueue,
    *,
    accepted_before: datetime | None = None,
    batch: int = RELAY_BATCH,
) -> int:
    """Queue the jobs of the executions in the outbox, a batch at a time, until it is empty; return how many."""

    def enqueue(waiting: list[Waiting]) -> None:
        queue.enqueue_executions([(w.execution_id, w.portal_id) for w in waiting])

    moved = 0
    while True:
        taken = outbox.relay(enqueue, limit=batch, accepted_before=accepted_before)
        if taken:
            moved += len(taken)
            metrics.relayed(len(taken), (utcnow() - taken[0].accepted_at).total_seconds())
        if len(taken) < batch:
            return moved


def relay_everything(outbox: ExecutionOutbox, queue: JobQueue, *, timeout: float = 10.0) -> None:
    """Queue the jobs of every execution in the outbox, waiting for those other relays are queuing right now.

    For a process that runs the jobs itself next (tests, the demo) and must not find the queue empty meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        relay_waiting(outbox, queue)
        if outbox.count() == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"accepted executions still wait for their jobs after {timeout} s")
        time.sleep(0.01)


class RelayThread:
    """This process's relay: a thread that a request wakes, started after the fork of a server's worker."""

    def __init__(self, services: Services) -> None:
        # The services, not their outbox and queue: a test may swap the queue for a broken one and back.
        self.services = services
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lasting = False
        self._woken = threading.Event()
        self._stopping = threading.Event()

    def wake(self) -> None:
        """Have the outbox looked at now (called after a commit that wrote to it); start the thread if need be."""
        if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
            self.start()
        self._woken.set()

    def start(self, *, lasting: bool = False) -> None:
        """Start the thread in this process unless it runs; ``lasting``: never stop for want of requests."""
        with self._lock:
            if lasting:
                self._lasting = True
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            # Threads and their locks do not survive a fork: a worker forked from a process that had a relay
            # starts its own, with fresh events.
            self._pid = os.getpid()
            self._woken = threading.Event()
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, name="execution-relay", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after it queued what the outbox holds (a worker's exit)."""
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stopping.set()
        self._woken.set()
        thread.join(timeout)

    def _run(self) -> None:
        """Take from the outbox when woken (at most once per interval) or every poll; empty it when stopped."""
        stopping, woken = self._stopping, self._woken
        last_wake, last_take = time.monotonic(), 0.0
        last_complaint = 0.0
        while not stopping.is_set():
            if woken.wait(POLL_SECONDS):
                last_wake = time.monotonic()
                stopping.wait(last_take + TAKE_INTERVAL_SECONDS - last_wake)
                # Cleared before the take: an execution committed from now on wakes the relay again.
                woken.clear()
            elif not self._lasting and time.monotonic() - last_wake > IDLE_SECONDS:
                return
            last_take = time.monotonic()
            try:
                relay_waiting(self.services.outbox, self.services.queue)
            except INFRASTRUCTURE_FAULTS as fault:
                # The executions stay in the outbox: this relay or another queues them once both services answer.
                if time.monotonic() - last_complaint > COMPLAINT_SECONDS:
                    last_complaint = time.monotonic()
                    log.warning("relay paused: %s; trying again", infrastructure_error(fault))
                stopping.wait(POLL_SECONDS)
            except Exception:
                log.exception("relay failed; trying again")
                stopping.wait(POLL_SECONDS)
        try:
            relay_waiting(self.services.outbox, self.services.queue)
        except Exception:
            log.exception("relay could not empty the outbox before stopping; another relay will")
