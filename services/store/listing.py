"""Finding executions for operators: filtered, newest first, paged by a cursor, with counts per reason."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from services.store.engine import Database
from services.store.models import ExecutionRow
from services.store.records import Execution, ExecutionFilter, from_row


class CursorError(ValueError):
    """A cursor this server did not hand out (or from another filter's listing)."""


def encode_cursor(created_at: datetime, execution_id: str) -> str:
    """Return the opaque cursor that continues a listing after this execution."""
    raw = json.dumps([created_at.isoformat(), execution_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Return the position a cursor stands for; CursorError when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, execution_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created), str(execution_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise CursorError("cursor is not one this server handed out") from exc


class ExecutionListing:
    """Read-only queries over executions for the operations console, its API and the command line."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def page(
        self, where: ExecutionFilter, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Execution], str | None]:
        """Return up to ``limit`` matching executions, newest first, and the cursor of the next page (or None)."""
        query = select(ExecutionRow).where(*_conditions(where))
        if cursor:
            created_at, execution_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    ExecutionRow.created_at < created_at,
                    and_(ExecutionRow.created_at == created_at, ExecutionRow.id < execution_id),
                )
            )
        query = query.order_by(ExecutionRow.created_at.desc(), ExecutionRow.id.desc()).limit(limit + 1)
        with self.database.session() as session:
            found = [from_row(Execution, row) for row in session.scalars(query)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], encode_cursor(last.created_at, last.id)

    def reason_counts(self, where: ExecutionFilter) -> dict[str, int]:
        """Return how many matching executions failed (or are held) for each reason, most frequent first."""
        query = (
            select(ExecutionRow.failure_reason, func.count())
            .where(*_conditions(where), ExecutionRow.failure_reason.is_not(None))
            .group_by(ExecutionRow.failure_reason)
        )
        with self.database.engine.connect() as conn:
            counts = {str(reason): int(count) for reason, count in conn.execute(query)}
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def state_counts(self, where: ExecutionFilter) -> dict[str, int]:
        """Return how many executions match in each state (the filter's own state is ignored)."""
        unfiltered_state = replace(where, state=None)
        query = (
            select(ExecutionRow.state, func.count()).where(*_conditions(unfiltered_state)).group_by(ExecutionRow.state)
        )
        with self.database.engine.connect() as conn:
            return {str(state): int(count) for state, count in conn.execute(query)}

    def matching_ids(self, where: ExecutionFilter, *, states: tuple[str, ...], limit: int) -> list[str]:
        """Return the ids of matching executions in one of ``states``, oldest first, at most ``limit``."""
        query = (
            select(ExecutionRow.id)
            .where(*_conditions(where), ExecutionRow.state.in_(states))
            .order_by(ExecutionRow.created_at, ExecutionRow.id)
            .limit(limit)
        )
        with self.database.engine.connect() as conn:
            return [str(execution_id) for execution_id in conn.execute(query).scalars()]


def _conditions(where: ExecutionFilter) -> list[Any]:
    """Return the WHERE conditions of a filter."""
    conditions: list[Any] = []
    if where.state is not None:
        conditions.append(ExecutionRow.state == where.state)
    if where.reason is not None:
        conditions.append(ExecutionRow.failure_reason == where.reason)
    if where.action is not None:
        conditions.append(ExecutionRow.action == where.action)
    if where.portal_id is not None:
        conditions.append(ExecutionRow.portal_id == where.portal_id)
    if where.realm_id is not None:
        conditions.append(ExecutionRow.realm_id == where.realm_id)
    if where.since is not None:
        conditions.append(ExecutionRow.created_at >= where.since)
    if where.until is not None:
        conditions.append(ExecutionRow.created_at < where.until)
    if where.callback_id is not None:
        conditions.append(ExecutionRow.callback_id == where.callback_id)
    return conditions
