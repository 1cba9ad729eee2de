"""Gunicorn's settings for the web process (gunicorn reads ./gunicorn.conf.py by itself): Prometheus' multiprocess mode.

Each gunicorn worker counts in files of PROMETHEUS_MULTIPROC_DIR, and /metrics adds up every worker's files.
prometheus_client reads the variable when it is first imported, so it is set here, in the master, before any
worker loads the app. Without it, a fresh directory of its own is made for this master (and removed at exit).
The command line (the Procfile's --bind, --workers, ...) still decides everything else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Names the directory this master made, so that it is removed at exit even after a reload (HUP) read this again.
MADE_DIR_VARIABLE = "QBO_ACTIONS_MADE_METRICS_DIR"
if not os.environ.get(MULTIPROC_DIR_VARIABLE):
    os.environ[MULTIPROC_DIR_VARIABLE] = os.environ[MADE_DIR_VARIABLE] = tempfile.mkdtemp(prefix="qbo-actions-metrics-")
metrics_dir = Path(os.environ[MULTIPROC_DIR_VARIABLE])


def on_starting(server: Any) -> None:
    """Start counting from zero: files of an earlier run would be added to this one's."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for entry in metrics_dir.iterdir():
        if entry.is_file():
            entry.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges (its counters stay: what it counted happened)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the directory this master made for itself."""
    if os.environ.get(MADE_DIR_VARIABLE) == str(metrics_dir):
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _intake(worker: Any) -> Any:
    """Return the intake of the app this worker serves (None for another app)."""
    services = getattr(worker.wsgi, "extensions", {}).get("qbo_actions")
    return services.intake if services is not None else None


def post_worker_init(worker: Any) -> None:
    """Start the worker's relay now that it is forked (a thread started in the master would not survive)."""
    intake = _intake(worker)
    if intake is not None:
        intake.start()


def worker_exit(server: Any, worker: Any) -> None:
    """Queue what the worker's relay still holds before the worker goes."""
    intake = _intake(worker)
    if intake is not None:
        intake.stop()
