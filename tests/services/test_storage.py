"""The Store on SQLite and PostgreSQL: executions and leases, callbacks, steps, tokens, mappings."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text, update

from services import migrate
from services.crypto import TokenCipher
from services.errors import TransientError
from services.models import Base, Execution, utcnow
from services.storage import NewExecution, Store

POSTGRES_URL = os.environ.get("QBO_TEST_POSTGRES_URL")
PORTAL_ID = 102670506
REALM_ID = "9130355"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not POSTGRES_URL, reason="QBO_TEST_POSTGRES_URL is not set"),
        ),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path, cipher: TokenCipher) -> Iterator[Store]:
    """A Store on a freshly migrated database of each kind."""
    if request.param == "sqlite":
        store = Store.from_url(f"sqlite:///{tmp_path / 'store.sqlite3'}", cipher)
    else:
        assert POSTGRES_URL
        store = Store.from_url(POSTGRES_URL, cipher)
        with store.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(store.engine)
    yield store
    store.engine.dispose()


_numbers = iter(range(1, 1_000_000))


def new_execution(callback_id: str | None = None, *, portal_id: int = PORTAL_ID, **overrides: Any) -> NewExecution:
    """Return what the edge accepts from HubSpot for one deal."""
    values: dict[str, Any] = {
        "callback_id": callback_id or f"ap-{portal_id}-{next(_numbers)}-0",
        "action": "create_invoice",
        "portal_id": portal_id,
        "realm_id": REALM_ID,
        "object_type": "DEAL",
        "object_id": "614",
        "inputs": {"quickbooks_account": REALM_ID, "create_missing_products": "no"},
        "object_properties": {"amount": "1200"},
    }
    values.update(overrides)
    return NewExecution(**values)


def accepted(store: Store, **overrides: Any) -> str:
    """Accept a new execution and return its id."""
    execution_id, _ = store.accept_execution(new_execution(**overrides))
    return execution_id


def finished(store: Store, *, succeeded: bool = True, **overrides: Any) -> str:
    """Accept an execution, run it and record its outcome; return its id."""
    execution_id = accepted(store, **overrides)
    token = store.acquire_lease(execution_id, 60)
    assert token
    outputs = {"hs_execution_state": "SUCCESS" if succeeded else "FAIL_CONTINUE", "quickbooks_id": execution_id[:6]}
    assert store.finish_execution(
        execution_id,
        token,
        succeeded=succeeded,
        output_fields=outputs,
        failure_reason=None if succeeded else "CUSTOMER_NOT_FOUND",
        failure_message=None if succeeded else "No customer",
    )
    return execution_id


def execution(store: Store, execution_id: str) -> Execution:
    row = store.get_execution(execution_id)
    assert row is not None
    return row


def backdate(store: Store, execution_id: str, moment: datetime) -> None:
    """Pretend an execution was last touched at ``moment``."""
    with store.engine.begin() as conn:
        conn.execute(update(Execution).where(Execution.id == execution_id).values(updated_at=moment))


def raw_row(store: Store, table: str) -> str:
    """Return every column of a table's rows as stored, joined as text."""
    with store.engine.connect() as conn:
        return repr(conn.execute(text(f"SELECT * FROM {table}")).all())


# accept_execution --------------------------------------------------------------------------------


def test_accepting_a_callback_twice_returns_the_first_execution(store: Store, request: pytest.FixtureRequest) -> None:
    first_id, first_created = store.accept_execution(new_execution("ap-1-2-3-0"))
    second_id, second_created = store.accept_execution(new_execution("ap-1-2-3-0", inputs={"other": "inputs"}))

    assert (first_created, second_created) == (True, False)
    assert second_id == first_id
    assert store.count(Execution) == 1
    row = execution(store, first_id)
    assert row.inputs == {"quickbooks_account": REALM_ID, "create_missing_products": "no"}
    assert (row.state, row.attempt_count, row.callback_state) == ("queued", 0, "none")


def test_accepting_one_callback_from_8_threads_at_once_creates_it_once(
    store: Store, request: pytest.FixtureRequest
) -> None:
    start = threading.Barrier(8)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def accept() -> None:
        start.wait()
        try:
            results.append(store.accept_execution(new_execution("ap-1-2-concurrent-0")))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=accept) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(results) == 8
    assert sum(created for _, created in results) == 1
    assert len({execution_id for execution_id, _ in results}) == 1
    assert store.count(Execution) == 1


