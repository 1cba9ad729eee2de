"""Running one execution: take its lease, run its handler, classify how it ended and record it."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from rq import Retry

from services import logs, metrics
from services.books.failures import ActionFailure, failure_for, internal_error, not_connected
from services.books.ports import HubSpotReader
from services.books.records import contact_properties
from services.books.run import AwaitingBatch, LeaseLostError, Run, never
from services.books.settings import hold_for
from services.bootstrap import Services
from services.clock import utcnow
from services.config import Config
from services.hubspot import outputs
from services.store.attempts import ABANDONED, BATCHED, FAILED, HELD, RETRYING, SUCCEEDED
from services.store.records import Execution
from services.transport.errors import InfrastructureError, RateLimitedError, ServiceError, TransientError
from services.transport.gate import BATCH, CALL, CallGate
from services.work import statuses
from services.work.faults import INFRASTRUCTURE_FAULTS, REDIS_FAULTS, infrastructure_error
from services.work.handlers import HANDLERS
from services.work.prefetch import SnapshotReader, Snapshots
from services.work.queue import retry_in

log = logging.getLogger(__name__)
# Being throttled is not failing: a busy portal or company gets this many more retries.
THROTTLE_ALLOWANCE = 20


def batch_rule(config: Config, gate: CallGate) -> Callable[[], bool]:
    """Return what tells, at a document write, whether it goes in the company's next QuickBooks batch."""
    if config.quickbooks_batch_writes == "on":
        return lambda: True
    if config.quickbooks_batch_writes == "off":
        return never

    def busy() -> bool:
        # Busy: past QUICKBOOKS_BATCH_ABOVE calls this minute (half of Intuit's 500 by default), or batching already
        # (so batching does not stop and start). A company below that is better served one call per document: a
        # batched document costs a second run of its execution.
        try:
            return gate.recent(CALL, "minute") >= config.quickbooks_batch_above or gate.recent(BATCH, "batches") > 0
        except REDIS_FAULTS:
            return False

    return busy


