"""The RQ worker process: a worker with its scheduler, started again whenever Redis comes back.

It is RQ's SimpleWorker: each job runs in this long-lived process, with no work horse forked per job, so the
connections, the warmed-up imports and the metrics' counters last from one job to the next. The job's time
limit still holds: RQ arms SIGALRM around each job (UnixSignalDeathPenalty), which works because jobs run in the
main thread, and JobTimeoutException interrupts even a blocked socket read (the runner treats it as transient).
"""

from __future__ import annotations

import logging
import time

import redis
from rq import SimpleWorker
from rq.worker import DequeueStrategy

from services import metrics
from services.bootstrap import Services
from services.work.faults import REDIS_FAULTS

log = logging.getLogger(__name__)
# Seconds between two pings while Redis does not answer, doubling up to the second figure.
FIRST_WAIT, LONGEST_WAIT = 0.5, 10.0
RQ_LOG_LEVEL = "WARNING"


def wait_for_redis(connection: redis.Redis) -> None:
    """Return once Redis answers, asking again with a growing pause (forever: the worker has nothing else to do)."""
    pause = FIRST_WAIT
    while True:
        try:
            connection.ping()
            return
        except REDIS_FAULTS as fault:
            log.warning("Redis does not answer (%s); asking again in %.1f s", fault, pause)
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_WAIT)


def work(services: Services, *, burst: bool = False) -> None:
    """Run an RQ worker with the scheduler (it runs the retries) until it is told to stop.

    RQ's worker quits when Redis goes away while it reports a job; its jobs are safe (the database knows every
    execution, and the sweeper enqueues again what Redis lost), so a new worker starts as soon as Redis answers.
    With WORKER_METRICS_PORT set, this process's counters are served there (a daemon thread; its port outlives
    the restarts).
    """
    port = services.config.worker_metrics_port
    if port > 0:
        try:
            metrics.serve(port)
        except OSError as exc:
            # Another worker on this host has the port: booking matters more than this worker's metrics.
            log.error("metrics not served: port %s is not free (%s); give each worker a port of its own", port, exc)
    while True:
        wait_for_redis(services.redis)
        try:
            SimpleWorker(services.queue.all_queues, connection=services.redis).work(
                with_scheduler=True,
                burst=burst,
                dequeue_strategy=DequeueStrategy.ROUND_ROBIN,
                # RQ writes four INFO lines per job (taken, completed, OK, result kept): 4% of a worker's CPU in
                # a burst. The executions' own records say how each ended; RQ's warnings and errors still show.
                logging_level=RQ_LOG_LEVEL,
            )
            return
        except REDIS_FAULTS as fault:
            log.error("the worker lost Redis (%s); starting a new one once it answers", fault)
