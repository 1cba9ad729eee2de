"""Where RQ finds the jobs already sitting in a live queue.

RQ stores each job by its dotted path (``services.jobs.run_execution``), so jobs enqueued before the code
moved to ``services.work`` must still import from here. Keep these names while such jobs may exist.
"""

from __future__ import annotations

from services.work.jobs import flush_callbacks, run_execution

__all__ = ["flush_callbacks", "run_execution"]
