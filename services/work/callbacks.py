"""Reporting finished executions back to HubSpot, in batches, so the waiting workflows go on."""

from __future__ import annotations

import logging

from rq import Retry

from services import metrics
from services.bootstrap import Services
from services.clock import utcnow
from services.hubspot.client import HubSpotClient
from services.store.callbacks import REJECTED
from services.store.records import PendingCallback
from services.transport.errors import (
    AuthenticationError,
    ConnectionRevokedError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from services.work.faults import INFRASTRUCTURE_FAULTS
from services.work.queue import retry_in

log = logging.getLogger(__name__)
BATCH = 100


class CallbackFlusher:
    """Sends pending callback completions of one portal."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.callbacks = services.callbacks

    def flush(self, portal_id: int) -> str | Retry:
        """Send every pending completion; return a Retry on a transient HubSpot error.

        A completion HubSpot refuses (4xx) is marked rejected, one by one so it holds back no other. When the
        app's access to the portal is gone (revoked, or 401 after a refresh) nothing is marked: the completions
        wait, the sweeper asks again, and they go out once the portal installs the app again (or expire).
        """
        self.services.queue.clear_flush_request(portal_id)
        if expired := self.callbacks.expire_overdue(portal_id):
            log.warning("portal %s: %s callbacks not sent: HubSpot stopped waiting for them", portal_id, expired)
        hubspot = self.services.hubspot(portal_id)
        sent = 0
        # One flusher per portal at a time, so no completion is sent twice.
        with self.services.lock(f"flush:{portal_id}", timeout=self.services.config.job_timeout):
            try:
                while pending := self.callbacks.pending(portal_id, limit=BATCH):
                    sent += self._send(hubspot, pending)
            except TransientError as error:
                log.warning("portal %s: callbacks not sent: %s", portal_id, error)
                delay = error.retry_after if isinstance(error, RateLimitedError) and error.retry_after else 10
                return retry_in(delay)
            except (ConnectionRevokedError, AuthenticationError) as error:
                log.error("portal %s: callbacks wait: the app has no access to the portal (%s)", portal_id, error)
                return f"sent {sent}; the rest wait for access to portal {portal_id}"
        return f"sent {sent}"

    def _send(self, hubspot: HubSpotClient, pending: list[PendingCallback]) -> int:
        """Complete a batch; when HubSpot refuses it, complete its callbacks one by one. Return how many went."""
        try:
            hubspot.complete_callbacks([(p.callback_id, p.output_fields) for p in pending])
        except PermanentError:
            if len(pending) == 1:
                log.error("HubSpot refused callback %s", pending[0].callback_id)
                self.callbacks.mark([pending[0].execution_id], state=REJECTED)
                return 0
            return self._one_by_one(hubspot, pending)
        self._sent([p.execution_id for p in pending])
        return len(pending)

    def _one_by_one(self, hubspot: HubSpotClient, pending: list[PendingCallback]) -> int:
        """Send a refused batch one by one, so one bad callback does not hold back the others."""
        sent = 0
        for callback in pending:
            try:
                hubspot.complete_callbacks([(callback.callback_id, callback.output_fields)])
            except PermanentError as error:
                log.error("callback %s refused by HubSpot: %s", callback.callback_id, error)
                self.callbacks.mark([callback.execution_id], state=REJECTED)
                continue
            self._sent([callback.execution_id])
            sent += 1
        return sent

    def _sent(self, execution_ids: list[str]) -> None:
        """Record that HubSpot took these callbacks, and how long each execution took from acceptance to here."""
        now = utcnow()
        self.callbacks.mark(execution_ids)
        try:
            starts = self.services.stats.starts(execution_ids)
        except INFRASTRUCTURE_FAULTS as fault:
            # The callbacks went out and are marked; a lost measurement must not send them again.
            log.warning("durations of %s executions not measured: %s", len(execution_ids), fault)
            return
        for start in starts:
            metrics.observe_execution(start.action, (now - start.created_at).total_seconds())
