"""RQ jobs. They take ids, build their clients through the bootstrap, and classify every ending."""

from __future__ import annotations

import logging
import math
from typing import Any

from rq import Retry

from services import bootstrap, logs
from services.bootstrap import Services
from services.errors import (
    ActionFailure,
    ConnectionRevokedError,
    DocumentBusyError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceError,
    TransientError,
)
from services.handlers import HANDLERS
from services.models import Execution
from services.reasons import describe
from services.run import LeaseLostError, Run

log = logging.getLogger(__name__)
# RQ only counts; our own attempt count decides when to stop.
RQ_RETRY_CEILING = 1000
THROTTLE_ALLOWANCE = 20


def run_execution(execution_id: str) -> str | Retry:
    """Run one execution to its outcome, or hand it back for a later retry."""
    return ExecutionRunner(bootstrap.current()).run(execution_id)


def flush_callbacks(portal_id: int) -> str | Retry:
    """Report every finished execution of a portal to HubSpot, in batches."""
    return CallbackFlusher(bootstrap.current()).flush(portal_id)


def failure_outputs(reason: str, message: str) -> dict[str, Any]:
    """Return the output fields of a failed execution."""
    return {"hs_execution_state": "FAIL_CONTINUE", "failure_reason": reason, "failure_message": message}


def failure_for(error: ServiceError) -> ActionFailure:
    """Turn a remote error that no retry will fix into the action's failure."""
    if isinstance(error, ConnectionRevokedError):
        if error.service == "quickbooks":
            return ActionFailure(
                "QUICKBOOKS_NOT_CONNECTED",
                "The QuickBooks connection was revoked or has expired. Reconnect QuickBooks in the app, "
                "then retry the action.",
            )
        return ActionFailure("HUBSPOT_NOT_CONNECTED", describe("HUBSPOT_NOT_CONNECTED"))
    if isinstance(error, DocumentBusyError):
        return ActionFailure("DOCUMENT_IN_PROGRESS", f"{describe('DOCUMENT_IN_PROGRESS')} ({error})")
    if isinstance(error, TransientError):
        reason = "QUICKBOOKS_UNAVAILABLE" if error.service == "quickbooks" else "HUBSPOT_UNAVAILABLE"
        return ActionFailure(reason, f"{describe(reason)} Last error: {error}")
    if error.service == "quickbooks":
        code = f" (code {error.code})" if error.code else ""
        detail = error.detail or ""
        message = error.message.removeprefix("QuickBooks: ")
        sentence = f"QuickBooks rejected the request{code}: {message}" + (
            f" {detail}" if detail and detail not in message else ""
        )
        return ActionFailure("QUICKBOOKS_REJECTED", sentence, quickbooks_code=error.code)
    if isinstance(error, NotFoundError):
        return ActionFailure("RECORD_NOT_FOUND", f"HubSpot could not find a record the action needs: {error}")
    return ActionFailure("HUBSPOT_REJECTED", f"HubSpot refused a request the action needed: {error}")


