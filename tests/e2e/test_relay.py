"""The relay: HubSpot is answered once an execution is committed, and its job reaches the queue within a second,
even when the process that accepted it dies first (another relay, or the sweeper, queues it)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import update

from actions.app import create_app
from actions.registry import all_actions
from services.bootstrap import Services
from services.clock import utcnow
from services.store.models import ExecutionRow, OutboxRow
from services.store.records import NewExecution
from services.work import relay
from services.work.queue import JobQueue, execution_job_id
from services.work.relay import RelayThread
from services.work.sweeper import sweep
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal
from simulators.serve import start_in_thread
from tests.builders import callback_id, execution_body, sales_inputs, signed_post
from tests.conftest import WorkerProcess, wait_for
from tests.e2e.test_metrics import Gunicorn

BLOCK = {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P7D"}}


def queued_job_ids(services: Services) -> list[str]:
    return [job_id for queue in services.queue.all_queues for job_id in queue.get_job_ids()]


def queued_within(services: Services, execution_ids: list[str], seconds: float) -> float:
    """Wait until every execution's job is on the queue; return how long that took (fail after ``seconds``)."""
    started = time.monotonic()
    wanted = {execution_job_id(execution_id) for execution_id in execution_ids}
    wait_for(lambda: wanted <= set(queued_job_ids(services)), timeout=seconds, interval=0.01)
    return time.monotonic() - started


def accepted_by_a_process_that_died(services: Services, count: int = 1, object_id: str = "614") -> list[str]:
    """Commit invoice executions with their outbox entries, as a web process does, and queue nothing (it died)."""
    schema = next(spec for spec in all_actions() if spec.name == "create_invoice").input_schema()
    news = [
        NewExecution(
            callback_id=callback_id(),
            action="create_invoice",
            portal_id=PORTAL_ID,
            realm_id=REALM_ID,
            object_type="DEAL",
            object_id=object_id,
            inputs=schema.load(sales_inputs(create_missing_products="yes")),
        )
        for _ in range(count)
    ]
    return [execution_id for execution_id, _ in services.outbox.accept(news)]


def test_an_accepted_execution_s_job_is_queued_well_within_a_second(server: str, services: Services) -> None:
    body = execution_body("614")

    response = signed_post(server, "/actions/create_invoice", body)
    execution = services.executions.find(body["callbackId"])

    assert response.status_code == 200 and response.json() == BLOCK
    assert execution is not None and execution.state == "queued"
    assert queued_within(services, [execution.id], seconds=1) < 0.5
    assert services.outbox.count() == 0


def test_hubspot_is_answered_only_once_the_execution_is_committed(
    server: str, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = execution_body("614")
    commit = services.outbox.accept
    seen: dict[str, Any] = {}

    def slow_commit(news: list[NewExecution], **through: Any) -> list[tuple[str, bool]]:
        seen["before"] = services.executions.find(body["callbackId"])
        outcomes = commit(news, **through)
        # Committed: another connection sees it. The answer must wait for this function to return.
        seen["after"] = services.executions.find(body["callbackId"])
        time.sleep(0.3)
        seen["committed_at"] = time.monotonic()
        return outcomes

    monkeypatch.setattr(services.outbox, "accept", slow_commit)
    response = signed_post(server, "/actions/create_invoice", body)
    answered_at = time.monotonic()

    assert response.status_code == 200
    assert seen["before"] is None and seen["after"] is not None
    assert answered_at > seen["committed_at"]


def test_a_failed_commit_answers_503_so_hubspot_delivers_again(
    server: str, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    def broken(news: list[NewExecution], **through: Any) -> list[tuple[str, bool]]:
        raise OperationalError("INSERT", {}, Exception("the database went away"))

    monkeypatch.setattr(services.outbox, "accept", broken)
    response = signed_post(server, "/actions/create_invoice", execution_body("614"))

    assert response.status_code == 503
    assert services.database.count("executions") == 0 and queued_job_ids(services) == []


def test_a_callback_delivered_several_times_at_once_is_accepted_once_and_queued_once(
    server: str, services: Services
) -> None:
    body = execution_body("614")

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: signed_post(server, "/actions/create_invoice", body), range(6)))

    assert [a.status_code for a in answers] == [200] * 6 and all(a.json() == BLOCK for a in answers)
    execution = services.executions.find(body["callbackId"])
    assert execution is not None and services.database.count("executions") == 1
    queued_within(services, [execution.id], seconds=1)
    time.sleep(0.2)  # a second job would have been queued by now
    assert queued_job_ids(services) == [execution_job_id(execution.id)]


def test_the_bare_path_queues_the_job_before_answering(services: Services) -> None:
    direct = Services(
        config=services.config.with_overrides(accept_enqueue="direct"),
        repositories=services.repositories,
        redis=services.redis,
        queue=services.queue,
    )
    running = start_in_thread(create_app(services=direct))
    try:
        body = execution_body("614")
        response = signed_post(running.base_url, "/actions/create_invoice", body)
        jobs = queued_job_ids(services)
    finally:
        running.stop()

    execution = services.executions.find(body["callbackId"])
    assert response.status_code == 200 and execution is not None
    assert jobs == [execution_job_id(execution.id)]
    assert services.outbox.count() == 0


