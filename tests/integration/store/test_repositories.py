"""The repositories on SQLite and PostgreSQL: executions and leases, callbacks, steps, tokens, mappings."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text, update

from services.clock import utcnow
from services.store.models import Base, ExecutionRow
from services.store.records import Execution, NewExecution, Tenant
from services.store.repositories import Repositories
from services.transport.errors import TransientError

PORTAL_ID = 102670506
REALM_ID = "9130355"
TENANT = Tenant(PORTAL_ID, REALM_ID)


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
    }
    values.update(overrides)
    return NewExecution(**values)


def accepted(repos: Repositories, **overrides: Any) -> str:
    """Accept a new execution and return its id."""
    execution_id, _ = repos.executions.accept(new_execution(**overrides))
    return execution_id


def finished(repos: Repositories, *, succeeded: bool = True, **overrides: Any) -> str:
    """Accept an execution, run it and record its outcome; return its id."""
    execution_id = accepted(repos, **overrides)
    token = repos.executions.acquire_lease(execution_id, 60)
    assert token
    outputs = {"hs_execution_state": "SUCCESS" if succeeded else "FAIL_CONTINUE", "quickbooks_id": execution_id[:6]}
    assert repos.executions.finish(
        execution_id,
        token,
        succeeded=succeeded,
        output_fields=outputs,
        failure_reason=None if succeeded else "CUSTOMER_NOT_FOUND",
        failure_message=None if succeeded else "No customer",
    )
    return execution_id


def execution(repos: Repositories, execution_id: str) -> Execution:
    row = repos.executions.get(execution_id)
    assert row is not None
    return row


def backdate(repos: Repositories, execution_id: str, moment: datetime) -> None:
    """Pretend an execution was last touched at ``moment``."""
    with repos.database.engine.begin() as conn:
        conn.execute(update(ExecutionRow).where(ExecutionRow.id == execution_id).values(updated_at=moment))


def raw_row(repos: Repositories, table: str) -> str:
    """Return every column of a table's rows as stored, joined as text."""
    with repos.database.engine.connect() as conn:
        return repr(conn.execute(text(f"SELECT * FROM {table}")).all())


# accept_execution --------------------------------------------------------------------------------


def test_accepting_a_callback_twice_returns_the_first_execution(
    repos: Repositories, request: pytest.FixtureRequest
) -> None:
    first_id, first_created = repos.executions.accept(new_execution("ap-1-2-3-0"))
    second_id, second_created = repos.executions.accept(new_execution("ap-1-2-3-0", inputs={"other": "inputs"}))

    assert (first_created, second_created) == (True, False)
    assert second_id == first_id
    assert repos.database.count("executions") == 1
    row = execution(repos, first_id)
    assert row.inputs == {"quickbooks_account": REALM_ID, "create_missing_products": "no"}
    assert (row.state, row.attempt_count, row.callback_state) == ("queued", 0, "none")


def test_accepting_one_callback_from_8_threads_at_once_creates_it_once(
    repos: Repositories, request: pytest.FixtureRequest
) -> None:
    start = threading.Barrier(8)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def accept() -> None:
        start.wait()
        try:
            results.append(repos.executions.accept(new_execution("ap-1-2-concurrent-0")))
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
    assert repos.database.count("executions") == 1


def test_an_execution_is_found_by_its_id_or_its_callback_id(repos: Repositories) -> None:
    execution_id = accepted(repos, callback_id="ap-1-2-find-0")
    assert execution(repos, execution_id).callback_id == "ap-1-2-find-0"
    found_by_callback = repos.executions.find("ap-1-2-find-0")
    found_by_id = repos.executions.find(execution_id)
    assert found_by_callback is not None and found_by_callback.id == execution_id
    assert found_by_id is not None and found_by_id.id == execution_id
    assert repos.executions.find("ap-unknown") is None


# Leases ------------------------------------------------------------------------------------------


def test_a_lease_is_granted_only_once_while_it_is_held(repos: Repositories) -> None:
    execution_id = accepted(repos)

    token = repos.executions.acquire_lease(execution_id, 60)
    again = repos.executions.acquire_lease(execution_id, 60)

    assert token is not None
    assert again is None
    row = execution(repos, execution_id)
    assert (row.state, row.lease_token, row.attempt_count) == ("running", token, 1)
    assert row.lease_expires_at is not None and row.lease_expires_at > utcnow() + timedelta(seconds=50)