def test_an_execution_is_found_by_its_id_or_its_callback_id(store: Store) -> None:
    execution_id = accepted(store, callback_id="ap-1-2-find-0")
    assert execution(store, execution_id).callback_id == "ap-1-2-find-0"
    found_by_callback = store.find_execution("ap-1-2-find-0")
    found_by_id = store.find_execution(execution_id)
    assert found_by_callback is not None and found_by_callback.id == execution_id
    assert found_by_id is not None and found_by_id.id == execution_id
    assert store.find_execution("ap-unknown") is None


# Leases ------------------------------------------------------------------------------------------


def test_a_lease_is_granted_only_once_while_it_is_held(store: Store) -> None:
    execution_id = accepted(store)

    token = store.acquire_lease(execution_id, 60)
    again = store.acquire_lease(execution_id, 60)

    assert token is not None
    assert again is None
    row = execution(store, execution_id)
    assert (row.state, row.lease_token, row.attempt_count) == ("running", token, 1)
    assert row.lease_expires_at is not None and row.lease_expires_at > utcnow() + timedelta(seconds=50)


def test_an_expired_lease_can_be_taken_over(store: Store) -> None:
    execution_id = accepted(store)
    first = store.acquire_lease(execution_id, -1)

    second = store.acquire_lease(execution_id, 60)

    assert first is not None and second is not None and second != first
    assert execution(store, execution_id).attempt_count == 2
    assert store.renew_lease(execution_id, first, 60) is False
    assert store.finish_execution(execution_id, first, succeeded=True, output_fields={}) is False


@pytest.mark.parametrize("succeeded", [True, False])
def test_a_finished_execution_is_never_leased_again(store: Store, succeeded: bool) -> None:
    execution_id = finished(store, succeeded=succeeded)
    assert store.acquire_lease(execution_id, 60) is None
    assert store.acquire_lease(execution_id, -1) is None
    assert execution(store, execution_id).state == ("succeeded" if succeeded else "failed")


def test_a_lease_of_an_unknown_execution_is_refused(store: Store) -> None:
    assert store.acquire_lease("0" * 32, 60) is None


def test_renewing_a_lease_needs_its_token(store: Store) -> None:
    execution_id = accepted(store)
    token = store.acquire_lease(execution_id, 10)
    assert token is not None

    assert store.renew_lease(execution_id, "wrong-token", 600) is False
    before = execution(store, execution_id).lease_expires_at
    assert store.renew_lease(execution_id, token, 600) is True
    after = execution(store, execution_id).lease_expires_at

    assert before is not None and after is not None and after > before + timedelta(seconds=500)


def test_finishing_needs_the_lease_token(store: Store) -> None:
    execution_id = accepted(store)
    assert store.acquire_lease(execution_id, 60)

    assert store.finish_execution(execution_id, "wrong-token", succeeded=True, output_fields={"x": 1}) is False

    row = execution(store, execution_id)
    assert (row.state, row.output_fields, row.callback_state) == ("running", None, "none")


def test_finishing_records_the_outcome_and_queues_the_callback(store: Store) -> None:
    execution_id = finished(store, succeeded=False)
    row = execution(store, execution_id)
    assert row.state == "failed"
    assert row.output_fields == {"hs_execution_state": "FAIL_CONTINUE", "quickbooks_id": execution_id[:6]}
    assert (row.failure_reason, row.failure_message) == ("CUSTOMER_NOT_FOUND", "No customer")
    assert (row.lease_token, row.lease_expires_at) == (None, None)
    assert row.callback_state == "pending"
    assert row.finished_at is not None


def test_a_released_execution_can_be_leased_again(store: Store) -> None:
    execution_id = accepted(store)
    token = store.acquire_lease(execution_id, 60)
    assert token is not None

    assert store.release_for_retry(execution_id, "wrong-token") is False
    assert store.release_for_retry(execution_id, token) is True

    assert execution(store, execution_id).state == "retrying"
    assert store.acquire_lease(execution_id, 60) is not None


