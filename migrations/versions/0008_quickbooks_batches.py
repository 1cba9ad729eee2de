"""QuickBooks batches: document writes parked for a company's next POST /batch, and the batches in flight

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.store.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = services.store.models.UTCDateTime(timezone=True)
    op.create_table(
        "quickbooks_batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.String(32), nullable=False),
        sa.Column("requestid", sa.String(36), nullable=False, unique=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("retry_at", moment, nullable=True),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("updated_at", moment, nullable=False),
    )
    op.create_index("ix_quickbooks_batches_tenant", "quickbooks_batches", ["portal_id", "realm_id", "created_at"])
    op.create_table(
        "quickbooks_batch_items",
        sa.Column("execution_id", sa.String(32), sa.ForeignKey("executions.id"), primary_key=True),
        sa.Column("step", sa.String(128), primary_key=True),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("batch_id", sa.String(32), sa.ForeignKey("quickbooks_batches.id"), nullable=True),
        sa.Column("bid", sa.String(10), nullable=True),
        sa.Column("created_at", moment, nullable=False),
    )
    op.create_index(
        "ix_quickbooks_batch_items_tenant",
        "quickbooks_batch_items",
        ["portal_id", "realm_id", "batch_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_quickbooks_batch_items_tenant", table_name="quickbooks_batch_items")
    op.drop_table("quickbooks_batch_items")
    op.drop_index("ix_quickbooks_batches_tenant", table_name="quickbooks_batches")
    op.drop_table("quickbooks_batches")
