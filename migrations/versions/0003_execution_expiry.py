"""remember when HubSpot stops waiting for each execution

Executions accepted before this revision were answered with a one-day expiration (P1D): those HubSpot may still
be waiting for get that expiry, counted from when they were accepted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

import services.store.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


EARLIER_EXPIRATION = timedelta(days=1)


def upgrade() -> None:
    expires_at = sa.Column("expires_at", services.store.models.UTCDateTime(timezone=True), nullable=True)
    op.add_column("executions", expires_at)
    executions = sa.table(
        "executions",
        sa.column("id", sa.String()),
        sa.column("created_at", services.store.models.UTCDateTime(timezone=True)),
        sa.column("callback_state", sa.String()),
        sa.column("expires_at", services.store.models.UTCDateTime(timezone=True)),
    )
    bind = op.get_bind()
    waiting = bind.execute(
        sa.select(executions.c.id, executions.c.created_at).where(executions.c.callback_state.in_(("none", "pending")))
    ).all()
    for row in waiting:
        bind.execute(
            executions.update().where(executions.c.id == row.id).values(expires_at=row.created_at + EARLIER_EXPIRATION)
        )


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+): a batch copy of executions would trip the foreign keys pointing at it.
    op.execute("ALTER TABLE executions DROP COLUMN expires_at")