def test_a_failed_execution_is_requeued_once(store: Store) -> None:
    execution_id = finished(store, succeeded=False)

    assert store.requeue_failed(execution_id) is True
    assert store.requeue_failed(execution_id) is False

    row = execution(store, execution_id)
    assert (row.state, row.failure_reason, row.failure_message) == ("queued", None, None)
    assert store.acquire_lease(execution_id, 60) is not None


def test_a_succeeded_execution_is_not_requeued(store: Store) -> None:
    execution_id = finished(store, succeeded=True)
    assert store.requeue_failed(execution_id) is False
    assert execution(store, execution_id).state == "succeeded"


def test_a_rerun_of_an_execution_hubspot_heard_about_has_no_callback_to_send(store: Store) -> None:
    execution_id = finished(store, succeeded=False)
    store.mark_callbacks([execution_id])
    store.requeue_failed(execution_id)
    token = store.acquire_lease(execution_id, 60)
    assert token

    assert store.finish_execution(execution_id, token, succeeded=True, output_fields={"quickbooks_id": "1"})

    assert execution(store, execution_id).callback_state == "sent"
    assert store.pending_callbacks(PORTAL_ID) == []


# Sweeping ----------------------------------------------------------------------------------------


def test_the_sweep_finds_old_queued_and_expired_running_executions_only(store: Store) -> None:
    long_ago = utcnow() - timedelta(minutes=10)
    old_queued = accepted(store)
    backdate(store, old_queued, long_ago)
    old_retrying = accepted(store)
    token = store.acquire_lease(old_retrying, 60)
    assert token and store.release_for_retry(old_retrying, token)
    backdate(store, old_retrying, long_ago)
    expired_running = accepted(store)
    assert store.acquire_lease(expired_running, -1)
    fresh_queued = accepted(store)
    live_running = accepted(store)
    assert store.acquire_lease(live_running, 600)
    backdate(store, live_running, long_ago)
    old_finished = finished(store)
    backdate(store, old_finished, long_ago)

    swept = store.executions_to_sweep(queued_before=utcnow() - timedelta(minutes=1))

    assert dict(swept) == {old_queued: "queued", old_retrying: "retrying", expired_running: "running"}
    assert fresh_queued not in dict(swept)


def test_the_sweep_takes_a_fresh_queued_execution_once_the_cut_off_passes_it(store: Store) -> None:
    execution_id = accepted(store)
    assert store.executions_to_sweep(queued_before=utcnow() - timedelta(seconds=30)) == []
    assert store.executions_to_sweep(queued_before=utcnow() + timedelta(seconds=1)) == [(execution_id, "queued")]


# Callbacks ---------------------------------------------------------------------------------------


def test_finished_executions_wait_as_pending_callbacks_until_marked(store: Store) -> None:
    first = finished(store)
    second = finished(store, succeeded=False)
    other_portal = finished(store, portal_id=555)
    accepted(store)  # still queued: nothing to report

    pending = store.pending_callbacks(PORTAL_ID)

    assert [(execution_id, outputs) for execution_id, _, outputs in pending] == [
        (first, execution(store, first).output_fields),
        (second, execution(store, second).output_fields),
    ]
    assert [callback_id for _, callback_id, _ in pending] == [
        execution(store, first).callback_id,
        execution(store, second).callback_id,
    ]
    assert sorted(store.portals_with_pending_callbacks(utcnow() + timedelta(seconds=1))) == [555, PORTAL_ID]
    assert store.portals_with_pending_callbacks(utcnow() - timedelta(minutes=1)) == []

    store.mark_callbacks([first, second])

    assert store.pending_callbacks(PORTAL_ID) == []
    assert [execution_id for execution_id, _, _ in store.pending_callbacks(555)] == [other_portal]
    row = execution(store, first)
    assert row.callback_state == "sent" and row.callback_sent_at is not None


def test_callbacks_can_be_marked_with_another_state(store: Store) -> None:
    execution_id = finished(store)
    store.mark_callbacks([execution_id], state="rejected")
    store.mark_callbacks([])
    assert execution(store, execution_id).callback_state == "rejected"
    assert store.pending_callbacks(PORTAL_ID) == []


