"""The job queue: executions and callback flushes on RQ, enqueued so that none is lost or doubled."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

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
# RQ only counts retries; our own attempt count (or HubSpot taking the callbacks) decides when to stop.
RQ_RETRY_CEILING = 1000
FLUSH_FLAG = "qbo-actions:flush-requested:"
# A job in one of these states will still run; anything else (finished, failed, gone) will not.
LIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def retry_in(seconds: float) -> Retry:
    """Return what a job hands back to be run again after ``seconds`` (at least one)."""
    return Retry(max=RQ_RETRY_CEILING, interval=max(1, math.ceil(seconds)))


def execution_job_id(execution_id: str) -> str:
    """Return the RQ job id of an execution (one live job per execution)."""
    return f"execution-{execution_id}"


class JobQueue:
    """Puts work on the RQ queue."""

    def __init__(self, connection: redis.Redis, config: Config) -> None:
        self.connection = connection
        self.config = config
        self.queue = Queue(config.queue_name, connection=connection)

    def enqueue_execution(self, execution_id: str) -> None:
        """Enqueue an execution's job, in one round trip to Redis.

        No uniqueness check here: the database accepts each callbackId once, so only the request that
        created the execution enqueues it, and a job that runs anyway finds the execution leased or done.
        """
        with self.connection.pipeline() as pipe:
            self.queue.enqueue(
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

    def ensure_enqueued(self, execution_id: str, *, force: bool = False) -> bool:
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
        self.enqueue_execution(execution_id)
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
            self.queue.enqueue(
                FLUSH_CALLBACKS,
                portal_id,
                job_timeout=self.config.job_timeout,
                result_ttl=0,
                failure_ttl=7 * 86400,
                description=f"callbacks of portal {portal_id}",
            )

    def clear_flush_request(self, portal_id: int) -> None:
        """Lower the flag before a flush reads what is pending."""
        self.connection.delete(f"{FLUSH_FLAG}{portal_id}")
