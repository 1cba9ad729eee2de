"""Shared fixtures: simulators over HTTP, real Redis, a database, the app on a port, workers.

The suite is laid out like the code: ``unit/`` (pure rules, no Redis, database or sockets), ``integration/``
(the store on both databases, the clients against the simulators, the command line), ``e2e/`` (HTTP through
the queue and a worker). Each test is marked with its directory's name, so ``pytest -m unit`` runs the fast part.

Under pytest-xdist every worker gets a Redis database and a PostgreSQL schema of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import responses
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.worker import DequeueStrategy

from actions.app import create_app
from services import bootstrap
from services.bootstrap import Services
from services.clock import utcnow
from services.config import Config
from services.store import migrate
from services.store.crypto import TokenCipher
from services.store.models import ExecutionRow
from services.store.records import Execution
from services.store.repositories import Repositories
from services.work.relay import relay_everything
from simulators import hubspot as hubspot_sim
from simulators import quickbooks as quickbooks_sim
from simulators.scenario import (
    HUBSPOT_ACCESS_TOKEN,
    HUBSPOT_REFRESH_TOKEN,
    PORTAL_ID,
    QBO_ACCESS_TOKEN,
    QBO_REFRESH_TOKEN,
    REALM_ID,
    Simulators,
)
from simulators.serve import RunningServer, start_in_thread
from tests.builders import CLIENT_SECRET, execution_body, signed_post

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("unit", "integration", "e2e")
# "gw0", "gw1", ... under pytest-xdist; empty when the suite runs in one process.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_NUMBER = int(XDIST_WORKER[2:]) + 1 if XDIST_WORKER.startswith("gw") else 0


# What Intuit signs change notifications with (the simulator is configured with it in the tests that use them).
WEBHOOK_TOKEN = "sim-webhook-verifier"


def _redis_url_of_worker(url: str) -> str:
    """Return the Redis URL with this worker's database number (0 without xdist, 1 for gw0, ...)."""
    base, _, _db = url.rpartition("/")
    return f"{base}/{WORKER_NUMBER}"


def _postgres_url_of_worker(url: str | None) -> str | None:
    """Return the PostgreSQL URL that puts this worker's tables in a schema of its own."""
    if not url:
        return None
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{POSTGRES_SCHEMA}"


REDIS_URL = _redis_url_of_worker(os.environ.get("QBO_TEST_REDIS_URL", "redis://127.0.0.1:6390/0"))
POSTGRES_SCHEMA = f"test_{XDIST_WORKER or 'main'}"
POSTGRES_URL = _postgres_url_of_worker(os.environ.get("QBO_TEST_POSTGRES_URL"))
TOKEN_KEY = TokenCipher.generate_key()
OPS_JWT_SECRET = "test-operators-secret-of-at-least-32-bytes"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the layer its directory names; run the slow ones first, so xdist spreads them out."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def cipher() -> TokenCipher:
    return TokenCipher(TokenCipher.generate_key())


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """Stubbed HTTP that fails on unexpected requests and on stubs that were never called."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def sqlite_repos(tmp_path: Path, cipher: TokenCipher) -> Iterator[Repositories]:
    """The repositories on a migrated SQLite file of their own."""
    repos = Repositories.open(f"sqlite:///{tmp_path / 'store.sqlite3'}", cipher)
    migrate.upgrade(repos.database.engine)
    yield repos
    repos.database.dispose()


def fresh_postgres(cipher: TokenCipher, revision: str = "head") -> Repositories:
    """Return the repositories on this worker's PostgreSQL schema, emptied and migrated to ``revision``."""
    assert POSTGRES_URL, "QBO_TEST_POSTGRES_URL is not set"
    repos = Repositories.open(POSTGRES_URL, cipher)
    with repos.database.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {POSTGRES_SCHEMA} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {POSTGRES_SCHEMA}")
    migrate.upgrade(repos.database.engine, revision)
    return repos


@pytest.fixture(scope="session")
def qbo_server() -> Iterator[RunningServer]:
    server = start_in_thread(quickbooks_sim.create_app())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hubspot_server() -> Iterator[RunningServer]:
    simulator = hubspot_sim.HubSpotSimulator()
    # HubSpot signs requests with the app's client secret, the same one the token endpoint checks.
    simulator.client_secret = CLIENT_SECRET
    server = start_in_thread(hubspot_sim.create_app(simulator))
    yield server
    server.stop()


@pytest.fixture
def sims(qbo_server: RunningServer, hubspot_server: RunningServer) -> Simulators:
    """Both simulators, emptied, with the standard company and portal."""
    world = Simulators(qbo_server.base_url, hubspot_server.base_url)
    world.reset()
    world.add_company(REALM_ID)
    world.add_portal(PORTAL_ID)
    return world


@pytest.fixture
def redis_connection() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        connection.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis does not answer at {REDIS_URL}; run the tests through `make test`.")
    connection.flushdb()
    yield connection
    connection.flushdb()


