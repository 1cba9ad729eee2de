"""Real worker processes (RQ with its scheduler, and the sweeper) against the simulators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.bootstrap import Services
from services.store.records import Execution
from simulators.scenario import REALM_ID, Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import WorkerProcess, wait_for


def send(server: str, sims: Simulators, action: str = "create_invoice") -> str:
    body = execution_body(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    response = signed_post(server, f"/actions/{action}", body)
    assert response.status_code == 200
    return str(body["callbackId"])


def finished(services: Services, callback_id: str) -> Execution | None:
    execution = services.executions.find(callback_id)
    return execution if execution and execution.state in ("succeeded", "failed") else None


def reported(sims: Simulators, callback_id: str) -> list[dict[str, Any]]:
    return sims.callbacks(callback_id)


@pytest.mark.parametrize("write_mode", ["single", "batched"])
def test_a_worker_process_completes_each_action_and_reports_back(
    server: str, services: Services, sims: Simulators, settings: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker()
    callbacks = {
        action: send(server, sims, action) for action in ("create_invoice", "create_estimate", "create_sales_receipt")
    }

    for action, callback_id in callbacks.items():
        execution = wait_for(lambda cid=callback_id: finished(services, cid))
        assert execution.state == "succeeded", (action, execution.failure_message)
        [completion] = wait_for(lambda cid=callback_id: reported(sims, cid))
        assert completion["output_fields"]["hs_execution_state"] == "SUCCESS"
    assert [len(sims.entities(e)) for e in ("Invoice", "Estimate", "SalesReceipt")] == [1, 1, 1]


@pytest.mark.parametrize(("status", "headers"), [(429, {"Retry-After": "1"}), (500, {}), (401, {})])
def test_the_worker_retries_quickbooks_answers_then_succeeds(
    server: str,
    services: Services,
    sims: Simulators,
    settings: Any,
    start_worker: Callable[..., WorkerProcess],
    status: int,
    headers: dict[str, str],
) -> None:
    sims.qbo_fault(method="POST", path="/invoice$", status=status, count=1, headers=headers)
    worker = start_worker()
    callback_id = send(server, sims)

    execution = wait_for(lambda: finished(services, callback_id))

    assert execution.state == "succeeded", (execution.failure_message, worker.log()[-2000:])
    assert len(sims.entities("Invoice")) == 1
    wait_for(lambda: reported(sims, callback_id))
    assert len(reported(sims, callback_id)) == 1


@pytest.mark.slow
def test_a_worker_killed_mid_job_loses_nothing_and_doubles_nothing(
    server: str, services: Services, sims: Simulators, settings: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    # The invoice write takes 3 s, long enough to kill the worker while it waits for the answer.
    sims.qbo_fault(method="POST", path="/invoice$", status=None, delay=3, count=1)
    quick_takeover = {"LEASE_SECONDS": "8", "JOB_TIMEOUT": "4", "HTTP_TIMEOUT": "3.5"}
    doomed = start_worker(**quick_takeover)
    callback_id = send(server, sims)

    def invoice_in_flight() -> bool:
        execution = services.executions.find(callback_id)
        steps = services.bookkeeping.steps(execution.id) if execution else {}
        return "document:Invoice" in steps and steps["document:Invoice"].status == "started"

    wait_for(invoice_in_flight)
    doomed.kill()
    start_worker(**quick_takeover)

    execution = wait_for(lambda: finished(services, callback_id), timeout=60)

    assert execution.state == "succeeded", execution.failure_message
    assert len(sims.entities("Invoice")) == 1
    assert len(sims.entities("Customer")) == 1
    wait_for(lambda: reported(sims, callback_id))
    assert len(reported(sims, callback_id)) == 1
    outcomes = [a.outcome for a in services.attempts.of(execution.id)]
    assert outcomes == ["abandoned", "succeeded"]


@pytest.mark.slow
@pytest.mark.parametrize("write_mode", ["batched"])
def test_a_worker_killed_while_its_batch_is_out_loses_nothing_and_doubles_nothing(
    server: str, services: Services, sims: Simulators, settings: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The sender dies waiting for QuickBooks' answer: the next one looks the batch up instead of sending it."""
    sims.qbo_fault(method="POST", path="/batch$", status=None, delay=3, count=1)
    quick_takeover = {"LEASE_SECONDS": "8", "JOB_TIMEOUT": "4", "HTTP_TIMEOUT": "3.5"}
    doomed = start_worker(**quick_takeover)
    callback_ids = [send(server, sims) for _ in range(3)]

    wait_for(lambda: any(r["path"].endswith("/batch") for r in sims.qbo_requests()))
    doomed.kill()
    start_worker(**quick_takeover)

    executions = [wait_for(lambda cid=cid: finished(services, cid), timeout=90) for cid in callback_ids]

    assert [e.state for e in executions] == ["succeeded"] * 3, [e.failure_message for e in executions]
    assert len(sims.entities("Invoice")) == 3
    batches = [r for r in sims.qbo_requests() if r["path"].endswith("/batch")]
    # The batch that was out when the worker died was looked up, not sent again; the rest went in new ones.
    assert len({b["requestid"] for b in batches}) == len(batches)
    assert sum(b["items"] for b in batches) == 3
    assert any("FROM Invoice" in str(r["query"].get("query")) for r in sims.qbo_requests())
    for execution, callback_id in zip(executions, callback_ids, strict=True):
        wait_for(lambda cid=callback_id: reported(sims, cid))
        assert len(reported(sims, callback_id)) == 1
        assert [a.outcome for a in services.attempts.of(execution.id)] == ["batched", "succeeded"]
    assert services.database.count("quickbooks_batches") == 0