class ExecutionRunner:
    """Takes an execution's lease, runs its handler and records how it ended."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.store
        self.config = services.config

    def run(self, execution_id: str) -> str | Retry:
        """Run the execution once; return a Retry when a transient error should be tried again."""
        execution = self.store.get_execution(execution_id)
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
        token = self.store.acquire_lease(execution_id, self.config.lease_seconds)
        if token is None:
            return "not runnable"
        # Runs that never reported back lost their worker; say so in the history.
        self.store.abandon_running_attempts(execution_id)
        attempt_number = execution.attempt_count + 1
        attempt_id = self.store.start_attempt(execution_id, attempt_number)
        try:
            outputs = self._handle(execution, token)
        except LeaseLostError:
            self.store.finish_attempt(attempt_id, "abandoned")
            return "lease lost"
        except TransientError as error:
            # Count only the retries since the last real ending, so an operator's retry starts afresh.
            retries = self.store.trailing_retries(execution_id)
            if retries < self._attempt_budget(error):
                self.store.finish_attempt(attempt_id, "retrying", error=error)
                self.store.release_for_retry(execution_id, token)
                delay = self._retry_delay(error, retries + 1)
                log.warning("execution %s: %s; retrying in %ss", execution_id, error, delay)
                return Retry(max=RQ_RETRY_CEILING, interval=delay)
            return self._fail(execution, token, attempt_id, failure_for(error), error)
        except ServiceError as error:
            return self._fail(execution, token, attempt_id, failure_for(error), error)
        except ActionFailure as failure:
            return self._fail(execution, token, attempt_id, failure, failure)
        except Exception as error:
            internal = ActionFailure("INTERNAL_ERROR", f"{describe('INTERNAL_ERROR')} ({error.__class__.__name__})")
            self._fail(execution, token, attempt_id, internal, error)
            raise  # so RQ keeps the traceback in its failed-job registry
        if not self.store.finish_execution(
            execution_id, token, succeeded=True, output_fields={"hs_execution_state": "SUCCESS", **outputs}
        ):
            # Another run took the execution over while this one was slow; that run reports the outcome.
            self.store.finish_attempt(attempt_id, "abandoned")
            return "lease lost"
        self.store.finish_attempt(attempt_id, "succeeded")
        self.services.queue.request_callback_flush(execution.portal_id)
        return "succeeded"

    def _handle(self, execution: Execution, token: str) -> dict[str, Any]:
        handler = HANDLERS.get(execution.action)
        if handler is None:
            raise ActionFailure("INTERNAL_ERROR", f"No handler for action {execution.action!r}.")
        run = Run(
            services=self.services,
            execution=execution,
            lease_token=token,
            qbo=self.services.quickbooks(execution.portal_id, execution.realm_id or ""),
            hubspot=self.services.hubspot(execution.portal_id),
            settings=self.store.company_settings(execution.realm_id or ""),
            steps=self.store.steps(execution.id),
        )
        return handler(run)

    def _attempt_budget(self, error: TransientError) -> int:
        """Return how many retries an error may lead to before the action fails."""
        budget = len(self.config.retry_intervals)
        # Being throttled is not failing: a busy portal or company gets more patience.
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
        if not self.store.finish_execution(
            execution.id,
            token,
            succeeded=False,
            output_fields=failure_outputs(failure.reason, failure.message),
            failure_reason=failure.reason,
            failure_message=failure.message,
        ):
            self.store.finish_attempt(attempt_id, "abandoned", error=error)
            return "lease lost"
        self.store.finish_attempt(attempt_id, "failed", error=error)
        self.services.queue.request_callback_flush(execution.portal_id)
        log.info("execution %s failed: %s", execution.id, failure)
        return "failed"


class CallbackFlusher:
    """Sends pending callback completions of one portal."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.store

    def flush(self, portal_id: int) -> str | Retry:
        """Send every pending completion; return a Retry on a transient HubSpot error."""
        self.services.queue.clear_flush_request(portal_id)
        hubspot = self.services.hubspot(portal_id)
        sent = 0
        # One flusher per portal at a time, so no completion is sent twice.
        with self.services.lock(f"flush:{portal_id}", timeout=self.services.config.job_timeout):
            while pending := self.store.pending_callbacks(portal_id, limit=100):
                completions = [(callback_id, outputs) for _, callback_id, outputs in pending]
                try:
                    hubspot.complete_callbacks(completions)
                except TransientError as error:
                    log.warning("portal %s: callbacks not sent: %s", portal_id, error)
                    delay = error.retry_after if isinstance(error, RateLimitedError) and error.retry_after else 10
                    return Retry(max=RQ_RETRY_CEILING, interval=max(1, math.ceil(delay)))
                except (PermanentError, ConnectionRevokedError):
                    if len(pending) == 1:
                        log.error("portal %s: HubSpot refused callback %s", portal_id, pending[0][1])
                        self.store.mark_callbacks([pending[0][0]], state="rejected")
                        continue
                    sent += self._one_by_one(hubspot, pending)
                    continue
                self.store.mark_callbacks([execution_id for execution_id, _, _ in pending])
                sent += len(pending)
        return f"sent {sent}"

    def _one_by_one(self, hubspot: Any, pending: list[tuple[str, str, dict[str, Any]]]) -> int:
        """Send a refused batch one by one, so one bad callback does not hold back the others."""
        sent = 0
        for execution_id, callback_id, outputs in pending:
            try:
                hubspot.complete_callbacks([(callback_id, outputs)])
            except (PermanentError, ConnectionRevokedError) as error:
                log.error("callback %s refused by HubSpot: %s", callback_id, error)
                self.store.mark_callbacks([execution_id], state="rejected")
                continue
            self.store.mark_callbacks([execution_id])
            sent += 1
        return sent
