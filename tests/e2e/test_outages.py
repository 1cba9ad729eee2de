"""The server's own database and Redis fail in the middle of a run: the execution waits and finishes once.

Each test runs its own PostgreSQL and Redis (tests/servers.py), so stopping them disturbs no other test, and
a real `qbo-actions worker` process does the work.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from actions.app import create_app
from services import bootstrap
from services.config import Config
from services.store import migrate
from services.store.records import Execution
from simulators.scenario import Simulators, seed_deal
from simulators.serve import start_in_thread
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import WorkerProcess, connect_standard, environment, wait_for
from tests.servers import PostgresServer, RedisServer


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.remove()


class World:
    """The app, a worker and their private database and Redis, which the test may stop and start."""

    def __init__(self, sims: Simulators, postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path) -> None:
        self.sims, self.postgres, self.redis = sims, postgres, redis_server
        self.env = environment(
            sims,
            postgres.url,
            f"outage-{uuid.uuid4().hex[:8]}",
            REDIS_URL=redis_server.url,
            # A run whose outcome could not be recorded is taken over once its lease runs out.
            LEASE_SECONDS="9",
            HTTP_TIMEOUT="3",
            JOB_TIMEOUT="5",
        )
        self.services = bootstrap.bootstrap(
            Config.from_env(self.env), redis_connection=redis.Redis.from_url(redis_server.url)
        )
        with self.services.database.engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        migrate.upgrade(self.services.database.engine)
        connect_standard(self.services)
        self.services.companies.save_settings(
            "9130355", {"contact_sync": {"mode": "legacy"}, "default_income_account": sims.account_id("Services")}
        )
        self.web = start_in_thread(create_app(services=self.services))
        self.worker = WorkerProcess(self.env, tmp_path / "worker.log").start()
        self.sweeper = WorkerProcess(self.env, tmp_path / "sweeper.log", ("sweep", "--forever")).start()

    def send(self, object_id: str) -> str:
        payload = execution_body(object_id, inputs=sales_inputs(create_missing_products="yes"))
        response = signed_post(self.web.base_url, "/actions/create_invoice", payload)
        assert response.status_code == 200, response.text
        return str(payload["callbackId"])

    def execution(self, callback_id: str) -> Execution | None:
        try:
            return self.services.executions.find(callback_id)
        except Exception:  # the database may be down while the test polls
            return None

    def invoice_in_flight(self) -> bool:
        return any(r["method"] == "POST" and r["path"].endswith("/invoice") for r in self.sims.qbo_requests())

    def close(self) -> None:
        self.sweeper.stop()
        self.worker.stop()
        self.web.stop()
        self.services.database.dispose()


@pytest.fixture
def world(sims: Simulators, postgres: PostgresServer, tmp_path: Path) -> Iterator[World]:
    redis_server = RedisServer().start()
    built = World(sims, postgres, redis_server, tmp_path)
    yield built
    built.close()
    redis_server.stop()
    if not (postgres.data / "postmaster.pid").exists():
        postgres.start()


def finished_once(world: World, callback_id: str, timeout: float = 45) -> dict[str, Any]:
    """Wait for the execution to succeed and be reported; return its only callback's outputs."""
    try:
        wait_for(lambda: world.sims.callbacks(callback_id), timeout=timeout)
    except AssertionError:
        raise AssertionError(f"no callback; worker log:\n{world.worker.log()[-4000:]}") from None
    # The test's own pool may hold connections from before a restart: the first use of each fails.
    execution = wait_for(lambda: world.execution(callback_id), timeout=10)
    assert execution.state == "succeeded", execution
    [callback] = world.sims.callbacks(callback_id)
    return callback["output_fields"]  # type: ignore[no-any-return]


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