@pytest.mark.slow
def test_two_workers_booking_the_same_payment_at_once_book_one_document(
    server: str, services: Services, sims: Simulators, settings: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    from simulators.scenario import seed_payment

    # A slow invoice write keeps the first execution busy while the second one arrives.
    sims.qbo_fault(method="POST", path="/invoice$", status=None, delay=1.5, count=1)
    payment = seed_payment(sims)
    workers = [start_worker(), start_worker()]
    callbacks = []
    for _ in range(2):
        body = execution_body(
            payment["payment"], object_type="0-101", inputs=sales_inputs(create_missing_products="yes")
        )
        assert signed_post(server, "/actions/create_paid_invoice", body).status_code == 200
        callbacks.append(str(body["callbackId"]))

    try:
        executions = [wait_for(lambda cid=cid: finished(services, cid), timeout=60) for cid in callbacks]
    except AssertionError as exc:
        raise AssertionError("\n".join(w.log()[-3000:] for w in workers)) from exc

    assert [e.state for e in executions] == ["succeeded", "succeeded"], [e.failure_message for e in executions]
    assert len(sims.entities("Invoice")) == 1 and len(sims.entities("Payment")) == 1
    outputs = [wait_for(lambda cid=cid: reported(sims, cid))[0]["output_fields"] for cid in callbacks]
    assert sorted("duplicate_of" in o for o in outputs) == [False, True]
    assert {o["quickbooks_id"] for o in outputs} == {sims.entities("Invoice")[0]["Id"]}
    # The two really overlapped: the later one waited for the first instead of booking.
    waits = [a for e in executions for a in services.attempts.of(e.id) if a.outcome == "retrying"]
    assert waits and all("is booking" in (a.message or "") for a in waits)


@pytest.mark.parametrize("write_mode", ["single", "batched"])
def test_a_worker_process_books_each_payment_action(
    server: str, services: Services, sims: Simulators, settings: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    from simulators.scenario import seed_payment

    start_worker()
    checking = sims.account_id("Checking")
    refunded = {"hs_latest_status": "refunded", "hs_refunds_amount": "399.5"}
    cases = {
        "create_paid_invoice": ({}, {"create_missing_products": "yes", "deposit_account": checking}),
        "create_payment_sales_receipt": ({}, {"create_missing_products": "yes"}),
        "create_fee_expense": (
            {},
            {"payment_account": checking, "expense_account": sims.account_id("Bank Charges & Fees")},
        ),
        "create_refund_receipt": (refunded, {"create_missing_products": "yes", "refund_account": checking}),
    }
    callbacks = {}
    for action, (payment, inputs) in cases.items():
        body = execution_body(
            seed_payment(sims, payment=payment)["payment"],
            object_type="0-101",
            inputs={"quickbooks_account": REALM_ID, **inputs},
        )
        assert signed_post(server, f"/actions/{action}", body).status_code == 200
        callbacks[action] = str(body["callbackId"])

    for action, callback_id in callbacks.items():
        execution = wait_for(lambda cid=callback_id: finished(services, cid), timeout=60)
        assert execution.state == "succeeded", (action, execution.failure_message)
        [completion] = wait_for(lambda cid=callback_id: reported(sims, cid))
        assert completion["output_fields"]["hs_execution_state"] == "SUCCESS"
    counts = {e: len(sims.entities(e)) for e in ("Invoice", "Payment", "SalesReceipt", "Purchase", "RefundReceipt")}
    assert counts == {"Invoice": 1, "Payment": 1, "SalesReceipt": 1, "Purchase": 1, "RefundReceipt": 1}


def test_the_sweeper_purges_old_finished_executions_once_a_day(services: Services) -> None:
    from datetime import timedelta

    from services.clock import utcnow
    from services.store.records import NewExecution
    from services.work.sweeper import sweep
    from tests.conftest import set_execution

    execution_id, _ = services.executions.accept(
        NewExecution("ap-1-2-9-0", "create_invoice", 102670506, "9130355", "DEAL", "614", {})
    )
    set_execution(
        services, execution_id, state="failed", callback_state="sent", finished_at=utcnow() - timedelta(days=31)
    )
    services.config = services.config.with_overrides(retention_days=30)

    first, second = sweep(services), sweep(services)

    assert (first.purged, second.purged) == (1, 0)
    assert services.executions.get(execution_id) is None


def test_readiness_needs_a_live_worker_and_its_scheduler(
    server: str, services: Services, start_worker: Callable[..., WorkerProcess]
) -> None:
    import requests

    before = requests.get(server + "/readyz", timeout=5)
    assert before.status_code == 503
    assert before.json()["checks"]["database"] == before.json()["checks"]["redis"] == "ok"
    assert "no worker" in before.json()["checks"]["worker"]

    start_worker()

    ready = wait_for(lambda: (r := requests.get(server + "/readyz", timeout=5)).status_code == 200 and r, timeout=30)
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "worker": "ok", "scheduler": "ok"},
    }
    assert requests.get(server + "/healthz", timeout=5).json() == {"status": "ok"}


