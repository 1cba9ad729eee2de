"""Logging with the execution's context on every line a job writes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039 (never mutated)
FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"


class ContextFilter(logging.Filter):
    """Adds the bound context (execution, callback, portal, company) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = _context.get()
        record.context = (" [" + " ".join(f"{k}={v}" for k, v in values.items()) + "]") if values else ""
        return True


@contextmanager
def bound(**values: object) -> Iterator[None]:
    """Attach these values to every log line written inside the block."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def configure(level: int = logging.INFO) -> None:
    """Send logs to stderr with their context, once per process."""
    root = logging.getLogger()
    if any(isinstance(f, ContextFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
