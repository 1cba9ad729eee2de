"""operations: an audit trail, bulk retries, and what a person needs to fix a failure

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.store.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    moment = services.store.models.UTCDateTime(timezone=True)
    op.add_column("executions", sa.Column("failure_details", sa.JSON(), nullable=True))
    # The operations console filters by failure reason and time; the list is newest first.
    op.create_index("ix_executions_reason_created", "executions", ["failure_reason", "created_at"])
    op.create_index("ix_executions_created", "executions", ["created_at"])
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", moment, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("execution_id", sa.String(32), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_entries_execution", "audit_entries", ["execution_id", "id"])
    op.create_table(
        "bulk_operations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("execution_ids", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("updated_at", moment, nullable=False),
        sa.Column("finished_at", moment, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("bulk_operations")
    op.drop_index("ix_audit_entries_execution", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_index("ix_executions_created", table_name="executions")
    op.drop_index("ix_executions_reason_created", table_name="executions")
    # Plain ALTER TABLE (SQLite 3.35+): a batch copy of executions would trip the foreign keys pointing at it.
    op.execute("ALTER TABLE executions DROP COLUMN failure_details")
