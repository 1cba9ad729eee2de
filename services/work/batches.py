"""Sending a company's parked document writes to QuickBooks, up to 30 per POST /batch, each exactly once.

One sender per portal and company at a time (a Redis lock). Each batch is recorded with its requestid before it
goes out. Its answer makes every member's step done or rejected in one transaction, and the members' executions
are queued again to finish (their runs find the step done). A batch whose answer was lost (a timeout, a 5xx, a
worker that died) is looked up member by member before anything is sent again: when none of its documents
exists it goes out again unchanged, with the same requestid, so QuickBooks can replay its first answer; when
some exist those are done and the others wait for a new batch, since resending the found ones would rely on
QuickBooks remembering the requestid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from redis.exceptions import LockError
from rq import Retry

from services.books.batching import BATCH_SIZE, batch_request, read_answers, whole_batch_fault
from services.books.documents import find_created
from services.bootstrap import LOCK_PREFIX, Services
from services.clock import utcnow
from services.quickbooks.client import QuickBooksClient
from services.store.records import Batch, Tenant
from services.transport.errors import (
    AuthenticationError,
    ConnectionRevokedError,
    PermanentError,
    RateLimitedError,
    ServiceError,
    TransientError,
)
from services.transport.ratelimit import MAX_WAIT
from services.work.faults import INFRASTRUCTURE_FAULTS, infrastructure_error
from services.work.queue import retry_in

log = logging.getLogger(__name__)
# A sender hands over to a new job after this long, so a company with a steady stream never holds a worker.
WORK_SECONDS = 60
# How often a batch with room left looks again for more members while it waits to fill.
FILL_POLL_SECONDS = 0.05


class BatchSender:
    """Puts the document writes parked for one portal's company into batches and sends them."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.batches = services.batches
        self.queue = services.queue
        self.fill_seconds = services.config.quickbooks_batch_fill_ms / 1000
        # Renews the sender's lock before each request (LockNotOwnedError when another sender took over).
        self._keep: Callable[[], object] = lambda: None

    def send(self, portal_id: int, realm_id: str) -> str | Retry:
        """Send every batch the company has waiting; return what was done, or a Retry after a transient error."""
        tenant = Tenant(portal_id, realm_id)
        sent = 0
        # Long enough for one try (a wait for the limiter, then the request); renewed before each, so a sender that
        # died lets the next one in soon.
        hold = int(MAX_WAIT + 2 * self.services.config.http_timeout + 10)
        while True:
            lock = self.services.redis.lock(f"{LOCK_PREFIX}batches:{tenant}", timeout=hold)
            if not lock.acquire(blocking=False):
                # The sender at work sees the raised flag once it lets go of the lock, and goes on.
                return f"{sent} sent; another sender works for {tenant}"
            self._keep = lock.reacquire
            try:
                outcome = self._work(tenant)
            finally:
                try:
                    lock.release()
                except LockError:
                    log.warning("batches of %s: the sender's lock ran out while it worked", tenant)
            if isinstance(outcome, Retry):
                return outcome
            answered, finished = outcome
            sent += answered
            if not finished:
                # Time is up: a new job carries on, so the worker takes other jobs in between.
                self.queue.request_batches(portal_id, realm_id, force=True)
                return f"{sent} sent; a new job carries on"
            # Raised after the last look: an item was parked meanwhile, and its own sender may have stepped aside.
            if not self.queue.clear_batch_request(portal_id, realm_id):
                return f"{sent} sent"

    def _work(self, tenant: Tenant) -> tuple[int, bool] | Retry:
        """Send batches until nothing waits or the work time is over; return how many members were answered and
        whether nothing waits any more."""
        svc = self.services
        connection = svc.connections.quickbooks(tenant.portal_id, tenant.realm_id)
        if connection is None or not connection.active:
            return self._withdraw(tenant), True
        qbo = svc.quickbooks(connection)
        answered = 0
        deadline = time.monotonic() + WORK_SECONDS
        while time.monotonic() < deadline:
            self.queue.clear_batch_request(tenant.portal_id, tenant.realm_id)
            self._wait_to_fill(tenant, deadline)
            batch = self.batches.open_batch(tenant, BATCH_SIZE)
            if batch is None:
                return answered, True
            if batch.retry_at is not None and batch.retry_at > utcnow():
                # A try failed a moment ago; the sender that made it comes back then.
                return retry_in((batch.retry_at - utcnow()).total_seconds())
            outcome = self._try(qbo, batch)
            if isinstance(outcome, Retry):
                return outcome
            answered += outcome
        return answered, False

    def _wait_to_fill(self, tenant: Tenant, deadline: float) -> None:
        """Give a batch with room left a moment to fill, while documents keep arriving for the company."""
        while self.fill_seconds > 0 and time.monotonic() < deadline:
            waiting, oldest = self.batches.backlog(tenant)
            if waiting == 0 or waiting >= BATCH_SIZE or oldest is None:
                return
            if (utcnow() - oldest).total_seconds() >= self.fill_seconds:
                return
            time.sleep(FILL_POLL_SECONDS)

    def _try(self, qbo: QuickBooksClient, batch: Batch) -> int | Retry:
        """Try a batch once; return how many members were answered, or when to try again."""
        maybe_sent = batch.tries > 0
        self._keep()
        self.batches.trying(batch.id)
        everyone = [item.bid or "" for item in batch.items]
        try:
            if maybe_sent and self._settle_from_quickbooks(qbo, batch):
                return len(batch.items)
            self._keep()
            answers = qbo.batch(batch_request(batch.items), requestid=batch.requestid)
        except RateLimitedError as error:
            if not maybe_sent:
                # Refused before QuickBooks did anything (our limiter, or a 429): the members wait for the next one.
                self.batches.answer(batch, {}, {}, unanswered=everyone)
                return retry_in(error.retry_after or self.services.config.quickbooks_throttle_backoff)
            return self._failed(batch, error)
        except (ConnectionRevokedError, AuthenticationError) as error:
            log.error("batch %s of %s: no access to the company (%s)", batch.id, batch.realm_id, error)
            if maybe_sent:
                return self._failed(batch, error, last=True)
            self.batches.answer(batch, {}, {}, unanswered=everyone)
            return self._withdraw(Tenant(batch.portal_id, batch.realm_id))
        except PermanentError as error:
            # QuickBooks refused the whole batch, so it created none of it: every member fails with its reason.
            fault = whole_batch_fault(error)
            self.batches.answer(batch, {}, {bid: fault for bid in everyone})
            self._requeue(batch, [item.execution_id for item in batch.items])
            return len(batch.items)
        except TransientError as error:
            return self._failed(batch, error)
        documents, faults = read_answers(batch.items, answers)
        self.batches.answer(batch, documents, faults)
        self._requeue(batch, [item.execution_id for item in batch.items])
        return len(batch.items)

    def _failed(self, batch: Batch, error: ServiceError, *, last: bool = False) -> int | Retry:
        """A try whose outcome is unknown: try again after the next retry interval, or give up once they are used."""
        intervals = self.services.config.retry_intervals
        tries = batch.tries + 1
        if last or tries > len(intervals):
            log.error("batch %s of %s: giving up after %s tries: %s", batch.id, batch.realm_id, tries, error)
            self.batches.give_up(batch, error_record(error))
            self._requeue(batch, [item.execution_id for item in batch.items])
            return len(batch.items)
        delay = intervals[tries - 1]
        if isinstance(error, RateLimitedError) and error.retry_after:
            delay = max(delay, int(error.retry_after))
        self.batches.retry_later(batch.id, utcnow() + timedelta(seconds=delay))
        log.warning(
            "batch %s of %s: %s; its documents are looked up in %s s before it goes again",
            batch.id,
            batch.realm_id,
            error,
            delay,
        )
        return retry_in(delay)

    def _settle_from_quickbooks(self, qbo: QuickBooksClient, batch: Batch) -> bool:
        """Look up the members of a batch whose answer was lost; True when that settled it without sending again."""
        found = {}
        for item in batch.items:
            self._keep()
            step = self.services.bookkeeping.steps(item.execution_id).get(item.step)
            started = step.data if step is not None else {}
            marker = started.get("marker")
            document = find_created(qbo, item.entity, started, [marker] if marker else [])
            if document is not None:
                found[item.bid or ""] = document
        if not found:
            log.warning("batch %s: none of its documents exists; sending it again as it was", batch.id)
            return False
        rest = [item.bid or "" for item in batch.items if item.bid not in found]
        log.warning("batch %s: %s of its documents exist; %s wait for a new batch", batch.id, len(found), len(rest))
        self.batches.answer(batch, found, {}, unanswered=rest)
        self._requeue(batch, [item.execution_id for item in batch.items if item.bid in found])
        return True

    def _requeue(self, batch: Batch, execution_ids: list[str]) -> None:
        """Queue the answered members again so they finish; when Redis fails the sweeper queues them."""
        try:
            for execution_id in execution_ids:
                self.queue.enqueue_execution(execution_id, batch.portal_id, at_front=True)
        except INFRASTRUCTURE_FAULTS as fault:
            log.warning("batch %s answered but its members not queued (%s); the sweeper will", batch.id, fault)

    def _withdraw(self, tenant: Tenant) -> int:
        """Take the waiting writes of a disconnected company out of batching, so their executions fail and say so."""
        ids = self.batches.withdraw_waiting(tenant)
        if ids:
            log.error(
                "batches of %s: the company is not connected; %s executions go on without a batch", tenant, len(ids)
            )
        for execution_id in ids:
            self.queue.enqueue_execution(execution_id, tenant.portal_id)
        return 0


def error_record(error: ServiceError) -> dict[str, Any]:
    """Return what a member keeps of the error that made the sender give its batch up."""
    return {
        "message": error.message,
        "service": error.service,
        "revoked": isinstance(error, (ConnectionRevokedError, AuthenticationError)),
        "http_status": error.http_status,
        "code": error.code,
        "request_id": error.request_id,
    }


def send_batches(services: Services, portal_id: int, realm_id: str) -> str | Retry:
    """Send the company's waiting batches (the job's body; INFRASTRUCTURE_FAULTS become a retry)."""
    try:
        return BatchSender(services).send(portal_id, realm_id)
    except INFRASTRUCTURE_FAULTS as fault:
        log.warning("batches of %s:%s: %s; trying again", portal_id, realm_id, infrastructure_error(fault))
        return retry_in(services.config.retry_intervals[0])