def test_an_expired_lease_can_be_taken_over(repos: Repositories) -> None:
    execution_id = accepted(repos)
    first = repos.executions.acquire_lease(execution_id, -1)

    second = repos.executions.acquire_lease(execution_id, 60)

    assert first is not None and second is not None and second != first
    assert execution(repos, execution_id).attempt_count == 2
    assert repos.executions.renew_lease(execution_id, first, 60) is False
    assert repos.executions.finish(execution_id, first, succeeded=True, output_fields={}) is False


@pytest.mark.parametrize("succeeded", [True, False])
def test_a_finished_execution_is_never_leased_again(repos: Repositories, succeeded: bool) -> None:
    execution_id = finished(repos, succeeded=succeeded)
    assert repos.executions.acquire_lease(execution_id, 60) is None
    assert repos.executions.acquire_lease(execution_id, -1) is None
    assert execution(repos, execution_id).state == ("succeeded" if succeeded else "failed")


def test_a_lease_of_an_unknown_execution_is_refused(repos: Repositories) -> None:
    assert repos.executions.acquire_lease("0" * 32, 60) is None


def test_renewing_a_lease_needs_its_token(repos: Repositories) -> None:
    execution_id = accepted(repos)
    token = repos.executions.acquire_lease(execution_id, 10)
    assert token is not None

    assert repos.executions.renew_lease(execution_id, "wrong-token", 600) is False
    before = execution(repos, execution_id).lease_expires_at
    assert repos.executions.renew_lease(execution_id, token, 600) is True
    after = execution(repos, execution_id).lease_expires_at

    assert before is not None and after is not None and after > before + timedelta(seconds=500)


def test_finishing_needs_the_lease_token(repos: Repositories) -> None:
    execution_id = accepted(repos)
    assert repos.executions.acquire_lease(execution_id, 60)

    assert repos.executions.finish(execution_id, "wrong-token", succeeded=True, output_fields={"x": 1}) is False

    row = execution(repos, execution_id)
    assert (row.state, row.output_fields, row.callback_state) == ("running", None, "none")


def test_finishing_records_the_outcome_and_queues_the_callback(repos: Repositories) -> None:
    execution_id = finished(repos, succeeded=False)
    row = execution(repos, execution_id)
    assert row.state == "failed"
    assert row.output_fields == {"hs_execution_state": "FAIL_CONTINUE", "quickbooks_id": execution_id[:6]}
    assert (row.failure_reason, row.failure_message) == ("CUSTOMER_NOT_FOUND", "No customer")
    assert (row.lease_token, row.lease_expires_at) == (None, None)
    assert row.callback_state == "pending"
    assert row.finished_at is not None


def test_a_released_execution_can_be_leased_again(repos: Repositories) -> None:
    execution_id = accepted(repos)
    token = repos.executions.acquire_lease(execution_id, 60)
    assert token is not None

    assert repos.executions.release_for_retry(execution_id, "wrong-token") is False
    assert repos.executions.release_for_retry(execution_id, token) is True

    assert execution(repos, execution_id).state == "retrying"
    assert repos.executions.acquire_lease(execution_id, 60) is not None


def test_a_failed_execution_is_requeued_once(repos: Repositories) -> None:
    execution_id = finished(repos, succeeded=False)

    assert repos.executions.requeue_failed(execution_id) is True
    assert repos.executions.requeue_failed(execution_id) is False

    row = execution(repos, execution_id)
    assert (row.state, row.failure_reason, row.failure_message) == ("queued", None, None)
    assert repos.executions.acquire_lease(execution_id, 60) is not None


def test_a_succeeded_execution_is_not_requeued(repos: Repositories) -> None:
    execution_id = finished(repos, succeeded=True)
    assert repos.executions.requeue_failed(execution_id) is False
    assert execution(repos, execution_id).state == "succeeded"


def test_a_rerun_of_an_execution_hubspot_heard_about_has_no_callback_to_send(repos: Repositories) -> None:
    execution_id = finished(repos, succeeded=False)
    repos.callbacks.mark([execution_id])
    repos.executions.requeue_failed(execution_id)
    token = repos.executions.acquire_lease(execution_id, 60)
    assert token

    assert repos.executions.finish(execution_id, token, succeeded=True, output_fields={"quickbooks_id": "1"})

    assert execution(repos, execution_id).callback_state == "sent"
    assert repos.callbacks.pending(PORTAL_ID) == []


# Sweeping ----------------------------------------------------------------------------------------


