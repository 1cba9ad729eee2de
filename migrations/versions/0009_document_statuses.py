"""Document statuses: Intuit's change notifications, the documents followed on HubSpot records, their payments,
and how far change data capture has read each company

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.store.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = services.store.models.UTCDateTime(timezone=True)
    op.create_table(
        "quickbooks_events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("realm_id", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(32), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("occurred_at", moment, nullable=True),
        sa.Column("received_at", moment, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_index("ix_quickbooks_events_realm_state", "quickbooks_events", ["realm_id", "state", "received_at"])
    op.create_index("ix_quickbooks_events_received", "quickbooks_events", ["received_at"])
    op.create_index("ix_quickbooks_events_pending", "quickbooks_events", ["state", "received_at"])
    op.create_index("ix_quickbooks_events_entity", "quickbooks_events", ["realm_id", "entity", "entity_id"])
    op.create_table(
        "followed_documents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("execution_id", sa.String(32), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("version_at", moment, nullable=False),
        sa.Column("version_token", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("due_date", sa.String(10), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("pending_push", sa.Boolean(), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("updated_at", moment, nullable=False),
        sa.UniqueConstraint(
            "portal_id", "realm_id", "entity", "document_id", "object_type", "object_id", name="uq_followed_document"
        ),
    )
    op.create_index("ix_followed_documents_document", "followed_documents", ["realm_id", "entity", "document_id"])
    op.create_index("ix_followed_documents_record", "followed_documents", ["portal_id", "object_type", "object_id"])
    op.create_index("ix_followed_documents_push", "followed_documents", ["pending_push", "portal_id"])
    op.create_index("ix_followed_documents_due", "followed_documents", ["entity", "deleted", "due_date"])
    op.create_table(
        "followed_payments",
        sa.Column("document_pk", sa.Integer(), sa.ForeignKey("followed_documents.id"), primary_key=True),
        sa.Column("payment_id", sa.String(32), primary_key=True),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("paid_on", sa.String(10), nullable=True),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.Column("posted_at", moment, nullable=True),
        sa.Column("created_at", moment, nullable=False),
    )
    op.create_index("ix_followed_payments_unposted", "followed_payments", ["posted_at", "portal_id"])
    op.create_table(
        "quickbooks_change_cursors",
        sa.Column("realm_id", sa.String(32), primary_key=True),
        sa.Column("changed_since", moment, nullable=False),
        sa.Column("read_at", moment, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quickbooks_change_cursors")
    op.drop_index("ix_followed_payments_unposted", table_name="followed_payments")
    op.drop_table("followed_payments")
    for index in ("due", "push", "record", "document"):
        op.drop_index(f"ix_followed_documents_{index}", table_name="followed_documents")
    op.drop_table("followed_documents")
    op.drop_index("ix_quickbooks_events_entity", table_name="quickbooks_events")
    op.drop_index("ix_quickbooks_events_pending", table_name="quickbooks_events")
    op.drop_index("ix_quickbooks_events_received", table_name="quickbooks_events")
    op.drop_index("ix_quickbooks_events_realm_state", table_name="quickbooks_events")
    op.drop_table("quickbooks_events")
