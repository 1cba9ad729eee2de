"""Connections: installed HubSpot portals and the QuickBooks companies connected to them, tokens encrypted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from services.clock import utcnow
from services.store.crypto import TokenCipher
from services.store.engine import Database
from services.store.models import ConnectionRow, PortalRow
from services.store.records import Connection
from services.transport.errors import ConnectionRevokedError
from services.transport.oauth import TokenGrant, TokenSet

# revoked: Intuit refused a refresh (invalid_grant); the company must be reconnected.
ACTIVE, REVOKED = "active", "revoked"


class ConnectionRepository:
    """Reads and writes of the portal and connection tables; tokens leave it decrypted, never stored so."""

    def __init__(self, database: Database, cipher: TokenCipher) -> None:
        self.database = database
        self.cipher = cipher
        # Every API call loads its connection's tokens: built once, one round trip each.
        portals, connections = PortalRow.__table__.c, ConnectionRow.__table__.c
        self._portal_tokens = select(portals.access_token, portals.access_expires_at, portals.refresh_token).where(
            portals.portal_id == bindparam("portal_id")
        )
        self._connection_query = select(
            connections.id,
            connections.portal_id,
            connections.realm_id,
            connections.name,
            connections.status,
            connections.refreshed_at,
        ).where(connections.portal_id == bindparam("portal_id"), connections.realm_id == bindparam("realm_id"))
        self._connection_tokens = select(
            connections.access_token, connections.access_expires_at, connections.refresh_token
        ).where(connections.id == bindparam("connection_id"))
        # Fernet tokens are decrypted once per process: the same ciphertext always gives the same plaintext.
        self._decrypted: dict[str, str] = {}

    # HubSpot portals ----------------------------------------------------------------------------

    def save_portal(
        self, portal_id: int, refresh_token: str, access_token: str | None, expires_at: datetime | None
    ) -> None:
        """Create or replace a portal's tokens."""
        with self.database.session() as session:
            portal = session.get(PortalRow, portal_id) or PortalRow(portal_id=portal_id)
            portal.refresh_token = self.cipher.encrypt(refresh_token)
            portal.access_token = self.cipher.encrypt(access_token) if access_token else None
            portal.access_expires_at = expires_at
            session.add(portal)

    def portal_tokens(self, portal_id: int) -> TokenSet | None:
        """Return a portal's tokens, or None when the portal never installed the app."""
        row = self.database.row(self._portal_tokens, {"portal_id": portal_id})
        return self._tokens(row.access_token, row.access_expires_at, row.refresh_token) if row is not None else None

    def remove_portal(self, portal_id: int) -> None:
        """Forget a portal's tokens and every company connection of it."""
        with self.database.session() as session:
            session.execute(delete(ConnectionRow).where(ConnectionRow.portal_id == portal_id))
            session.execute(delete(PortalRow).where(PortalRow.portal_id == portal_id))

    def portals(self) -> list[int]:
        """Return the ids of the installed portals."""
        with self.database.engine.connect() as conn:
            return list(conn.execute(select(PortalRow.portal_id).order_by(PortalRow.portal_id)).scalars())

    # QuickBooks companies -----------------------------------------------------------------------

    def save_quickbooks(
        self,
        portal_id: int,
        realm_id: str,
        refresh_token: str,
        access_token: str | None,
        expires_at: datetime | None,
        name: str | None = None,
    ) -> int:
        """Create or replace a connection and return its id."""
        with self.database.session() as session:
            row = session.scalars(
                select(ConnectionRow).where(ConnectionRow.portal_id == portal_id, ConnectionRow.realm_id == realm_id)
            ).first() or ConnectionRow(portal_id=portal_id, realm_id=realm_id)
            row.refresh_token = self.cipher.encrypt(refresh_token)
            row.access_token = self.cipher.encrypt(access_token) if access_token else None
            row.access_expires_at = expires_at
            row.status = ACTIVE
            if name is not None:
                row.name = name
            session.add(row)
            session.flush()
            return row.id

    def quickbooks(self, portal_id: int, realm_id: str) -> Connection | None:
        """Return the connection of a company to a portal, if there is one."""
        row = self.database.row(self._connection_query, {"portal_id": portal_id, "realm_id": realm_id})
        return self._connection(row) if row is not None else None

    def quickbooks_of(self, portal_id: int | None = None) -> list[Connection]:
        """Return connections, optionally of one portal."""
        query = select(ConnectionRow).order_by(ConnectionRow.portal_id, ConnectionRow.id)
        if portal_id is not None:
            query = query.where(ConnectionRow.portal_id == portal_id)
        with self.database.session() as session:
            return [self._connection(row) for row in session.scalars(query)]

    def name_quickbooks(self, connection_id: int, name: str) -> None:
        """Record the company's name, as QuickBooks gives it, for dropdowns and pages."""
        stmt = (
            update(ConnectionRow).where(ConnectionRow.id == connection_id).values(name=name[:255], updated_at=utcnow())
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)

    def remove_quickbooks(self, portal_id: int, realm_id: str) -> bool:
        """Forget a company's connection to a portal, tokens included; False when there was none."""
        stmt = delete(ConnectionRow).where(ConnectionRow.portal_id == portal_id, ConnectionRow.realm_id == realm_id)
        with self.database.engine.begin() as conn:
            return bool(conn.execute(stmt).rowcount)

    def portals_of(self, realm_id: str) -> list[int]:
        """Return the portals a company is connected to."""
        query = (
            select(ConnectionRow.portal_id).where(ConnectionRow.realm_id == realm_id).order_by(ConnectionRow.portal_id)
        )
        with self.database.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def quickbooks_tokens(self, connection_id: int) -> TokenSet:
        """Return a connection's tokens."""
        row = self.database.row(self._connection_tokens, {"connection_id": connection_id})
        if row is None:
            raise LookupError(f"No QuickBooks connection {connection_id}")
        return self._tokens(row.access_token, row.access_expires_at, row.refresh_token)

    def save_quickbooks_tokens(
        self, connection_id: int, access_token: str, expires_at: datetime, refresh_token: str
    ) -> None:
        """Store a refreshed token pair in one transaction, so the newest refresh token is never lost."""
        stmt = (
            update(ConnectionRow)
            .where(ConnectionRow.id == connection_id)
            .values(
                access_token=self.cipher.encrypt(access_token),
                access_expires_at=expires_at,
                refresh_token=self.cipher.encrypt(refresh_token),
                refreshed_at=utcnow(),
                status=ACTIVE,
                updated_at=utcnow(),
            )
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)

    def mark_quickbooks_revoked(self, connection_id: int) -> None:
        """Record that a connection's grant is gone."""
        stmt = (
            update(ConnectionRow)
            .where(ConnectionRow.id == connection_id)
            .values(status=REVOKED, access_token=None, updated_at=utcnow())
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)

    # Token vaults: what the OAuth token providers load from and save to --------------------------

    def quickbooks_vault(self, connection_id: int) -> QuickBooksVault:
        """Return the tokens of one QuickBooks connection as a vault."""
        return QuickBooksVault(self, connection_id)

    def portal_vault(self, portal_id: int) -> PortalVault:
        """Return the tokens of one HubSpot portal as a vault."""
        return PortalVault(self, portal_id)

    def _tokens(self, access: str | None, expires_at: datetime | None, refresh: str) -> TokenSet:
        return TokenSet(
            access_token=self._decrypt(access) if access else None,
            access_expires_at=expires_at,
            refresh_token=self._decrypt(refresh),
        )

    def _decrypt(self, ciphertext: str) -> str:
        plaintext = self._decrypted.get(ciphertext)
        if plaintext is None:
            if len(self._decrypted) >= 10_000:
                self._decrypted.clear()
            plaintext = self._decrypted[ciphertext] = self.cipher.decrypt(ciphertext)
        return plaintext

    @staticmethod
    def _connection(row: Any) -> Connection:
        return Connection(row.id, row.portal_id, row.realm_id, row.name, row.status, row.refreshed_at)