def test_the_sweep_finds_old_queued_and_expired_running_executions_only(repos: Repositories) -> None:
    long_ago = utcnow() - timedelta(minutes=10)
    old_queued = accepted(repos)
    backdate(repos, old_queued, long_ago)
    old_retrying = accepted(repos)
    token = repos.executions.acquire_lease(old_retrying, 60)
    assert token and repos.executions.release_for_retry(old_retrying, token)
    backdate(repos, old_retrying, long_ago)
    expired_running = accepted(repos)
    assert repos.executions.acquire_lease(expired_running, -1)
    fresh_queued = accepted(repos)
    live_running = accepted(repos)
    assert repos.executions.acquire_lease(live_running, 600)
    backdate(repos, live_running, long_ago)
    old_finished = finished(repos)
    backdate(repos, old_finished, long_ago)

    swept = repos.executions.to_sweep(queued_before=utcnow() - timedelta(minutes=1))

    states = {execution.id: execution.state for execution in swept}
    assert states == {old_queued: "queued", old_retrying: "retrying", expired_running: "running"}
    assert fresh_queued not in states


def test_the_sweep_takes_a_fresh_queued_execution_once_the_cut_off_passes_it(repos: Repositories) -> None:
    execution_id = accepted(repos)
    assert repos.executions.to_sweep(queued_before=utcnow() - timedelta(seconds=30)) == []
    swept = repos.executions.to_sweep(queued_before=utcnow() + timedelta(seconds=1))
    assert [(execution.id, execution.state) for execution in swept] == [(execution_id, "queued")]


# Callbacks ---------------------------------------------------------------------------------------


def test_finished_executions_wait_as_pending_callbacks_until_marked(repos: Repositories) -> None:
    first = finished(repos)
    second = finished(repos, succeeded=False)
    other_portal = finished(repos, portal_id=555)
    accepted(repos)  # still queued: nothing to report

    pending = repos.callbacks.pending(PORTAL_ID)

    assert [(callback.execution_id, callback.output_fields) for callback in pending] == [
        (first, execution(repos, first).output_fields),
        (second, execution(repos, second).output_fields),
    ]
    assert [callback.callback_id for callback in pending] == [
        execution(repos, first).callback_id,
        execution(repos, second).callback_id,
    ]
    assert sorted(repos.callbacks.portals_waiting(utcnow() + timedelta(seconds=1))) == [555, PORTAL_ID]
    assert repos.callbacks.portals_waiting(utcnow() - timedelta(minutes=1)) == []

    repos.callbacks.mark([first, second])

    assert repos.callbacks.pending(PORTAL_ID) == []
    assert [callback.execution_id for callback in repos.callbacks.pending(555)] == [other_portal]
    row = execution(repos, first)
    assert row.callback_state == "sent" and row.callback_sent_at is not None


def test_callbacks_can_be_marked_with_another_state(repos: Repositories) -> None:
    execution_id = finished(repos)
    repos.callbacks.mark([execution_id], state="rejected")
    repos.callbacks.mark([])
    assert execution(repos, execution_id).callback_state == "rejected"
    assert repos.callbacks.pending(PORTAL_ID) == []


def test_pending_callbacks_are_limited(repos: Repositories) -> None:
    for _ in range(3):
        finished(repos)
    assert len(repos.callbacks.pending(PORTAL_ID, limit=2)) == 2


# Steps and attempts ------------------------------------------------------------------------------


def test_saving_a_step_again_updates_it(repos: Repositories) -> None:
    execution_id = accepted(repos)
    repos.bookkeeping.save_step(execution_id, "create:Invoice", "started", {"requestid": "r-1"})
    repos.bookkeeping.save_step(execution_id, "create:Invoice", "done", {"requestid": "r-1", "id": "145"})
    repos.bookkeeping.save_step(execution_id, "create:Customer", "done", {"id": "58"})

    steps = repos.bookkeeping.steps(execution_id)

    assert sorted(steps) == ["create:Customer", "create:Invoice"]
    assert (steps["create:Invoice"].status, steps["create:Invoice"].data) == ("done", {"requestid": "r-1", "id": "145"})
    assert repos.bookkeeping.steps(accepted(repos)) == {}


