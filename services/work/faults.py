"""Faults of the server's own infrastructure: the database, Redis and the job's time limit.

They say nothing about the action, so they are never its failure: the run hands the execution back and it
is tried again once the database or Redis answers (the lease and the sweeper make sure nothing is lost).
Only an error that is none of these, or of the remote APIs, is a bug (INTERNAL_ERROR).
"""

from __future__ import annotations

import redis.exceptions
import sqlalchemy.exc
from rq.timeouts import JobTimeoutException

from services.transport.errors import InfrastructureError

DATABASE_FAULTS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,  # connection lost, server restarting or refusing, SQLite busy
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection free in time
)
REDIS_FAULTS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # A customer, item or token lock not had in time, or expired during a slow write (LockNotOwnedError).
    redis.exceptions.LockError,
)
INFRASTRUCTURE_FAULTS: tuple[type[Exception], ...] = (*DATABASE_FAULTS, *REDIS_FAULTS, JobTimeoutException)


def infrastructure_error(fault: Exception) -> InfrastructureError:
    """Describe an infrastructure fault as the transient error it is."""
    if isinstance(fault, DATABASE_FAULTS):
        service, what = "database", "The database"
    elif isinstance(fault, REDIS_FAULTS):
        service, what = "redis", "Redis"
    else:
        service, what = "worker", "The job"
    detail = str(fault).strip().splitlines()[0][:300] if str(fault).strip() else ""
    message = f"{what} failed: {fault.__class__.__name__}" + (f" ({detail})" if detail else "")
    return InfrastructureError(message, service=service, code=fault.__class__.__name__)
