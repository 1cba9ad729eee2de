"""Followed documents on SQLite and PostgreSQL: following once, newer states only, deletions final, payments once,
pushes that keep later changes, notifications once, and the change-capture cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.clock import utcnow
from services.store.records import ChangeNotice, DocumentVersion, FollowedPayment
from services.store.repositories import Repositories

PORTAL = 102670506
REALM = "9130355"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def version(
    at: datetime = T0, token: int = 0, *, document_id: str = "145", deleted: bool = False, **state: object
) -> DocumentVersion:
    return DocumentVersion(
        realm_id=REALM,
        entity="Invoice",
        document_id=document_id,
        state={"seen": f"{at.isoformat()}#{token}", **state},
        version_at=at,
        version_token=token,
        deleted=deleted,
        due_date=str(state.get("due_date")) if state.get("due_date") else None,
    )


def followed_state(repos: Repositories, document_id: str = "145") -> dict[str, object]:
    (document,) = repos.followed.documents(REALM, "Invoice", [document_id])
    return document.state


def test_a_document_is_followed_once_per_record(repos: Repositories) -> None:
    assert repos.followed.follow(PORTAL, "deals", "614", version(), "exec-1") == (True, False)
    assert repos.followed.follow(PORTAL, "deals", "614", version(), "exec-1") == (False, False)
    assert repos.followed.follow(PORTAL, "quotes", "7", version()) == (True, False)
    followings = repos.followed.documents(REALM, "Invoice", ["145"])
    assert sorted((d.object_type, d.object_id) for d in followings) == [("deals", "614"), ("quotes", "7")]
    assert all(d.pending_push for d in followings)


def test_only_a_newer_state_replaces_the_one_followed(repos: Repositories) -> None:
    repos.followed.follow(PORTAL, "deals", "614", version())
    assert repos.followed.apply([version(T0 + timedelta(seconds=5), 2)]) == 1
    # Older in time, or the same second with an older SyncToken: kept out.
    assert repos.followed.apply([version(T0 + timedelta(seconds=1), 9), version(T0 + timedelta(seconds=5), 1)]) == 0
    assert followed_state(repos)["seen"] == f"{(T0 + timedelta(seconds=5)).isoformat()}#2"
    assert repos.followed.apply([version(T0 + timedelta(seconds=5), 3)]) == 1


def test_nothing_replaces_a_deletion(repos: Repositories) -> None:
    repos.followed.follow(PORTAL, "deals", "614", version())
    assert repos.followed.apply([version(T0 + timedelta(seconds=1), deleted=True)]) == 1
    assert repos.followed.apply([version(T0 + timedelta(days=1), 5)]) == 0
    (document,) = repos.followed.documents(REALM, "Invoice", ["145"])
    assert document.deleted


def test_a_push_keeps_a_change_made_while_it_was_sending(repos: Repositories) -> None:
    repos.followed.follow(PORTAL, "deals", "614", version())
    assert repos.followed.records_to_push(PORTAL, 100) == [("deals", "614")]
    read = repos.followed.of_records(PORTAL, [("deals", "614")])
    repos.followed.apply([version(T0 + timedelta(seconds=1), 1)])  # arrives while the push is out
    repos.followed.pushed(read, {read[0].id: "awaiting_payment"})
    assert repos.followed.records_to_push(PORTAL, 100) == [("deals", "614")]
    repos.followed.pushed(repos.followed.of_records(PORTAL, [("deals", "614")]), {})
    assert repos.followed.records_to_push(PORTAL, 100) == []
    assert repos.followed.portals_to_push() == []


def test_payments_are_remembered_once_and_posted_once(repos: Repositories) -> None:
    repos.followed.follow(PORTAL, "deals", "614", version())
    (document,) = repos.followed.documents(REALM, "Invoice", ["145"])
    repos.followed.pushed([document], {})
    payment = FollowedPayment(document.id, "77", PORTAL, "50.00", "2026-12-02", "USD", None)
    assert repos.followed.add_payments([payment, payment]) == 1
    assert repos.followed.add_payments([payment]) == 0
    assert repos.followed.records_to_push(PORTAL, 100) == [("deals", "614")]  # its last payment date changed
    assert [p.payment_id for p in repos.followed.unposted_payments(PORTAL, 100)] == ["77"]
    repos.followed.posted(repos.followed.unposted_payments(PORTAL, 100))
    assert repos.followed.unposted_payments(PORTAL, 100) == []
    assert [p.amount for p in repos.followed.payments([document.id])] == ["50.00"]


def test_unpaid_invoices_past_due_are_queued_once(repos: Repositories) -> None:
    repos.followed.follow(PORTAL, "deals", "1", version(document_id="1", due_date="2026-11-30"))
    repos.followed.follow(PORTAL, "deals", "2", version(document_id="2", due_date="2026-12-31"))
    repos.followed.follow(PORTAL, "deals", "3", version(document_id="3", due_date="2026-11-01"))
    documents = repos.followed.of_records(PORTAL, [("deals", "1"), ("deals", "2"), ("deals", "3")])
    statuses = {d.id: "paid" if d.object_id == "3" else "awaiting_payment" for d in documents}
    repos.followed.pushed(documents, statuses)
    assert repos.followed.mark_overdue_candidates("2026-12-02") == 1
    assert repos.followed.records_to_push(PORTAL, 100) == [("deals", "1")]
    # Once the record says overdue, the next day's check leaves it alone.
    overdue = repos.followed.of_records(PORTAL, [("deals", "1")])
    repos.followed.pushed(overdue, {overdue[0].id: "overdue"})
    assert repos.followed.mark_overdue_candidates("2026-12-03") == 0


def notice(event_id: str, realm: str = REALM, entity_id: str = "145") -> ChangeNotice:
    return ChangeNotice(event_id, realm, "Invoice", entity_id, "updated", None)


def test_notifications_are_recorded_once_and_those_of_unconnected_companies_ignored(repos: Repositories) -> None:
    def connected(n: ChangeNotice) -> bool:
        return n.realm_id == REALM

    first = repos.followed.record_notices([notice("a"), notice("b"), notice("c", realm="999")], connected)
    assert (first.realms, first.new, first.ignored, first.repeated) == ((REALM,), 2, 1, 0)
    again = repos.followed.record_notices([notice("a"), notice("c", realm="999")], connected)
    assert (again.realms, again.new, again.ignored, again.repeated) == ((), 0, 0, 2)
    assert [n.id for n in repos.followed.pending_notices(REALM, 10)] == ["a", "b"]
    assert repos.followed.pending_notices("999", 10) == []
    repos.followed.notices_done(["a", "b"])
    assert repos.followed.pending_notices(REALM, 10) == []
    assert repos.followed.purge_notices(utcnow() + timedelta(seconds=1)) == 3


def test_a_document_followed_after_its_notice_gets_the_notice_again(repos: Repositories) -> None:
    repos.followed.record_notices([notice("created-145")], lambda n: True)
    repos.followed.notices_done(["created-145"])
    assert repos.followed.follow(PORTAL, "deals", "614", version()) == (True, True)
    [again] = repos.followed.pending_notices(REALM, 10)
    assert again.id.startswith("followed:") and (again.entity, again.entity_id) == ("Invoice", "145")
    # A document nobody notified about gets no notice of its own.
    assert repos.followed.follow(PORTAL, "deals", "615", version(document_id="146")) == (True, False)


def test_a_notice_read_while_its_document_was_being_followed_is_not_lost(repos: Repositories) -> None:
    # A round read the notice (still pending) and found no following; the following is made before it ends.
    repos.followed.record_notices([notice("created-145")], lambda n: True)
    assert repos.followed.follow(PORTAL, "deals", "614", version()) == (True, True)
    repos.followed.notices_done(["created-145"])  # the round ends
    assert [n.entity_id for n in repos.followed.pending_notices(REALM, 10)] == ["145"]


def test_the_change_cursor_moves(repos: Repositories) -> None:
    assert repos.followed.cursor(REALM) is None and repos.followed.first_followed(REALM) is None
    repos.followed.follow(PORTAL, "deals", "614", version())
    first = repos.followed.first_followed(REALM)
    assert first is not None and abs((utcnow() - first).total_seconds()) < 60
    repos.followed.move_cursor(REALM, T0)
    repos.followed.move_cursor(REALM, T0 + timedelta(hours=1))
    assert repos.followed.cursor(REALM) == T0 + timedelta(hours=1)
    assert repos.followed.realms() == [REALM]


def test_a_portal_that_leaves_is_forgotten(repos: Repositories) -> None:
    repos.followed.follow(PORTAL, "deals", "614", version())
    (document,) = repos.followed.documents(REALM, "Invoice", ["145"])
    repos.followed.add_payments([FollowedPayment(document.id, "77", PORTAL, "1.00", None, None, None)])
    repos.followed.forget_portal(PORTAL)
    assert repos.followed.documents(REALM, "Invoice", ["145"]) == []