class ExecutionRunner:
    """Takes an execution's lease, runs its handler and records how it ended."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.executions = services.executions
        self.attempts = services.attempts
        self.config = services.config

    def run(self, execution_id: str) -> str | Retry:
        """Run the execution once; return a Retry when a transient error should be tried again."""
        try:
            leased = self.executions.lease(execution_id, self.config.lease_seconds)
            if leased is None:
                return "missing" if self.executions.get(execution_id) is None else "not runnable"
        except INFRASTRUCTURE_FAULTS as fault:
            return self._retry_blind(execution_id, infrastructure_error(fault))
        execution = leased.execution
        with logs.bound(
            execution=execution.id,
            callback=execution.callback_id,
            portal=execution.portal_id,
            realm=execution.realm_id,
            action=execution.action,
        ):
            try:
                return self._run(execution, leased.token)
            except INFRASTRUCTURE_FAULTS as fault:
                # Recording the outcome failed too: the lease runs out and the sweeper hands the execution on.
                return self._retry_blind(execution_id, infrastructure_error(fault))

    def _run(self, execution: Execution, token: str) -> str | Retry:
        execution_id = execution.id
        # The lease counted this run; runs before it that never reported back lost their worker, and starting
        # the attempt says so in the history.
        attempt_id = self.attempts.start(execution_id, execution.attempt_count)
        try:
            result = self._handle(execution, token)
            # Before the outcome, so a run that fails to record it follows the document on the next try.
            statuses.follow_created(self.services, execution, result)
            finished = self.executions.finish(
                execution_id, token, succeeded=True, output_fields=outputs.succeeded(result)
            )
        except LeaseLostError:
            self.attempts.finish(attempt_id, ABANDONED)
            return "lease lost"
        except AwaitingBatch:
            return self._await_batch(execution, token, attempt_id)
        except INFRASTRUCTURE_FAULTS as fault:
            return self._transient(execution, token, attempt_id, infrastructure_error(fault))
        except TransientError as error:
            return self._transient(execution, token, attempt_id, error)
        except ServiceError as error:
            return self._fail(execution, token, attempt_id, failure_for(error), error)
        except ActionFailure as failure:
            return self._fail(execution, token, attempt_id, failure, failure)
        except Exception as error:
            self._fail(execution, token, attempt_id, internal_error(error), error)
            raise  # so RQ keeps the traceback in its failed-job registry
        if not finished:
            # Another run took the execution over while this one was slow; that run reports the outcome.
            self.attempts.finish(attempt_id, ABANDONED)
            return "lease lost"
        self.attempts.finish(attempt_id, SUCCEEDED)
        metrics.finished(execution.action, metrics.SUCCEEDED)
        self._request_callback_flush(execution.portal_id)
        return "succeeded"

    def _transient(self, execution: Execution, token: str, attempt_id: int, error: TransientError) -> str | Retry:
        """Hand the execution back for a later attempt, or fail it once the error has used up its retries."""
        # Count only the retries since the last real ending, so an operator's retry starts afresh.
        retries = self.attempts.trailing_retries(execution.id)
        if retries >= self._attempt_budget(error):
            return self._fail(execution, token, attempt_id, failure_for(error), error)
        self.attempts.finish(attempt_id, RETRYING, error=error)
        self.executions.release_for_retry(execution.id, token)
        delay = self._retry_delay(error, retries + 1)
        # Our own database, Redis or time limit count as one: the attempts keep which of them failed.
        metrics.retried("server" if isinstance(error, InfrastructureError) else error.service or "server")
        log.warning("execution %s: %s; retrying in %ss", execution.id, error, delay)
        return retry_in(delay)

    def _await_batch(self, execution: Execution, token: str, attempt_id: int) -> str:
        """Let the execution wait for its company's next batch; the batch's answer queues it again."""
        self.attempts.finish(attempt_id, BATCHED)
        if not self.executions.release_to_batch(execution.id, token):
            return "lease lost"
        try:
            self.services.queue.request_batches(execution.portal_id, execution.realm_id or "")
        except REDIS_FAULTS as fault:
            log.warning("execution %s: batch sender not requested (%s); the sweeper will", execution.id, fault)
        return "awaiting batch"

    def _retry_blind(self, execution_id: str, error: TransientError) -> Retry:
        """Ask RQ to try again when nothing could be recorded (the database or Redis is down)."""
        delay = self.config.retry_intervals[0]
        log.warning("execution %s: %s; trying again in %ss", execution_id, error, delay)
        return retry_in(delay)

    def _request_callback_flush(self, portal_id: int) -> None:
        """Ask for the callbacks to be sent; when Redis is down the sweeper asks again later."""
        try:
            self.services.queue.request_callback_flush(portal_id)
        except REDIS_FAULTS as fault:
            log.warning("portal %s: callback flush not requested (%s); the sweeper will", portal_id, fault)

    def _handle(self, execution: Execution, token: str) -> dict[str, Any]:
        handler = HANDLERS.get(execution.action)
        if handler is None:
            raise ActionFailure("INTERNAL_ERROR", f"No handler for action {execution.action!r}.")
        return handler(self._start_run(execution, token))

    def _start_run(self, execution: Execution, token: str) -> Run:
        """Build what the handler works with: the company's client (if it is connected), the ports, the steps."""
        svc, realm_id = self.services, execution.realm_id or ""
        connection = svc.connections.quickbooks(execution.portal_id, realm_id)
        if connection is None or not connection.active:
            raise not_connected(realm_id, was_connected=connection is not None)
        lease_seconds = self.config.lease_seconds
        settings = svc.companies.settings(realm_id)
        qbo = svc.quickbooks(connection)
        return Run(
            execution=execution,
            qbo=qbo,
            hubspot=self._hubspot_reader(execution, settings),
            settings=settings,
            ledger=svc.bookkeeping,
            locks=svc.lock,
            profiles=svc.companies,
            keep_lease=lambda: self.executions.renew_lease(execution.id, token, lease_seconds),
            app_url=self.config.quickbooks_app_url,
            steps=svc.bookkeeping.steps(execution.id),
            batches=svc.batches,
            batch_now=batch_rule(self.config, qbo.gate),
        )

    def _hubspot_reader(self, execution: Execution, settings: dict[str, Any]) -> HubSpotReader:
        """Return the run's HubSpot reads: served from the snapshots of records read in batches, when enabled."""
        svc, seconds, portal_id = self.services, self.config.record_snapshot_seconds, execution.portal_id
        hubspot = svc.hubspot(portal_id)
        if seconds <= 0:
            return hubspot
        return SnapshotReader(
            hubspot,
            Snapshots(svc.redis, portal_id, seconds=seconds),
            waiting_objects=lambda types, limit: svc.executions.waiting_objects(portal_id, types, limit=limit),
            lock=svc.lock,
            contact_properties=contact_properties(settings),
            read_contacts=not execution.inputs.get("customer"),
        )

    def _hold_until(self, execution: Execution, reason: str) -> datetime | None:
        """Return until when the company holds a failure of this reason for a person to fix (None: report it).

        A hold never outlasts HubSpot's wait for the callback: after that there is nobody to report success to.
        """
        hours = hold_for(self.services.companies.settings(execution.realm_id or ""), reason)
        if not hours:
            return None
        until = utcnow() + timedelta(hours=hours)
        if execution.expires_at is not None:
            until = min(until, execution.expires_at)
        return until if until > utcnow() else None

    def _attempt_budget(self, error: TransientError) -> int:
        """Return how many retries an error may lead to before the action fails."""
        budget = len(self.config.retry_intervals)
        return budget + THROTTLE_ALLOWANCE if isinstance(error, RateLimitedError) else budget

    def _retry_delay(self, error: TransientError, retry_number: int) -> int:
        intervals = self.config.retry_intervals
        delay = intervals[min(retry_number - 1, len(intervals) - 1)]
        if isinstance(error, RateLimitedError):
            if error.retry_after is not None:
                # The server said when to come back; never sooner.
                return max(1, math.ceil(error.retry_after))
            if error.service == "quickbooks":
                # Intuit asks for a minute after a throttle and sends no Retry-After.
                return max(delay, self.config.quickbooks_throttle_backoff)
        return delay

    def _fail(self, execution: Execution, token: str, attempt_id: int, failure: ActionFailure, error: Exception) -> str:
        """Record a failure: held for a person to fix when the company says so, else reported."""
        fields = outputs.failed(failure.reason, failure.message)
        held_until = self._hold_until(execution, failure.reason)
        if held_until is not None:
            recorded = self.executions.hold(
                execution.id,
                token,
                until=held_until,
                output_fields=fields,
                reason=failure.reason,
                message=failure.message,
                details=failure.details or None,
            )
        else:
            recorded = self.executions.finish(
                execution.id,
                token,
                succeeded=False,
                output_fields=fields,
                failure_reason=failure.reason,
                failure_message=failure.message,
                failure_details=failure.details or None,
            )
        if not recorded:
            self.attempts.finish(attempt_id, ABANDONED, error=error)
            return "lease lost"
        self.attempts.finish(attempt_id, HELD if held_until else FAILED, error=error)
        metrics.finished(execution.action, metrics.HELD if held_until else metrics.FAILED, failure.reason)
        if held_until is not None:
            log.info("execution %s held until %s: %s", execution.id, held_until.isoformat(timespec="minutes"), failure)
            return "held"
        self._request_callback_flush(execution.portal_id)
        log.info("execution %s failed: %s", execution.id, failure)
        return "failed"
