"""execution outbox: accepted executions whose job the relay has not queued yet

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.store.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "execution_outbox",
        # BIGSERIAL on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64 bits.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(32), nullable=False),
        sa.Column("portal_id", sa.Integer(), nullable=False),
        sa.Column("accepted_at", services.store.models.UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("execution_outbox")
