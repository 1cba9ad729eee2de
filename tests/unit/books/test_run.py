"""Writing to QuickBooks exactly once across runs: steps, requestids, look-ups and the lease."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.books.failures import ActionFailure
from services.books.run import AwaitingBatch, LeaseLostError
from services.clock import utcnow
from services.store.records import Step
from services.transport.errors import PermanentError
from tests.fakes import FakeBatches, FakeLedger, FakeQuickBooks
from tests.unit.books.conftest import Lease, MakeRun


class Writes:
    """A create function that records each requestid it was called with."""

    def __init__(self) -> None:
        self.requestids: list[str] = []

    def __call__(self, requestid: str) -> dict[str, Any]:
        self.requestids.append(requestid)
        return {"id": "145"}


def test_a_write_is_recorded_as_started_then_done(make_run: MakeRun, ledger: FakeLedger) -> None:
    create = Writes()
    result = make_run().write_once("document:Invoice", create, context={"txn_date": "2026-12-01"})

    assert result == {"id": "145"} and len(create.requestids) == 1
    assert [e for e in ledger.saved if e[0] == "step"] == [
        ("step", "document:Invoice", "started"),
        ("step", "document:Invoice", "done"),
    ]


def test_a_done_step_is_not_written_again_by_a_later_run(make_run: MakeRun) -> None:
    make_run().write_once("document:Invoice", Writes())
    again = Writes()
    assert make_run().write_once("document:Invoice", again) == {"id": "145"}
    assert again.requestids == []


def test_a_write_of_unknown_outcome_is_looked_up_before_anything_is_sent_again(
    make_run: MakeRun, ledger: FakeLedger
) -> None:
    ledger.save_step("e-1", "document:Invoice", "started", {"txn_date": "2026-12-01", "requestid": "r-1"})
    seen: list[dict[str, Any]] = []

    def find_existing(started: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(started)
        return {"id": "99"}

    create = Writes()
    assert make_run().write_once("document:Invoice", create, find_existing=find_existing) == {"id": "99"}
    assert create.requestids == [] and seen == [{"txn_date": "2026-12-01", "requestid": "r-1"}]
    assert ledger.steps("e-1")["document:Invoice"].status == "done"


def test_a_write_not_found_is_sent_again_with_the_same_requestid(make_run: MakeRun, ledger: FakeLedger) -> None:
    first = make_run()
    ledger.save_step("e-1", "document:Invoice", "started", {"requestid": first.requestid("document:Invoice")})
    create = Writes()
    make_run().write_once("document:Invoice", create, find_existing=lambda _started: None)
    assert create.requestids == [first.requestid("document:Invoice")]


def test_requestids_are_deterministic_short_and_differ_per_step_company_and_scope(make_run: MakeRun) -> None:
    run = make_run()
    assert run.requestid("a") == make_run().requestid("a") and len(run.requestid("a")) == 36
    assert run.requestid("a") != run.requestid("b")
    other_company = make_run()
    other_company.qbo = FakeQuickBooks("4620816365")  # type: ignore[assignment]
    assert other_company.requestid("a") != run.requestid("a")
    run.scope = "payment-7-fee_expense"
    assert run.marker == "payment-7-fee_expense" and run.requestid("a") != make_run().requestid("a")


def test_a_run_that_lost_its_lease_writes_nothing(make_run: MakeRun, lease: Lease, ledger: FakeLedger) -> None:
    lease.held = False
    create = Writes()
    with pytest.raises(LeaseLostError):
        make_run().write_once("document:Invoice", create)
    assert create.requestids == [] and ledger.saved == []
    assert lease.renewals == 1


def test_the_same_step_of_the_same_scope_in_two_portals_gets_two_requestids(make_run: MakeRun) -> None:
    ours, theirs = make_run(), make_run(portal_id=243199551)
    ours.scope = theirs.scope = "payment-7-paid_invoice"
    assert ours.requestid("document:Invoice") != theirs.requestid("document:Invoice")


def test_a_write_sent_again_keeps_the_requestid_and_marker_it_was_first_sent_with(
    make_run: MakeRun, ledger: FakeLedger
) -> None:
    ledger.save_step("e-1", "document:Invoice", "started", {"requestid": "sent-by-an-older-release"})
    create = Writes()
    make_run().write_once("document:Invoice", create, find_existing=lambda _started: None)
    assert create.requestids == ["sent-by-an-older-release"]


def test_no_first_write_starts_once_hubspot_stopped_waiting(make_run: MakeRun, ledger: FakeLedger) -> None:
    create = Writes()
    run = make_run(expires_at=utcnow() - timedelta(minutes=1))
    with pytest.raises(ActionFailure) as failure:
        run.write_once("customer:0", create)
    assert failure.value.reason == "EXPIRED" and "nothing was booked" in failure.value.message
    assert create.requestids == [] and ledger.saved == []


def test_a_run_that_already_wrote_finishes_after_hubspot_stopped_waiting(make_run: MakeRun, ledger: FakeLedger) -> None:
    # Half a paid invoice is worse than a late one: the payment still follows the invoice.
    ledger.save_step("e-1", "document:Invoice", "done", {"id": "145"})
    create = Writes()
    make_run(expires_at=utcnow() - timedelta(minutes=1)).write_once("document:Payment", create)
    assert len(create.requestids) == 1


def test_a_run_before_the_expiry_writes(make_run: MakeRun) -> None:
    create = Writes()
    make_run(expires_at=utcnow() + timedelta(minutes=1)).write_once("customer:0", create)
    assert len(create.requestids) == 1


# Writes that wait for a QuickBooks batch -----------------------------------------------------------


@pytest.fixture
def batches(ledger: FakeLedger) -> FakeBatches:
    return FakeBatches(ledger)


def batched_run(make_run: MakeRun, batches: FakeBatches, *, now: bool = True) -> Any:
    run = make_run()
    run.batches, run.batch_now = batches, (lambda: now)
    return run


def test_a_write_for_a_batch_is_parked_started_and_the_run_stops(
    make_run: MakeRun, batches: FakeBatches, ledger: FakeLedger, lease: Lease
) -> None:
    create = Writes()
    run = batched_run(make_run, batches)

    with pytest.raises(AwaitingBatch):
        run.write_once("document:Invoice", create, context={"txn_date": "2026-12-01"}, batch=("Invoice", {"Line": []}))

    assert create.requestids == [] and lease.renewals == 1
    assert batches.parked == [("document:Invoice", "Invoice", {"Line": []})]
    started = ledger.steps("e-1")["document:Invoice"]
    assert started.status == "started" and started.data["batched"] is True
    assert started.data["requestid"] == run.requestid("document:Invoice") and started.data["txn_date"] == "2026-12-01"


def test_a_later_run_waits_while_the_batch_is_out_then_takes_its_answer(
    make_run: MakeRun, batches: FakeBatches, ledger: FakeLedger
) -> None:
    with pytest.raises(AwaitingBatch):
        batched_run(make_run, batches).write_once("document:Invoice", Writes(), batch=("Invoice", {}))
    with pytest.raises(AwaitingBatch):
        batched_run(make_run, batches).write_once("document:Invoice", Writes(), batch=("Invoice", {}))
    assert len(batches.parked) == 1

    # The batch's answer: the step done, the item gone.
    ledger.save_step("e-1", "document:Invoice", "done", {"id": "145"})
    del batches.items[("e-1", "document:Invoice")]
    create = Writes()
    assert batched_run(make_run, batches).write_once("document:Invoice", create, batch=("Invoice", {})) == {"id": "145"}
    assert create.requestids == []


def test_a_write_rejected_in_its_batch_fails_as_the_single_call_would_and_is_looked_up_on_retry(
    make_run: MakeRun, batches: FakeBatches, ledger: FakeLedger
) -> None:
    fault = {"Fault": {"type": "ValidationFault", "Error": [{"code": "6000", "Message": "Bad amount"}]}}
    ledger.save_step("e-1", "document:Invoice", "rejected", {"requestid": "r-1", "batched": True, "fault": fault})

    with pytest.raises(PermanentError) as raised:
        batched_run(make_run, batches).write_once("document:Invoice", Writes(), batch=("Invoice", {}))

    assert raised.value.code == "6000" and "Bad amount" in str(raised.value)
    assert ledger.steps("e-1")["document:Invoice"] == Step("e-1", "document:Invoice", "started", {"requestid": "r-1"})
    looked_up: list[dict[str, Any]] = []
    with pytest.raises(AwaitingBatch):
        batched_run(make_run, batches).write_once(
            "document:Invoice", Writes(), find_existing=lambda s: looked_up.append(s), batch=("Invoice", {})
        )
    assert looked_up == [{"requestid": "r-1"}]
    assert ledger.steps("e-1")["document:Invoice"].data["requestid"] == "r-1", "a write sent again keeps its requestid"


def test_a_batch_given_up_fails_the_write_with_quickbooks_unavailable(
    make_run: MakeRun, batches: FakeBatches, ledger: FakeLedger
) -> None:
    error = {"message": "QuickBooks: down", "service": "quickbooks", "http_status": 503, "revoked": False}
    ledger.save_step("e-1", "document:Invoice", "started", {"requestid": "r-1", "batched": True, "batch_error": error})

    with pytest.raises(ActionFailure) as raised:
        batched_run(make_run, batches).write_once("document:Invoice", Writes(), batch=("Invoice", {}))

    assert raised.value.reason == "QUICKBOOKS_UNAVAILABLE" and "QuickBooks: down" in raised.value.message
    assert ledger.steps("e-1")["document:Invoice"].data == {"requestid": "r-1"}


def test_a_write_goes_at_once_when_the_company_is_not_busy_or_the_write_cannot_be_batched(
    make_run: MakeRun, batches: FakeBatches
) -> None:
    quiet = Writes()
    assert batched_run(make_run, batches, now=False).write_once("document:Invoice", quiet, batch=("Invoice", {})) == {
        "id": "145"
    }
    customer = Writes()
    batched_run(make_run, batches).write_once("customer:7", customer)
    assert len(quiet.requestids) == len(customer.requestids) == 1 and batches.parked == []
