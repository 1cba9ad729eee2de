"""The Flask application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from services import logs
from services.bootstrap import Services, bootstrap
from services.config import Config

MAX_BODY_BYTES = 1024 * 1024


def create_app(config: Config | None = None, *, services: Services | None = None) -> Flask:
    """Create the app; configuration comes from the environment unless given."""
    if services is None:
        services = bootstrap(config or Config.from_env())
    app = Flask(__name__)
    app.config.update(SECRET_KEY=services.config.secret_key, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    app.extensions["qbo_actions"] = services
    logs.configure()

    from actions import endpoints, errors, options

    errors.register(app)
    endpoints.register(app)
    options.register(app)

    @app.get("/healthz")
    def health() -> Any:
        """Tell a load balancer whether the database and Redis answer."""
        services.redis.ping()
        services.database.ping()
        return jsonify({"status": "ok"})

    return app
