"""The outbox on SQLite and PostgreSQL: executions accepted with their entries, entries taken by relays."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from services.clock import utcnow
from services.store.models import OutboxRow
from services.store.outbox import Waiting, WriterConnection
from services.store.records import NewExecution
from services.store.repositories import Repositories

PORTAL_ID = 102670506
_numbers = iter(range(1, 1_000_000))


def new_execution(callback_id: str | None = None, **overrides: Any) -> NewExecution:
    values: dict[str, Any] = {
        "callback_id": callback_id or f"ap-{PORTAL_ID}-{next(_numbers)}-0",
        "action": "create_invoice",
        "portal_id": PORTAL_ID,
        "realm_id": "9130355",
        "object_type": "DEAL",
        "object_id": "614",
        "inputs": {"quickbooks_account": "9130355", "create_missing_products": "no"},
        "expires_at": utcnow() + timedelta(days=7),
    }
    values.update(overrides)
    return NewExecution(**values)


class Sent:
    """What a relay handed to the queue."""

    def __init__(self) -> None:
        self.batches: list[list[Waiting]] = []

    def __call__(self, waiting: list[Waiting]) -> None:
        self.batches.append(waiting)

    @property
    def ids(self) -> list[str]:
        return [w.execution_id for batch in self.batches for w in batch]


def test_an_accepted_execution_is_recorded_as_the_direct_path_records_it_with_an_outbox_entry(
    repos: Repositories,
) -> None:
    new = new_execution(realm_id=None, inputs={"quickbooks_account": "9130355", "note": "é"})
    [(execution_id, created)] = repos.outbox.accept([new])

    execution = repos.executions.get(execution_id)
    direct_id, _ = repos.executions.accept(new_execution())
    direct = repos.executions.get(direct_id)
    assert created and execution is not None and direct is not None
    assert (execution.callback_id, execution.action, execution.portal_id, execution.realm_id) == (
        new.callback_id,
        "create_invoice",
        PORTAL_ID,
        None,
    )
    assert execution.inputs == new.inputs
    assert (execution.state, execution.attempt_count, execution.callback_state) == (
        direct.state,
        direct.attempt_count,
        direct.callback_state,
    )
    assert execution.expires_at == new.expires_at
    assert execution.created_at == execution.updated_at
    assert repos.outbox.count() == 1


def test_a_group_of_executions_is_recorded_in_one_commit_each_with_its_entry(repos: Repositories) -> None:
    news = [new_execution(portal_id=PORTAL_ID + n % 2) for n in range(7)]

    outcomes = repos.outbox.accept(news)

    assert [created for _, created in outcomes] == [True] * 7
    for new, (execution_id, _) in zip(news, outcomes, strict=True):
        execution = repos.executions.get(execution_id)
        assert execution is not None and (execution.callback_id, execution.portal_id) == (
            new.callback_id,
            new.portal_id,
        )
    assert repos.outbox.count() == 7


def test_a_group_whose_executions_all_lack_a_company_and_an_expiry_is_recorded(repos: Repositories) -> None:
    news = [new_execution(realm_id=None, expires_at=None, inputs={}) for _ in range(3)]

    outcomes = repos.outbox.accept(news)

    executions = [repos.executions.get(execution_id) for execution_id, _ in outcomes]
    assert [(e.realm_id, e.expires_at, e.inputs) for e in executions if e] == [(None, None, {})] * 3


def test_a_callback_id_is_accepted_once_whether_it_comes_again_later_or_twice_in_one_group(
    repos: Repositories,
) -> None:
    first = new_execution("cb-again")
    [(execution_id, created)] = repos.outbox.accept([first])

    later = repos.outbox.accept([new_execution("cb-again"), new_execution("cb-twice"), new_execution("cb-twice")])
    direct = repos.executions.accept(new_execution("cb-again"))

    assert created
    assert later[0] == (execution_id, False) and direct == (execution_id, False)
    assert later[1][1] is True and later[2] == (later[1][0], False)
    assert repos.database.count("executions") == 2
    assert repos.outbox.count() == 2


def test_a_relay_takes_the_oldest_entries_first_and_deletes_what_it_handed_over(repos: Repositories) -> None:
    ids = [execution_id for execution_id, _ in (repos.outbox.accept([new_execution()])[0] for _ in range(5))]
    sent = Sent()

    first = repos.outbox.relay(sent, limit=3)
    second = repos.outbox.relay(sent, limit=3)

    assert [w.execution_id for w in first] == ids[:3] and [w.execution_id for w in second] == ids[3:]
    assert sent.ids == ids
    assert all(w.portal_id == PORTAL_ID and w.accepted_at <= utcnow() for w in first + second)
    assert repos.outbox.count() == 0
    assert repos.outbox.relay(sent, limit=3) == [] and len(sent.batches) == 2


def test_entries_stay_when_the_queue_refuses_them_and_the_next_relay_takes_them(repos: Repositories) -> None:
    [(execution_id, _)] = repos.outbox.accept([new_execution()])

    def refuse(waiting: list[Waiting]) -> None:
        raise ConnectionError("Redis is down")

    with pytest.raises(ConnectionError):
        repos.outbox.relay(refuse, limit=10)
    sent = Sent()
    repos.outbox.relay(sent, limit=10)

    assert sent.ids == [execution_id]
    assert repos.outbox.count() == 0


def test_the_sweeper_s_relay_takes_only_entries_older_than_its_grace(repos: Repositories) -> None:
    [(old, _)] = repos.outbox.accept([new_execution()])
    [(young, _)] = repos.outbox.accept([new_execution()])
    with repos.database.engine.begin() as conn:
        conn.execute(
            update(OutboxRow).where(OutboxRow.execution_id == old).values(accepted_at=utcnow() - timedelta(seconds=5))
        )
    sent = Sent()

    repos.outbox.relay(sent, limit=10, accepted_before=utcnow() - timedelta(seconds=1))

    assert sent.ids == [old]
    assert repos.outbox.count() == 1


def test_two_relays_at_once_take_different_entries(repos: Repositories) -> None:
    if repos.database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a second relay waits for the first")
    ids = [repos.outbox.accept([new_execution()])[0][0] for _ in range(6)]
    holding = threading.Event()
    release = threading.Event()
    held = Sent()

    def hold(waiting: list[Waiting]) -> None:
        held(waiting)
        holding.set()
        release.wait(10)

    first = threading.Thread(target=lambda: repos.outbox.relay(hold, limit=2))
    first.start()
    assert holding.wait(10)
    other = Sent()
    repos.outbox.relay(other, limit=10)
    release.set()
    first.join(10)

    assert held.ids == ids[:2] and other.ids == ids[2:]
    assert repos.outbox.count() == 0


def test_a_relay_that_dies_before_its_commit_leaves_its_entries_for_another(repos: Repositories) -> None:
    [(execution_id, _)] = repos.outbox.accept([new_execution()])

    class Died(BaseException):
        """The relay's process ended between the enqueue and the commit."""

    def die(waiting: list[Waiting]) -> None:
        raise Died

    with pytest.raises(Died):
        repos.outbox.relay(die, limit=10)
    sent = Sent()
    repos.outbox.relay(sent, limit=10)

    assert sent.ids == [execution_id]


def test_the_writer_connection_is_kept_between_commits_and_renewed_after_a_failure(repos: Repositories) -> None:
    writer = WriterConnection(repos.database)
    if repos.database.engine.dialect.name != "postgresql":
        with writer.use() as connection:
            assert connection is None  # SQLite: nothing to keep
        return
    with writer.use() as first:
        repos.outbox.accept([new_execution()], connection=first)
    with writer.use() as second:
        repos.outbox.accept([new_execution()], connection=second)
    with pytest.raises(ConnectionError), writer.use():
        raise ConnectionError("the server went away")
    with writer.use() as third:
        repos.outbox.accept([new_execution()], connection=third)
    writer.close()

    assert first is second and third is not first
    assert repos.outbox.count() == 3


def test_the_writer_connection_is_renewed_once_it_is_old(repos: Repositories) -> None:
    if repos.database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite gets no writer connection")
    writer = WriterConnection(repos.database, renew_after=0)
    with writer.use() as first:
        pass
    with writer.use() as second:
        pass
    writer.close()

    assert first is not second