def environment(sims: Simulators, database_url: str, queue_name: str, **extra: str) -> dict[str, str]:
    """Return the environment a web or worker process of the tests runs with."""
    return {
        "HUBSPOT_CLIENT_ID": "sim-hs-client",
        "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
        "QUICKBOOKS_CLIENT_ID": "sim-client",
        "QUICKBOOKS_CLIENT_SECRET": "sim-secret",
        "SECRET_KEY": "test-secret-key",
        "TOKEN_ENCRYPTION_KEY": TOKEN_KEY,
        "REDIS_URL": REDIS_URL,
        "DATABASE_URL": database_url,
        "HUBSPOT_API_BASE_URL": sims.hubspot_url,
        "QUICKBOOKS_API_BASE_URL": f"{sims.quickbooks_url}/v3",
        "QUICKBOOKS_TOKEN_URL": f"{sims.quickbooks_url}/oauth2/v1/tokens/bearer",
        "QUICKBOOKS_AUTHORIZE_URL": f"{sims.quickbooks_url}/connect/oauth2",
        "QUICKBOOKS_REVOKE_URL": f"{sims.quickbooks_url}/v2/oauth2/tokens/revoke",
        "HUBSPOT_AUTHORIZE_URL": f"{sims.hubspot_url}/oauth/authorize",
        "QUICKBOOKS_ENVIRONMENT": "sandbox",
        "QUEUE_NAME": queue_name,
        "RETRY_INTERVALS": "1,1,1",
        "LEASE_SECONDS": "30",
        "JOB_TIMEOUT": "15",
        "SWEEP_INTERVAL": "1",
        "HTTP_TIMEOUT": "10",
        "QUICKBOOKS_THROTTLE_BACKOFF": "1",
        # The limits of the simulators: HubSpot's allows 100 calls per 10 s per portal (HubSpot itself 110), and
        # QuickBooks' has no per-second limit unless a test sets one (so a job that makes a dozen calls in a second
        # does not wait out a job time limit of one second).
        "HUBSPOT_CALLS_PER_10S": "100",
        "QUICKBOOKS_CALLS_PER_SECOND": "1000",
        "OPS_JWT_SECRET": OPS_JWT_SECRET,
        # Callbacks are sent at once in tests; tests/e2e/test_callbacks.py checks the delay on its own.
        "CALLBACK_FLUSH_DELAY": "0",
        "STATUS_FLUSH_DELAY": "0",
        "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN": WEBHOOK_TOKEN,
        **extra,
    }


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'qbo-actions.sqlite3'}"


# How documents go to QuickBooks: as the server decides (auto), one call each, or always in batches. The
# exactly-once, retry and kill-a-worker tests run in the last two by overriding the write_mode fixture.
WRITE_MODES = {
    "auto": {},
    "single": {"QUICKBOOKS_BATCH_WRITES": "off"},
    "batched": {"QUICKBOOKS_BATCH_WRITES": "on", "QUICKBOOKS_BATCH_FILL_MS": "0"},
}


@pytest.fixture
def write_mode() -> str:
    return "auto"


@pytest.fixture
def env(sims: Simulators, database_url: str, write_mode: str) -> dict[str, str]:
    return environment(sims, database_url, f"test-{uuid.uuid4().hex[:8]}", **WRITE_MODES[write_mode])


@pytest.fixture
def services(env: dict[str, str], redis_connection: redis.Redis) -> Iterator[Services]:
    """The server's services on a migrated database, with the standard portal and company connected."""
    svc = bootstrap.bootstrap(Config.from_env(env), redis_connection=redis_connection)
    migrate.upgrade(svc.database.engine)
    connect_standard(svc)
    with bootstrap.installed(svc):
        yield svc
    svc.intake.stop()
    svc.database.engine.dispose()


def connect_standard(svc: Services, portal_id: int = PORTAL_ID, realm_id: str = REALM_ID) -> None:
    """Store the tokens the simulators issued for the standard portal and company."""
    svc.connections.save_portal(
        portal_id, f"{HUBSPOT_REFRESH_TOKEN}-{portal_id}", f"{HUBSPOT_ACCESS_TOKEN}-{portal_id}", None
    )
    svc.connections.save_quickbooks(
        portal_id, realm_id, f"{QBO_REFRESH_TOKEN}-{realm_id}", f"{QBO_ACCESS_TOKEN}-{realm_id}", None, "Sim Co"
    )
    # The stored access tokens have no expiry recorded; mark them valid for an hour.
    from datetime import timedelta

    connection = svc.connections.quickbooks(portal_id, realm_id)
    assert connection is not None
    svc.connections.save_quickbooks_tokens(
        connection.id,
        f"{QBO_ACCESS_TOKEN}-{realm_id}",
        utcnow() + timedelta(hours=1),
        f"{QBO_REFRESH_TOKEN}-{realm_id}",
    )
    svc.connections.save_portal(
        portal_id,
        f"{HUBSPOT_REFRESH_TOKEN}-{portal_id}",
        f"{HUBSPOT_ACCESS_TOKEN}-{portal_id}",
        utcnow() + timedelta(minutes=30),
    )