def test_attempts_record_how_a_run_ended(repos: Repositories) -> None:
    execution_id = accepted(repos)
    first = repos.attempts.start(execution_id, 1)
    error = TransientError("QuickBooks: down", service="quickbooks", http_status=503, code="10000", request_id="1-abc")
    repos.attempts.finish(first, "retrying", error=error)
    repos.attempts.start(execution_id, 2)
    repos.attempts.abandon_running(execution_id)

    attempts = repos.attempts.of(execution_id)

    assert [(a.number, a.outcome) for a in attempts] == [(1, "retrying"), (2, "abandoned")]
    assert (attempts[0].error_service, attempts[0].error_code, attempts[0].http_status, attempts[0].request_id) == (
        "quickbooks",
        "10000",
        503,
        "1-abc",
    )
    assert attempts[1].finished_at is not None


# Tokens ------------------------------------------------------------------------------------------


def test_quickbooks_tokens_are_encrypted_at_rest_and_decrypt_back(repos: Repositories) -> None:
    expires = utcnow() + timedelta(hours=1)
    connection_id = repos.connections.save_quickbooks(
        PORTAL_ID, REALM_ID, "qbo-refresh-PLAINTEXT", "qbo-access-PLAINTEXT", expires, "Sim Co"
    )

    stored = raw_row(repos, "quickbooks_connections")
    assert "PLAINTEXT" not in stored
    assert "Sim Co" in stored  # the row was read
    tokens = repos.connections.quickbooks_tokens(connection_id)
    assert (tokens.access_token, tokens.refresh_token) == ("qbo-access-PLAINTEXT", "qbo-refresh-PLAINTEXT")
    assert tokens.access_expires_at is not None
    assert abs((tokens.access_expires_at - expires).total_seconds()) < 1
    assert tokens.access_token_valid()


def test_hubspot_tokens_are_encrypted_at_rest_and_decrypt_back(repos: Repositories) -> None:
    repos.connections.save_portal(
        PORTAL_ID, "hs-refresh-PLAINTEXT", "hs-access-PLAINTEXT", utcnow() + timedelta(minutes=30)
    )

    assert "PLAINTEXT" not in raw_row(repos, "hubspot_portals")
    tokens = repos.connections.portal_tokens(PORTAL_ID)
    assert tokens is not None
    assert (tokens.access_token, tokens.refresh_token) == ("hs-access-PLAINTEXT", "hs-refresh-PLAINTEXT")
    assert repos.connections.portal_tokens(999) is None
    assert repos.connections.portals() == [PORTAL_ID]


def test_saving_refreshed_quickbooks_tokens_stores_both(repos: Repositories) -> None:
    connection_id = repos.connections.save_quickbooks(PORTAL_ID, REALM_ID, "refresh-1", "access-1", None)
    repos.connections.mark_quickbooks_revoked(connection_id)
    expires = utcnow() + timedelta(hours=1)

    repos.connections.save_quickbooks_tokens(connection_id, "access-2-PLAINTEXT", expires, "refresh-2-PLAINTEXT")

    tokens = repos.connections.quickbooks_tokens(connection_id)
    assert (tokens.access_token, tokens.refresh_token) == ("access-2-PLAINTEXT", "refresh-2-PLAINTEXT")
    assert "PLAINTEXT" not in raw_row(repos, "quickbooks_connections")
    connection = repos.connections.quickbooks(PORTAL_ID, REALM_ID)
    assert connection is not None
    assert connection.status == "active" and connection.refreshed_at is not None


def test_a_revoked_connection_loses_its_access_token(repos: Repositories) -> None:
    connection_id = repos.connections.save_quickbooks(PORTAL_ID, REALM_ID, "refresh-1", "access-1", None)
    repos.connections.mark_quickbooks_revoked(connection_id)
    connection = repos.connections.quickbooks(PORTAL_ID, REALM_ID)
    assert connection is not None and connection.status == "revoked"
    assert repos.connections.quickbooks_tokens(connection_id).access_token is None


def test_connecting_a_company_again_replaces_its_connection(repos: Repositories) -> None:
    first = repos.connections.save_quickbooks(PORTAL_ID, REALM_ID, "refresh-1", "access-1", None, "Old name")
    second = repos.connections.save_quickbooks(PORTAL_ID, REALM_ID, "refresh-2", None, None)

    assert second == first
    assert [c.name for c in repos.connections.quickbooks_of(PORTAL_ID)] == ["Old name"]
    assert repos.connections.quickbooks_tokens(first).refresh_token == "refresh-2"
    assert repos.connections.quickbooks(PORTAL_ID, "other-realm") is None


# Mappings and payment documents ------------------------------------------------------------------


