"""The job queue: executions and callback flushes on RQ, enqueued so that none is lost or doubled.

Executions go to lanes, not to one queue: each portal is given the shortest lane when it starts sending (and
keeps it while it keeps sending), and workers take jobs from the lanes in turn (RQ's round-robin dequeue). A
portal that enrolls thousands of records fills its own lane; another portal's executions wait behind at most
one job per worker instead of behind the thousands. Flushes and bulk retries use the main queue.
"""

from __future__ import annotations

import math
import random
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

if TYPE_CHECKING:
    from services.config import Config

# The job paths RQ stores with each job; services.jobs keeps them importable for jobs already queued.
RUN_EXECUTION = "services.jobs.run_execution"
FLUSH_CALLBACKS = "services.jobs.flush_callbacks"
RUN_BULK_RETRY = "services.work.jobs.run_bulk_retry"
SEND_BATCHES = "services.work.jobs.send_batches"
# RQ only counts retries; our own attempt count (or HubSpot taking the callbacks) decides when to stop.
RQ_RETRY_CEILING = 1000
FLUSH_FLAG = "qbo-actions:flush-requested:"
BATCH_FLAG = "qbo-actions:batch-requested:"
# A job in one of these states will still run; anything else (finished, failed, gone) will not.
LIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
LANE_OF_PORTAL = "qbo-actions:lane-of-portal:"
# A portal keeps its lane while it sends within this many seconds of its last execution.
LANE_MEMORY_SECONDS = 600
# A process reuses the lane it was told for a portal this long before asking Redis again (one round trip saved
# per execution in a burst; the shared memory above still decides).
LANE_LOCAL_SECONDS = 5.0
# Give the portal the lane it had, or else the shortest one (scanned from a random start, so ties spread).
CHOOSE_LANE = """
local current = redis.call('GET', KEYS[1])
if current then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return tonumber(current)
end
local lanes, start = tonumber(ARGV[2]), tonumber(ARGV[3])
local best, shortest = 0, -1
for i = 0, lanes - 1 do
  local lane = (start + i) % lanes
  local length = redis.call('LLEN', ARGV[4] .. lane)
  if shortest < 0 or length < shortest then
    best, shortest = lane, length
  end
end
redis.call('SET', KEYS[1], best, 'EX', ARGV[1])
return best
"""


def retry_in(seconds: float) -> Retry:
    """Return what a job hands back to be run again after ``seconds`` (at least one)."""
    return Retry(max=RQ_RETRY_CEILING, interval=max(1, math.ceil(seconds)))


def lane_name(queue_name: str, number: int | str) -> str:
    """Return the name of a lane of the queue."""
    return f"{queue_name}.lane{number}"


def execution_job_id(execution_id: str) -> str:
    """Return the RQ job id of an execution (one live job per execution)."""
    return f"execution-{execution_id}"


