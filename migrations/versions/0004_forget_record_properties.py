"""stop keeping the record properties HubSpot sends with each execution

Nothing reads them, and they may be personal data (a contact's or a payment's details), so the column goes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+): a batch copy of executions would trip the foreign keys pointing at it.
    op.execute("ALTER TABLE executions DROP COLUMN object_properties")


def downgrade() -> None:
    op.add_column("executions", sa.Column("object_properties", sa.JSON(), nullable=False, server_default="{}"))
