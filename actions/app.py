"""The Flask application factory."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, jsonify
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from services import logs
from services.bootstrap import Services, bootstrap
from services.config import Config

MAX_BODY_BYTES = 1024 * 1024
SESSION_HOURS = 12
log = logging.getLogger(__name__)


def signed_url_origin(config: Config) -> str:
    """Say which URL HubSpot's signatures must cover, for the start-up log."""
    if config.public_base_url:
        return f"{config.public_base_url} + the request path (PUBLIC_BASE_URL)"
    if config.trusted_proxies:
        return (
            f"the URL the client asked for, as the last {config.trusted_proxies} proxies report it "
            "(X-Forwarded-Proto and X-Forwarded-Host; TRUSTED_PROXIES)"
        )
    return "the URL as this server receives it (Host header; set PUBLIC_BASE_URL behind a proxy)"


def create_app(config: Config | None = None, *, services: Services | None = None) -> Flask:
    """Create the app; configuration comes from the environment unless given."""
    if services is None:
        services = bootstrap(config or Config.from_env())
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=services.config.secret_key,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        # The admin's session: signed with SECRET_KEY, out of scripts' reach, sent only over https when we serve it.
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=(services.config.public_base_url or "").startswith("https://"),
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
    )
    app.extensions["qbo_actions"] = services
    logs.configure()
    config = services.config
    if config.trusted_proxies:
        # Behind N proxies, believe the last N hops' X-Forwarded-Proto/-Host/-Port/-For, and no others.
        hops = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    log.info("HubSpot signatures are checked against %s", signed_url_origin(config))

    from actions import endpoints, errors, options, pages, webhooks
    from actions import metrics as metrics_endpoint

    errors.register(app)
    endpoints.register(app)
    options.register(app)
    pages.register(app)
    webhooks.register(app)
    metrics_endpoint.register(app)
    # Every browser form needs a CSRF token; HubSpot's signed requests are not browser forms.
    csrf = CSRFProtect(app)
    csrf.exempt(endpoints.bp)
    csrf.exempt(options.bp)
    csrf.exempt(metrics_endpoint.bp)
    csrf.exempt(webhooks.bp)
    from actions import ops

    ops.register(app, csrf)

    @app.get("/healthz")
    def health() -> Any:
        """Tell a load balancer the process is alive (it answers; nothing else is asked)."""
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def ready() -> Any:
        """Tell whether work can be taken and finished: database, Redis, a live worker and the scheduler."""
        from services.work.health import readiness

        verdict = readiness(services)
        body = {"status": "ready" if verdict.ready else "not ready", "checks": verdict.checks}
        return jsonify(body), 200 if verdict.ready else 503

    return app