def test_pending_callbacks_are_limited(store: Store) -> None:
    for _ in range(3):
        finished(store)
    assert len(store.pending_callbacks(PORTAL_ID, limit=2)) == 2


# Steps and attempts ------------------------------------------------------------------------------


def test_saving_a_step_again_updates_it(store: Store) -> None:
    execution_id = accepted(store)
    store.save_step(execution_id, "create:Invoice", "started", {"requestid": "r-1"})
    store.save_step(execution_id, "create:Invoice", "done", {"requestid": "r-1", "id": "145"})
    store.save_step(execution_id, "create:Customer", "done", {"id": "58"})

    steps = store.steps(execution_id)

    assert sorted(steps) == ["create:Customer", "create:Invoice"]
    assert (steps["create:Invoice"].status, steps["create:Invoice"].data) == ("done", {"requestid": "r-1", "id": "145"})
    assert store.steps(accepted(store)) == {}


def test_attempts_record_how_a_run_ended(store: Store) -> None:
    execution_id = accepted(store)
    first = store.start_attempt(execution_id, 1)
    error = TransientError("QuickBooks: down", service="quickbooks", http_status=503, code="10000", request_id="1-abc")
    store.finish_attempt(first, "retrying", error=error)
    store.start_attempt(execution_id, 2)
    store.abandon_running_attempts(execution_id)

    attempts = store.attempts(execution_id)

    assert [(a.number, a.outcome) for a in attempts] == [(1, "retrying"), (2, "abandoned")]
    assert (attempts[0].error_service, attempts[0].error_code, attempts[0].http_status, attempts[0].request_id) == (
        "quickbooks",
        "10000",
        503,
        "1-abc",
    )
    assert attempts[1].finished_at is not None


# Tokens ------------------------------------------------------------------------------------------


def test_quickbooks_tokens_are_encrypted_at_rest_and_decrypt_back(store: Store) -> None:
    expires = utcnow() + timedelta(hours=1)
    connection_id = store.save_quickbooks_connection(
        PORTAL_ID, REALM_ID, "qbo-refresh-PLAINTEXT", "qbo-access-PLAINTEXT", expires, "Sim Co"
    )

    stored = raw_row(store, "quickbooks_connections")
    assert "PLAINTEXT" not in stored
    assert "Sim Co" in stored  # the row was read
    tokens = store.quickbooks_tokens(connection_id)
    assert (tokens.access_token, tokens.refresh_token) == ("qbo-access-PLAINTEXT", "qbo-refresh-PLAINTEXT")
    assert tokens.access_expires_at is not None
    assert abs((tokens.access_expires_at - expires).total_seconds()) < 1
    assert tokens.access_token_valid()


def test_hubspot_tokens_are_encrypted_at_rest_and_decrypt_back(store: Store) -> None:
    store.save_hubspot_portal(
        PORTAL_ID, "hs-refresh-PLAINTEXT", "hs-access-PLAINTEXT", utcnow() + timedelta(minutes=30)
    )

    assert "PLAINTEXT" not in raw_row(store, "hubspot_portals")
    tokens = store.hubspot_tokens(PORTAL_ID)
    assert tokens is not None
    assert (tokens.access_token, tokens.refresh_token) == ("hs-access-PLAINTEXT", "hs-refresh-PLAINTEXT")
    assert store.hubspot_tokens(999) is None
    assert store.list_hubspot_portals() == [PORTAL_ID]


def test_saving_refreshed_quickbooks_tokens_stores_both(store: Store) -> None:
    connection_id = store.save_quickbooks_connection(PORTAL_ID, REALM_ID, "refresh-1", "access-1", None)
    store.mark_quickbooks_revoked(connection_id)
    expires = utcnow() + timedelta(hours=1)

    store.save_quickbooks_tokens(connection_id, "access-2-PLAINTEXT", expires, "refresh-2-PLAINTEXT")

    tokens = store.quickbooks_tokens(connection_id)
    assert (tokens.access_token, tokens.refresh_token) == ("access-2-PLAINTEXT", "refresh-2-PLAINTEXT")
    assert "PLAINTEXT" not in raw_row(store, "quickbooks_connections")
    connection = store.quickbooks_connection(PORTAL_ID, REALM_ID)
    assert connection is not None
    assert connection.status == "active" and connection.refreshed_at is not None