def test_readiness_says_when_redis_is_unreachable(services: Services) -> None:
    import redis as redis_module

    from services.bootstrap import Services as Built
    from services.work.health import readiness
    from services.work.queue import JobQueue

    dead = redis_module.Redis(port=1, socket_connect_timeout=0.2)
    broken = Built(services.config, services.repositories, dead, JobQueue(dead, services.config))

    verdict = readiness(broken)

    assert not verdict.ready and verdict.checks["database"] == "ok"
    assert verdict.checks["redis"].startswith("unavailable")


def test_a_job_over_its_time_limit_is_stopped_in_the_worker_process_which_goes_on_working(
    server: str,
    services: Services,
    sims: Simulators,
    settings: Any,
    start_worker: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker runs jobs in its own process (SimpleWorker): RQ's SIGALRM must still stop one that overruns.
    monkeypatch.setattr(services.queue, "config", services.config.with_overrides(job_timeout=2))
    # QuickBooks books the invoice at once and answers after 6 s, well past the job's 2 s.
    sims.qbo_fault(status=None, method="POST", path="/invoice$", delay=6, count=1)
    worker = start_worker()
    callback_id = send(server, sims)

    execution = wait_for(lambda: finished(services, callback_id), timeout=60)

    assert execution.state == "succeeded", (execution.failure_message, worker.log()[-2000:])
    # The run records its attempt's outcome just after the execution's.
    wait_for(lambda: services.attempts.of(execution.id)[-1].outcome != "running")
    timed_out, succeeded = services.attempts.of(execution.id)
    assert (timed_out.outcome, timed_out.error_code) == ("retrying", "JobTimeoutException")
    assert timed_out.finished_at is not None
    # Stopped at the limit, not when the answer came.
    assert (timed_out.finished_at - timed_out.started_at).total_seconds() < 5
    assert succeeded.outcome == "succeeded" and len(sims.entities("Invoice")) == 1
    # The same worker process took the retry: the time limit did not cost it its life.
    assert worker.process is not None and worker.process.poll() is None