@pytest.fixture
def server(services: Services) -> Iterator[str]:
    """The app served over HTTP on a free port; yields its base URL."""
    running = start_in_thread(create_app(services=services))
    yield running.base_url
    running.stop()


def drain(svc: Services, *, timeout: float = 30) -> None:
    """Run every queued job in this process, including retries once they are due.

    The jobs of executions accepted a moment ago may still be on their way to the queue (the relay): they are
    queued first, so that the worker does not find the queue empty and stop.
    """
    relay_everything(svc.outbox, svc.queue)
    queues = svc.queue.all_queues
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        SimpleWorker(queues, connection=svc.redis).work(burst=True, dequeue_strategy=DequeueStrategy.ROUND_ROBIN)
        registries = [(queue, ScheduledJobRegistry(queue=queue)) for queue in queues]
        if not any(registry.get_job_ids() for _, registry in registries):
            return
        time.sleep(0.2)
        for queue, registry in registries:
            for job_id in registry.get_jobs_to_schedule(int(time.time()) + 1):
                job = queue.fetch_job(job_id)
                registry.remove(job_id)
                if job is not None:
                    queue._enqueue_job(job)
    raise AssertionError("jobs still scheduled after the timeout")


@pytest.fixture
def run_jobs(services: Services) -> Callable[..., None]:
    """Run the queued jobs in this process (an RQ SimpleWorker on the real Redis)."""
    return lambda **kwargs: drain(services, **kwargs)


def descendants(pid: int) -> list[int]:
    """Return the pids of every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # The parent pid is the 2nd field after the command, which may itself contain spaces.
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class WorkerProcess:
    """A real `qbo-actions worker` process (or another command of the Procfile, such as the sweeper)."""

    def __init__(self, env: dict[str, str], log_path: Path, command: tuple[str, ...] = ("worker",)) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "actions.cli", *self.command],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """Kill the worker and its work horses at once, as a crash or an OOM kill would."""
        if self.process and self.process.poll() is None:
            # RQ puts each work horse in a session of its own, so the process group is not enough.
            for pid in [self.process.pid, *descendants(self.process.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            for pid in descendants(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(env: dict[str, str], services: Services, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes (with their scheduler) on the test's queue and database, and a sweeper."""
    workers: list[WorkerProcess] = []

    def start(**extra: str) -> WorkerProcess:
        if not workers:
            sweeper = WorkerProcess({**env, **extra}, tmp_path / "sweeper.log", ("sweep", "--forever"))
            workers.append(sweeper.start())
        worker = WorkerProcess({**env, **extra}, tmp_path / f"worker-{len(workers)}.log").start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for(condition: Callable[[], Any], timeout: float = 30, interval: float = 0.1) -> Any:
    """Poll until ``condition`` returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def execution_by_callback(svc: Services, callback_id: str) -> Execution | None:
    """Return the execution recorded for a callbackId."""
    return svc.executions.find(callback_id)


def age_executions(svc: Services, seconds: int) -> None:
    """Pretend every execution was last touched ``seconds`` ago (so the sweeper looks at it)."""
    from datetime import timedelta

    from sqlalchemy import update

    with svc.database.engine.begin() as conn:
        conn.execute(update(ExecutionRow).values(updated_at=utcnow() - timedelta(seconds=seconds)))


def set_execution(svc: Services, execution_id: str, **values: Any) -> None:
    """Change an execution's columns directly, as an outage or an old release might have left them."""
    from sqlalchemy import update

    with svc.database.engine.begin() as conn:
        conn.execute(update(ExecutionRow).where(ExecutionRow.id == execution_id).values(**values))


Perform = Callable[..., Execution]


@pytest.fixture
def perform(server: str, services: Services, run_jobs: Callable[..., None]) -> Perform:
    """Send a signed execution, run the jobs it queued, and return the recorded execution."""

    def send(object_id: str, action: str = "create_invoice", **body: Any) -> Execution:
        payload = execution_body(object_id, **body)
        response = signed_post(server, f"/actions/{action}", payload)
        assert response.status_code == 200, response.text
        run_jobs()
        execution = services.executions.find(payload["callbackId"])
        assert execution is not None
        return execution

    return send


@pytest.fixture
def settings(services: Services, sims: Simulators) -> Callable[..., None]:
    """Set the standard company's settings (legacy contact sync and an income account by default)."""

    def apply(**values: Any) -> None:
        document = {"contact_sync": {"mode": "legacy"}, "default_income_account": sims.account_id("Services")}
        document.update(values)
        services.companies.save_settings(REALM_ID, document)

    apply()
    return apply


def only_callback(sims: Simulators, execution: Execution) -> dict[str, Any]:
    completions = sims.callbacks(execution.callback_id)
    assert len(completions) == 1, completions
    return completions[0]["output_fields"]  # type: ignore[no-any-return]


def qbo_writes(sims: Simulators, entity: str) -> list[dict[str, Any]]:
    return [r for r in sims.qbo_requests() if r["method"] == "POST" and r["path"].endswith(f"/{entity}")]
