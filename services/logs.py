"""Logging with the execution's context on every line a job writes."""

from __future__ import annotations

import json
import logging
import os
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
        record.context_values = dict(values)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (LOG_FORMAT=json): time, level, logger, message, the bound context, any error."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "context_values", {}),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


@contextmanager
def bound(**values: object) -> Iterator[None]:
    """Attach these values to every log line written inside the block."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def configure(level: int = logging.INFO, log_format: str | None = None) -> None:
    """Send logs to stderr with their context, once per process; LOG_FORMAT=json writes JSON lines."""
    root = logging.getLogger()
    if any(isinstance(f, ContextFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    chosen = (log_format or os.environ.get("LOG_FORMAT") or "text").lower()
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(FORMAT))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
