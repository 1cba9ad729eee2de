"""What the repositories answer with: small frozen dataclasses, never live database rows.

This module imports no database code, so every layer may use these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

# Execution states. queued -> running -> (retrying -> running)* -> succeeded | failed | held;
# held: failed for a reason the company holds for a person to fix; not reported until held_until.
QUEUED, RUNNING, RETRYING, SUCCEEDED, FAILED, HELD = "queued", "running", "retrying", "succeeded", "failed", "held"
# A job may take an execution in these states; 'running' qualifies only once its lease has run out.
RUNNABLE_STATES = (QUEUED, RETRYING)
FINAL_STATES = (SUCCEEDED, FAILED)

Record = TypeVar("Record")


def from_row(record_type: type[Record], row: Any) -> Record:
    """Copy a row's columns into a record of the same field names."""
    return record_type(**{f.name: getattr(row, f.name) for f in fields(record_type)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Tenant:
    """Whose books: a HubSpot portal and the QuickBooks company it writes to.

    One company may be connected to several portals, and HubSpot record ids repeat across portals, so what
    is remembered about records (mappings, payment claims) is kept per tenant, never per company alone.
    """

    portal_id: int
    realm_id: str

    def __str__(self) -> str:
        return f"{self.portal_id}:{self.realm_id}"


@dataclass(frozen=True)
class NewExecution:
    """What the edge accepted from HubSpot."""

    callback_id: str
    action: str
    portal_id: int
    realm_id: str | None
    object_type: str
    object_id: str
    inputs: dict[str, Any]
    # When HubSpot stops waiting for the callback and resumes the workflow without us.
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Execution:
    """One execution request from HubSpot, from acceptance to the callback."""

    id: str
    callback_id: str
    action: str
    portal_id: int
    realm_id: str | None
    object_type: str
    object_id: str
    inputs: dict[str, Any]
    state: str
    attempt_count: int
    failure_reason: str | None
    failure_message: str | None
    # What a person needs to fix the failure (for LINE_ITEM_NOT_MATCHED: the products that matched nothing).
    failure_details: dict[str, Any] | None
    output_fields: dict[str, Any] | None
    # none: nothing to send; pending: HubSpot still waits; sent: completed; rejected: HubSpot refused it;
    # expired: HubSpot stopped waiting before there was an outcome to send
    callback_state: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    lease_token: str | None
    lease_expires_at: datetime | None
    callback_sent_at: datetime | None
    # When HubSpot stops waiting (None: never recorded, or waived by an operator's retry).
    expires_at: datetime | None
    # A held failure is reported at this moment unless an operator retries it first.
    held_until: datetime | None

    def expired(self, now: datetime) -> bool:
        """Tell whether HubSpot has stopped waiting for this execution's callback."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class Lease:
    """An execution taken for one run: the run's token, and the execution as it stands leased."""

    token: str
    execution: Execution


@dataclass(frozen=True)
class Attempt:
    """One run of an execution's job, with how it ended."""

    id: int
    execution_id: str
    number: int
    started_at: datetime
    finished_at: datetime | None
    # running, succeeded, failed, retrying, abandoned
    outcome: str
    error_service: str | None
    error_code: str | None
    http_status: int | None
    # The remote request id: QuickBooks' intuit_tid, HubSpot's correlation id.
    request_id: str | None
    message: str | None


@dataclass(frozen=True)
class Step:
    """A QuickBooks write of an execution: 'started' (outcome unknown) or 'done' (its result in data)."""

    execution_id: str
    name: str
    status: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingCallback:
    """A finished execution whose outcome HubSpot has not been told yet."""

    execution_id: str
    callback_id: str
    output_fields: dict[str, Any]


@dataclass(frozen=True)
class Connection:
    """A QuickBooks company connected to a HubSpot portal, without its tokens."""

    id: int
    portal_id: int
    realm_id: str
    name: str | None
    status: str
    refreshed_at: datetime | None

    @property
    def active(self) -> bool:
        """Tell whether the grant still works as far as we know."""
        return self.status == "active"


@dataclass(frozen=True)
class CachedProfile:
    """What was last read about a company from QuickBooks, and when."""

    realm_id: str
    profile: dict[str, Any]
    fetched_at: datetime


@dataclass(frozen=True)
class PaymentClaim:
    """Which execution books a payment's document of a kind, and how that execution stands."""

    portal_id: int
    realm_id: str
    payment_id: str
    kind: str
    execution_id: str
    # The holding execution's state and output fields (None when it no longer exists).
    holder_state: str | None
    holder_outputs: dict[str, Any] | None
    # What the booked document was, once it is booked.
    document_outputs: dict[str, Any] | None


@dataclass(frozen=True)
class ExecutionFilter:
    """Which executions an operator looks at: every field narrows the set; None means any."""

    state: str | None = None
    reason: str | None = None
    action: str | None = None
    portal_id: int | None = None
    realm_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    callback_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the filter's set fields as plain JSON values (times in ISO 8601)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in values.items()
            if value is not None
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionFilter:
        """Build a filter from what as_dict returned."""
        values = dict(data)
        for name in ("since", "until"):
            if isinstance(values.get(name), str):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**{f.name: values.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class AuditEntry:
    """One change an operator made."""

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    execution_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None


@dataclass(frozen=True)
class BulkOperation:
    """A background retry of every execution that matched a filter, and how far it got."""

    id: str
    kind: str
    actor: str
    filters: dict[str, Any]
    execution_ids: list[str]
    total: int
    done: int
    skipped: int
    state: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        """Tell whether every execution of the operation has been handled."""
        return self.state == "finished"


@dataclass(frozen=True)
class BatchItem:
    """A document write waiting for its company's next QuickBooks batch, or in a batch now."""

    execution_id: str
    step: str
    portal_id: int
    realm_id: str
    entity: str
    body: dict[str, Any]
    batch_id: str | None
    bid: str | None
    created_at: datetime


@dataclass(frozen=True)
class Batch:
    """A POST /batch to one company: its requestid, its members in bId order, and whether it went out before."""

    id: str
    portal_id: int
    realm_id: str
    requestid: str
    # How many times the sender tried it (from 1 on, QuickBooks may have created some of its documents), and not
    # before when it may try again.
    tries: int
    retry_at: datetime | None
    items: tuple[BatchItem, ...]


@dataclass(frozen=True)
class ChangeNotice:
    """One change Intuit notified: an entity of a company created, updated, deleted, voided or emailed."""

    id: str
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: datetime | None


@dataclass(frozen=True)
class NoticesRecorded:
    """What recording a delivery's notifications did: the companies with new ones to apply, and counts."""

    realms: tuple[str, ...]
    new: int
    ignored: int
    repeated: int


@dataclass(frozen=True)
class FollowedDocument:
    """A QuickBooks document whose status shows on a HubSpot record, with the state we last applied."""

    id: int
    portal_id: int
    realm_id: str
    entity: str
    document_id: str
    object_type: str
    object_id: str
    execution_id: str | None
    state: dict[str, Any]
    deleted: bool
    status: str | None
    pending_push: bool
    change_seq: int


@dataclass(frozen=True)
class DocumentVersion:
    """A state of a document to apply, with QuickBooks' version of it (only a newer version replaces an older)."""

    realm_id: str
    entity: str
    document_id: str
    state: dict[str, Any]
    version_at: datetime
    version_token: int
    deleted: bool
    due_date: str | None


@dataclass(frozen=True)
class FollowedPayment:
    """A payment applied to a followed invoice; its timeline event goes out once."""

    document_pk: int
    payment_id: str
    portal_id: int
    amount: str
    paid_on: str | None
    currency: str | None
    posted_at: datetime | None
