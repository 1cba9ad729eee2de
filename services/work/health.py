"""Whether this deployment can take and finish work: the database, Redis, a live worker and its scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from rq import Worker
from rq.scheduler import RQScheduler

from services.bootstrap import Services
from services.clock import utcnow
from services.work.faults import INFRASTRUCTURE_FAULTS

# A worker that has not reported for this long is not counted as alive.
WORKER_SILENCE = timedelta(minutes=1)


@dataclass(frozen=True)
class Readiness:
    """Each check's verdict; ready when all passed."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Tell whether every check passed."""
        return all(verdict == "ok" for verdict in self.checks.values())


def readiness(services: Services) -> Readiness:
    """Check the database, Redis, a worker heard from in the last minute, and the scheduler that runs retries."""
    checks: dict[str, str] = {}
    try:
        services.database.ping()
        checks["database"] = "ok"
    except INFRASTRUCTURE_FAULTS as fault:
        checks["database"] = f"unavailable: {fault.__class__.__name__}"
    try:
        services.redis.ping()
        checks["redis"] = "ok"
    except INFRASTRUCTURE_FAULTS as fault:
        checks["redis"] = f"unavailable: {fault.__class__.__name__}"
        checks["worker"] = checks["scheduler"] = "unknown: Redis is unavailable"
        return Readiness(checks)
    queue = services.queue.queue
    recent = utcnow() - WORKER_SILENCE
    workers = [w for w in Worker.all(queue=queue) if w.last_heartbeat and w.last_heartbeat >= recent]
    checks["worker"] = "ok" if workers else f"no worker of queue {queue.name} reported in the last minute"
    scheduler_key = RQScheduler.get_locking_key(queue.name)
    checks["scheduler"] = "ok" if services.redis.exists(scheduler_key) else "no scheduler runs the retries"
    return Readiness(checks)