def test_product_mappings_are_upserted_per_company(repos: Repositories) -> None:
    repos.bookkeeping.save_product_mapping(TENANT, "p-1", "11")
    repos.bookkeeping.save_product_mapping(TENANT, "p-1", "12")
    repos.bookkeeping.save_product_mapping(TENANT, "p-2", "21")
    repos.bookkeeping.save_product_mapping(Tenant(PORTAL_ID, "other-realm"), "p-3", "31")

    assert repos.bookkeeping.product_mappings(TENANT, ["p-1", "p-2", "p-3"]) == {"p-1": "12", "p-2": "21"}
    assert repos.bookkeeping.product_mappings(TENANT, []) == {}
    repos.bookkeeping.forget_mappings_to(REALM_ID, customer_id=None, item_ids=["12"])
    assert repos.bookkeeping.product_mappings(TENANT, ["p-1", "p-2"]) == {"p-2": "21"}


def test_customer_mappings_are_upserted_per_company(repos: Repositories) -> None:
    repos.bookkeeping.save_customer_mapping(TENANT, "c-51", "58")
    repos.bookkeeping.save_customer_mapping(TENANT, "c-51", "59")

    assert repos.bookkeeping.customer_mapping(TENANT, "c-51") == "59"
    assert repos.bookkeeping.customer_mapping(Tenant(PORTAL_ID, "other-realm"), "c-51") is None
    repos.bookkeeping.forget_mappings_to(REALM_ID, customer_id="59", item_ids=[])
    assert repos.bookkeeping.customer_mapping(TENANT, "c-51") is None


def test_a_payment_document_belongs_to_the_first_execution_that_claims_it(repos: Repositories) -> None:
    first, second = accepted(repos), accepted(repos)

    claim = repos.bookkeeping.claim_payment_document
    assert claim(TENANT, "pay-1", "sales_receipt", first).execution_id == first
    assert claim(TENANT, "pay-1", "sales_receipt", second).execution_id == first
    assert claim(TENANT, "pay-1", "fee", second).execution_id == second
    assert claim(Tenant(PORTAL_ID, "other-realm"), "pay-1", "sales_receipt", second).execution_id == second


# Company settings and profile --------------------------------------------------------------------


def test_company_settings_round_trip(repos: Repositories) -> None:
    assert repos.companies.settings(REALM_ID) == {}
    settings = {"contact_sync": {"mode": "filters", "filter_groups": [{"filters": []}]}, "default_tax_code": "7"}
    repos.companies.save_settings(REALM_ID, settings)
    repos.companies.save_settings(REALM_ID, {**settings, "default_tax_code": "8"})
    assert repos.companies.settings(REALM_ID) == {**settings, "default_tax_code": "8"}


def test_company_profile_round_trip(repos: Repositories) -> None:
    assert repos.companies.cached_profile(REALM_ID) is None
    repos.companies.save_profile(REALM_ID, {"country": "US", "home_currency": "USD"})
    repos.companies.save_profile(REALM_ID, {"country": "CA", "home_currency": "CAD"})

    cached = repos.companies.cached_profile(REALM_ID)

    assert cached is not None
    assert cached.profile == {"country": "CA", "home_currency": "CAD"}
    assert abs((cached.fetched_at - utcnow()).total_seconds()) < 30


# Schema ------------------------------------------------------------------------------------------


def test_the_migrated_schema_matches_the_models(repos: Repositories) -> None:
    with repos.database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_claim_tells_how_its_holder_stands_and_what_it_booked(repos: Repositories) -> None:
    holder = finished(repos, succeeded=True)
    first = repos.bookkeeping.claim_payment_document(TENANT, "pay-2", "paid_invoice", holder)
    later = repos.bookkeeping.claim_payment_document(TENANT, "pay-2", "paid_invoice", accepted(repos))

    assert (later.execution_id, later.holder_state) == (holder, "succeeded")
    assert later.holder_outputs == execution(repos, holder).output_fields == first.holder_outputs
    assert later.document_outputs is None
    repos.bookkeeping.save_payment_document_outputs(TENANT, "pay-2", "paid_invoice", {"quickbooks_id": "145"})
    stored = repos.bookkeeping.payment_document(TENANT, "pay-2", "paid_invoice")
    assert stored is not None and stored.document_outputs == {"quickbooks_id": "145"}
    assert repos.bookkeeping.payment_document(TENANT, "pay-3", "paid_invoice") is None


