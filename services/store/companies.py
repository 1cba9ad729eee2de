"""Companies: the settings an operator chose for each QuickBooks company, and what QuickBooks said about it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import CompanyProfileRow, CompanySettingsRow
from services.store.records import CachedProfile, from_row


class CompanyRepository:
    """Reads and writes of the company settings and profile tables."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def settings(self, realm_id: str) -> dict[str, Any]:
        """Return a company's settings ({} when none were set)."""
        with self.database.session() as session:
            row = session.get(CompanySettingsRow, realm_id)
            return dict(row.settings) if row else {}

    def save_settings(self, realm_id: str, settings: dict[str, Any]) -> None:
        """Replace a company's settings."""
        with self.database.session() as session:
            row = session.get(CompanySettingsRow, realm_id) or CompanySettingsRow(realm_id=realm_id)
            row.settings = settings
            session.add(row)

    def remove(self, realm_id: str) -> None:
        """Forget a company's settings and cached profile."""
        with self.database.session() as session:
            session.execute(delete(CompanySettingsRow).where(CompanySettingsRow.realm_id == realm_id))
            session.execute(delete(CompanyProfileRow).where(CompanyProfileRow.realm_id == realm_id))

    def cached_profile(self, realm_id: str) -> CachedProfile | None:
        """Return the cached company profile and when it was read."""
        with self.database.session() as session:
            row = session.get(CompanyProfileRow, realm_id)
            return from_row(CachedProfile, row) if row else None

    def save_profile(self, realm_id: str, profile: dict[str, Any]) -> None:
        """Cache what QuickBooks said about a company."""
        now = utcnow()
        stmt = self.database.insert(CompanyProfileRow).values(realm_id=realm_id, profile=profile, fetched_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["realm_id"], set_={"profile": profile, "fetched_at": now})
        with self.database.engine.begin() as conn:
            conn.execute(stmt)