def test_another_process_s_relay_queues_what_a_dead_process_committed_within_a_second(services: Services) -> None:
    # Another web process's relay, started for good as gunicorn's post_worker_init does: nobody wakes it.
    survivor = RelayThread(services)
    survivor.start(lasting=True)
    try:
        orphans = accepted_by_a_process_that_died(services, count=3)
        queued_within(services, orphans, seconds=1)
    finally:
        survivor.stop()
    assert services.outbox.count() == 0


def test_a_relay_started_by_a_request_stops_when_idle_and_the_next_request_starts_it_again(
    server: str, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay, "IDLE_SECONDS", 0.3)
    first = execution_body("614")
    signed_post(server, "/actions/create_invoice", first)
    thread = services.intake.relay._thread
    assert thread is not None
    thread.join(5)  # it stops on its own once idle

    second = execution_body("615")
    signed_post(server, "/actions/create_invoice", second)

    ids = [e.id for e in map(services.executions.find, (first["callbackId"], second["callbackId"])) if e is not None]
    assert not thread.is_alive() and len(ids) == 2
    queued_within(services, ids, seconds=1)
    assert services.intake.relay._thread is not thread


def test_the_sweeper_queues_what_no_relay_queued_within_its_grace_and_only_once(services: Services) -> None:
    [orphan] = accepted_by_a_process_that_died(services)

    young = sweep(services)
    with services.database.engine.begin() as conn:
        conn.execute(update(OutboxRow).values(accepted_at=utcnow() - timedelta(seconds=2)))
    old = sweep(services)

    assert (young.relayed, old.relayed, old.requeued) == (0, 1, 0)
    assert queued_job_ids(services) == [execution_job_id(orphan)]
    # Much later, still no second job: the execution is queued, and the sweeper leaves a live job alone.
    with services.database.engine.begin() as conn:
        conn.execute(update(ExecutionRow).values(updated_at=utcnow() - timedelta(minutes=5)))
    assert sweep(services).requeued == 0 and queued_job_ids(services) == [execution_job_id(orphan)]


def test_with_redis_down_an_execution_waits_in_the_outbox_and_is_queued_once_redis_answers(
    server: str, services: Services
) -> None:
    broken = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    services.queue = JobQueue(broken, services.config)
    body = execution_body("614")
    try:
        response = signed_post(server, "/actions/create_invoice", body)
        time.sleep(0.5)  # the relay tried, and failed
        waiting = services.outbox.count()
    finally:
        services.queue = JobQueue(services.redis, services.config)

    execution = services.executions.find(body["callbackId"])
    assert response.status_code == 200 and execution is not None
    assert waiting == 1
    queued_within(services, [execution.id], seconds=2)


def test_executions_a_web_process_committed_before_dying_are_booked_once(
    services: Services, sims: Simulators, settings: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    # No web process at all: only the worker and the sweeper (every second) run.
    deal = seed_deal(sims)["deal"]
    [orphan] = accepted_by_a_process_that_died(services, object_id=deal)
    start_worker()

    execution = wait_for(
        lambda: (e := services.executions.get(orphan)) and e.state in ("succeeded", "failed") and e, timeout=30
    )

    assert execution.state == "succeeded", execution.failure_message
    assert len(sims.entities("Invoice")) == 1
    wait_for(lambda: sims.callbacks(execution.callback_id))
    assert len(sims.callbacks(execution.callback_id)) == 1


@pytest.fixture
def web(env: dict[str, str], services: Services, tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    """The Procfile's web command with the test's environment (its database and Redis)."""
    started: list[Gunicorn] = []

    def start(arguments: str) -> Gunicorn:
        environment = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        server = Gunicorn({**environment, **env, "GUNICORN_CMD_ARGS": arguments}, tmp_path / "gunicorn.log")
        started.append(server)
        server.wait_until_serving()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("arguments", ["--worker-class sync", "--worker-class gthread --threads 4"])
def test_under_gunicorn_every_worker_relays_and_queues_what_others_left(
    web: Callable[..., Gunicorn], services: Services, arguments: str
) -> None:
    server = web(arguments)
    payloads = [execution_body(str(600 + n)) for n in range(12)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda p: signed_post(server.base_url, "/actions/create_invoice", p), payloads))

    assert [a.status_code for a in answers] == [200] * 12
    accepted = [services.executions.find(str(p["callbackId"])) for p in payloads]
    queued_within(services, [e.id for e in accepted if e is not None], seconds=1)
    # Each worker's relay runs from its start (post_worker_init), woken or not: it takes a dead process's rows too.
    orphans = accepted_by_a_process_that_died(services, count=2)
    queued_within(services, orphans, seconds=1)
    assert len(queued_job_ids(services)) == 14
    server.stop()
    assert "Traceback" not in server.log_path.read_text(), server.log_path.read_text()[-3000:]


def test_the_relay_s_metrics_count_what_it_queued(server: str, services: Services) -> None:
    body = execution_body("614")
    signed_post(server, "/actions/create_invoice", body)
    execution = services.executions.find(body["callbackId"])
    assert execution is not None
    queued_within(services, [execution.id], seconds=1)

    samples = requests.get(f"{server}/metrics", timeout=5).text

    assert "qbo_actions_executions_relayed_total" in samples
    assert "qbo_actions_relay_wait_seconds_bucket" in samples
