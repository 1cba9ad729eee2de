"""Lanes: each portal's executions go to a queue of their own while it keeps sending, the shortest one free."""

from __future__ import annotations

import fakeredis
import pytest

from services.config import Config
from services.work.queue import LANE_OF_PORTAL, JobQueue


def queue_of(lanes: int) -> JobQueue:
    """Return a queue with this many lanes over an in-process Redis."""
    required = ("HUBSPOT_CLIENT_ID", "HUBSPOT_CLIENT_SECRET", "QUICKBOOKS_CLIENT_ID", "QUICKBOOKS_CLIENT_SECRET")
    environment = {**dict.fromkeys(required, "x"), "SECRET_KEY": "x", "TOKEN_ENCRYPTION_KEY": "x"}
    config = Config.from_env({**environment, "REDIS_URL": "redis://unused", "QUEUE_LANES": str(lanes)})
    return JobQueue(fakeredis.FakeRedis(), config)


@pytest.fixture
def queue() -> JobQueue:
    return queue_of(4)


def test_a_portal_keeps_its_lane_while_it_sends(queue: JobQueue) -> None:
    first = queue.lane_of(101)

    assert all(queue.lane_of(101) is first for _ in range(10))
    assert queue.connection.ttl(f"{LANE_OF_PORTAL}101") > 0


def test_a_burst_fills_one_lane_and_the_next_portal_gets_another(queue: JobQueue) -> None:
    for number in range(50):
        queue.enqueue_execution(f"a{number}", 101)
    busy = queue.lane_of(101)

    other = queue.lane_of(202)

    assert busy.count == 50
    assert other is not busy and other.count == 0
    queue.enqueue_execution("b1", 202)
    assert [job.id for job in other.jobs] == ["execution-b1"]
    assert queue.depth() == 51


def test_a_portal_that_stopped_sending_is_given_the_shortest_lane_again(queue: JobQueue) -> None:
    for number in range(5):
        queue.enqueue_execution(f"a{number}", 101)
    busy = queue.lane_of(101)
    queue.connection.delete(f"{LANE_OF_PORTAL}101")
    queue._known_lanes.clear()  # as another process, or this one LANE_LOCAL_SECONDS later
    queue.enqueue_execution("c1", 303)

    again = queue.lane_of(101)

    assert again is not busy and again.count == 0


def test_one_lane_means_one_queue_for_every_portal() -> None:
    queue = queue_of(1)

    assert queue.lane_of(1) is queue.lane_of(2) is queue.lanes[0]
    assert [q.name for q in queue.all_queues] == ["qbo-actions", "qbo-actions.lane0"]
