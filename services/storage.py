"""The database: engine set-up and every query the server makes."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, exc, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from services.crypto import TokenCipher
from services.models import (
    CompanyProfile,
    CompanySettings,
    CustomerMapping,
    Execution,
    ExecutionAttempt,
    ExecutionStep,
    HubSpotPortal,
    PaymentDocument,
    ProductMapping,
    QuickBooksConnection,
    utcnow,
)

# States in which a job may take an execution; 'running' qualifies only once its lease has run out.
RUNNABLE_STATES = ("queued", "retrying")
FINAL_STATES = ("succeeded", "failed")


def make_engine(database_url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and one shared connection when in memory."""
    if database_url.startswith("sqlite"):
        in_memory = ":memory:" in database_url or database_url in ("sqlite://", "sqlite:///")
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # No pre-ping: it costs a round trip per request. A connection that died is invalidated on
    # first use; that request answers 503 and HubSpot delivers it again.
    engine = create_engine(database_url, pool_size=5, max_overflow=10, pool_recycle=1800)
    _discard_connections_after_fork(engine)
    return engine


def _discard_connections_after_fork(engine: Engine) -> None:
    """Never use a pooled connection in a process other than the one that opened it.

    RQ forks a work horse per job; without this the horse would share the parent's sockets
    (SQLAlchemy's documented recipe for pools and multiprocessing).
    """

    @event.listens_for(engine, "connect")
    def _remember_pid(_dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _check_pid(_dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise exc.DisconnectionError("connection belongs to another process")


@dataclass(frozen=True)
class TokenSet:
    """Decrypted OAuth tokens of one connection."""

    access_token: str | None
    access_expires_at: datetime | None
    refresh_token: str

    def access_token_valid(self, margin: int = 60) -> bool:
        """Tell whether the access token can still be used for ``margin`` seconds."""
        return bool(
            self.access_token
            and self.access_expires_at
            and self.access_expires_at > utcnow() + timedelta(seconds=margin)
        )


@dataclass(frozen=True)
class ConnectionInfo:
    """A QuickBooks connection, without its tokens."""

    id: int
    portal_id: int
    realm_id: str
    name: str | None
    status: str
    refreshed_at: datetime | None


@dataclass(frozen=True)
class NewExecution:
    """What the edge accepted from HubSpot."""

    callback_id: str
    action: str
    portal_id: int
    realm_id: str | None
    object_type: str
    object_id: str
    inputs: dict[str, Any]
    object_properties: dict[str, Any]


class Store:
    """All reads and writes of the server's own database."""

    def __init__(self, engine: Engine, cipher: TokenCipher) -> None:
        self.engine = engine
        self.cipher = cipher
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Built once: the hot path of every execution request only binds parameters to it.
        # RETURNING, not rowcount: drivers do not all report rows for INSERT ... ON CONFLICT.
        table = Execution.__table__
        self._accept_statement = (
            self._insert(table).on_conflict_do_nothing(index_elements=["callback_id"]).returning(table.c.id)
        )

    @classmethod
    def from_url(cls, database_url: str, cipher: TokenCipher) -> Store:
        """Open the database at ``database_url``."""
        return cls(make_engine(database_url), cipher)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session in a transaction that commits on success."""
        with self._sessions.begin() as session:
            yield session

    def _insert(self, model: Any) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(model)
        if dialect == "sqlite":
            return sqlite.insert(model)
        raise RuntimeError(f"Unsupported database: {dialect}")

    # Executions ---------------------------------------------------------------------------------

    def accept_execution(self, new: NewExecution) -> tuple[str, bool]:
        """Record an execution once per callbackId; return its id and whether this call created it."""
        execution_id = uuid.uuid4().hex
        now = utcnow()
        params = {
            "id": execution_id,
            "callback_id": new.callback_id,
            "action": new.action,
            "portal_id": new.portal_id,
            "realm_id": new.realm_id,
            "object_type": new.object_type,
            "object_id": new.object_id,
            "inputs": new.inputs,
            "object_properties": new.object_properties,
            "state": "queued",
            "attempt_count": 0,
            "callback_state": "none",
            "created_at": now,
            "updated_at": now,
        }
        # One statement, committed on its own: a single round trip on the hot path.
        with self._autocommit.connect() as conn:
            if conn.execute(self._accept_statement, params).first() is not None:
                return execution_id, True
            existing = conn.execute(select(Execution.id).where(Execution.callback_id == new.callback_id)).scalar_one()
        return existing, False

    def get_execution(self, execution_id: str) -> Execution | None:
        """Return an execution by id."""
        with self.session() as session:
            return session.get(Execution, execution_id)

    def find_execution(self, id_or_callback: str) -> Execution | None:
        """Return an execution by its id or its HubSpot callbackId."""
        with self.session() as session:
            return session.scalars(
                select(Execution).where(or_(Execution.id == id_or_callback, Execution.callback_id == id_or_callback))
            ).first()

    def list_executions(self, state: str | None = None, limit: int = 50) -> Sequence[Execution]:
        """Return the newest executions, optionally of one state."""
        query = select(Execution).order_by(Execution.created_at.desc()).limit(limit)
        if state:
            query = query.where(Execution.state == state)
        with self.session() as session:
            return session.scalars(query).all()

    def acquire_lease(self, execution_id: str, seconds: int) -> str | None:
        """Take an execution for one run; None when it is finished or another live run holds it."""
        token = secrets.token_hex(16)
        now = utcnow()
        stmt = (
            update(Execution)
            .where(Execution.id == execution_id)
            .where(
                or_(
                    Execution.state.in_(RUNNABLE_STATES),
                    (Execution.state == "running") & (Execution.lease_expires_at < now),
                )
            )
            .values(
                state="running",
                lease_token=token,
                lease_expires_at=now + timedelta(seconds=seconds),
                attempt_count=Execution.attempt_count + 1,
                updated_at=now,
            )
        )
        with self.engine.begin() as conn:
            return token if conn.execute(stmt).rowcount == 1 else None

    def renew_lease(self, execution_id: str, token: str, seconds: int) -> bool:
        """Extend a held lease; False means another run took the execution over."""
        now = utcnow()
        stmt = (
            update(Execution)
            .where(Execution.id == execution_id, Execution.lease_token == token)
            .values(lease_expires_at=now + timedelta(seconds=seconds), updated_at=now)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def release_for_retry(self, execution_id: str, token: str) -> bool:
        """Hand a leased execution back to the queue after a transient failure."""
        stmt = (
            update(Execution)
            .where(Execution.id == execution_id, Execution.lease_token == token)
            .values(state="retrying", lease_token=None, lease_expires_at=None, updated_at=utcnow())
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def finish_execution(
        self,
        execution_id: str,
        token: str,
        *,
        succeeded: bool,
        output_fields: dict[str, Any],
        failure_reason: str | None = None,
        failure_message: str | None = None,
    ) -> bool:
        """Record the outcome and queue its callback; False when the lease was lost."""
        now = utcnow()
        with self.session() as session:
            execution = session.get(Execution, execution_id, with_for_update=True)
            if execution is None or execution.lease_token != token:
                return False
            execution.state = "succeeded" if succeeded else "failed"
            execution.output_fields = output_fields
            execution.failure_reason = failure_reason
            execution.failure_message = failure_message
            execution.lease_token = None
            execution.lease_expires_at = None
            execution.finished_at = now
            # An operator's retry of an execution HubSpot already heard about has nobody to tell.
            if execution.callback_state != "sent":
                execution.callback_state = "pending"
            return True

    def requeue_failed(self, execution_id: str) -> bool:
        """Move a failed execution back to the queue, once; False when it was not failed."""
        stmt = (
            update(Execution)
            .where(Execution.id == execution_id, Execution.state == "failed")
            .values(state="queued", failure_reason=None, failure_message=None, updated_at=utcnow())
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def executions_to_sweep(self, *, queued_before: datetime, limit: int = 500) -> list[tuple[str, str]]:
        """Return (id, state) of executions that may have lost their job."""
        now = utcnow()
        query = (
            select(Execution.id, Execution.state)
            .where(
                or_(
                    Execution.state.in_(RUNNABLE_STATES) & (Execution.updated_at < queued_before),
                    (Execution.state == "running") & (Execution.lease_expires_at < now),
                )
            )
            .order_by(Execution.updated_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(row.id, row.state) for row in conn.execute(query)]

    # Callbacks ----------------------------------------------------------------------------------

    def pending_callbacks(self, portal_id: int, limit: int = 100) -> list[tuple[str, str, dict[str, Any]]]:
        """Return (execution id, callbackId, outputFields) of finished executions not yet reported."""
        query = (
            select(Execution.id, Execution.callback_id, Execution.output_fields)
            .where(Execution.portal_id == portal_id, Execution.callback_state == "pending")
            .order_by(Execution.finished_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(row.id, row.callback_id, row.output_fields or {}) for row in conn.execute(query)]

    def portals_with_pending_callbacks(self, finished_before: datetime) -> list[int]:
        """Return portals with callbacks that should have been sent by now."""
        query = (
            select(Execution.portal_id)
            .where(Execution.callback_state == "pending", Execution.finished_at < finished_before)
            .distinct()
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def mark_callbacks(self, execution_ids: Sequence[str], state: str = "sent") -> None:
        """Record that these callbacks were completed (or rejected) in HubSpot."""
        if not execution_ids:
            return
        stmt = (
            update(Execution)
            .where(Execution.id.in_(list(execution_ids)))
            .values(callback_state=state, callback_sent_at=utcnow())
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # Attempts and steps -------------------------------------------------------------------------

    def start_attempt(self, execution_id: str, number: int) -> int:
        """Record the start of a run and return the attempt's id."""
        with self.session() as session:
            attempt = ExecutionAttempt(execution_id=execution_id, number=number, outcome="running")
            session.add(attempt)
            session.flush()
            return attempt.id

    def finish_attempt(
        self,
        attempt_id: int,
        outcome: str,
        *,
        error: Exception | None = None,
    ) -> None:
        """Record how a run ended, with the remote error's code and request id when there was one."""
        values: dict[str, Any] = {"outcome": outcome, "finished_at": utcnow()}
        if error is not None:
            values["message"] = str(error)[:2000]
            values["error_service"] = getattr(error, "service", None)
            values["error_code"] = getattr(error, "code", None) or getattr(error, "reason", None)
            values["http_status"] = getattr(error, "http_status", None)
            values["request_id"] = getattr(error, "request_id", None)
        with self.engine.begin() as conn:
            conn.execute(update(ExecutionAttempt).where(ExecutionAttempt.id == attempt_id).values(**values))

    def attempts(self, execution_id: str) -> Sequence[ExecutionAttempt]:
        """Return the runs of an execution, oldest first."""
        with self.session() as session:
            return session.scalars(
                select(ExecutionAttempt)
                .where(ExecutionAttempt.execution_id == execution_id)
                .order_by(ExecutionAttempt.id)
            ).all()

    def trailing_retries(self, execution_id: str) -> int:
        """Return how many runs in a row, counting back from the newest finished one, ended in a retry."""
        query = (
            select(ExecutionAttempt.outcome)
            .where(ExecutionAttempt.execution_id == execution_id, ExecutionAttempt.outcome != "running")
            .order_by(ExecutionAttempt.id.desc())
        )
        count = 0
        with self.engine.connect() as conn:
            for outcome in conn.execute(query).scalars():
                if outcome == "failed" or outcome == "succeeded":
                    break
                count += outcome == "retrying"
        return count

    def abandon_running_attempts(self, execution_id: str) -> None:
        """Mark runs that never reported back (their worker died) as abandoned."""
        stmt = (
            update(ExecutionAttempt)
            .where(ExecutionAttempt.execution_id == execution_id, ExecutionAttempt.outcome == "running")
            .values(outcome="abandoned", finished_at=utcnow())
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def steps(self, execution_id: str) -> dict[str, ExecutionStep]:
        """Return the recorded steps of an execution by name."""
        with self.session() as session:
            rows = session.scalars(select(ExecutionStep).where(ExecutionStep.execution_id == execution_id))
            return {row.name: row for row in rows}

    def save_step(self, execution_id: str, name: str, status: str, data: dict[str, Any]) -> None:
        """Insert or update one step."""
        stmt = self._insert(ExecutionStep).values(
            execution_id=execution_id, name=name, status=status, data=data, updated_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["execution_id", "name"],
            set_={"status": status, "data": data, "updated_at": utcnow()},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # Connections --------------------------------------------------------------------------------

    def save_hubspot_portal(
        self, portal_id: int, refresh_token: str, access_token: str | None, expires_at: datetime | None
    ) -> None:
        """Create or replace a portal's tokens."""
        with self.session() as session:
            portal = session.get(HubSpotPortal, portal_id) or HubSpotPortal(portal_id=portal_id)
            portal.refresh_token = self.cipher.encrypt(refresh_token)
            portal.access_token = self.cipher.encrypt(access_token) if access_token else None
            portal.access_expires_at = expires_at
            session.add(portal)

    def hubspot_tokens(self, portal_id: int) -> TokenSet | None:
        """Return a portal's tokens, or None when the portal never installed the app."""
        with self.session() as session:
            portal = session.get(HubSpotPortal, portal_id)
            if portal is None:
                return None
            return self._tokens(portal.access_token, portal.access_expires_at, portal.refresh_token)

    def list_hubspot_portals(self) -> list[int]:
        """Return the ids of the installed portals."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(HubSpotPortal.portal_id).order_by(HubSpotPortal.portal_id)).scalars())

    def save_quickbooks_connection(
        self,
        portal_id: int,
        realm_id: str,
        refresh_token: str,
        access_token: str | None,
        expires_at: datetime | None,
        name: str | None = None,
    ) -> int:
        """Create or replace a connection and return its id."""
        with self.session() as session:
            connection = session.scalars(
                select(QuickBooksConnection).where(
                    QuickBooksConnection.portal_id == portal_id, QuickBooksConnection.realm_id == realm_id
                )
            ).first() or QuickBooksConnection(portal_id=portal_id, realm_id=realm_id)
            connection.refresh_token = self.cipher.encrypt(refresh_token)
            connection.access_token = self.cipher.encrypt(access_token) if access_token else None
            connection.access_expires_at = expires_at
            connection.status = "active"
            if name is not None:
                connection.name = name
            session.add(connection)
            session.flush()
            return connection.id

    def quickbooks_connection(self, portal_id: int, realm_id: str) -> ConnectionInfo | None:
        """Return the connection of a company to a portal, if there is one."""
        with self.session() as session:
            row = session.scalars(
                select(QuickBooksConnection).where(
                    QuickBooksConnection.portal_id == portal_id, QuickBooksConnection.realm_id == realm_id
                )
            ).first()
            return self._connection_info(row) if row else None

    def list_quickbooks_connections(self, portal_id: int | None = None) -> list[ConnectionInfo]:
        """Return connections, optionally of one portal."""
        query = select(QuickBooksConnection).order_by(QuickBooksConnection.portal_id, QuickBooksConnection.id)
        if portal_id is not None:
            query = query.where(QuickBooksConnection.portal_id == portal_id)
        with self.session() as session:
            return [self._connection_info(row) for row in session.scalars(query)]

    def quickbooks_tokens(self, connection_id: int) -> TokenSet:
        """Return a connection's tokens."""
        with self.session() as session:
            row = session.get(QuickBooksConnection, connection_id)
            if row is None:
                raise LookupError(f"No QuickBooks connection {connection_id}")
            return self._tokens(row.access_token, row.access_expires_at, row.refresh_token)

    def save_quickbooks_tokens(
        self, connection_id: int, access_token: str, expires_at: datetime, refresh_token: str
    ) -> None:
        """Store a refreshed token pair in one transaction, so the newest refresh token is never lost."""
        stmt = (
            update(QuickBooksConnection)
            .where(QuickBooksConnection.id == connection_id)
            .values(
                access_token=self.cipher.encrypt(access_token),
                access_expires_at=expires_at,
                refresh_token=self.cipher.encrypt(refresh_token),
                refreshed_at=utcnow(),
                status="active",
                updated_at=utcnow(),
            )
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def mark_quickbooks_revoked(self, connection_id: int) -> None:
        """Record that a connection's grant is gone."""
        stmt = (
            update(QuickBooksConnection)
            .where(QuickBooksConnection.id == connection_id)
            .values(status="revoked", access_token=None, updated_at=utcnow())
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def _tokens(self, access: str | None, expires_at: datetime | None, refresh: str) -> TokenSet:
        return TokenSet(
            access_token=self.cipher.decrypt(access) if access else None,
            access_expires_at=expires_at,
            refresh_token=self.cipher.decrypt(refresh),
        )

    @staticmethod
    def _connection_info(row: QuickBooksConnection) -> ConnectionInfo:
        return ConnectionInfo(row.id, row.portal_id, row.realm_id, row.name, row.status, row.refreshed_at)

    # Company settings and profile ---------------------------------------------------------------

    def company_settings(self, realm_id: str) -> dict[str, Any]:
        """Return a company's settings ({} when none were set)."""
        with self.session() as session:
            row = session.get(CompanySettings, realm_id)
            return dict(row.settings) if row else {}

    def save_company_settings(self, realm_id: str, settings: dict[str, Any]) -> None:
        """Replace a company's settings."""
        with self.session() as session:
            row = session.get(CompanySettings, realm_id) or CompanySettings(realm_id=realm_id)
            row.settings = settings
            session.add(row)

    def company_profile(self, realm_id: str) -> tuple[dict[str, Any], datetime] | None:
        """Return the cached company profile and when it was read."""
        with self.session() as session:
            row = session.get(CompanyProfile, realm_id)
            return (dict(row.profile), row.fetched_at) if row else None

    def save_company_profile(self, realm_id: str, profile: dict[str, Any]) -> None:
        """Cache what QuickBooks said about a company."""
        stmt = self._insert(CompanyProfile).values(realm_id=realm_id, profile=profile, fetched_at=utcnow())
        stmt = stmt.on_conflict_do_update(
            index_elements=["realm_id"], set_={"profile": profile, "fetched_at": utcnow()}
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # Mappings -----------------------------------------------------------------------------------

    def product_mappings(self, realm_id: str, product_ids: Sequence[str]) -> dict[str, str]:
        """Return {HubSpot product id: QuickBooks item id} for the known ones."""
        if not product_ids:
            return {}
        query = select(ProductMapping.hubspot_product_id, ProductMapping.quickbooks_item_id).where(
            ProductMapping.realm_id == realm_id, ProductMapping.hubspot_product_id.in_(list(product_ids))
        )
        with self.engine.connect() as conn:
            return {row[0]: row[1] for row in conn.execute(query)}

    def save_product_mapping(self, realm_id: str, product_id: str, item_id: str) -> None:
        """Remember which item a product is."""
        stmt = self._insert(ProductMapping).values(
            realm_id=realm_id, hubspot_product_id=product_id, quickbooks_item_id=item_id, created_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["realm_id", "hubspot_product_id"], set_={"quickbooks_item_id": item_id}
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def customer_mapping(self, realm_id: str, contact_id: str) -> str | None:
        """Return the QuickBooks customer known for a contact."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(CustomerMapping.quickbooks_customer_id).where(
                    CustomerMapping.realm_id == realm_id, CustomerMapping.hubspot_contact_id == contact_id
                )
            ).scalar_one_or_none()

    def save_customer_mapping(self, realm_id: str, contact_id: str, customer_id: str) -> None:
        """Remember which customer a contact is."""
        stmt = self._insert(CustomerMapping).values(
            realm_id=realm_id,
            hubspot_contact_id=contact_id,
            quickbooks_customer_id=customer_id,
            created_at=utcnow(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["realm_id", "hubspot_contact_id"], set_={"quickbooks_customer_id": customer_id}
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def forget_mappings_to(self, realm_id: str, *, customer_id: str | None, item_ids: Sequence[str]) -> None:
        """Drop mappings that point at a customer or items QuickBooks no longer knows."""
        with self.session() as session:
            if customer_id:
                session.execute(
                    delete(CustomerMapping).where(
                        CustomerMapping.realm_id == realm_id, CustomerMapping.quickbooks_customer_id == customer_id
                    )
                )
            if item_ids:
                session.execute(
                    delete(ProductMapping).where(
                        ProductMapping.realm_id == realm_id, ProductMapping.quickbooks_item_id.in_(list(item_ids))
                    )
                )

    # Payment documents (one per payment, kind and company) --------------------------------------

    def claim_payment_document(self, realm_id: str, payment_id: str, kind: str, execution_id: str) -> str:
        """Claim the right to book a payment's document; return the execution that holds it."""
        stmt = (
            self._insert(PaymentDocument)
            .values(
                realm_id=realm_id,
                payment_id=payment_id,
                kind=kind,
                execution_id=execution_id,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["realm_id", "payment_id", "kind"])
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            return conn.execute(
                select(PaymentDocument.execution_id).where(
                    PaymentDocument.realm_id == realm_id,
                    PaymentDocument.payment_id == payment_id,
                    PaymentDocument.kind == kind,
                )
            ).scalar_one()

    def take_over_payment_document(
        self, realm_id: str, payment_id: str, kind: str, failed_execution_id: str, execution_id: str
    ) -> bool:
        """Move a claim from a failed execution to another one, carrying over the steps it completed."""
        with self.session() as session:
            claimed = session.execute(
                update(PaymentDocument)
                .where(
                    PaymentDocument.realm_id == realm_id,
                    PaymentDocument.payment_id == payment_id,
                    PaymentDocument.kind == kind,
                    PaymentDocument.execution_id == failed_execution_id,
                )
                .values(execution_id=execution_id)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return False
            for step in session.scalars(select(ExecutionStep).where(ExecutionStep.execution_id == failed_execution_id)):
                if session.get(ExecutionStep, (execution_id, step.name)) is None:
                    session.add(
                        ExecutionStep(execution_id=execution_id, name=step.name, status=step.status, data=step.data)
                    )
            return True

    def save_payment_document_outputs(self, realm_id: str, payment_id: str, kind: str, outputs: dict[str, Any]) -> None:
        """Remember what the booked document was, for later executions on the same payment."""
        stmt = (
            update(PaymentDocument)
            .where(
                PaymentDocument.realm_id == realm_id,
                PaymentDocument.payment_id == payment_id,
                PaymentDocument.kind == kind,
            )
            .values(output_fields=outputs)
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def payment_document(self, realm_id: str, payment_id: str, kind: str) -> PaymentDocument | None:
        """Return the claim on a payment's document."""
        with self.session() as session:
            return session.get(PaymentDocument, (realm_id, payment_id, kind))

    def count(self, model: Any) -> int:
        """Return the number of rows of a table (operators and benchmarks)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())
