"""Jobs queued many at a time (the relay's way): the same jobs as RQ's enqueue, on the same lanes, never twice."""

from __future__ import annotations

import zlib

import fakeredis
import pytest
from rq.job import Job

from services.config import Config
from services.work.queue import JobQueue, execution_job_id


@pytest.fixture
def queue() -> JobQueue:
    required = ("HUBSPOT_CLIENT_ID", "HUBSPOT_CLIENT_SECRET", "QUICKBOOKS_CLIENT_ID", "QUICKBOOKS_CLIENT_SECRET")
    environment = {**dict.fromkeys(required, "x"), "SECRET_KEY": "x", "TOKEN_ENCRYPTION_KEY": "x"}
    config = Config.from_env({**environment, "REDIS_URL": "redis://unused", "QUEUE_LANES": "4"})
    return JobQueue(fakeredis.FakeRedis(), config)


def stored(queue: JobQueue, execution_id: str) -> dict[bytes, bytes]:
    """Return the job's hash as RQ keeps it, its compressed call unpacked and its two moments left out."""
    fields = queue.connection.hgetall(f"rq:job:{execution_job_id(execution_id)}")
    fields[b"data"] = zlib.decompress(fields[b"data"])
    return {name: value for name, value in fields.items() if name not in (b"created_at", b"enqueued_at")}


def test_a_job_queued_with_others_is_the_job_rq_s_enqueue_makes(queue: JobQueue) -> None:
    queue.enqueue_execution("e1", 101)
    by_rq = stored(queue, "e1")
    lane = queue.lane_of(101)
    queue.connection.delete(f"rq:job:{execution_job_id('e1')}", lane.key)

    assert queue.enqueue_executions([("e1", 101)]) == 1

    assert stored(queue, "e1") == by_rq
    job = Job.fetch(execution_job_id("e1"), connection=queue.connection)
    assert (job.func_name, job.args, job.origin, job.get_status()) == (
        "services.jobs.run_execution",
        ("e1",),
        lane.name,
        "queued",
    )
    assert job.enqueued_at is not None and job.created_at is not None
    assert lane.get_job_ids() == [execution_job_id("e1")]
    assert queue.connection.sismember("rq:queues", lane.key)


def test_each_portal_s_jobs_go_to_its_lane_in_order(queue: JobQueue) -> None:
    queue.enqueue_executions([("a1", 101), ("b1", 202), ("a2", 101), ("a3", 101), ("b2", 202)])

    assert queue.lane_of(101).get_job_ids() == [execution_job_id(e) for e in ("a1", "a2", "a3")]
    assert queue.lane_of(202).get_job_ids() == [execution_job_id(e) for e in ("b1", "b2")]


def test_an_execution_whose_job_exists_is_not_queued_again(queue: JobQueue) -> None:
    queue.enqueue_executions([("a1", 101)])

    assert queue.enqueue_executions([("a1", 101), ("a2", 101)]) == 1

    assert queue.lane_of(101).get_job_ids() == [execution_job_id("a1"), execution_job_id("a2")]


def test_nothing_to_queue_costs_no_call(queue: JobQueue) -> None:
    assert queue.enqueue_executions([]) == 0
