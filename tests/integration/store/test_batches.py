"""The batch repository on SQLite and PostgreSQL: parked writes, batches of up to 30, answers, give-ups."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.clock import utcnow
from services.store.models import BatchItemRow
from services.store.records import Tenant
from services.store.repositories import Repositories
from tests.integration.store.test_repositories import PORTAL_ID, REALM_ID, TENANT, accepted

STEP = "document:Invoice"


def parked(repos: Repositories, tenant: Tenant = TENANT, **started: Any) -> str:
    """Accept an execution and park its invoice write for a batch; return its id."""
    execution_id = accepted(repos, portal_id=tenant.portal_id)
    data = {"requestid": f"r-{execution_id}", "marker": execution_id, "batched": True, **started}
    repos.batches.park(tenant, execution_id, STEP, "Invoice", {"Line": [{"Amount": 10}]}, data)
    return execution_id


def age_items(repos: Repositories, seconds: int) -> None:
    with repos.database.engine.begin() as conn:
        conn.execute(BatchItemRow.__table__.update().values(created_at=utcnow() - timedelta(seconds=seconds)))


def test_parking_records_the_started_step_and_its_item_together(repos: Repositories) -> None:
    execution_id = parked(repos, customer_id="58")

    step = repos.bookkeeping.steps(execution_id)[STEP]
    item = repos.batches.item(execution_id, STEP)
    assert step.status == "started" and step.data["customer_id"] == "58" and step.data["batched"] is True
    assert item is not None and item.entity == "Invoice" and item.batch_id is None
    assert repos.batches.backlog(TENANT)[0] == 1
    # Parking again (a second job of the same execution) changes nothing.
    repos.batches.park(TENANT, execution_id, STEP, "Invoice", {"Line": []}, step.data)
    assert repos.batches.item(execution_id, STEP).body == {"Line": [{"Amount": 10}]}  # type: ignore[union-attr]


def test_a_batch_takes_up_to_its_size_oldest_first_and_numbers_its_members(repos: Repositories) -> None:
    ids = [parked(repos) for _ in range(5)]

    batch = repos.batches.open_batch(TENANT, 3)

    assert batch is not None and len(batch.requestid) == 36 and batch.tries == 0
    assert [item.execution_id for item in batch.items] == ids[:3]
    assert [item.bid for item in batch.items] == ["1", "2", "3"]
    assert repos.batches.backlog(TENANT)[0] == 2
    # Until it is answered, the same batch comes back (a sender that died left it in flight).
    again = repos.batches.open_batch(TENANT, 3)
    assert again is not None and again.id == batch.id and again.items == batch.items


def test_a_batch_holds_one_tenants_items_and_none_whose_run_still_holds_them(repos: Repositories) -> None:
    other = Tenant(PORTAL_ID + 1, REALM_ID)
    mine = parked(repos)
    parked(repos, other)
    running = parked(repos)
    assert repos.executions.acquire_lease(running, 60)

    batch = repos.batches.open_batch(TENANT, 30)

    assert batch is not None and [item.execution_id for item in batch.items] == [mine]


def test_an_answer_completes_documents_rejects_faults_and_returns_the_unanswered(repos: Repositories) -> None:
    created, refused, unanswered = (parked(repos) for _ in range(3))
    batch = repos.batches.open_batch(TENANT, 30)
    assert batch is not None
    fault = {"Fault": {"type": "ValidationFault", "Error": [{"code": "6000", "Message": "Bad"}]}}

    repos.batches.trying(batch.id)
    repos.batches.answer(batch, {"1": {"id": "130", "number": "1001"}}, {"2": fault}, unanswered=["3"])

    done = repos.bookkeeping.steps(created)[STEP]
    assert done.status == "done" and done.data["id"] == "130" and done.data["batch"] == batch.requestid
    rejected = repos.bookkeeping.steps(refused)[STEP]
    assert rejected.status == "rejected" and rejected.data["fault"] == fault
    assert rejected.data["requestid"] == f"r-{refused}", "the started data is kept"
    assert repos.batches.item(created, STEP) is None and repos.batches.item(refused, STEP) is None
    waiting = repos.batches.item(unanswered, STEP)
    assert waiting is not None and waiting.batch_id is None and waiting.bid is None
    assert repos.database.count("quickbooks_batches") == 0
    # The unanswered member goes into the next batch, with a new requestid.
    following = repos.batches.open_batch(TENANT, 30)
    assert following is not None and following.requestid != batch.requestid
    assert [item.execution_id for item in following.items] == [unanswered]


def test_a_try_is_counted_before_it_goes_and_a_failed_one_waits(repos: Repositories) -> None:
    parked(repos)
    batch = repos.batches.open_batch(TENANT, 30)
    assert batch is not None

    repos.batches.trying(batch.id)
    later = utcnow() + timedelta(seconds=30)
    repos.batches.retry_later(batch.id, later)

    again = repos.batches.open_batch(TENANT, 30)
    assert again is not None and again.tries == 1
    assert again.retry_at is not None and abs((again.retry_at - later).total_seconds()) < 1
    repos.batches.trying(batch.id)
    assert repos.batches.open_batch(TENANT, 30).retry_at is None  # type: ignore[union-attr]


def test_giving_a_batch_up_leaves_its_writes_started_with_the_error(repos: Repositories) -> None:
    execution_id = parked(repos)
    batch = repos.batches.open_batch(TENANT, 30)
    assert batch is not None

    repos.batches.give_up(batch, {"message": "QuickBooks: down", "http_status": 503})

    step = repos.bookkeeping.steps(execution_id)[STEP]
    assert step.status == "started" and step.data["batch_error"]["http_status"] == 503
    assert repos.batches.item(execution_id, STEP) is None
    assert repos.database.count("quickbooks_batches") == 0


def test_withdrawing_takes_out_only_the_waiting_items(repos: Repositories) -> None:
    in_batch = parked(repos)
    batch = repos.batches.open_batch(TENANT, 30)
    waiting = parked(repos)

    assert repos.batches.withdraw_waiting(TENANT) == [waiting]

    assert repos.batches.item(waiting, STEP) is None
    assert batch is not None and repos.batches.item(in_batch, STEP) is not None


def test_the_sweeper_finds_tenants_whose_items_or_batches_wait_too_long(repos: Repositories) -> None:
    other = Tenant(PORTAL_ID + 1, REALM_ID)
    parked(repos)
    parked(repos, other)
    assert repos.batches.tenants_waiting(utcnow() - timedelta(seconds=10)) == []

    age_items(repos, 60)

    assert repos.batches.tenants_waiting(utcnow() - timedelta(seconds=10)) == sorted(
        [TENANT, other], key=lambda t: (t.portal_id, t.realm_id)
    )
    _, oldest = repos.batches.backlog(TENANT)
    assert oldest is not None and oldest.tzinfo is not None and (utcnow() - oldest).total_seconds() >= 59


def test_an_execution_in_a_batch_is_neither_swept_nor_marked_booked(repos: Repositories) -> None:
    execution_id = parked(repos)
    with repos.database.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE executions SET updated_at = '2020-01-01 00:00:00+00:00'")

    assert execution_id not in [e.id for e in repos.executions.to_sweep(queued_before=utcnow())]
    assert repos.executions.mark_booked(execution_id, output_fields={"hs_execution_state": "SUCCESS"}) is False
