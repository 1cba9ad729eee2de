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
import zlib
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import now as rq_now
from rq.utils import utcformat

if TYPE_CHECKING:
    from services.config import Config

# The job paths RQ stores with each job; services.jobs keeps them importable for jobs already queued.
RUN_EXECUTION = "services.jobs.run_execution"
FLUSH_CALLBACKS = "services.jobs.flush_callbacks"
RUN_BULK_RETRY = "services.work.jobs.run_bulk_retry"
SEND_BATCHES = "services.work.jobs.send_batches"
APPLY_NOTICES = "services.work.jobs.apply_quickbooks_notices"
READ_CHANGES = "services.work.jobs.read_quickbooks_changes"
PUSH_STATUSES = "services.work.jobs.push_document_statuses"
SET_UP_PROPERTIES = "services.work.jobs.set_up_hubspot_properties"
NOTICE_FLAG = "qbo-actions:notices-requested:"
CHANGES_DUE = "qbo-actions:changes-read:"
PUSH_FLAG = "qbo-actions:push-requested:"
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
# What RQ keeps of an execution's job once it ran, and of a failed one.
EXECUTION_RESULT_TTL = 3600
EXECUTION_FAILURE_TTL = 30 * 86400
# Give the portal the lane it had, or else the shortest one (scanned from a random start, so ties spread).
LANE_OF = """
local function lane_of(portal_key, memory, lanes, start, lane_key_prefix)
  local current = redis.call('GET', portal_key)
  if current then
    redis.call('EXPIRE', portal_key, memory)
    return tonumber(current)
  end
  local best, shortest = 0, -1
  for i = 0, lanes - 1 do
    local lane = (start + i) % lanes
    local length = redis.call('LLEN', lane_key_prefix .. lane)
    if shortest < 0 or length < shortest then
      best, shortest = lane, length
    end
  end
  redis.call('SET', portal_key, best, 'EX', memory)
  return best
end
"""
CHOOSE_LANE = LANE_OF + "return lane_of(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])\n"
# Save and push execution jobs as RQ's Queue.enqueue does (the job's hash, its lane's list, the set of queues), each
# on its portal's lane chosen as above, unless the job exists. ARGV: the moment, the job's timeout, result and
# failure TTL, RQ's job key prefix and set of queues, the lanes' key and name prefixes, their number, the lane
# memory, the lane-of-portal key prefix, a random start; then per job its id, portal, data (RQ's serialized call)
# and description.
ENQUEUE_EXECUTIONS = (
    LANE_OF
    + """
local stamp, timeout, result_ttl, failure_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local job_prefix, queues, lane_key_prefix, lane_name_prefix = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local lanes, memory, portal_prefix, start = tonumber(ARGV[9]), ARGV[10], ARGV[11], tonumber(ARGV[12])
local lane_of_portal = {}
local queued = 0
for i = 13, #ARGV, 4 do
  local job_id, portal = ARGV[i], ARGV[i + 1]
  local job_key = job_prefix .. job_id
  if redis.call('EXISTS', job_key) == 0 then
    local lane = lane_of_portal[portal]
    if lane == nil then
      lane = 0
      if lanes > 1 then
        lane = lane_of(portal_prefix .. portal, memory, lanes, start, lane_key_prefix)
      end
      lane_of_portal[portal] = lane
    end
    redis.call('HSET', job_key,
      'status', 'queued', 'created_at', stamp, 'data', ARGV[i + 2],
      'success_callback_name', '', 'failure_callback_name', '', 'stopped_callback_name', '',
      'started_at', '', 'ended_at', '', 'last_heartbeat', '', 'worker_name', '', 'group_id', '',
      'origin', lane_name_prefix .. lane, 'description', ARGV[i + 3], 'enqueued_at', stamp,
      'timeout', timeout, 'result_ttl', result_ttl, 'failure_ttl', failure_ttl)
    redis.call('SADD', queues, lane_key_prefix .. lane)
    redis.call('RPUSH', lane_key_prefix .. lane, job_id)
    queued = queued + 1
  end
end
return queued
"""
)


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
        self._enqueue_executions = connection.register_script(ENQUEUE_EXECUTIONS)
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

    def enqueue_execution(self, execution_id: str, portal_id: int, *, at_front: bool = False) -> None:
        """Enqueue an execution's job on its portal's lane (two round trips to Redis); ``at_front`` for one that
        only has to finish (its document's batch was answered), so it does not wait behind the whole burst.

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
                result_ttl=EXECUTION_RESULT_TTL,
                failure_ttl=EXECUTION_FAILURE_TTL,
                description=f"execution {execution_id}",
                at_front=at_front,
                pipeline=pipe,
            )
            pipe.execute()

    def enqueue_executions(self, executions: Sequence[tuple[str, int]]) -> int:
        """Enqueue the jobs of executions, (execution id, portal id) each, in one atomic call; return how many.

        They are the jobs enqueue_execution() makes, on the same lanes, each portal's in order, written by one
        script: RQ's enqueue costs several times as much per job. An execution whose job exists is left alone (a
        relay that died after queuing jobs and before its commit leaves them to be queued again).
        """
        if not executions:
            return 0
        lane_prefix = lane_name(self.queue.name, "")
        args: list[Any] = [
            utcformat(rq_now()),
            self.config.job_timeout,
            EXECUTION_RESULT_TTL,
            EXECUTION_FAILURE_TTL,
            Job.redis_job_namespace_prefix,
            Queue.redis_queues_keys,
            Queue.redis_queue_namespace_prefix + lane_prefix,
            lane_prefix,
            len(self.lanes),
            LANE_MEMORY_SECONDS,
            LANE_OF_PORTAL,
            random.randrange(len(self.lanes)),
        ]
        dumps = self.queue.serializer.dumps
        for execution_id, portal_id in executions:
            call = zlib.compress(dumps((RUN_EXECUTION, None, (execution_id,), {})))
            args += (execution_job_id(execution_id), portal_id, call, f"execution {execution_id}")
        return int(self._enqueue_executions(args=args))

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
        if self._raise(flag) or force:
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
        if self._raise(f"{BATCH_FLAG}{portal_id}:{realm_id}") or force:
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

    def request_notices(self, realm_id: str) -> None:
        """Make sure a job will apply a company's change notifications."""
        # The job lowers the flag before it reads the notices, so one recorded after that read gets a job too.
        if self._raise(f"{NOTICE_FLAG}{realm_id}"):
            self.queue.enqueue(APPLY_NOTICES, realm_id, **self._side_job(f"QuickBooks notifications of {realm_id}"))

    def clear_notice_request(self, realm_id: str) -> None:
        """Lower a company's notice flag before its notices are read."""
        self.connection.delete(f"{NOTICE_FLAG}{realm_id}")

    def request_changes(self, realm_id: str, interval: int) -> bool:
        """Queue a change capture of a company unless one was queued within ``interval`` seconds."""
        if not self.connection.set(f"{CHANGES_DUE}{realm_id}", "1", nx=True, ex=max(1, interval)):
            return False
        self.queue.enqueue(READ_CHANGES, realm_id, **self._side_job(f"QuickBooks changes of {realm_id}"))
        return True

    def request_status_push(self, portal_id: int) -> None:
        """Make sure a job will send a portal's changed document statuses (after a moment, to fill batches)."""
        if self._raise(f"{PUSH_FLAG}{portal_id}"):
            options = self._side_job(f"document statuses of portal {portal_id}")
            delay = self.config.status_flush_delay
            if delay > 0:
                self.queue.enqueue_in(timedelta(seconds=delay), PUSH_STATUSES, portal_id, **options)
            else:
                self.queue.enqueue(PUSH_STATUSES, portal_id, **options)

    def clear_status_push_request(self, portal_id: int) -> None:
        """Lower a portal's push flag before its pending records are read."""
        self.connection.delete(f"{PUSH_FLAG}{portal_id}")

    def enqueue_property_setup(self, portal_id: int) -> None:
        """Queue the creation of our properties on a portal's records (after an install)."""
        self.queue.enqueue(
            SET_UP_PROPERTIES,
            portal_id,
            job_id=f"set-up-properties-{portal_id}",
            **self._side_job(f"HubSpot properties of portal {portal_id}"),
        )

    def _side_job(self, description: str) -> dict[str, Any]:
        """Return the options of a job beside the executions: it runs again later, and its failures are kept."""
        return {
            "job_timeout": self.config.job_timeout,
            "result_ttl": 0,
            "failure_ttl": 7 * 86400,
            "description": description,
        }

    def _raise(self, flag: str) -> bool:
        """Raise a request flag; tell whether it was down (only then is a job enqueued for it)."""
        return bool(self.connection.set(flag, "1", nx=True, ex=600))

    def clear_flush_request(self, portal_id: int) -> None:
        """Lower the flag before a flush reads what is pending."""
        self.connection.delete(f"{FLUSH_FLAG}{portal_id}")