class JobQueue:
    """Puts work on the RQ queue."""

    def __init__(self, connection: redis.Redis, config: Config) -> None:
        self.connection = connection
        self.config = config
        self.queue = Queue(config.queue_name, connection=connection)
        self.lanes = [Queue(lane_name(config.queue_name, n), connection=connection) for n in range(config.queue_lanes)]
        self._choose_lane = connection.register_script(CHOOSE_LANE)
        self._known_lanes: dict[int, tuple[float, Queue]] = {}

    @property
    def all_queues(self) -> list[Queue]:
        """Return every queue a worker listens to: the main queue, then the lanes."""
        return [self.queue, *self.lanes]

    def lane_of(self, portal_id: int) -> Queue:
        """Return the lane of a portal's executions (its own while it keeps sending, else the shortest)."""
        if len(self.lanes) == 1:
            return self.lanes[0]
        known = self._known_lanes.get(portal_id)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        prefix = Queue.redis_queue_namespace_prefix + lane_name(self.queue.name, "")
        number = self._choose_lane(
            keys=[f"{LANE_OF_PORTAL}{portal_id}"],
            args=[LANE_MEMORY_SECONDS, len(self.lanes), random.randrange(len(self.lanes)), prefix],
        )
        lane = self.lanes[int(number) % len(self.lanes)]
        if len(self._known_lanes) > 10_000:
            self._known_lanes.clear()
        self._known_lanes[portal_id] = (time.monotonic() + LANE_LOCAL_SECONDS, lane)
        return lane

    def depth(self) -> int:
        """Return how many jobs wait in every queue."""
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in self.all_queues:
                pipe.llen(queue.key)
            return sum(int(n) for n in pipe.execute())

    def enqueue_execution(self, execution_id: str, portal_id: int) -> None:
        """Enqueue an execution's job on its portal's lane (two round trips to Redis).

        No uniqueness check here: the database accepts each callbackId once, so only the request that
        created the execution enqueues it, and a job that runs anyway finds the execution leased or done.
        """
        lane = self.lane_of(portal_id)
        with self.connection.pipeline() as pipe:
            lane.enqueue(
                RUN_EXECUTION,
                execution_id,
                job_id=execution_job_id(execution_id),
                job_timeout=self.config.job_timeout,
                result_ttl=3600,
                failure_ttl=30 * 86400,
                description=f"execution {execution_id}",
                pipeline=pipe,
            )
            pipe.execute()

    def ensure_enqueued(self, execution_id: str, portal_id: int, *, force: bool = False) -> bool:
        """Enqueue the execution again if its job is gone or dead (or always, with force); True if it did."""
        job_id = execution_job_id(execution_id)
        try:
            job = Job.fetch(job_id, connection=self.connection)
            status = job.get_status(refresh=True)
        except NoSuchJobError:
            job, status = None, None
        if job is not None:
            if status in LIVE_STATUSES and not force:
                return False
            job.delete()
        self.enqueue_execution(execution_id, portal_id)
        return True

    def enqueue_bulk(self, bulk_id: str) -> None:
        """Enqueue the job that works through a bulk retry (it resumes where it stopped if run again)."""
        self.queue.enqueue(
            RUN_BULK_RETRY,
            bulk_id,
            job_id=f"bulk-{bulk_id}",
            # Each retry is a few quick writes; thousands of them take a while.
            job_timeout=max(self.config.job_timeout, 3600),
            result_ttl=3600,
            failure_ttl=7 * 86400,
            description=f"bulk retry {bulk_id}",
        )

    def request_callback_flush(self, portal_id: int, *, force: bool = False) -> None:
        """Make sure one flush job will send this portal's pending callbacks."""
        flag = f"{FLUSH_FLAG}{portal_id}"
        # The flush job clears the flag before it reads, so a callback recorded after that read
        # raises the flag again and gets a job of its own.
        if self.connection.set(flag, "1", nx=True, ex=600) or force:
            options: dict[str, Any] = {
                "job_timeout": self.config.job_timeout,
                "result_ttl": 0,
                "failure_ttl": 7 * 86400,
                "description": f"callbacks of portal {portal_id}",
            }
            delay = self.config.callback_flush_delay
            if delay > 0 and not force:
                # A moment's wait lets the callbacks of a burst go to HubSpot 100 at a time instead of one by one.
                self.queue.enqueue_in(timedelta(seconds=delay), FLUSH_CALLBACKS, portal_id, **options)
            else:
                self.queue.enqueue(FLUSH_CALLBACKS, portal_id, **options)

    def request_batches(self, portal_id: int, realm_id: str, *, force: bool = False) -> None:
        """Make sure a sender will put the documents waiting for this portal's company into batches."""
        # The sender lowers the flag before each look at what waits, so an item parked after that look raises it
        # again and gets a sender of its own (which steps aside while the first one still runs; see send_batches).
        if self.connection.set(f"{BATCH_FLAG}{portal_id}:{realm_id}", "1", nx=True, ex=600) or force:
            self.queue.enqueue(
                SEND_BATCHES,
                portal_id,
                realm_id,
                # A sender works for at most a minute, then hands over; its batches wait on the limiter meanwhile.
                job_timeout=max(self.config.job_timeout, 120),
                result_ttl=0,
                failure_ttl=7 * 86400,
                description=f"QuickBooks batches of portal {portal_id}, company {realm_id}",
            )

    def clear_batch_request(self, portal_id: int, realm_id: str) -> bool:
        """Lower a company's batch flag; tell whether it was raised."""
        return bool(self.connection.delete(f"{BATCH_FLAG}{portal_id}:{realm_id}"))

    def clear_flush_request(self, portal_id: int) -> None:
        """Lower the flag before a flush reads what is pending."""
        self.connection.delete(f"{FLUSH_FLAG}{portal_id}")
