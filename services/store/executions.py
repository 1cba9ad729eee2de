"""Executions: accepting them once per callbackId, leasing them to one run at a time, recording outcomes."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import JSON, Table, and_, bindparam, case, exists, or_, select, update

from services.clock import utcnow
from services.store.callbacks import EXPIRED, PENDING, SENT
from services.store.engine import Database
from services.store.models import BatchItemRow, ExecutionRow, PaymentDocumentRow, StepRow
from services.store.records import (
    FAILED,
    HELD,
    QUEUED,
    RETRYING,
    RUNNABLE_STATES,
    RUNNING,
    SUCCEEDED,
    Execution,
    Lease,
    NewExecution,
    from_row,
)


def new_execution_columns(new: NewExecution) -> dict[str, Any]:
    """Return the columns an accepted execution brings, with its new id (the rest are the table's starting state)."""
    return {
        "id": uuid.uuid4().hex,
        "callback_id": new.callback_id,
        "action": new.action,
        "portal_id": new.portal_id,
        "realm_id": new.realm_id,
        "object_type": new.object_type,
        "object_id": new.object_id,
        "inputs": new.inputs,
        "expires_at": new.expires_at,
    }


class ExecutionRepository:
    """Reads and writes of the executions table, except callbacks (see callbacks.py)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        # Built once: the hot path of every execution request only binds parameters to it.
        # RETURNING, not rowcount: drivers do not all report rows for INSERT ... ON CONFLICT.
        table = cast(Table, ExecutionRow.__table__)
        self._accept_statement = (
            database.insert(table).on_conflict_do_nothing(index_elements=["callback_id"]).returning(table.c.id)
        )
        # The statements of every run (lease, renewal, outcome), built once too: each is one round trip.
        c = table.c
        self._get_statement = select(table).where(c.id == bindparam("execution_id"))
        self._lease_statement = (
            update(table)
            .where(
                c.id == bindparam("execution_id"),
                # Equalities, not IN: an IN list is expanded at every execution, these are compiled once.
                or_(
                    *(c.state == state for state in RUNNABLE_STATES),
                    (c.state == RUNNING) & (c.lease_expires_at < bindparam("now")),
                ),
            )
            .values(
                state=RUNNING,
                lease_token=bindparam("token"),
                lease_expires_at=bindparam("expires"),
                attempt_count=c.attempt_count + 1,
                updated_at=bindparam("now"),
            )
            .returning(*c)
        )
        self._renew_statement = (
            update(table)
            .where(c.id == bindparam("execution_id"), c.lease_token == bindparam("token"))
            .values(lease_expires_at=bindparam("expires"), updated_at=bindparam("now"))
        )
        # An operator's retry of an execution HubSpot already heard about has nobody to tell, and neither has an
        # execution HubSpot stopped waiting for: a late completion is not sent.
        self._finish_statement = (
            update(table)
            .where(c.id == bindparam("execution_id"), c.lease_token == bindparam("token"))
            .values(
                state=bindparam("b_state"),
                output_fields=bindparam("outputs", type_=c.output_fields.type),
                failure_reason=bindparam("reason"),
                failure_message=bindparam("message"),
                # None is SQL NULL here, as the ORM left it (JSON's default would store the JSON null).
                failure_details=bindparam("details", type_=JSON(none_as_null=True)),
                lease_token=None,
                lease_expires_at=None,
                finished_at=bindparam("now"),
                updated_at=bindparam("now"),
                callback_state=case(
                    (or_(c.callback_state == SENT, c.callback_state == EXPIRED), c.callback_state),
                    (and_(c.expires_at.is_not(None), c.expires_at <= bindparam("now")), EXPIRED),
                    else_=PENDING,
                ),
            )
        )

    def accept(self, new: NewExecution) -> tuple[str, bool]:
        """Record an execution once per callbackId; return its id and whether this call created it."""
        now = utcnow()
        params = {
            **new_execution_columns(new),
            "state": QUEUED,
            "attempt_count": 0,
            "callback_state": "none",
            "created_at": now,
            "updated_at": now,
        }
        execution_id = params["id"]
        with self.database.autocommit.connect() as conn:
            if conn.execute(self._accept_statement, params).first() is not None:
                return execution_id, True
            existing = conn.execute(
                select(ExecutionRow.id).where(ExecutionRow.callback_id == new.callback_id)
            ).scalar_one()
        return existing, False

    def get(self, execution_id: str) -> Execution | None:
        """Return an execution by id."""
        row = self.database.row(self._get_statement, {"execution_id": execution_id})
        return from_row(Execution, row) if row else None

    def find(self, id_or_callback: str) -> Execution | None:
        """Return an execution by its id or its HubSpot callbackId."""
        query = select(ExecutionRow).where(
            or_(ExecutionRow.id == id_or_callback, ExecutionRow.callback_id == id_or_callback)
        )
        with self.database.session() as session:
            row = session.scalars(query).first()
            return from_row(Execution, row) if row else None

    def newest(self, state: str | None = None, limit: int = 50) -> list[Execution]:
        """Return the newest executions, optionally of one state."""
        query = select(ExecutionRow).order_by(ExecutionRow.created_at.desc()).limit(limit)
        if state:
            query = query.where(ExecutionRow.state == state)
        with self.database.session() as session:
            return [from_row(Execution, row) for row in session.scalars(query)]

    def waiting_objects(self, portal_id: int, object_types: Sequence[str], *, limit: int) -> list[str]:
        """Return the ids of a portal's records of these types whose executions wait to run, oldest first."""
        query = (
            select(ExecutionRow.object_id)
            .where(
                ExecutionRow.portal_id == portal_id,
                ExecutionRow.object_type.in_(list(object_types)),
                ExecutionRow.state.in_(RUNNABLE_STATES),
                # Only those that have not run yet: one that has (its document in a batch now, or answered and
                # waiting to finish) read its record already, and would crowd the not yet read out of the batch.
                ~exists().where(StepRow.execution_id == ExecutionRow.id),
            )
            .order_by(ExecutionRow.created_at)
            .limit(limit)
        )
        with self.database.engine.connect() as conn:
            return list(dict.fromkeys(str(object_id) for object_id in conn.execute(query).scalars()))

    # Leases: one run at a time -------------------------------------------------------------------

    def lease(self, execution_id: str, seconds: int) -> Lease | None:
        """Take an execution for one run and return it as leased; None when it is missing, finished or another
        live run holds it (one round trip)."""
        token = secrets.token_hex(16)
        now = utcnow()
        parameters = {
            "execution_id": execution_id,
            "token": token,
            "now": now,
            "expires": now + timedelta(seconds=seconds),
        }
        row = self.database.row(self._lease_statement, parameters)
        return Lease(token, from_row(Execution, row)) if row is not None else None

    def acquire_lease(self, execution_id: str, seconds: int) -> str | None:
        """Take an execution for one run; None when it is finished or another live run holds it."""
        leased = self.lease(execution_id, seconds)
        return leased.token if leased is not None else None

    def renew_lease(self, execution_id: str, token: str, seconds: int) -> bool:
        """Extend a held lease; False means another run took the execution over."""
        now = utcnow()
        parameters = {
            "execution_id": execution_id,
            "token": token,
            "now": now,
            "expires": now + timedelta(seconds=seconds),
        }
        return self.database.write(self._renew_statement, parameters) == 1

    def release_for_retry(self, execution_id: str, token: str) -> bool:
        """Hand a leased execution back to the queue after a transient failure."""
        return self._release(execution_id, token, RETRYING)

    def release_to_batch(self, execution_id: str, token: str) -> bool:
        """Hand a leased execution back to wait for its document's batch (the batch's answer queues it again)."""
        return self._release(execution_id, token, QUEUED)

    def _release(self, execution_id: str, token: str, state: str) -> bool:
        """End a run without an outcome: the execution goes to ``state``, its lease to nobody."""
        stmt = (
            update(ExecutionRow)
            .where(ExecutionRow.id == execution_id, ExecutionRow.lease_token == token)
            .values(state=state, lease_token=None, lease_expires_at=None, updated_at=utcnow())
        )
        return self._changed(stmt)

    # Outcomes ------------------------------------------------------------------------------------

    def finish(
        self,
        execution_id: str,
        token: str,
        *,
        succeeded: bool,
        output_fields: dict[str, Any],
        failure_reason: str | None = None,
        failure_message: str | None = None,
        failure_details: dict[str, Any] | None = None,
    ) -> bool:
        """Record the outcome and queue its callback (one conditional UPDATE); False when the lease was lost."""
        parameters = {
            "execution_id": execution_id,
            "token": token,
            "b_state": SUCCEEDED if succeeded else FAILED,
            "outputs": output_fields,
            "reason": failure_reason,
            "message": failure_message,
            "details": failure_details,
            "now": utcnow(),
        }
        return self.database.write(self._finish_statement, parameters) == 1

    def hold(
        self,
        execution_id: str,
        token: str,
        *,
        until: datetime,
        output_fields: dict[str, Any],
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Record a failure without reporting it: HubSpot keeps waiting while a person fixes the cause."""
        stmt = (
            update(ExecutionRow)
            .where(ExecutionRow.id == execution_id, ExecutionRow.lease_token == token)
            .values(
                state=HELD,
                held_until=until,
                output_fields=output_fields,
                failure_reason=reason,
                failure_message=message,
                failure_details=details,
                lease_token=None,
                lease_expires_at=None,
                updated_at=utcnow(),
            )
        )
        return self._changed(stmt)

    def release_holds(self, now: datetime) -> list[Execution]:
        """Report the held failures whose hold ran out (as failed, callback pending); return them."""
        with self.database.session() as session:
            rows = session.scalars(
                select(ExecutionRow)
                .where(ExecutionRow.state == HELD, ExecutionRow.held_until <= now)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.state = FAILED
                row.held_until = None
                row.finished_at = now
                if row.callback_state not in (SENT, EXPIRED):
                    row.callback_state = EXPIRED if row.expires_at is not None and now >= row.expires_at else PENDING
            return [from_row(Execution, row) for row in rows]

    def requeue_failed(self, execution_id: str) -> bool:
        """Move a failed or held execution back to the queue, once; False when it was neither.

        This is an operator's explicit retry. A failed one may book after HubSpot stopped waiting (the expiry is
        waived; the callback state still says whether HubSpot can be told); a held one is still awaited.
        """
        now = utcnow()
        cleared = {
            "state": QUEUED,
            "failure_reason": None,
            "failure_message": None,
            "failure_details": None,
            "held_until": None,
            "updated_at": now,
        }
        with self.database.engine.begin() as conn:
            failed = conn.execute(
                update(ExecutionRow)
                .where(ExecutionRow.id == execution_id, ExecutionRow.state == FAILED)
                .values(**cleared, expires_at=None)
            )
            if failed.rowcount == 1:
                return True
            held = conn.execute(
                update(ExecutionRow)
                .where(ExecutionRow.id == execution_id, ExecutionRow.state == HELD)
                .values(**cleared)
            )
            return bool(held.rowcount == 1)

    # Operators' changes -------------------------------------------------------------------------

    def replace_inputs(self, execution_id: str, inputs: dict[str, Any]) -> bool:
        """Give a failed or held execution corrected inputs before it is retried; False when it is neither.

        Refused once a document write was sent: a resumed run returns that document, whatever the inputs say.
        """
        stmt = (
            update(ExecutionRow)
            .where(
                ExecutionRow.id == execution_id,
                ExecutionRow.state.in_((FAILED, HELD)),
                ~self._document_written(execution_id),
            )
            .values(inputs=inputs, updated_at=utcnow())
        )
        return self._changed(stmt)

    def cancel(self, execution_id: str, *, output_fields: dict[str, Any], reason: str, message: str) -> bool:
        """Fail a waiting, retrying or held execution on an operator's word; False when it is in no such state.

        Refused while a run holds it and once a document write was sent (that document may exist in QuickBooks).
        """
        now = utcnow()
        with self.database.session() as session:
            row = session.scalars(
                select(ExecutionRow)
                .where(
                    ExecutionRow.id == execution_id,
                    ExecutionRow.state.in_((QUEUED, RETRYING, HELD)),
                    ~self._document_written(execution_id),
                )
                .with_for_update()
            ).first()
            if row is None:
                return False
            self._end(row, now, state=FAILED, output_fields=output_fields)
            row.failure_reason, row.failure_message, row.failure_details = reason, message, None
            return True

    def mark_booked(self, execution_id: str, *, output_fields: dict[str, Any]) -> bool:
        """Record that a document which already exists is this execution's; False while it runs or once it succeeded.

        Payment documents claimed by the execution point at it too, so later executions on the payment reuse it.
        """
        now = utcnow()
        with self.database.session() as session:
            row = session.scalars(
                select(ExecutionRow)
                .where(
                    ExecutionRow.id == execution_id,
                    ExecutionRow.state.in_((QUEUED, RETRYING, HELD, FAILED)),
                    # A document waiting in a QuickBooks batch would be booked next to the one marked here.
                    ~self._in_batch(),
                )
                .with_for_update()
            ).first()
            if row is None:
                return False
            self._end(row, now, state=SUCCEEDED, output_fields=output_fields)
            row.failure_reason = row.failure_message = row.failure_details = None
            session.execute(
                update(PaymentDocumentRow)
                .where(PaymentDocumentRow.execution_id == execution_id)
                .values(
                    output_fields={key: value for key, value in output_fields.items() if key != "hs_execution_state"}
                )
            )
            return True

    @staticmethod
    def _end(row: ExecutionRow, now: datetime, *, state: str, output_fields: dict[str, Any]) -> None:
        """Finish an execution outside a run: its callback is pending unless HubSpot was told or stopped waiting."""
        row.state = state
        row.output_fields = output_fields
        row.held_until = None
        row.lease_token = None
        row.lease_expires_at = None
        row.finished_at = row.updated_at = now
        if row.callback_state not in (SENT, EXPIRED):
            row.callback_state = EXPIRED if row.expires_at is not None and now >= row.expires_at else PENDING

    @staticmethod
    def _document_written(execution_id: str) -> Any:
        """Return the condition 'a document write of this execution was sent' (its outcome known or not)."""
        return exists().where(StepRow.execution_id == execution_id, StepRow.name.like("document:%"))

    @staticmethod
    def _in_batch() -> Any:
        """Return the condition 'a document write of the execution waits for a QuickBooks batch, or is in one'."""
        return exists().where(BatchItemRow.execution_id == ExecutionRow.id)

    def to_sweep(self, *, queued_before: datetime, limit: int = 500) -> list[Execution]:
        """Return executions that may have lost their job: runnable and untouched, or with an expired lease.

        One whose document waits for a batch has no job on purpose: the batch's answer queues it again.
        """
        now = utcnow()
        query = (
            select(ExecutionRow)
            .where(
                or_(
                    ExecutionRow.state.in_(RUNNABLE_STATES)
                    & (ExecutionRow.updated_at < queued_before)
                    & ~self._in_batch(),
                    (ExecutionRow.state == RUNNING) & (ExecutionRow.lease_expires_at < now),
                )
            )
            .order_by(ExecutionRow.updated_at)
            .limit(limit)
        )
        with self.database.session() as session:
            return [from_row(Execution, row) for row in session.scalars(query)]

    def _changed(self, stmt: Any) -> bool:
        """Run an UPDATE of one execution; tell whether it matched."""
        with self.database.engine.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)
