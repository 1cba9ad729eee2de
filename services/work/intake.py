"""Accepting an execution: recording it once per callbackId and seeing that its job gets queued.

Two ways, chosen by ACCEPT_ENQUEUE:

- relay (the default): the request commits the execution with an outbox entry, grouped with the executions of
  the process's other requests in flight, and is answered; the relay thread queues the jobs in batches.
- direct: the request commits the execution alone and queues its job itself (one insert, one enqueue).

Either way HubSpot is answered only after the commit, and an execution whose job was not queued is found again:
by another relay (relay) or by the sweeper (direct).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from services.store.outbox import GroupCommit, WriterConnection
from services.store.records import NewExecution
from services.work.relay import RelayThread

if TYPE_CHECKING:
    from services.bootstrap import Services

log = logging.getLogger(__name__)
RELAY, DIRECT = "relay", "direct"


class ExecutionIntake:
    """Records accepted executions and has their jobs queued (one per process, shared by its threads)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.relayed = services.config.accept_enqueue == RELAY
        self.writer = WriterConnection(services.database)
        self.group = GroupCommit(self._commit)
        self.relay = RelayThread(services)

    def accept(self, new: NewExecution) -> tuple[str, bool]:
        """Record an execution once per callbackId; return its id and whether this call created it.

        Raises the database's error when it could not be recorded; a failure to queue its job does not raise.
        """
        if self.relayed:
            execution_id, created = self.group.accept(new)
            if created:
                self.relay.wake()
            return execution_id, created
        execution_id, created = self.services.executions.accept(new)
        if created:
            try:
                self.services.queue.enqueue_execution(execution_id, new.portal_id)
            except Exception:
                # The row is written: the sweeper enqueues it once the queue is back.
                log.exception("execution %s recorded but not enqueued; the sweeper will enqueue it", execution_id)
        return execution_id, created

    def _commit(self, news: list[NewExecution]) -> list[tuple[str, bool]]:
        """Commit a group's executions through the process's writer connection."""
        with self.writer.use() as connection:
            return self.services.outbox.accept(news, connection=connection)

    def start(self) -> None:
        """Start this process's relay for good (a server's worker, once forked), so it also queues what others left."""
        if self.relayed:
            self.relay.start(lasting=True)

    def stop(self) -> None:
        """Queue what waits and stop the relay (a server's worker on its way out, a test's server)."""
        self.relay.stop()
        self.writer.close()