# What the repositories answer with ---------------------------------------------------------------


def test_repositories_answer_with_frozen_records_not_database_rows(repos: Repositories) -> None:
    execution_id = finished(repos)
    repos.attempts.start(execution_id, 1)
    repos.bookkeeping.save_step(execution_id, "document:Invoice", "done", {"id": "145"})
    answers: list[Any] = [
        repos.executions.get(execution_id),
        repos.executions.find(execution_id),
        *repos.executions.newest(),
        *repos.attempts.of(execution_id),
        *repos.callbacks.pending(PORTAL_ID),
        *repos.bookkeeping.steps(execution_id).values(),
        repos.bookkeeping.claim_payment_document(TENANT, "pay-4", "fee", execution_id),
        repos.connections.quickbooks_of()[0] if repos.connections.quickbooks_of() else None,
    ]
    assert len([a for a in answers if a is not None]) >= 7
    for answer in filter(None, answers):
        assert dataclasses.is_dataclass(answer), answer
        assert answer.__dataclass_params__.frozen, type(answer)  # type: ignore[attr-defined]
        assert not isinstance(answer, Base)


# Retention ---------------------------------------------------------------------------------------


def test_old_finished_executions_are_purged_with_their_attempts_and_steps(repos: Repositories) -> None:
    old = finished(repos)
    repos.attempts.start(old, 1)
    repos.bookkeeping.save_step(old, "document:Invoice", "done", {"id": "145"})
    repos.callbacks.mark([old])
    fresh = finished(repos)
    repos.callbacks.mark([fresh])
    waiting_for_its_callback = finished(repos)  # HubSpot has not been told yet
    queued, retrying = accepted(repos), accepted(repos)
    token = repos.executions.acquire_lease(retrying, 60)
    assert token and repos.executions.release_for_retry(retrying, token)
    holder = finished(repos)  # holds a payment's document: the claim keeps the payment from being booked twice
    repos.callbacks.mark([holder])
    repos.bookkeeping.claim_payment_document(TENANT, "pay-9", "fee_expense", holder)
    for execution_id in (old, waiting_for_its_callback, holder):
        with repos.database.engine.begin() as conn:
            conn.execute(
                update(ExecutionRow)
                .where(ExecutionRow.id == execution_id)
                .values(finished_at=utcnow() - timedelta(days=100))
            )

    assert repos.retention.purge_finished(utcnow() - timedelta(days=90), batch=1) == 1

    assert repos.executions.get(old) is None
    assert repos.attempts.of(old) == [] and repos.bookkeeping.steps(old) == {}
    for kept in (fresh, waiting_for_its_callback, queued, retrying, holder):
        assert repos.executions.get(kept) is not None
    assert repos.retention.purge_finished(utcnow() - timedelta(days=90)) == 0


# Held failures -----------------------------------------------------------------------------------


def test_a_held_failure_is_reported_only_when_its_hold_runs_out(repos: Repositories) -> None:
    execution_id = accepted(repos)
    token = repos.executions.acquire_lease(execution_id, 60)
    assert token
    failure = {"hs_execution_state": "FAIL_CONTINUE", "failure_reason": "NO_CONTACT", "failure_message": "m"}
    until = utcnow() + timedelta(hours=1)
    assert repos.executions.hold(
        execution_id, token, until=until, output_fields=failure, reason="NO_CONTACT", message="m"
    )

    held = execution(repos, execution_id)
    assert (held.state, held.callback_state, held.lease_token) == ("held", "none", None)
    assert repos.executions.release_holds(utcnow()) == []
    released = repos.executions.release_holds(until + timedelta(seconds=1))
    assert [e.id for e in released] == [execution_id]
    reported = execution(repos, execution_id)
    assert (reported.state, reported.callback_state, reported.held_until) == ("failed", "pending", None)


def test_retrying_a_held_failure_keeps_hubspots_wait(repos: Repositories) -> None:
    execution_id = accepted(repos, expires_at=utcnow() + timedelta(days=7))
    token = repos.executions.acquire_lease(execution_id, 60)
    assert token
    repos.executions.hold(
        execution_id, token, until=utcnow() + timedelta(hours=1), output_fields={}, reason="X", message="m"
    )

    assert repos.executions.requeue_failed(execution_id)

    queued = execution(repos, execution_id)
    assert queued.state == "queued" and queued.held_until is None and queued.expires_at is not None
    assert repos.executions.requeue_failed(execution_id) is False
