"""Log lines carry the execution's context, as text or as JSON lines."""

from __future__ import annotations

import json
import logging

from services import logs


def record(message: str) -> logging.LogRecord:
    made = logging.LogRecord("services.work.runner", logging.WARNING, __file__, 1, message, None, None)
    logs.ContextFilter().filter(made)
    return made


def test_a_json_line_carries_the_bound_context() -> None:
    with logs.bound(execution="e-1", callback="ap-1", portal=102670506, realm="9130355", action="create_invoice"):
        line = json.loads(logs.JsonFormatter().format(record("retrying in 10s")))
    assert line["message"] == "retrying in 10s" and line["level"] == "WARNING"
    assert {k: line[k] for k in ("execution", "callback", "portal", "realm", "action")} == {
        "execution": "e-1",
        "callback": "ap-1",
        "portal": "102670506",
        "realm": "9130355",
        "action": "create_invoice",
    }


def test_a_text_line_carries_the_bound_context() -> None:
    with logs.bound(execution="e-1", portal=7):
        text = logging.Formatter(logs.FORMAT).format(record("done"))
    assert "[execution=e-1 portal=7]: done" in text
