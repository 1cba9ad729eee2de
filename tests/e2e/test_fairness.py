"""Fair to every portal: a burst from one portal does not make another portal's executions wait behind it."""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker
from rq.worker import DequeueStrategy

from services.bootstrap import Services
from services.work.relay import relay_everything
from simulators.scenario import PORTAL_ID, Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import connect_standard

OTHER_PORTAL = 243199551


def test_another_portals_executions_are_run_between_a_bursts_jobs(
    server: str, services: Services, sims: Simulators, settings: Any, monkeypatch: Any
) -> None:
    # Not about HubSpot's rate limit (tested on its own): let the burst run at full speed.
    sims.hubspot_settings(limit_per_10s=10000)
    monkeypatch.setattr(
        services,
        "config",
        services.config.with_overrides(hubspot_calls_per_10s=10000, quickbooks_calls_per_minute=10000),
    )
    sims.add_portal(OTHER_PORTAL)
    connect_standard(services, portal_id=OTHER_PORTAL)
    line = [{"name": "Widget", "quantity": "1", "price": "10", "hs_product_id": "555"}]
    sims.add_entity("Item", {"Name": "Widget", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    burst = []
    for _ in range(30):
        payload = execution_body(seed_deal(sims, line_items=line)["deal"], inputs=sales_inputs())
        assert signed_post(server, "/actions/create_invoice", payload).status_code == 200
        burst.append(payload["callbackId"])
    theirs = []
    for _ in range(3):
        payload = execution_body(
            seed_deal(sims, line_items=line, portal_id=OTHER_PORTAL)["deal"],
            inputs=sales_inputs(),
            portal_id=OTHER_PORTAL,
        )
        assert signed_post(server, "/actions/create_invoice", payload).status_code == 200
        theirs.append(payload["callbackId"])
    order: list[str] = []

    class RecordingWorker(SimpleWorker):
        def execute_job(self, job: Any, queue: Any) -> Any:
            if job.func_name.endswith("run_execution"):
                execution = services.executions.get(job.args[0])
                assert execution is not None
                order.append(execution.callback_id)
            return super().execute_job(job, queue)

    relay_everything(services.outbox, services.queue)
    RecordingWorker(services.queue.all_queues, connection=services.redis).work(
        burst=True, dequeue_strategy=DequeueStrategy.ROUND_ROBIN
    )

    assert sorted(order) == sorted(burst + theirs)
    positions = [order.index(callback) for callback in theirs]
    # Round robin over the lanes: the other portal's three run among the first six jobs, not after thirty.
    assert max(positions) < 6, positions
    assert services.queue.lane_of(PORTAL_ID) is not services.queue.lane_of(OTHER_PORTAL)
    assert {services.executions.find(c).state for c in burst + theirs} == {"succeeded"}  # type: ignore[union-attr]
