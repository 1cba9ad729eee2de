"""The outbox of accepted executions: an entry is written in the commit that records its execution, and deleted
by the relay in the commit that follows the enqueue of its job (services.work.relay).

A request is answered once its execution is committed; its job is queued moments later. Since the execution and
its entry are one commit, an execution whose process died before queuing it is still in the outbox for another
relay. Concurrent requests of a process share their commit (GroupCommit): one statement for all of them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, text

from services.clock import utcnow
from services.store.callbacks import NONE
from services.store.engine import Database
from services.store.executions import new_execution_columns
from services.store.models import ExecutionRow, OutboxRow
from services.store.records import QUEUED, NewExecution

# PostgreSQL accepts a group of executions, and writes the outbox entries of the new ones, in one statement. Its
# text does not depend on the number of executions (one array per column), so it is prepared once per connection.
_ACCEPT = """
    WITH accepted AS (
        INSERT INTO executions (
            id, callback_id, action, portal_id, realm_id, object_type, object_id, inputs,
            state, attempt_count, callback_state, expires_at, created_at, updated_at
        )
        SELECT id, callback_id, action, portal_id, realm_id, object_type, object_id, inputs,
            :state, 0, :callback_state, expires_at, :now, :now
        FROM {accepting}
            AS accepting (id, callback_id, action, portal_id, realm_id, object_type, object_id, inputs, expires_at)
        ON CONFLICT (callback_id) DO NOTHING
        RETURNING id, portal_id
    )
    INSERT INTO execution_outbox (execution_id, portal_id, accepted_at)
    SELECT id, portal_id, :now FROM accepted
    RETURNING execution_id
