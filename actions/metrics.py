"""GET /metrics: the counters of every web process and the backlog, in Prometheus' text format."""

from __future__ import annotations

import hmac

from flask import Blueprint, Flask, Response, current_app, request

from services import metrics
from services.bootstrap import Services
from services.work.backlog import backlog_collector

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def exposition() -> Response:
    """Answer Prometheus' scrape; with METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    services: Services = current_app.extensions["qbo_actions"]
    token = services.config.metrics_token
    if token and not _bearer_matches(request.headers.get("Authorization", ""), token):
        return Response("A bearer token is required.\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(metrics.exposition(backlog_collector(services)), 200, {"Content-Type": metrics.CONTENT_TYPE})


def _bearer_matches(header: str, token: str) -> bool:
    """Tell whether an Authorization header carries the token, comparing in constant time."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def register(app: Flask) -> None:
    """Register the metrics endpoint."""
    app.register_blueprint(bp)
