"""Documents created through QuickBooks batches: up to 30 per POST /batch, each exactly once, faults per member.

Each test parks its executions first (every run stops at its invoice with "awaiting batch"), so the sender finds
them all waiting and the batches are predictable; then the queued jobs run: the sender, then the members again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from services.bootstrap import Services
from services.clock import utcnow
from services.store.models import BatchItemRow
from services.store.records import Execution
from services.work.jobs import run_execution
from services.work.runner import batch_rule
from services.work.sweeper import sweep
from simulators.scenario import REALM_ID, Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import only_callback

STEP = "document:Invoice"
VALIDATION = {"Fault": {"type": "ValidationFault", "Error": [{"code": "6000", "Message": "A business rule failed"}]}}


@pytest.fixture
def write_mode() -> str:
    return "batched"


@pytest.fixture
def park(
    server: str, services: Services, sims: Simulators, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[[int], list[Execution]]:
    """Accept ``n`` invoice executions and run each up to its invoice, which waits for a batch."""
    # Not about HubSpot's limit (tested on its own): dozens of runs in a row read HubSpot at full speed, and a run
    # that meets a 429 at the edge of the two 10-second windows would be handed back instead of parked.
    sims.hubspot_settings(limit_per_10s=100000)
    monkeypatch.setattr(services, "config", services.config.with_overrides(hubspot_calls_per_10s=100000))

    def parked(n: int) -> list[Execution]:
        executions = []
        for _ in range(n):
            body = execution_body(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
            assert signed_post(server, "/actions/create_invoice", body).status_code == 200
            execution = services.executions.find(body["callbackId"])
            assert execution is not None
            assert run_execution(execution.id) == "awaiting batch"
            executions.append(execution)
        return executions

    return parked


def states(services: Services, executions: list[Execution]) -> list[str]:
    return [services.executions.get(e.id).state for e in executions]  # type: ignore[union-attr]


def batch_posts(sims: Simulators) -> list[dict[str, Any]]:
    return [r for r in sims.qbo_requests() if r["method"] == "POST" and r["path"].endswith("/batch")]


def test_a_burst_goes_to_quickbooks_30_documents_per_batch(
    park: Callable[[int], list[Execution]], services: Services, sims: Simulators, run_jobs: Callable[..., None]
) -> None:
    executions = park(35)
    # Waiting for a batch is not a lost job: the sweeper leaves them alone.
    assert not services.executions.to_sweep(queued_before=services.executions.get(executions[-1].id).updated_at)  # type: ignore[union-attr]

    run_jobs()

    assert states(services, executions) == ["succeeded"] * 35
    assert [b["items"] for b in batch_posts(sims)] == [30, 5]
    assert not [r for r in sims.qbo_requests() if r["path"].endswith("/invoice")], "no invoice went on its own"
    invoices = {i["Id"]: i for i in sims.entities("Invoice")}
    assert len(invoices) == 35
    for execution in executions:
        outputs = only_callback(sims, execution)
        assert outputs["hs_execution_state"] == "SUCCESS"
        assert execution.id in invoices[outputs["quickbooks_id"]]["PrivateNote"]
        assert [a.outcome for a in services.attempts.of(execution.id)] == ["batched", "succeeded"]
    assert services.database.count("quickbooks_batches") == services.database.count("quickbooks_batch_items") == 0


def test_a_fault_in_one_item_fails_only_its_execution_and_a_retry_books_it(
    park: Callable[[int], list[Execution]],
    services: Services,
    sims: Simulators,
    run_jobs: Callable[..., None],
) -> None:
    from services.ops.operations import Operations
    from services.ops.tokens import Operator

    sims.qbo_fault(method="POST", path="/invoice$", status=400, body=VALIDATION, batch_item=True, count=1)
    executions = park(3)

    run_jobs()

    assert states(services, executions) == ["failed", "succeeded", "succeeded"]
    failed = services.executions.get(executions[0].id)
    assert failed is not None and failed.failure_reason == "QUICKBOOKS_REJECTED"
    assert "code 6000" in (failed.failure_message or "") and "A business rule failed" in (failed.failure_message or "")
    assert len(sims.entities("Invoice")) == 2
    assert only_callback(sims, failed)["failure_reason"] == "QUICKBOOKS_REJECTED"
    # Nothing was created for it, so an operator's retry looks it up, finds nothing and books it.
    Operations(services).retry(failed.id, Operator("ops@example.com", "operator"))
    run_jobs()
    assert states(services, executions) == ["succeeded"] * 3
    assert len(sims.entities("Invoice")) == 3


def test_a_batch_refused_as_a_whole_fails_each_member_with_the_reason(
    park: Callable[[int], list[Execution]], services: Services, sims: Simulators, run_jobs: Callable[..., None]
) -> None:
    sims.qbo_fault(method="POST", path="/batch$", status=400, body=VALIDATION, count=1)
    executions = park(2)

    run_jobs()

    assert states(services, executions) == ["failed", "failed"]
    assert {services.executions.get(e.id).failure_reason for e in executions} == {"QUICKBOOKS_REJECTED"}  # type: ignore[union-attr]
    assert sims.entities("Invoice") == []


def test_a_lost_answer_completes_the_found_documents_and_sends_only_the_rest(
    park: Callable[[int], list[Execution]], services: Services, sims: Simulators, run_jobs: Callable[..., None]
) -> None:
    """The first batch created one invoice and refused the other, and its answer was lost."""
    sims.qbo_fault(method="POST", path="/invoice$", status=400, body=VALIDATION, batch_item=True, count=1)
    sims.qbo_fault(method="POST", path="/batch$", status=500, after_commit=True, count=1)
    executions = park(2)

    run_jobs()

    assert states(services, executions) == ["succeeded", "succeeded"]
    assert len(sims.entities("Invoice")) == 2
    first, second = batch_posts(sims)
    assert (first["items"], second["items"]) == (2, 1)
    # Resending the first batch would rely on QuickBooks remembering its requestid; the missing one went anew.
    assert first["requestid"] != second["requestid"]
    lookups = [r for r in sims.qbo_requests() if "FROM Invoice" in str(r["query"].get("query"))]
    assert len(lookups) == 2


def test_a_lost_answer_with_nothing_created_is_sent_again_as_it_was(
    park: Callable[[int], list[Execution]], services: Services, sims: Simulators, run_jobs: Callable[..., None]
) -> None:
    sims.qbo_fault(method="POST", path="/batch$", status=502, count=1)
    executions = park(2)

    run_jobs()

    assert states(services, executions) == ["succeeded", "succeeded"]
    first, second = batch_posts(sims)
    assert first["requestid"] == second["requestid"] and first["body"] == second["body"]
    assert len(sims.entities("Invoice")) == 2


def test_a_disconnected_company_fails_the_documents_waiting_for_its_batch(
    park: Callable[[int], list[Execution]], services: Services, sims: Simulators, run_jobs: Callable[..., None]
) -> None:
    executions = park(2)
    [connection] = services.connections.quickbooks_of()
    services.connections.mark_quickbooks_revoked(connection.id)

    run_jobs()

    assert states(services, executions) == ["failed", "failed"]
    assert {services.executions.get(e.id).failure_reason for e in executions} == {"QUICKBOOKS_NOT_CONNECTED"}  # type: ignore[union-attr]
    assert batch_posts(sims) == []
    assert services.database.count("quickbooks_batch_items") == 0


def test_the_sweeper_sends_batches_whose_sender_was_lost(
    park: Callable[[int], list[Execution]], services: Services, sims: Simulators, run_jobs: Callable[..., None]
) -> None:
    executions = park(2)
    # Redis lost the sender's job (a restart): only the database remembers what waits.
    for queue in services.queue.all_queues:
        queue.empty()
    with services.database.engine.begin() as conn:
        conn.execute(BatchItemRow.__table__.update().values(created_at=utcnow() - timedelta(minutes=1)))

    sweep(services)
    run_jobs()

    assert states(services, executions) == ["succeeded", "succeeded"]
    assert len(sims.entities("Invoice")) == 2


def test_an_execution_in_a_batch_cannot_be_cancelled_or_marked_as_booked(
    park: Callable[[int], list[Execution]], services: Services
) -> None:
    from services.ops.operations import Conflict, Operations
    from services.ops.tokens import Operator

    [execution] = park(1)
    operations, operator = Operations(services), Operator("ops@example.com", "admin")

    with pytest.raises(Conflict):
        operations.cancel(execution.id, operator, note="not needed")
    assert services.executions.mark_booked(execution.id, output_fields={}) is False


class FakeGate:
    """A gate whose log says how many calls and batches went out in the last minute."""

    def __init__(self, calls: int = 0, batches: int = 0, second: int = 0) -> None:
        self.counts = {"minute": calls, "batches": batches, "second": second}

    def recent(self, kind: str, limit_name: str) -> int:
        return self.counts[limit_name]


@pytest.mark.parametrize(
    ("mode", "calls", "batches", "second", "expected"),
    [
        ("on", 0, 0, 0, True),
        ("off", 499, 40, 10, False),
        ("auto", 0, 0, 0, False),
        ("auto", 249, 0, 10, False),
        ("auto", 250, 0, 0, True),
        ("auto", 3, 1, 0, True),
    ],
)
def test_auto_batches_only_while_the_company_is_busy(
    services: Services, mode: str, calls: int, batches: int, second: int, expected: bool
) -> None:
    config = services.config.with_overrides(
        quickbooks_batch_writes=mode, quickbooks_batch_above=250, quickbooks_calls_per_second=10
    )

    assert batch_rule(config, FakeGate(calls, batches, second))() is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("write_mode", ["auto"])
def test_auto_mode_sends_a_lone_document_at_once(
    server: str, services: Services, sims: Simulators, settings: Any, run_jobs: Callable[..., None]
) -> None:
    body = execution_body(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    signed_post(server, "/actions/create_invoice", body)
    run_jobs()

    execution = services.executions.find(body["callbackId"])
    assert execution is not None and execution.state == "succeeded"
    assert batch_posts(sims) == [] and len(sims.entities("Invoice")) == 1
    assert REALM_ID in only_callback(sims, execution)["quickbooks_realm_id"]