"""
ACCEPT_MANY_POSTGRES = text(
    _ACCEPT.format(
        accepting="""unnest(
            CAST(:id AS varchar[]), CAST(:callback_id AS varchar[]), CAST(:action AS varchar[]),
            CAST(:portal_id AS integer[]), CAST(:realm_id AS varchar[]), CAST(:object_type AS varchar[]),
            CAST(:object_id AS varchar[]), CAST(:inputs AS json[]), CAST(:expires_at AS timestamptz[])
        )"""
    )
)
# One execution (the usual case of a sync worker) in plain parameters: dumping arrays costs more than it saves.
ACCEPT_ONE_POSTGRES = text(
    _ACCEPT.format(
        accepting="""(VALUES (
            CAST(:id AS varchar), CAST(:callback_id AS varchar), CAST(:action AS varchar), CAST(:portal_id AS integer),
            CAST(:realm_id AS varchar), CAST(:object_type AS varchar), CAST(:object_id AS varchar),
            CAST(:inputs AS json), CAST(:expires_at AS timestamptz)
        ))"""
    )
)
ACCEPTED_COLUMNS = ("id", "callback_id", "action", "portal_id", "realm_id", "object_type", "object_id", "expires_at")
# The oldest entries no other relay holds, taken out. MATERIALIZED: a LIMIT under IN (...) may be evaluated again for
# each row deleted and take more than asked.
RELAY_POSTGRES = text(
    """
    WITH taken AS MATERIALIZED (
        SELECT id FROM execution_outbox
        WHERE accepted_at < COALESCE(CAST(:accepted_before AS timestamptz), 'infinity')
        ORDER BY id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM execution_outbox AS waiting USING taken WHERE waiting.id = taken.id
    RETURNING waiting.id, waiting.execution_id, waiting.portal_id, waiting.accepted_at
    """
)


@dataclass(frozen=True)
class Waiting:
    """An accepted execution whose job is not on the queue yet."""

    execution_id: str
    portal_id: int
    accepted_at: datetime


class ExecutionOutbox:
    """Accepts executions with their outbox entries, and hands the entries to a relay."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._postgres = database.engine.dialect.name == "postgresql"
        # PostgreSQL's statements, compiled once into the driver's SQL: a commit hands them to the driver as they are.
        dialect = database.engine.dialect
        self._accept_one = str(ACCEPT_ONE_POSTGRES.compile(dialect=dialect))
        self._accept_many = str(ACCEPT_MANY_POSTGRES.compile(dialect=dialect))
        accepted_before = bindparam("accepted_before", type_=OutboxRow.__table__.c.accepted_at.type)
        oldest = (
            select(OutboxRow.id)
            .where(or_(accepted_before.is_(None), OutboxRow.accepted_at < accepted_before))
            .order_by(OutboxRow.id)
            .limit(bindparam("limit"))
        )
        # SQLite has one writer at a time: nothing to skip.
        self._relay_sqlite = (
            delete(OutboxRow)
            .where(OutboxRow.id.in_(oldest.scalar_subquery()))
            .returning(OutboxRow.id, OutboxRow.execution_id, OutboxRow.portal_id, OutboxRow.accepted_at)
        )

    def accept(self, news: Sequence[NewExecution], *, connection: Connection | None = None) -> list[tuple[str, bool]]:
        """Record executions once per callbackId, each new one with its outbox entry, in one commit.

        Return (execution id, created by this call) for each, in order; a callbackId given twice is created once.
        ``connection``: the autocommit connection to go through (PostgreSQL), else one is taken from the pool.
        """
        now = utcnow()
        rows: dict[str, dict[str, Any]] = {}
        for new in news:
            rows.setdefault(new.callback_id, new_execution_columns(new))
        # In the order of their callbackIds, so that two commits sharing executions wait for each other in the
        # same order (never a deadlock).
        ordered = [rows[callback_id] for callback_id in sorted(rows)]
        if not self._postgres:
            created = self._insert_sqlite(ordered, now)
        elif connection is not None:
            created = self._insert_postgres(connection, ordered, now)
        else:
            with self.database.autocommit.connect() as conn:
                created = self._insert_postgres(conn, ordered, now)
        existing: dict[str, str] = {}
        missing = [row["callback_id"] for row in ordered if row["id"] not in created]
        if missing:
            with self.database.autocommit.connect() as conn:
                found = conn.execute(
                    select(ExecutionRow.callback_id, ExecutionRow.id).where(ExecutionRow.callback_id.in_(missing))
                )
                existing = {callback_id: execution_id for callback_id, execution_id in found}
        outcomes = []
        for new in news:
            execution_id = rows[new.callback_id]["id"]
            if execution_id in created:
                outcomes.append((execution_id, True))
                created.discard(execution_id)  # the same callbackId again in this group: not created twice
            else:
                outcomes.append((existing.get(new.callback_id) or execution_id, False))
        return outcomes

    def _insert_postgres(self, conn: Connection, rows: list[dict[str, Any]], now: datetime) -> set[str]:
        """Insert the executions and the outbox entries of the new ones in one statement (one round trip).

        The statement goes to the driver as it is: it is compiled once and its parameters are already the driver's.
        """
        if len(rows) == 1:
            statement, params = self._accept_one, {**rows[0], "inputs": json.dumps(rows[0]["inputs"])}
        else:
            statement = self._accept_many
            params = {name: [row[name] for row in rows] for name in ACCEPTED_COLUMNS}
            params["inputs"] = [json.dumps(row["inputs"]) for row in rows]
        params.update(now=now, state=QUEUED, callback_state=NONE)
        return set(conn.exec_driver_sql(statement, params).scalars())

    def _insert_sqlite(self, rows: list[dict[str, Any]], now: datetime) -> set[str]:
        """Insert row by row in one transaction (SQLite has no INSERT inside WITH, and no round trips to save)."""
        insert_one = (
            self.database.insert(ExecutionRow)
            .on_conflict_do_nothing(index_elements=["callback_id"])
            .returning(ExecutionRow.id, ExecutionRow.portal_id)
        )
        defaults = {"state": QUEUED, "attempt_count": 0, "callback_state": NONE, "created_at": now, "updated_at": now}
        created: set[str] = set()
        with self.database.engine.begin() as conn:
            for row in rows:
                inserted = conn.execute(insert_one, {**row, **defaults}).first()
                if inserted is not None:
                    created.add(inserted.id)
                    conn.execute(
                        insert(OutboxRow),
                        {"execution_id": inserted.id, "portal_id": inserted.portal_id, "accepted_at": now},
                    )
        return created

    def relay(
        self, send: Callable[[list[Waiting]], None], *, limit: int, accepted_before: datetime | None = None
    ) -> list[Waiting]:
        """Take up to ``limit`` entries, oldest first, hand them to ``send`` and delete them once it returned.

        Entries another relay holds are skipped. If ``send`` raises, nothing is deleted: the entries wait for the
        next relay. A relay that dies after ``send`` but before its commit leaves them too: they are sent again.
        """
        params = {"limit": limit, "accepted_before": accepted_before}
        with self.database.engine.begin() as conn:
            taken = sorted(conn.execute(RELAY_POSTGRES if self._postgres else self._relay_sqlite, params).all())
            waiting = [Waiting(row.execution_id, row.portal_id, row.accepted_at) for row in taken]
            if waiting:
                send(waiting)
        return waiting

    def count(self) -> int:
        """Return how many accepted executions wait for their job (those a relay is queuing right now included)."""
        with self.database.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(OutboxRow)).scalar_one())


