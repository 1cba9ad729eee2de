"""A Run over fakes that record: the rules tested without Redis, a database or a server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.books.run import Run
from services.clock import utcnow
from services.store.records import Execution, Tenant
from tests.fakes import FakeLedger, FakeLocks, FakeProfiles, FakeQuickBooks

REALM_ID = "9130355"
PORTAL_ID = 102670506
TENANT = Tenant(PORTAL_ID, REALM_ID)
US_PROFILE = {
    "country": "US",
    "home_currency": "USD",
    "multicurrency": False,
    "custom_txn_numbers": False,
    "terms": {"3": 30},
}


def execution(**overrides: Any) -> Execution:
    """Return an execution record of an invoice for deal 614."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": "e-1",
        "callback_id": "ap-1",
        "action": "create_invoice",
        "portal_id": PORTAL_ID,
        "realm_id": REALM_ID,
        "object_type": "DEAL",
        "object_id": "614",
        "inputs": {"quickbooks_account": REALM_ID},
        "state": "running",
        "attempt_count": 1,
        "failure_reason": None,
        "failure_message": None,
        "failure_details": None,
        "output_fields": None,
        "callback_state": "none",
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
        "lease_token": "t",
        "lease_expires_at": None,
        "callback_sent_at": None,
        "expires_at": None,
        "held_until": None,
    }
    values.update(overrides)
    return Execution(**values)


class Lease:
    """A lease keeper that can be lost, and counts renewals."""

    def __init__(self) -> None:
        self.held = True
        self.renewals = 0

    def __call__(self) -> bool:
        self.renewals += 1
        return self.held


MakeRun = Callable[..., Run]


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger()


@pytest.fixture
def locks() -> FakeLocks:
    return FakeLocks()


@pytest.fixture
def qbo() -> FakeQuickBooks:
    return FakeQuickBooks(REALM_ID)


@pytest.fixture
def lease() -> Lease:
    return Lease()


@pytest.fixture
def make_run(ledger: FakeLedger, locks: FakeLocks, qbo: FakeQuickBooks, lease: Lease) -> MakeRun:
    """Build a Run over the fakes; a US company profile is cached unless ``profile`` says otherwise."""

    def build(*, inputs: dict[str, Any] | None = None, settings: dict[str, Any] | None = None, **kw: Any) -> Run:
        profiles = FakeProfiles()
        profiles.save_profile(REALM_ID, kw.pop("profile", US_PROFILE))
        record = execution(inputs={"quickbooks_account": REALM_ID, **(inputs or {})}, **kw)
        return Run(
            execution=record,
            qbo=qbo,  # type: ignore[arg-type]
            hubspot=None,  # type: ignore[arg-type]
            settings=settings or {},
            ledger=ledger,
            locks=locks,
            profiles=profiles,
            keep_lease=lease,
            app_url="https://app.sandbox.qbo.intuit.com",
            steps=ledger.steps(record.id),
        )

    return build
