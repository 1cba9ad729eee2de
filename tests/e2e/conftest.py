"""Fixtures of the end-to-end tests: an admin's browser on the install and settings pages, and worlds whose own
database and Redis the tests stop (outages, chaos)."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from actions.app import create_app
from services import bootstrap
from services.bootstrap import Services
from services.config import Config
from services.store import migrate
from services.store.records import Execution
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal
from simulators.serve import start_in_thread
from tests.builders import execution_body, sales_inputs, signed_post
from tests.conftest import WRITE_MODES, WorkerProcess, connect_standard, drain, environment, wait_for
from tests.servers import PostgresServer, RedisServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# The flags Chromium needs to run as root in a container with no network beyond loopback.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.remove()


class World:
    """The app, a worker and their private database and Redis, which the test may stop and start."""

    def __init__(
        self,
        sims: Simulators,
        postgres: PostgresServer,
        redis_server: RedisServer,
        tmp_path: Path,
        write_mode: str = "auto",
    ) -> None:
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
            **WRITE_MODES[write_mode],
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
        self.tmp_path = tmp_path
        self.workers: list[WorkerProcess] = []
        self.worker = self.start_worker()
        self.sweeper = WorkerProcess(self.env, tmp_path / "sweeper.log", ("sweep", "--forever")).start()

    def start_worker(self) -> WorkerProcess:
        """Start one more `qbo-actions worker` process on the world's queue."""
        worker = WorkerProcess(self.env, self.tmp_path / f"worker-{len(self.workers)}.log").start()
        self.workers.append(worker)
        return worker

    def send(self, object_id: str, **body: Any) -> str:
        payload = execution_body(object_id, inputs=sales_inputs(create_missing_products="yes"), **body)
        self.post(payload)
        return str(payload["callbackId"])

    def post(self, payload: dict[str, Any]) -> None:
        """Deliver an execution request, as HubSpot does (again, when it redelivers)."""
        response = signed_post(self.web.base_url, "/actions/create_invoice", payload)
        assert response.status_code == 200, response.text

    def execution(self, callback_id: str) -> Execution | None:
        try:
            return self.services.executions.find(callback_id)
        except Exception:  # the database may be down while the test polls
            return None

    def invoice_in_flight(self) -> bool:
        return any(r["method"] == "POST" and r["path"].endswith("/invoice") for r in self.sims.qbo_requests())

    def close(self) -> None:
        self.sweeper.stop()
        for worker in self.workers:
            worker.stop()
        self.web.stop()
        self.services.intake.stop()
        self.services.database.dispose()


@pytest.fixture
def world(sims: Simulators, postgres: PostgresServer, tmp_path: Path, write_mode: str) -> Iterator[World]:
    redis_server = RedisServer().start()
    built = World(sims, postgres, redis_server, tmp_path, write_mode)
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


OTHER_PORTAL, OTHER_REALM = 243199551, "4620816365"


@pytest.fixture
def bare(env: dict[str, str], redis_connection: redis.Redis, sims: Simulators) -> Iterator[Services]:
    """The server's services on a migrated database with nothing installed yet."""
    svc = bootstrap.bootstrap(Config.from_env(env), redis_connection=redis_connection)
    migrate.upgrade(svc.database.engine)
    sims.add_company(OTHER_REALM, name="Other Books Ltd")
    sims.add_portal(OTHER_PORTAL)
    with bootstrap.installed(svc):
        yield svc
    svc.database.dispose()


@pytest.fixture
def site(bare: Services) -> Iterator[str]:
    running = start_in_thread(create_app(services=bare))
    yield running.base_url
    running.stop()


class Admin:
    """A HubSpot admin's browser: it keeps its cookies and follows redirects across the three servers."""

    def __init__(self, site: str, sims: Simulators) -> None:
        self.site, self.sims = site, sims
        self.http = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.site + path, timeout=10, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> requests.Response:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf_token()
        return self.http.post(self.site + path, data=form, timeout=10)

    def csrf_token(self) -> str:
        match = re.search(r'name="csrf_token" value="([^"]+)"', self.get("/settings").text)
        assert match, "the settings page carries a CSRF token"
        return match.group(1)

    def install(self, portal_id: int = PORTAL_ID) -> requests.Response:
        self.sims.hubspot_settings(auto_approve_portal=portal_id)
        return self.get("/oauth/hubspot/install")

    def connect(self, realm_id: str = REALM_ID) -> requests.Response:
        self.sims.quickbooks_config(auto_approve_realm=realm_id)
        return self.get("/oauth/quickbooks/connect")


def run_invoice(
    site: str, services: Services, sims: Simulators, portal_id: int = PORTAL_ID, realm_id: str = REALM_ID
) -> Any:
    deal = seed_deal(sims, portal_id=portal_id)
    payload = execution_body(
        deal["deal"],
        inputs=sales_inputs(quickbooks_account=realm_id, create_missing_products="yes"),
        portal_id=portal_id,
    )
    assert signed_post(site, "/actions/create_invoice", payload).status_code == 200
    drain(services)
    return services.executions.find(payload["callbackId"])


# A real browser (headless Chromium from Debian's package, driven by Playwright) ---------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is missing: run the tests through `make test`, which installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
