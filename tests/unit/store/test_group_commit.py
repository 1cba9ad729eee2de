"""Group commit: the executions of concurrent requests share one commit, each request gets its own answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.store.outbox import GroupCommit
from services.store.records import NewExecution


def new(callback_id: str) -> NewExecution:
    return NewExecution(callback_id, "create_invoice", 101, "9130355", "DEAL", "614", {})


class SlowCommits:
    """A commit that takes a while (so requests pile up behind it) and remembers each group it was given."""

    def __init__(self, seconds: float = 0.05, fail_on: str | None = None) -> None:
        self.seconds = seconds
        self.fail_on = fail_on
        self.groups: list[list[str]] = []
        self.lock = threading.Lock()
        self.begun = threading.Event()

    def __call__(self, news: list[NewExecution]) -> list[tuple[str, bool]]:
        with self.lock:
            self.groups.append([n.callback_id for n in news])
        self.begun.set()
        time.sleep(self.seconds)
        if self.fail_on in {n.callback_id for n in news}:
            raise RuntimeError("the database went away")
        return [(f"id-{n.callback_id}", True) for n in news]


def test_a_request_alone_commits_at_once_by_itself() -> None:
    commits = SlowCommits(seconds=0)
    group = GroupCommit(commits)

    assert group.accept(new("a")) == ("id-a", True)
    assert group.accept(new("b")) == ("id-b", True)
    assert commits.groups == [["a"], ["b"]]


def test_requests_arriving_during_a_commit_share_the_next_one_and_each_gets_its_own_answer() -> None:
    commits = SlowCommits()
    group = GroupCommit(commits)
    names = [f"cb{n}" for n in range(24)]

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda name: group.accept(new(name)), names))

    assert answers == [(f"id-{name}", True) for name in names]
    assert sorted(name for g in commits.groups for name in g) == sorted(names)
    # The first commits alone; the others waited for it and went together: far fewer commits than requests.
    assert len(commits.groups) < len(names) / 2, commits.groups


def test_a_group_is_never_larger_than_its_limit() -> None:
    commits = SlowCommits()
    group = GroupCommit(commits, largest=4)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda n: group.accept(new(f"cb{n}")), range(16)))

    assert max(len(g) for g in commits.groups) <= 4
    assert sum(len(g) for g in commits.groups) == 16


def test_a_failed_commit_fails_every_request_of_its_group_and_not_the_next_group() -> None:
    commits = SlowCommits(seconds=0.3, fail_on="doomed")
    group = GroupCommit(commits)
    outcomes: dict[str, object] = {}

    def accept(name: str) -> None:
        try:
            outcomes[name] = group.accept(new(name))
        except RuntimeError as exc:
            outcomes[name] = exc

    first = threading.Thread(target=accept, args=("first",))
    first.start()
    assert commits.begun.wait(5)
    # These two arrive while the first commit runs: they share the next one, which fails.
    doomed = [threading.Thread(target=accept, args=(name,)) for name in ("doomed", "alongside")]
    for thread in doomed:
        thread.start()
    for thread in [first, *doomed]:
        thread.join(5)

    assert commits.groups[0] == ["first"] and sorted(commits.groups[1]) == ["alongside", "doomed"]
    assert outcomes["first"] == ("id-first", True)
    assert isinstance(outcomes["doomed"], RuntimeError) and outcomes["alongside"] is outcomes["doomed"]
    # The lead was passed on after the failure: the next request commits.
    assert group.accept(new("after")) == ("id-after", True)


def test_an_error_of_the_commit_reaches_a_request_alone() -> None:
    group = GroupCommit(SlowCommits(seconds=0, fail_on="x"))

    with pytest.raises(RuntimeError):
        group.accept(new("x"))
    assert group.accept(new("y")) == ("id-y", True)
