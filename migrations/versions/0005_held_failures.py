"""hold failures a person can fix: remember until when

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import services.store.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    held_until = sa.Column("held_until", services.store.models.UTCDateTime(timezone=True), nullable=True)
    op.add_column("executions", held_until)


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+): a batch copy of executions would trip the foreign keys pointing at it.
    op.execute("ALTER TABLE executions DROP COLUMN held_until")
