"""Companies: the settings an operator chose for each QuickBooks company, and what QuickBooks said about it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, select

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import CompanyProfileRow, CompanySettingsRow
from services.store.records import CachedProfile, from_row


class CompanyRepository:
    """Reads and writes of the company settings and profile tables."""

    def __init__(self, database: Database) -> None:
        self.database = database
        # Every run reads both: built once, one round trip each.
        settings, profiles = CompanySettingsRow.__table__.c, CompanyProfileRow.__table__.c
        self._settings = select(settings.settings).where(settings.realm_id == bindparam("realm_id"))
        self._profile = select(profiles.realm_id, profiles.profile, profiles.fetched_at).where(
            profiles.realm_id == bindparam("realm_id")
        )

    def settings(self, realm_id: str) -> dict[str, Any]:
        """Return a company's settings ({} when none were set)."""
        row = self.database.row(self._settings, {"realm_id": realm_id})
        return dict(row.settings) if row is not None else {}

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
        row = self.database.row(self._profile, {"realm_id": realm_id})
        return from_row(CachedProfile, row) if row is not None else None

    def save_profile(self, realm_id: str, profile: dict[str, Any]) -> None:
        """Cache what QuickBooks said about a company."""
        now = utcnow()
        stmt = self.database.insert(CompanyProfileRow).values(realm_id=realm_id, profile=profile, fetched_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["realm_id"], set_={"profile": profile, "fetched_at": now})
        with self.database.engine.begin() as conn:
            conn.execute(stmt)