class QuickBooksVault:
    """One QuickBooks connection's tokens (Intuit rotates the refresh token on every refresh)."""

    def __init__(self, connections: ConnectionRepository, connection_id: int) -> None:
        self.connections = connections
        self.connection_id = connection_id

    def load(self) -> TokenSet:
        """Return the stored tokens."""
        return self.connections.quickbooks_tokens(self.connection_id)

    def save(self, grant: TokenGrant) -> None:
        """Store a new grant."""
        self.connections.save_quickbooks_tokens(
            self.connection_id, grant.access_token, grant.expires_at, grant.refresh_token
        )

    def revoked(self) -> None:
        """Record that the grant is gone, so the company shows as disconnected."""
        self.connections.mark_quickbooks_revoked(self.connection_id)


class PortalVault:
    """One HubSpot portal's tokens."""

    def __init__(self, connections: ConnectionRepository, portal_id: int) -> None:
        self.connections = connections
        self.portal_id = portal_id

    def load(self) -> TokenSet:
        """Return the stored tokens; a portal that never installed the app has none."""
        tokens = self.connections.portal_tokens(self.portal_id)
        if tokens is None:
            raise ConnectionRevokedError(
                f"HubSpot portal {self.portal_id} has not installed the app", service="hubspot"
            )
        return tokens

    def save(self, grant: TokenGrant) -> None:
        """Store a new grant."""
        self.connections.save_portal(self.portal_id, grant.refresh_token, grant.access_token, grant.expires_at)

    def revoked(self) -> None:
        """Nothing to record: the next install stores new tokens."""
