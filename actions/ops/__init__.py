"""The operations console (/ops) and its JSON API (/ops/api): operators find, fix and retry executions."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect


def register(app: Flask, csrf: CSRFProtect) -> None:
    """Add the console and the API; the API takes bearer tokens, not cookies, so it needs no CSRF token."""
    from actions.ops import api, console

    app.register_blueprint(console.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
