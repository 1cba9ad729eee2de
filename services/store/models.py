"""Database tables (SQLAlchemy 2 declarative). Only the repositories in this package touch them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from services.clock import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Base of all tables."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class PortalRow(Base):
    """A HubSpot account that installed the app, with its OAuth tokens (encrypted)."""

    __tablename__ = "hubspot_portals"

    portal_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    access_token: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None]
    refresh_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConnectionRow(Base):
    """A QuickBooks Online company connected to a HubSpot portal, with its OAuth tokens (encrypted)."""

    __tablename__ = "quickbooks_connections"
    __table_args__ = (UniqueConstraint("portal_id", "realm_id", name="uq_connection_portal_realm"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(Integer, index=True)
    realm_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")
    access_token: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None]
    refresh_token: Mapped[str] = mapped_column(Text)
    refreshed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CompanySettingsRow(Base):
    """Per-company settings chosen by the operator (contact sync, default accounts, tax code)."""

    __tablename__ = "company_settings"

    realm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CompanyProfileRow(Base):
    """What we last read about a company from QuickBooks (country, currency, preferences, terms)."""

    __tablename__ = "company_profiles"

    realm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExecutionRow(Base):
    """One execution request from HubSpot, from acceptance to the callback."""

    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_state_updated", "state", "updated_at"),
        Index("ix_executions_reason_created", "failure_reason", "created_at"),
        Index("ix_executions_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    callback_id: Mapped[str] = mapped_column(String(255), unique=True)
    action: Mapped[str] = mapped_column(String(64))
    portal_id: Mapped[int] = mapped_column(Integer, index=True)
    realm_id: Mapped[str | None] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # queued -> running -> (retrying -> running)* -> succeeded | failed
    state: Mapped[str] = mapped_column(String(16), default="queued")
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None]
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    # What a person needs to fix the failure (for LINE_ITEM_NOT_MATCHED: the products that matched nothing).
    failure_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    output_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # pending: HubSpot still waits for the outcome; sent: the callback was completed; none: nothing to send
    callback_state: Mapped[str] = mapped_column(String(16), default="none", index=True)
    callback_sent_at: Mapped[datetime | None]
    # When HubSpot stops waiting for the callback (hs_expiration_duration after acceptance).
    expires_at: Mapped[datetime | None]
    # A held failure is reported at this moment unless an operator retries it first.
    held_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class OutboxRow(Base):
    """An accepted execution whose job the relay has not put on the queue yet (a row lives for moments).

    Written in the commit that records the execution, deleted in the commit that follows the job's enqueue.
    No foreign key: it would cost a lookup on every accept, and a row's execution is never deleted before it.
    """

    __tablename__ = "execution_outbox"

    # In the order of acceptance: the relay moves the oldest first (BIGINT: ids are never reused).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(32))
    # The job's lane is chosen by portal.
    portal_id: Mapped[int] = mapped_column(Integer)
    accepted_at: Mapped[datetime]


class StepRow(Base):
    """A step of an execution that wrote to QuickBooks, so a re-run resumes instead of repeating."""

    __tablename__ = "execution_steps"

    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    # started: the write was sent and its outcome is uncertain; done: its result is in data
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AttemptRow(Base):
    """One run of an execution's job, with how it ended."""

    __tablename__ = "execution_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # running, succeeded, failed, retrying, abandoned
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    error_service: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    http_status: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str | None] = mapped_column(Text)


