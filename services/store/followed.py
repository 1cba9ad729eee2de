"""Documents followed on HubSpot records: their last applied state, the payments applied to them, the pushes of
their records' properties, Intuit's change notifications and how far change data capture has read.

A state replaces the stored one only when QuickBooks' version of it is newer (`version_at`, then
`version_token`), and nothing replaces a deletion: that is decided in the UPDATE itself, so two jobs applying
the same document at once cannot put an older state back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, false, func, or_, select, true, tuple_, update

from services.clock import utcnow
from services.store.engine import Database
from services.store.models import ChangeCursorRow, FollowedDocumentRow, FollowedPaymentRow, QuickBooksEventRow
from services.store.records import (
    ChangeNotice,
    DocumentVersion,
    FollowedDocument,
    FollowedPayment,
    NoticesRecorded,
    Record,
    from_row,
)

PENDING, DONE, IGNORED = "pending", "done", "ignored"
# Statuses after which a due date no longer matters.
SETTLED = ("overdue", "paid", "voided", "deleted")
NOTICES_PER_INSERT = 500


class FollowedDocuments:
    """Reads and writes of the followed documents, their payments, notifications and change cursors."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # -- following ------------------------------------------------------------------------------------------

    def follow(
        self,
        portal_id: int,
        object_type: str,
        object_id: str,
        version: DocumentVersion,
        execution_id: str | None = None,
    ) -> tuple[bool, bool]:
        """Follow a document on a record (once: a second call changes nothing).

        Tell whether the following is new, and whether QuickBooks notified a change of the document before it was
        followed (a notice of its own is then pending, so the next round reads the document).
        """
        table = FollowedDocumentRow.__table__
        now = utcnow()
        statement = (
            self.database.insert(table)
            .values(
                portal_id=portal_id,
                realm_id=version.realm_id,
                entity=version.entity,
                document_id=version.document_id,
                object_type=object_type,
                object_id=str(object_id),
                execution_id=execution_id,
                **_state_columns(version),
                change_seq=1,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[c.name for c in _UNIQUE])
            .returning(table.c.id)
        )
        with self.database.session() as session:
            created = session.execute(statement).first()
            notified = False
            if created is not None:
                # A notice of the document may have been read by a round that found nothing to apply it to (the
                # following did not exist yet): a notice of its own makes the next round read the document.
                known = session.execute(
                    select(QuickBooksEventRow.id)
                    .where(
                        QuickBooksEventRow.realm_id == version.realm_id,
                        QuickBooksEventRow.entity == version.entity,
                        QuickBooksEventRow.entity_id == version.document_id,
                        QuickBooksEventRow.state != IGNORED,
                    )
                    .limit(1)
                ).first()
                if known is not None:
                    session.add(
                        QuickBooksEventRow(
                            id=f"followed:{created[0]}",
                            realm_id=version.realm_id,
                            entity=version.entity,
                            entity_id=version.document_id,
                            operation="followed",
                            occurred_at=now,
                            received_at=now,
                            state=PENDING,
                        )
                    )
                    notified = True
            new = created is not None
        return new, notified

    def first_followed(self, realm_id: str) -> datetime | None:
        """Return when the first document of a company was followed (where change capture starts)."""
        with self.database.engine.connect() as conn:
            first = conn.execute(
                select(func.min(FollowedDocumentRow.created_at)).where(FollowedDocumentRow.realm_id == realm_id)
            ).scalar_one()
        if isinstance(first, str):  # SQLite answers an aggregate of timestamps as text
            first = datetime.fromisoformat(first)
        if isinstance(first, datetime) and first.tzinfo is None:
            first = first.replace(tzinfo=UTC)
        return first

    def documents(self, realm_id: str, entity: str, document_ids: Iterable[str]) -> list[FollowedDocument]:
        """Return the followings of some documents of a company (a document may show on several records)."""
        return self._where_in(
            FollowedDocument,
            FollowedDocumentRow,
            FollowedDocumentRow.document_id,
            (str(i) for i in document_ids),
            FollowedDocumentRow.realm_id == realm_id,
            FollowedDocumentRow.entity == entity,
        )

    def apply(self, versions: Sequence[DocumentVersion]) -> int:
        """Store each state where it is newer than the one followed; return how many followings changed."""
        changed = 0
        with self.database.session() as session:
            # In one order, so two transactions touching the same rows never wait for each other in a circle.
            for version in sorted(versions, key=lambda v: (v.entity, v.document_id)):
                newer = (
                    true()
                    if version.deleted
                    else or_(
                        FollowedDocumentRow.version_at < version.version_at,
                        and_(
                            FollowedDocumentRow.version_at == version.version_at,
                            FollowedDocumentRow.version_token < version.version_token,
                        ),
                    )
                )
                result = session.execute(
                    update(FollowedDocumentRow)
                    .where(
                        FollowedDocumentRow.realm_id == version.realm_id,
                        FollowedDocumentRow.entity == version.entity,
                        FollowedDocumentRow.document_id == version.document_id,
                        FollowedDocumentRow.deleted == false(),
                        newer,
                    )
                    .values(
                        **_state_columns(version),
                        change_seq=FollowedDocumentRow.change_seq + 1,
                        updated_at=utcnow(),
                    )
                )
                changed += int(result.rowcount)  # type: ignore[attr-defined]
        return changed

    # -- payments -------------------------------------------------------------------------------------------

    def add_payments(self, payments: Sequence[FollowedPayment]) -> int:
        """Remember payments applied to followed invoices (each once); their invoices' records are pushed again."""
        added = 0
        with self.database.session() as session:
            for payment in sorted(payments, key=lambda p: (p.document_pk, p.payment_id)):
                if session.get(FollowedPaymentRow, (payment.document_pk, payment.payment_id)) is not None:
                    continue
                session.add(
                    FollowedPaymentRow(
                        document_pk=payment.document_pk,
                        payment_id=payment.payment_id,
                        portal_id=payment.portal_id,
                        amount=payment.amount,
                        paid_on=payment.paid_on,
                        currency=payment.currency,
                        posted_at=None,
                    )
                )
                session.execute(
                    update(FollowedDocumentRow)
                    .where(FollowedDocumentRow.id == payment.document_pk)
                    .values(pending_push=True, change_seq=FollowedDocumentRow.change_seq + 1)
                )
                added += 1
        return added

    def payments(self, document_pks: Iterable[int]) -> list[FollowedPayment]:
        """Return the payments applied to some followed invoices."""
        return self._where_in(FollowedPayment, FollowedPaymentRow, FollowedPaymentRow.document_pk, document_pks)

    def unposted_payments(self, portal_id: int, limit: int) -> list[FollowedPayment]:
        """Return payments of a portal whose timeline event has not gone out, oldest first."""
        query = (
            select(FollowedPaymentRow)
            .where(FollowedPaymentRow.posted_at.is_(None), FollowedPaymentRow.portal_id == portal_id)
            .order_by(FollowedPaymentRow.created_at)
            .limit(limit)
        )
        with self.database.session() as session:
            return [from_row(FollowedPayment, row) for row in session.scalars(query)]

    def posted(self, payments: Sequence[FollowedPayment]) -> None:
        """Record that these payments' timeline events went out."""
        if not payments:
            return
        keys = [(p.document_pk, p.payment_id) for p in payments]
        self.database.write(
            update(FollowedPaymentRow)
            .where(tuple_(FollowedPaymentRow.document_pk, FollowedPaymentRow.payment_id).in_(keys))
            .values(posted_at=utcnow())
        )

    # -- pushes to HubSpot ----------------------------------------------------------------------------------

    def portals_to_push(self, among: Sequence[int] | None = None) -> list[int]:
        """Return the portals (of ``among``, or all) with records whose properties must be sent, or payments to
        post."""
        documents = select(FollowedDocumentRow.portal_id).where(FollowedDocumentRow.pending_push == true())
        payments = select(FollowedPaymentRow.portal_id).where(FollowedPaymentRow.posted_at.is_(None))
        if among is not None:
            documents = documents.where(FollowedDocumentRow.portal_id.in_(list(among)))
            payments = payments.where(FollowedPaymentRow.portal_id.in_(list(among)))
        with self.database.engine.connect() as conn:
            found = set(conn.execute(documents.distinct()).scalars()) | set(conn.execute(payments.distinct()).scalars())
        return sorted(found)

    def records_to_push(self, portal_id: int, limit: int) -> list[tuple[str, str]]:
        """Return up to ``limit`` records (type, id) of a portal whose properties must be sent."""
        query = (
            select(FollowedDocumentRow.object_type, FollowedDocumentRow.object_id)
            .where(FollowedDocumentRow.pending_push == true(), FollowedDocumentRow.portal_id == portal_id)
            .distinct()
            .limit(limit)
        )
        with self.database.engine.connect() as conn:
            return [(str(t), str(i)) for t, i in conn.execute(query)]

    def of_records(self, portal_id: int, records: Sequence[tuple[str, str]]) -> list[FollowedDocument]:
        """Return every document followed on some records of a portal."""
        if not records:
            return []
        query = select(FollowedDocumentRow).where(
            FollowedDocumentRow.portal_id == portal_id,
            tuple_(FollowedDocumentRow.object_type, FollowedDocumentRow.object_id).in_(list(records)),
        )
        with self.database.session() as session:
            return [from_row(FollowedDocument, row) for row in session.scalars(query)]

    def by_pk(self, document_pks: Iterable[int]) -> list[FollowedDocument]:
        """Return followings by their ids."""
        return self._where_in(FollowedDocument, FollowedDocumentRow, FollowedDocumentRow.id, document_pks)

    def pushed(self, documents: Sequence[FollowedDocument], statuses: dict[int, str | None]) -> None:
        """Record that the records of these documents were sent as read (a change since keeps them pending)."""
        with self.database.session() as session:
            for document in sorted(documents, key=lambda d: d.id):
                session.execute(
                    update(FollowedDocumentRow)
                    .where(FollowedDocumentRow.id == document.id, FollowedDocumentRow.change_seq == document.change_seq)
                    .values(pending_push=False, status=statuses.get(document.id, document.status))
                )

    def mark_overdue_candidates(self, today: str) -> int:
        """Queue the records of unpaid invoices due before ``today`` whose record does not say overdue yet."""
        return self.database.write(
            update(FollowedDocumentRow)
            .where(
                FollowedDocumentRow.entity == "Invoice",
                FollowedDocumentRow.deleted == false(),
                FollowedDocumentRow.due_date < today,
                or_(FollowedDocumentRow.status.is_(None), FollowedDocumentRow.status.not_in(SETTLED)),
                FollowedDocumentRow.pending_push == false(),
            )
            .values(pending_push=True, change_seq=FollowedDocumentRow.change_seq + 1)
        )

    def forget_portal(self, portal_id: int) -> None:
        """Stop following every document of a portal (it uninstalled the app)."""
        with self.database.session() as session:
            session.execute(delete(FollowedPaymentRow).where(FollowedPaymentRow.portal_id == portal_id))
            session.execute(delete(FollowedDocumentRow).where(FollowedDocumentRow.portal_id == portal_id))

    def realms(self) -> list[str]:
        """Return the companies with followed documents."""
        with self.database.engine.connect() as conn:
            return sorted(conn.execute(select(FollowedDocumentRow.realm_id).distinct()).scalars())

    # -- notifications --------------------------------------------------------------------------------------

    def record_notices(
        self, notices: Sequence[ChangeNotice], wanted: Callable[[ChangeNotice], bool]
    ) -> NoticesRecorded:
        """Record notifications once each (by id), those not ``wanted`` as ignored; tell which companies have new
        notices to apply."""
        if not notices:
            return NoticesRecorded((), 0, 0, 0)
        now = utcnow()
        rows = [
            {
                "id": n.id,
                "realm_id": n.realm_id,
                "entity": n.entity,
                "entity_id": n.entity_id,
                "operation": n.operation,
                "occurred_at": n.occurred_at,
                "received_at": now,
                "state": PENDING if wanted(n) else IGNORED,
            }
            for n in {n.id: n for n in notices}.values()
        ]
        table = QuickBooksEventRow.__table__
        inserted: list[Any] = []
        # A few hundred rows a statement: a large delivery stays under the drivers' limit of bound parameters.
        for start in range(0, len(rows), NOTICES_PER_INSERT):
            statement = (
                self.database.insert(table)
                .values(rows[start : start + NOTICES_PER_INSERT])
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(table.c.realm_id, table.c.state)
            )
            inserted.extend(row._mapping for row in self.database.rows(statement))
        new = [row for row in inserted if row["state"] == PENDING]
        return NoticesRecorded(
            realms=tuple(sorted({str(row["realm_id"]) for row in new})),
            new=len(new),
            ignored=len(inserted) - len(new),
            repeated=len(notices) - len(inserted),
        )

    def pending_notices(self, realm_id: str, limit: int) -> list[ChangeNotice]:
        """Return a company's notifications to apply, oldest first."""
        query = (
            select(QuickBooksEventRow)
            .where(QuickBooksEventRow.realm_id == realm_id, QuickBooksEventRow.state == PENDING)
            .order_by(QuickBooksEventRow.received_at)
            .limit(limit)
        )
        with self.database.session() as session:
            return [from_row(ChangeNotice, row) for row in session.scalars(query)]

    def realms_with_notices(self, received_before: datetime) -> list[str]:
        """Return the companies with notifications waiting since before a moment (their job was lost)."""
        query = (
            select(QuickBooksEventRow.realm_id)
            .where(QuickBooksEventRow.state == PENDING, QuickBooksEventRow.received_at < received_before)
            .distinct()
        )
        with self.database.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def notices_done(self, notice_ids: Sequence[str]) -> None:
        """Record that notifications were applied."""
        for start in range(0, len(notice_ids), 500):
            self.database.write(
                update(QuickBooksEventRow)
                .where(QuickBooksEventRow.id.in_(notice_ids[start : start + 500]))
                .values(state=DONE)
            )

    def purge_notices(self, received_before: datetime) -> int:
        """Delete notifications applied or ignored before a moment."""
        return self.database.write(
            delete(QuickBooksEventRow).where(
                QuickBooksEventRow.state != PENDING, QuickBooksEventRow.received_at < received_before
            )
        )

    # -- change data capture --------------------------------------------------------------------------------

    def cursor(self, realm_id: str) -> datetime | None:
        """Return the moment from which a company's changes are still to read."""
        with self.database.session() as session:
            row = session.get(ChangeCursorRow, realm_id)
            return row.changed_since if row is not None else None

    def move_cursor(self, realm_id: str, changed_since: datetime) -> None:
        """Record how far a company's changes were read."""
        table = ChangeCursorRow.__table__
        now = utcnow()
        statement = (
            self.database.insert(table)
            .values(realm_id=realm_id, changed_since=changed_since, read_at=now)
            .on_conflict_do_update(index_elements=["realm_id"], set_={"changed_since": changed_since, "read_at": now})
        )
        self.database.write(statement)

    def _where_in(
        self, record: type[Record], model: Any, column: Any, values: Iterable[Any], *conditions: Any
    ) -> list[Record]:
        """Return the rows whose ``column`` is one of ``values`` (and that meet ``conditions``), as records."""
        wanted = list(dict.fromkeys(values))
        found: list[Record] = []
        with self.database.session() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = session.scalars(select(model).where(column.in_(chunk), *conditions))
                found.extend(from_row(record, row) for row in rows)
        return found


def _state_columns(version: DocumentVersion) -> dict[str, Any]:
    """Return the columns a state writes (a new state always waits to be pushed)."""
    return {
        "state": version.state,
        "version_at": version.version_at,
        "version_token": version.version_token,
        "deleted": version.deleted,
        "due_date": version.due_date,
        "pending_push": True,
    }


_UNIQUE = [
    FollowedDocumentRow.__table__.c[name]
    for name in ("portal_id", "realm_id", "entity", "document_id", "object_type", "object_id")
]
