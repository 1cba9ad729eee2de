"""The server's own database and Redis fail in the middle of a run: the execution waits and finishes once.

Each test runs its own PostgreSQL and Redis (tests/servers.py), so stopping them disturbs no other test, and
a real `qbo-actions worker` process does the work.
"""

from __future__ import annotations

import time

import pytest

from simulators.scenario import seed_deal
from tests.conftest import wait_for
from tests.e2e.conftest import World, finished_once

pytestmark = pytest.mark.slow


def test_postgresql_stopping_while_an_invoice_is_written_delays_it_and_books_it_once(world: World) -> None:
    deal = seed_deal(world.sims)
    # QuickBooks creates the invoice at once but answers two seconds later; the database is gone by then.
    world.sims.qbo_fault(status=None, method="POST", path="/invoice$", delay=2)
    callback_id = world.send(deal["deal"])

    wait_for(world.invoice_in_flight, timeout=20)
    world.postgres.stop()
    time.sleep(3)
    world.postgres.start()

    outputs = finished_once(world, callback_id)
    [invoice] = world.sims.entities("Invoice")
    assert outputs["hs_execution_state"] == "SUCCESS" and outputs["quickbooks_id"] == invoice["Id"]
    execution = world.execution(callback_id)
    assert execution is not None
    outcomes = [a.outcome for a in world.services.attempts.of(execution.id)]
    # The run the outage interrupted could record nothing; the sweeper handed the execution to another run.
    assert outcomes[-1] == "succeeded" and "failed" not in outcomes, outcomes


def test_redis_restarting_empty_while_an_invoice_is_written_loses_nothing_and_books_it_once(world: World) -> None:
    deal = seed_deal(world.sims)
    world.sims.qbo_fault(status=None, method="POST", path="/invoice$", delay=2)
    callback_id = world.send(deal["deal"])

    wait_for(world.invoice_in_flight, timeout=20)
    world.redis.stop()
    time.sleep(3)
    world.redis.start()  # empty: the queue, the scheduled retries and the locks are gone

    outputs = finished_once(world, callback_id)
    assert len(world.sims.entities("Invoice")) == 1
    assert outputs["hs_execution_state"] == "SUCCESS"


def test_redis_down_when_an_execution_is_accepted_and_run_ends_in_one_invoice(world: World) -> None:
    deal = seed_deal(world.sims)
    world.redis.stop()
    callback_id = world.send(deal["deal"])  # recorded; the enqueue fails and the sweeper enqueues it later
    time.sleep(1)
    world.redis.start()

    outputs = finished_once(world, callback_id)
    assert len(world.sims.entities("Invoice")) == 1 and outputs["hs_execution_state"] == "SUCCESS"
