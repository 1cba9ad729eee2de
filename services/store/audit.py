"""The audit trail: every change an operator made, with who, when, and the state before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import AuditEntryRow
from services.store.records import AuditEntry, from_row


class AuditRepository:
    """Appends to and reads the audit_entries table (entries are never changed)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def record(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        execution_id: str | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> AuditEntry:
        """Append one entry and return it."""
        with self.database.session() as session:
            row = AuditEntryRow(
                at=utcnow(),
                actor=actor[:255],
                role=role,
                action=action,
                execution_id=execution_id,
                before=before,
                after=after,
                note=note,
            )
            session.add(row)
            session.flush()
            return from_row(AuditEntry, row)

    def of_execution(self, execution_id: str) -> list[AuditEntry]:
        """Return an execution's entries, oldest first."""
        query = select(AuditEntryRow).where(AuditEntryRow.execution_id == execution_id).order_by(AuditEntryRow.id)
        with self.database.session() as session:
            return [from_row(AuditEntry, row) for row in session.scalars(query)]

    def newest(self, limit: int = 100) -> list[AuditEntry]:
        """Return the newest entries of the whole deployment."""
        query = select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(limit)
        with self.database.session() as session:
            return [from_row(AuditEntry, row) for row in session.scalars(query)]
