"""The Prometheus metrics over HTTP: /metrics of the app (in process and under gunicorn) and a worker's own port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from services.bootstrap import Services
from services.clock import utcnow
from simulators.scenario import Simulators, seed_deal
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import ROOT, Perform, WorkerProcess, drain, set_execution, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Return every sample of a text exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(base_url: str, **headers: str) -> Samples:
    response = requests.get(f"{base_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return one sample's value, 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Return the sum of a metric's samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def invoice_request(sims: Simulators) -> dict[str, Any]:
    return execution_body(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))


ACCEPTED = "qbo_actions_executions_accepted_total"
FINISHED = "qbo_actions_executions_finished_total"
REMOTE = "qbo_actions_remote_calls_total"
INVOICE = {"action": "create_invoice"}


def test_metrics_follow_an_execution_from_acceptance_to_its_callback(
    server: str, services: Services, sims: Simulators, settings: Any
) -> None:
    before = scrape(server)
    payload = invoice_request(sims)

    assert signed_post(server, "/actions/create_invoice", payload).status_code == 200
    # HubSpot delivering the same callbackId again is not a new execution.
    assert signed_post(server, "/actions/create_invoice", payload).status_code == 200
    waiting = scrape(server)

    assert value(waiting, ACCEPTED, **INVOICE) == value(before, ACCEPTED, **INVOICE) + 1
    assert value(waiting, "qbo_actions_accept_seconds_count") == value(before, "qbo_actions_accept_seconds_count") + 2
    assert value(waiting, "qbo_actions_executions", state="queued") == 1
    assert value(waiting, "qbo_actions_queue_depth", state="queued") == 1
    assert value(waiting, "qbo_actions_queue_depth", state="scheduled") == 0
    assert value(waiting, "qbo_actions_oldest_waiting_execution_seconds") > 0

    drain(services)
    after = scrape(server)

    succeeded = {**INVOICE, "outcome": "succeeded", "reason": ""}
    assert value(after, FINISHED, **succeeded) == value(before, FINISHED, **succeeded) + 1
    assert total(after, REMOTE, service="quickbooks", status="200") > total(
        before, REMOTE, service="quickbooks", status="200"
    )
    assert total(after, REMOTE, service="hubspot") > total(before, REMOTE, service="hubspot")
    histogram = "qbo_actions_execution_seconds_count"
    assert value(after, histogram, **INVOICE) == value(before, histogram, **INVOICE) + 1
    assert value(after, "qbo_actions_executions", state="queued") == 0
    assert value(after, "qbo_actions_executions", state="succeeded") == 1
    assert value(after, "qbo_actions_queue_depth", state="queued") == 0
    assert value(after, "qbo_actions_oldest_waiting_execution_seconds") == 0
    assert value(after, "qbo_actions_oldest_unsent_callback_seconds") == 0


def test_a_failure_is_counted_with_its_reason(
    server: str, services: Services, sims: Simulators, settings: Any, perform: Perform
) -> None:
    item = sims.add_entity("Item", {"Name": "Subscription", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    deal = seed_deal(sims, line_items=[], deal={"amount": ""})
    failed = {**INVOICE, "outcome": "failed", "reason": "AMOUNT_MISSING"}
    before = scrape(server)

    execution = perform(deal["deal"], inputs=sales_inputs(products=item["Id"]))

    assert execution.failure_reason == "AMOUNT_MISSING"
    after = scrape(server)
    assert value(after, FINISHED, **failed) == value(before, FINISHED, **failed) + 1
    assert value(after, "qbo_actions_executions", state="failed") == 1


def test_a_retry_is_counted_with_the_answer_that_caused_it(
    server: str, services: Services, sims: Simulators, settings: Any, perform: Perform
) -> None:
    sims.qbo_fault(method="POST", path="/invoice$", status=500, count=1)
    before = scrape(server)

    execution = perform(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))

    assert execution.state == "succeeded", execution.failure_message
    after = scrape(server)
    retries = "qbo_actions_retries_total"
    assert value(after, retries, service="quickbooks") == value(before, retries, service="quickbooks") + 1
    errors = {"service": "quickbooks", "status": "500"}
    assert value(after, REMOTE, **errors) == value(before, REMOTE, **errors) + 1


def test_the_backlog_gauges_show_how_long_the_oldest_work_has_waited(
    server: str, services: Services, sims: Simulators
) -> None:
    payload = invoice_request(sims)
    assert signed_post(server, "/actions/create_invoice", payload).status_code == 200
    execution = services.executions.find(payload["callbackId"])
    assert execution is not None
    set_execution(services, execution.id, created_at=utcnow() - timedelta(minutes=10))
    waiting = scrape(server)

    set_execution(
        services, execution.id, state="succeeded", callback_state="pending", finished_at=utcnow() - timedelta(minutes=3)
    )
    unsent = scrape(server)

    assert 600 <= value(waiting, "qbo_actions_oldest_waiting_execution_seconds") < 660
    assert value(waiting, "qbo_actions_oldest_unsent_callback_seconds") == 0
    assert value(unsent, "qbo_actions_oldest_waiting_execution_seconds") == 0
    assert 180 <= value(unsent, "qbo_actions_oldest_unsent_callback_seconds") < 240


def test_with_a_metrics_token_only_its_bearer_may_scrape(server: str, services: Services) -> None:
    services.config = services.config.with_overrides(metrics_token="scrape-secret")

    refused = requests.get(f"{server}/metrics", timeout=10)
    wrong = requests.get(f"{server}/metrics", headers={"Authorization": "Bearer guess"}, timeout=10)
    allowed = requests.get(f"{server}/metrics", headers={"Authorization": "Bearer scrape-secret"}, timeout=10)

    assert (refused.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "qbo_actions_executions" in allowed.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_worker_serves_its_own_counters_on_its_metrics_port(
    server: str, services: Services, sims: Simulators, settings: Any, start_worker: Callable[..., WorkerProcess]
) -> None:
    port = free_port()
    worker = start_worker(WORKER_METRICS_PORT=str(port))
    payload = invoice_request(sims)
    assert signed_post(server, "/actions/create_invoice", payload).status_code == 200

    wait_for(lambda: services.executions.find(payload["callbackId"]).state == "succeeded")  # type: ignore[union-attr]
    wait_for(lambda: sims.callbacks(payload["callbackId"]))

    def measured() -> Samples | None:
        try:
            samples = scrape(f"http://127.0.0.1:{port}")
        except requests.ConnectionError:
            return None
        return samples if value(samples, "qbo_actions_execution_seconds_count", **INVOICE) == 1 else None

    try:
        samples = wait_for(measured, timeout=15)
    except AssertionError:
        raise AssertionError(worker.log()[-3000:]) from None
    assert value(samples, FINISHED, **INVOICE, outcome="succeeded", reason="") == 1
    assert total(samples, REMOTE, service="quickbooks") > 0 and total(samples, REMOTE, service="hubspot") > 0
    # The web process accepted the execution, not the worker; the backlog gauges are the web's alone.
    assert value(samples, ACCEPTED, **INVOICE) == 0
    assert not any(name == "qbo_actions_queue_depth" for name, _ in samples)


class Gunicorn:
    """The Procfile's web command on a free port, with the test's environment."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "actions.app:create_app()",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--access-logfile",
            "-",
        ]
        self.log_path = log_path
        # The working directory is the project's, so gunicorn reads gunicorn.conf.py from it.
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_until_serving(self) -> None:
        def answers() -> bool:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                return requests.get(f"{self.base_url}/healthz", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or a worker still booting on a busy machine
                return False

        wait_for(answers, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=5)


@pytest.fixture
def gunicorn(env: dict[str, str], services: Services, tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(**extra: str) -> Gunicorn:
        environment = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        web = Gunicorn({**environment, **env, **extra}, tmp_path / f"gunicorn-{len(started)}.log")
        started.append(web)
        web.wait_until_serving()
        return web

    yield start
    for web in started:
        web.stop()


def counted_by_worker(directory: Path | None) -> list[float]:
    """Return the accepted executions each gunicorn worker counted in its own file (none when not known)."""
    from prometheus_client.mmap_dict import MmapedDict

    if directory is None:
        return []
    return [
        count
        for path in directory.glob("counter_*.db")
        for key, count, *_ in MmapedDict.read_all_values_from_file(str(path))
        if ACCEPTED in key and count
    ]


@pytest.mark.parametrize("own_directory", [False, True], ids=["made-by-gunicorn-conf", "given"])
def test_under_gunicorn_every_scrape_adds_up_every_worker_s_counts(
    gunicorn: Callable[..., Gunicorn], sims: Simulators, tmp_path: Path, own_directory: bool
) -> None:
    extra = {}
    given = None
    if own_directory:
        given = tmp_path / "metrics"
        given.mkdir()
        # What a worker of an earlier run left behind; counting starts afresh.
        (given / "counter_999999.db").write_bytes(b"left over")
        extra["PROMETHEUS_MULTIPROC_DIR"] = str(given)
    web = gunicorn(**extra)
    if given is not None:
        assert not (given / "counter_999999.db").exists()
    sent = 0
    # Sent at once, round after round, until both workers have taken some (a busy machine may hand one worker a
    # whole round).
    for _ in range(10):
        payloads = [invoice_request(sims) for _ in range(12)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda p: signed_post(web.base_url, "/actions/create_invoice", p), payloads))
        assert [a.status_code for a in answers] == [200] * 12
        sent += 12
        if given is None or len(counted_by_worker(given)) == 2:
            break

    for _ in range(6):
        samples = scrape(web.base_url)
        assert value(samples, ACCEPTED, **INVOICE) == sent
        assert value(samples, "qbo_actions_accept_seconds_count") == sent
        assert value(samples, "qbo_actions_executions", state="queued") == sent
    if given is not None:
        # Each worker counted in a file of its own: the sums above came from both.
        counted = counted_by_worker(given)
        assert len(counted) == 2 and sum(counted) == sent, counted