class WriterConnection:
    """The autocommit connection a process's group commits go through, one commit at a time (PostgreSQL).

    Kept between commits (taking a connection from the pool costs about as much as the statement), renewed every
    ``renew_after`` seconds (as the pool recycles its own) and after any failure (it may be broken). SQLite gets
    none: its writes cost no round trip, and an in-memory database has one connection for everybody.
    """

    def __init__(self, database: Database, *, renew_after: float = 60.0) -> None:
        self.database = database
        self.renew_after = renew_after
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._opened_at = 0.0

    @contextmanager
    def use(self) -> Iterator[Connection | None]:
        """Lend the connection for one commit (None on SQLite)."""
        if self.database.engine.dialect.name != "postgresql":
            yield None
            return
        with self._lock:
            if self._connection is not None and time.monotonic() - self._opened_at > self.renew_after:
                self._close()
            if self._connection is None:
                self._connection = self.database.autocommit.connect()
                self._opened_at = time.monotonic()
            try:
                yield self._connection
            except BaseException:
                self._close()
                raise

    def close(self) -> None:
        """Give the connection back to the pool."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        """Drop the connection (the lock is held)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):  # a broken connection is invalidated: nothing left to close
                connection.close()


class _Request:
    """One request's execution, waiting in a group commit."""

    __slots__ = ("answered", "error", "leads", "new", "outcome")

    def __init__(self, new: NewExecution) -> None:
        self.new = new
        self.answered = threading.Event()
        self.leads = False
        self.outcome: tuple[str, bool] | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Commits the executions of a process's concurrent requests together: one statement, one commit.

    The request that arrives while no commit runs leads: it commits what waits (its own execution first), answers
    the others of the batch, and hands the lead to the first request that arrived meanwhile. A request alone
    commits at once: nobody waits for a batch to fill. A failed commit fails every request of its batch.
    """

    def __init__(self, commit: Callable[[list[NewExecution]], list[tuple[str, bool]]], *, largest: int = 64) -> None:
        self._commit = commit
        self._largest = largest
        self._lock = threading.Lock()
        self._waiting: list[_Request] = []
        self._committing = False

    def accept(self, new: NewExecution) -> tuple[str, bool]:
        """Record an execution (with the others that wait); return its id and whether this call created it."""
        request = _Request(new)
        with self._lock:
            self._waiting.append(request)
            request.leads = not self._committing
            self._committing = True
        if not request.leads:
            request.answered.wait()
        if request.leads:
            self._lead()
        if request.error is not None:
            raise request.error
        assert request.outcome is not None
        return request.outcome

    def _lead(self) -> None:
        """Commit the waiting requests' executions (the leader's among them), answer them, pass the lead on."""
        with self._lock:
            batch = self._waiting[: self._largest]
            del self._waiting[: self._largest]
        try:
            for request, outcome in zip(batch, self._commit([r.new for r in batch]), strict=True):
                request.outcome = outcome
        except BaseException as exc:
            for request in batch:
                request.error = exc
        finally:
            with self._lock:
                successor = self._waiting[0] if self._waiting else None
                if successor is not None:
                    successor.leads = True
                else:
                    self._committing = False
            for request in batch:
                if not request.leads:
                    request.answered.set()
            if successor is not None:
                successor.answered.set()