class ProductMappingRow(Base):
    """A HubSpot product of a portal known to be a given QuickBooks item of a company."""

    __tablename__ = "product_mappings"

    portal_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    realm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hubspot_product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    quickbooks_item_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomerMappingRow(Base):
    """A HubSpot contact of a portal known to be a given QuickBooks customer of a company."""

    __tablename__ = "customer_mappings"

    portal_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    realm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hubspot_contact_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    quickbooks_customer_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentDocumentRow(Base):
    """The one QuickBooks document of a kind booked for a portal's HubSpot payment (paid invoice, fee, ...)."""

    __tablename__ = "payment_documents"

    portal_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    realm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"))
    output_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntryRow(Base):
    """One change an operator made: who, what, when, and the state before and after."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_execution", "execution_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    # retry, edit_and_retry, map_and_retry, cancel, mark_booked, bulk_retry, ...
    action: Mapped[str] = mapped_column(String(32))
    # Not a foreign key: the trail outlives executions purged by the retention policy.
    execution_id: Mapped[str | None] = mapped_column(String(32))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)


class BulkOperationRow(Base):
    """A retry of every execution that matched a filter, worked through in the background."""

    __tablename__ = "bulk_operations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="retry")
    actor: Mapped[str] = mapped_column(String(255))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    execution_ids: Mapped[list[Any]] = mapped_column(default=list)
    total: Mapped[int] = mapped_column(Integer, default=0)
    # How many were queued again, and how many no longer qualified (retried already, cancelled, ...).
    done: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    # queued, running, finished
    state: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class QuickBooksBatchRow(Base):
    """One POST /batch to a company: recorded with its requestid before it is sent, deleted once it is answered.

    A batch whose answer was lost is looked up member by member and, when none of them exists, sent again with
    the same requestid and items, so QuickBooks can replay its first answer.
    """

    __tablename__ = "quickbooks_batches"
    __table_args__ = (Index("ix_quickbooks_batches_tenant", "portal_id", "realm_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    portal_id: Mapped[int] = mapped_column(Integer)
    realm_id: Mapped[str] = mapped_column(String(32))
    requestid: Mapped[str] = mapped_column(String(36), unique=True)
    # How many times the sender tried it (sent it, or looked its documents up): from 1 on, its outcome is unknown
    # until an answer is stored; after a failed try, not tried again before retry_at.
    tries: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BatchItemRow(Base):
    """A document write parked for its company's next batch, or a member of a batch in flight."""

    __tablename__ = "quickbooks_batch_items"
    __table_args__ = (Index("ix_quickbooks_batch_items_tenant", "portal_id", "realm_id", "batch_id", "created_at"),)

    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), primary_key=True)
    step: Mapped[str] = mapped_column(String(128), primary_key=True)
    portal_id: Mapped[int] = mapped_column(Integer)
    realm_id: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set when the item joins a batch, with its bId there.
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("quickbooks_batches.id"))
    bid: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuickBooksEventRow(Base):
    """A change notification from Intuit, recorded once by its event id and applied by a job."""

    __tablename__ = "quickbooks_events"
    __table_args__ = (
        Index("ix_quickbooks_events_realm_state", "realm_id", "state", "received_at"),
        Index("ix_quickbooks_events_received", "received_at"),
        # The sweeper looks for notices pending too long, across companies.
        Index("ix_quickbooks_events_pending", "state", "received_at"),
        # A document followed after QuickBooks notified its creation finds those notices again.
        Index("ix_quickbooks_events_entity", "realm_id", "entity", "entity_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    realm_id: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(32))
    # created, updated, deleted, voided, merged, emailed (as Intuit spells them, lower case)
    operation: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # pending: to apply; done: applied; ignored: a company no portal has connected
    state: Mapped[str] = mapped_column(String(16), default="pending")


class FollowedDocumentRow(Base):
    """A QuickBooks document whose status shows on a HubSpot record: one we booked, or one an operator linked."""

    __tablename__ = "followed_documents"
    __table_args__ = (
        UniqueConstraint(
            "portal_id", "realm_id", "entity", "document_id", "object_type", "object_id", name="uq_followed_document"
        ),
        Index("ix_followed_documents_document", "realm_id", "entity", "document_id"),
        Index("ix_followed_documents_record", "portal_id", "object_type", "object_id"),
        Index("ix_followed_documents_push", "pending_push", "portal_id"),
        Index("ix_followed_documents_due", "entity", "deleted", "due_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(Integer)
    realm_id: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    document_id: Mapped[str] = mapped_column(String(32))
    # The record, as HubSpot's CRM paths name its type (deals, quotes, commerce_payments).
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    # The execution that booked it (none when linked by an operator); not a key: executions are purged.
    execution_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # QuickBooks' version of the state (MetaData.LastUpdatedTime, SyncToken): only a newer one replaces it,
    # and nothing replaces a deletion.
    version_at: Mapped[datetime]
    version_token: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[bool] = mapped_column(default=False)
    due_date: Mapped[str | None] = mapped_column(String(10))
    # The status last shown on the record (invoices), so the daily job finds the ones that became overdue.
    status: Mapped[str | None] = mapped_column(String(32))
    # The record's properties must be sent again; change_seq tells a push whether it saw the latest change.
    pending_push: Mapped[bool] = mapped_column(default=True)
    change_seq: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FollowedPaymentRow(Base):
    """A payment QuickBooks applied to a followed invoice: its timeline event is posted once."""

    __tablename__ = "followed_payments"
    __table_args__ = (Index("ix_followed_payments_unposted", "posted_at", "portal_id"),)

    document_pk: Mapped[int] = mapped_column(ForeignKey("followed_documents.id"), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    portal_id: Mapped[int] = mapped_column(Integer)
    amount: Mapped[str] = mapped_column(String(32))
    paid_on: Mapped[str | None] = mapped_column(String(10))
    currency: Mapped[str | None] = mapped_column(String(8))
    posted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChangeCursorRow(Base):
    """How far change data capture has read a company's changes."""

    __tablename__ = "quickbooks_change_cursors"

    realm_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    changed_since: Mapped[datetime]
    read_at: Mapped[datetime] = mapped_column(default=utcnow)
