"""One run of an execution: its clients, settings, ports and the steps it already completed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.books.company import CompanyProfile, company_profile
from services.books.failures import ActionFailure, expired, failure_for
from services.books.ports import BatchWrites, HubSpotReader, Ledger, LockFactory, ProfileCache
from services.books.settings import DEFAULTS_OF_INPUTS
from services.clock import utcnow
from services.quickbooks.client import QuickBooksClient, batch_item_error
from services.store.records import Execution, Step, Tenant
from services.transport.errors import ConnectionRevokedError, TransientError

# Fixed namespace so that requestids derived from the same execution are the same in every process.
REQUEST_ID_NAMESPACE = uuid.UUID("6f1d3c56-3c2a-4b8e-9a51-0c2f7c1e9b10")


class LeaseLostError(Exception):
    """Another run took this execution over; this one must stop without writing."""


class AwaitingBatch(Exception):
    """The run's document write waits for its company's next QuickBooks batch; the run starts again once answered."""

    def __init__(self, step: str) -> None:
        super().__init__(f"{step} waits for a QuickBooks batch")
        self.step = step


def batch_failure(record: dict[str, Any]) -> ActionFailure:
    """Return the failure of a run whose batch the sender gave up on, from what the sender kept of the error."""
    kind = ConnectionRevokedError if record.get("revoked") else TransientError
    error = kind(
        str(record.get("message") or "QuickBooks did not answer the batch"),
        service=str(record.get("service") or "quickbooks"),
        http_status=record.get("http_status"),
        code=record.get("code"),
        request_id=record.get("request_id"),
    )
    return failure_for(error)


def never() -> bool:
    """Tell that a write goes at once, never in a batch."""
    return False


@dataclass
class Run:
    """What a handler works with while it holds an execution's lease."""

    execution: Execution
    qbo: QuickBooksClient
    hubspot: HubSpotReader
    settings: dict[str, Any]
    ledger: Ledger
    locks: LockFactory
    profiles: ProfileCache
    # Extends the run's lease on the execution; False when another run took it over.
    keep_lease: Callable[[], bool]
    # QuickBooks' web app, for links to the documents.
    app_url: str
    steps: dict[str, Step] = field(default_factory=dict)
    # What requestids and document notes are derived from: the execution, unless several executions
    # share one document (a payment's paid invoice), in which case they share the scope too.
    scope: str = ""
    # The scope an older release gave the same document, to find writes it started before an upgrade.
    legacy_scope: str = ""
    # Where document writes wait for a QuickBooks batch, and whether the next one should (asked at each write).
    batches: BatchWrites | None = None
    batch_now: Callable[[], bool] = never
    _profile: CompanyProfile | None = None

    @property
    def marker(self) -> str:
        """Return the key that identifies this run's documents in QuickBooks."""
        return self.scope or self.execution.id

    @property
    def realm_id(self) -> str:
        """Return the QuickBooks company the execution writes to."""
        return self.qbo.realm_id

    @property
    def tenant(self) -> Tenant:
        """Return whose books these are: the calling portal and the company it writes to."""
        return Tenant(self.execution.portal_id, self.realm_id)

    @property
    def inputs(self) -> dict[str, Any]:
        """Return the validated input fields of the action."""
        return self.execution.inputs

    def choice(self, name: str) -> str:
        """Return an input's value, or the company's default for it when the workflow left it empty."""
        value = str(self.inputs.get(name) or "").strip()
        default = DEFAULTS_OF_INPUTS.get(name)
        return value or (str(self.settings.get(default) or "").strip() if default else "")

    def required_choice(self, name: str, what: str) -> str:
        """Return an input or its company default; fail with SETTINGS_INCOMPLETE when neither is set."""
        value = self.choice(name)
        if not value:
            raise ActionFailure(
                "SETTINGS_INCOMPLETE",
                f"No {what} was chosen in the action, and QuickBooks company {self.realm_id} has no default for it. "
                f"Choose it in the action, or set {DEFAULTS_OF_INPUTS[name]} on the company's settings page.",
            )
        return value

    def profile(self, *, refresh: bool = False) -> CompanyProfile:
        """Return the company's profile, read at most once per run."""
        if self._profile is None or refresh:
            self._profile = company_profile(self.profiles, self.qbo, refresh=refresh)
        return self._profile

    def requestid(self, step: str) -> str:
        """Return the deterministic QuickBooks requestid of a step (36 characters), unique per tenant."""
        return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{self.tenant}|{self.marker}|{step}"))

    def markers(self, started: dict[str, Any]) -> list[str]:
        """Return the markers a started write may have left on its document (the one it recorded, if any)."""
        if started.get("marker"):
            return [str(started["marker"])]
        return [m for m in (self.marker, self.legacy_scope) if m]

    def renew_lease(self) -> None:
        """Extend the lease before a write; stop if another run owns the execution now."""
        if not self.keep_lease():
            raise LeaseLostError(self.execution.id)

    def record(self, step: str, status: str, data: dict[str, Any]) -> None:
        """Record a step's progress."""
        self.ledger.save_step(self.execution.id, step, status, data)
        self.steps[step] = Step(execution_id=self.execution.id, name=step, status=status, data=data)

    def write_once(
        self,
        step: str,
        create: Callable[[str], dict[str, Any]],
        *,
        find_existing: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        context: dict[str, Any] | None = None,
        batch: tuple[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Perform a QuickBooks write at most once across runs and return its recorded result.

        ``create`` gets the step's requestid and returns what to remember. When an earlier run sent the
        write without learning its outcome, ``find_existing`` looks for it in QuickBooks first (the
        requestid alone is not relied on: Intuit does not document how long it remembers one).
        ``context`` is stored with the started step and handed to ``find_existing`` on the next run.
        ``batch`` (entity, body) lets the write wait for the company's next batch instead, when ``batch_now``
        says so: the run stops with AwaitingBatch, and the next run finds the step done or rejected.
        """
        previous = self.steps.get(step)
        if previous is not None and previous.status == "done":
            return previous.data
        if previous is not None and previous.status == "rejected":
            # QuickBooks refused this write in a batch and created nothing: fail as the single call would have,
            # and leave the step started so that a retry looks it up before sending it again.
            started = {key: value for key, value in previous.data.items() if key not in ("fault", "batched")}
            self.record(step, "started", started)
            raise batch_item_error(previous.data.get("fault") or {})
        if previous is not None and previous.status == "started" and previous.data.get("batch_error"):
            # The sender gave its batch up after the retries (its outcome unknown): fail as the single call would
            # have after its retries; a retry looks the document up before sending it again.
            started = {key: value for key, value in previous.data.items() if key not in ("batch_error", "batched")}
            self.record(step, "started", started)
            raise batch_failure(previous.data["batch_error"])
        if previous is not None and previous.status == "started" and previous.data.get("batched"):
            if self.batches is not None and self.batches.item(self.execution.id, step) is not None:
                raise AwaitingBatch(step)
            # Out of its batch without an answer (its company was disconnected): its outcome is unknown.
        if previous is not None and previous.status == "started" and find_existing is not None:
            existing = find_existing(previous.data)
            if existing is not None:
                self.record(step, "done", existing)
                return existing
        if not self.steps and self.execution.expired(utcnow()):
            # HubSpot has resumed the workflow without us; a first write now would book what nobody waits for.
            raise expired(self.execution.expires_at)
        self.renew_lease()
        started = dict(previous.data) if previous is not None else dict(context or {})
        started.pop("batched", None)
        # A write sent again keeps the requestid it was first sent with, so QuickBooks can replay its answer.
        started.setdefault("requestid", self.requestid(step))
        started.setdefault("marker", self.marker)
        if batch is not None and self.batches is not None and self.batch_now():
            entity, body = batch
            started["batched"] = True
            self.batches.park(self.tenant, self.execution.id, step, entity, body, started)
            self.steps[step] = Step(execution_id=self.execution.id, name=step, status="started", data=started)
            raise AwaitingBatch(step)
        self.record(step, "started", started)
        result = create(started["requestid"])
        self.record(step, "done", result)
        return result
