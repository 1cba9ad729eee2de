"""Running one execution: take its lease, run its handler, classify how it ended and record it."""

from __future__ import annotations

import logging
import math
from typing import Any

from rq import Retry

from services import logs
from services.books.failures import ActionFailure, failure_for, internal_error, not_connected
from services.books.run import LeaseLostError, Run
from services.bootstrap import Services
from services.hubspot import outputs
from services.store.attempts import ABANDONED, FAILED, RETRYING, SUCCEEDED
from services.store.records import Execution
from services.transport.errors import RateLimitedError, ServiceError, TransientError
from services.work.handlers import HANDLERS
from services.work.queue import retry_in

log = logging.getLogger(__name__)
# Being throttled is not failing: a busy portal or company gets this many more retries.
THROTTLE_ALLOWANCE = 20


class ExecutionRunner:
    """Takes an execution's lease, runs its handler and records how it ended."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.executions = services.executions
        self.attempts = services.attempts
        self.config = services.config

    def run(self, execution_id: str) -> str | Retry:
        """Run the execution once; return a Retry when a transient error should be tried again."""
        execution = self.executions.get(execution_id)
        if execution is None:
            return "missing"
        with logs.bound(
            execution=execution.id,
            callback=execution.callback_id,
            portal=execution.portal_id,
            realm=execution.realm_id,
            action=execution.action,
        ):
            return self._run(execution)

    def _run(self, execution: Execution) -> str | Retry:
        execution_id = execution.id
        token = self.executions.acquire_lease(execution_id, self.config.lease_seconds)
        if token is None:
            return "not runnable"
        # Runs that never reported back lost their worker; say so in the history.
        self.attempts.abandon_running(execution_id)
        attempt_id = self.attempts.start(execution_id, execution.attempt_count + 1)
        try:
            result = self._handle(execution, token)
        except LeaseLostError:
            self.attempts.finish(attempt_id, ABANDONED)
            return "lease lost"
        except TransientError as error:
            # Count only the retries since the last real ending, so an operator's retry starts afresh.
            retries = self.attempts.trailing_retries(execution_id)
            if retries < self._attempt_budget(error):
                self.attempts.finish(attempt_id, RETRYING, error=error)
                self.executions.release_for_retry(execution_id, token)
                delay = self._retry_delay(error, retries + 1)
                log.warning("execution %s: %s; retrying in %ss", execution_id, error, delay)
                return retry_in(delay)
            return self._fail(execution, token, attempt_id, failure_for(error), error)
        except ServiceError as error:
            return self._fail(execution, token, attempt_id, failure_for(error), error)
        except ActionFailure as failure:
            return self._fail(execution, token, attempt_id, failure, failure)
        except Exception as error:
            self._fail(execution, token, attempt_id, internal_error(error), error)
            raise  # so RQ keeps the traceback in its failed-job registry
        if not self.executions.finish(execution_id, token, succeeded=True, output_fields=outputs.succeeded(result)):
            # Another run took the execution over while this one was slow; that run reports the outcome.
            self.attempts.finish(attempt_id, ABANDONED)
            return "lease lost"
        self.attempts.finish(attempt_id, SUCCEEDED)
        self.services.queue.request_callback_flush(execution.portal_id)
        return "succeeded"

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
        return Run(
            execution=execution,
            qbo=svc.quickbooks(connection),
            hubspot=svc.hubspot(execution.portal_id),
            settings=svc.companies.settings(realm_id),
            ledger=svc.bookkeeping,
            locks=svc.lock,
            profiles=svc.companies,
            keep_lease=lambda: self.executions.renew_lease(execution.id, token, lease_seconds),
            app_url=self.config.quickbooks_app_url,
            steps=svc.bookkeeping.steps(execution.id),
        )

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
        if not self.executions.finish(
            execution.id,
            token,
            succeeded=False,
            output_fields=outputs.failed(failure.reason, failure.message),
            failure_reason=failure.reason,
            failure_message=failure.message,
        ):
            self.attempts.finish(attempt_id, ABANDONED, error=error)
            return "lease lost"
        self.attempts.finish(attempt_id, FAILED, error=error)
        self.services.queue.request_callback_flush(execution.portal_id)
        log.info("execution %s failed: %s", execution.id, failure)
        return "failed"