def test_a_revoked_connection_loses_its_access_token(store: Store) -> None:
    connection_id = store.save_quickbooks_connection(PORTAL_ID, REALM_ID, "refresh-1", "access-1", None)
    store.mark_quickbooks_revoked(connection_id)
    connection = store.quickbooks_connection(PORTAL_ID, REALM_ID)
    assert connection is not None and connection.status == "revoked"
    assert store.quickbooks_tokens(connection_id).access_token is None


def test_connecting_a_company_again_replaces_its_connection(store: Store) -> None:
    first = store.save_quickbooks_connection(PORTAL_ID, REALM_ID, "refresh-1", "access-1", None, "Old name")
    second = store.save_quickbooks_connection(PORTAL_ID, REALM_ID, "refresh-2", None, None)

    assert second == first
    assert [c.name for c in store.list_quickbooks_connections(PORTAL_ID)] == ["Old name"]
    assert store.quickbooks_tokens(first).refresh_token == "refresh-2"
    assert store.quickbooks_connection(PORTAL_ID, "other-realm") is None


# Mappings and payment documents ------------------------------------------------------------------


def test_product_mappings_are_upserted_per_company(store: Store) -> None:
    store.save_product_mapping(REALM_ID, "p-1", "11")
    store.save_product_mapping(REALM_ID, "p-1", "12")
    store.save_product_mapping(REALM_ID, "p-2", "21")
    store.save_product_mapping("other-realm", "p-3", "31")

    assert store.product_mappings(REALM_ID, ["p-1", "p-2", "p-3"]) == {"p-1": "12", "p-2": "21"}
    assert store.product_mappings(REALM_ID, []) == {}
    store.forget_mappings_to(REALM_ID, customer_id=None, item_ids=["12"])
    assert store.product_mappings(REALM_ID, ["p-1", "p-2"]) == {"p-2": "21"}


def test_customer_mappings_are_upserted_per_company(store: Store) -> None:
    store.save_customer_mapping(REALM_ID, "c-51", "58")
    store.save_customer_mapping(REALM_ID, "c-51", "59")

    assert store.customer_mapping(REALM_ID, "c-51") == "59"
    assert store.customer_mapping("other-realm", "c-51") is None
    store.forget_mappings_to(REALM_ID, customer_id="59", item_ids=[])
    assert store.customer_mapping(REALM_ID, "c-51") is None


def test_a_payment_document_belongs_to_the_first_execution_that_claims_it(store: Store) -> None:
    first, second = accepted(store), accepted(store)

    assert store.claim_payment_document(REALM_ID, "pay-1", "sales_receipt", first) == first
    assert store.claim_payment_document(REALM_ID, "pay-1", "sales_receipt", second) == first
    assert store.claim_payment_document(REALM_ID, "pay-1", "fee", second) == second
    assert store.claim_payment_document("other-realm", "pay-1", "sales_receipt", second) == second


# Company settings and profile --------------------------------------------------------------------


def test_company_settings_round_trip(store: Store) -> None:
    assert store.company_settings(REALM_ID) == {}
    settings = {"contact_sync": {"mode": "filters", "filter_groups": [{"filters": []}]}, "default_tax_code": "7"}
    store.save_company_settings(REALM_ID, settings)
    store.save_company_settings(REALM_ID, {**settings, "default_tax_code": "8"})
    assert store.company_settings(REALM_ID) == {**settings, "default_tax_code": "8"}


def test_company_profile_round_trip(store: Store) -> None:
    assert store.company_profile(REALM_ID) is None
    store.save_company_profile(REALM_ID, {"country": "US", "home_currency": "USD"})
    store.save_company_profile(REALM_ID, {"country": "CA", "home_currency": "CAD"})

    cached = store.company_profile(REALM_ID)

    assert cached is not None
    profile, fetched_at = cached
    assert profile == {"country": "CA", "home_currency": "CAD"}
    assert abs((fetched_at - utcnow()).total_seconds()) < 30


# Schema ------------------------------------------------------------------------------------------


def test_the_migrated_schema_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
