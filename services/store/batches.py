"""QuickBooks batches: document writes parked for their company's next POST /batch, and the batches in flight.

A parked write is a started step plus an item; a batch takes up to 30 items and is recorded, with the requestid
it is sent with, before it goes out. Its answer turns every member's step into done (or rejected) and deletes
the batch in one transaction, so an item is in exactly one of three places: waiting, in a batch, or answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import BatchItemRow, ExecutionRow, QuickBooksBatchRow, StepRow
from services.store.records import RUNNING, Batch, BatchItem, Tenant, from_row

STARTED, DONE, REJECTED = "started", "done", "rejected"


class BatchRepository:
    """Reads and writes of the batch and batch-item tables, and of the steps their answers complete."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def park(
        self, tenant: Tenant, execution_id: str, step: str, entity: str, body: dict[str, Any], started: dict[str, Any]
    ) -> None:
        """Record a write as started and waiting for the company's next batch (both or neither)."""
        now = utcnow()
        with self.database.session() as session:
            row = session.get(StepRow, (execution_id, step))
            if row is None:
                session.add(StepRow(execution_id=execution_id, name=step, status=STARTED, data=started, updated_at=now))
            else:
                row.status, row.data, row.updated_at = STARTED, started, now
            if session.get(BatchItemRow, (execution_id, step)) is None:
                session.add(
                    BatchItemRow(
                        execution_id=execution_id,
                        step=step,
                        portal_id=tenant.portal_id,
                        realm_id=tenant.realm_id,
                        entity=entity,
                        body=body,
                        created_at=now,
                    )
                )

    def item(self, execution_id: str, step: str) -> BatchItem | None:
        """Return a write's item while it waits for a batch or is in one."""
        with self.database.session() as session:
            row = session.get(BatchItemRow, (execution_id, step))
            return from_row(BatchItem, row) if row is not None else None

    def backlog(self, tenant: Tenant) -> tuple[int, datetime | None]:
        """Return how many items wait for a batch of the tenant, and since when the oldest waits."""
        query = select(func.count(), func.min(BatchItemRow.created_at)).where(
            *self._of(tenant), BatchItemRow.batch_id.is_(None)
        )
        with self.database.engine.connect() as conn:
            count, oldest = conn.execute(query).one()
        if isinstance(oldest, str):
            # SQLite answers an aggregate of timestamps as text.
            oldest = datetime.fromisoformat(oldest)
        if isinstance(oldest, datetime) and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return int(count), oldest

    def open_batch(self, tenant: Tenant, size: int) -> Batch | None:
        """Return the tenant's batch in flight, or else a new one of up to ``size`` waiting items (oldest first)."""
        with self.database.session() as session:
            row = session.scalars(
                select(QuickBooksBatchRow)
                .where(QuickBooksBatchRow.portal_id == tenant.portal_id, QuickBooksBatchRow.realm_id == tenant.realm_id)
                .order_by(QuickBooksBatchRow.created_at)
                .limit(1)
            ).first()
            if row is None:
                # Only items whose run has stopped: the answer re-enqueues the execution, which must be runnable.
                waiting = list(
                    session.scalars(
                        select(BatchItemRow)
                        .join(ExecutionRow, ExecutionRow.id == BatchItemRow.execution_id)
                        .where(*self._of(tenant), BatchItemRow.batch_id.is_(None), ExecutionRow.state != RUNNING)
                        .order_by(BatchItemRow.created_at, BatchItemRow.execution_id)
                        .limit(size)
                        .with_for_update(skip_locked=True, of=BatchItemRow)
                    )
                )
                if not waiting:
                    return None
                now = utcnow()
                row = QuickBooksBatchRow(
                    id=uuid.uuid4().hex,
                    portal_id=tenant.portal_id,
                    realm_id=tenant.realm_id,
                    # 36 characters: Intuit's limit for a batch's requestid.
                    requestid=str(uuid.uuid4()),
                    tries=0,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                for number, item in enumerate(waiting, start=1):
                    item.batch_id, item.bid = row.id, str(number)
            items = session.scalars(select(BatchItemRow).where(BatchItemRow.batch_id == row.id))
            members = sorted((from_row(BatchItem, item) for item in items), key=lambda item: int(item.bid or 0))
            return Batch(row.id, row.portal_id, row.realm_id, row.requestid, row.tries, row.retry_at, tuple(members))

    def trying(self, batch_id: str) -> None:
        """Count a try before the batch goes out: from now on its outcome is unknown until it is answered."""
        stmt = (
            update(QuickBooksBatchRow)
            .where(QuickBooksBatchRow.id == batch_id)
            .values(tries=QuickBooksBatchRow.tries + 1, retry_at=None, updated_at=utcnow())
        )
        with self.database.engine.begin() as conn:
            conn.execute(stmt)

    def retry_later(self, batch_id: str, at: datetime) -> None:
        """Keep every sender from trying the batch again before ``at``."""
        stmt = update(QuickBooksBatchRow).where(QuickBooksBatchRow.id == batch_id).values(retry_at=at)
        with self.database.engine.begin() as conn:
            conn.execute(stmt)

    def give_up(self, batch: Batch, error: dict[str, Any]) -> None:
        """Stop trying a batch QuickBooks kept failing: its members' writes stay started (their outcome unknown)
        and carry the error, which fails their executions; a retry looks each document up before sending it."""
        with self.database.session() as session:
            for item in batch.items:
                step = session.get(StepRow, (item.execution_id, item.step))
                if step is not None:
                    step.data = {**step.data, "batch_error": error}
                    step.updated_at = utcnow()
            session.execute(delete(BatchItemRow).where(BatchItemRow.batch_id == batch.id))
            session.execute(delete(QuickBooksBatchRow).where(QuickBooksBatchRow.id == batch.id))

    def answer(
        self,
        batch: Batch,
        documents: Mapping[str, dict[str, Any]],
        faults: Mapping[str, dict[str, Any]],
        *,
        unanswered: Sequence[str] = (),
    ) -> None:
        """Store what QuickBooks answered for each member (by bId) and close the batch, in one transaction.

        A document makes its step done; a fault makes it rejected (QuickBooks created nothing for it); members in
        ``unanswered`` go back to waiting for the next batch.
        """
        now = utcnow()
        with self.database.session() as session:
            for item in batch.items:
                bid = item.bid or ""
                key = (item.execution_id, item.step)
                if bid in unanswered:
                    session.execute(
                        update(BatchItemRow)
                        .where(BatchItemRow.execution_id == item.execution_id, BatchItemRow.step == item.step)
                        .values(batch_id=None, bid=None)
                    )
                    continue
                step = session.get(StepRow, key)
                started = dict(step.data) if step is not None else {}
                if bid in documents:
                    status, data = DONE, {**documents[bid], "batch": batch.requestid}
                else:
                    status, data = REJECTED, {**started, "fault": faults.get(bid) or {}}
                if step is None:
                    session.add(StepRow(execution_id=key[0], name=key[1], status=status, data=data, updated_at=now))
                else:
                    step.status, step.data, step.updated_at = status, data, now
                session.execute(
                    delete(BatchItemRow).where(
                        BatchItemRow.execution_id == item.execution_id, BatchItemRow.step == item.step
                    )
                )
            session.execute(delete(QuickBooksBatchRow).where(QuickBooksBatchRow.id == batch.id))

    def withdraw_waiting(self, tenant: Tenant) -> list[str]:
        """Take the tenant's waiting items out (its company is disconnected); return their executions."""
        with self.database.session() as session:
            ids = list(
                session.scalars(
                    select(BatchItemRow.execution_id).where(*self._of(tenant), BatchItemRow.batch_id.is_(None))
                )
            )
            session.execute(delete(BatchItemRow).where(*self._of(tenant), BatchItemRow.batch_id.is_(None)))
            return ids

    def tenants_waiting(self, since_before: datetime) -> list[Tenant]:
        """Return the tenants with an item that has waited since before a moment, or a batch that old."""
        items = select(BatchItemRow.portal_id, BatchItemRow.realm_id).where(BatchItemRow.created_at < since_before)
        batches = select(QuickBooksBatchRow.portal_id, QuickBooksBatchRow.realm_id).where(
            QuickBooksBatchRow.updated_at < since_before
        )
        with self.database.engine.connect() as conn:
            found = {(row[0], row[1]) for row in conn.execute(items.union(batches))}
        return [Tenant(portal_id, realm_id) for portal_id, realm_id in sorted(found)]

    @staticmethod
    def _of(tenant: Tenant) -> tuple[Any, Any]:
        return BatchItemRow.portal_id == tenant.portal_id, BatchItemRow.realm_id == tenant.realm_id
