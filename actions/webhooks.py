"""Intuit's change notifications: verify the signature, read the events, record them, answer at once.

The work (reading the changed documents, updating the HubSpot records) is done by jobs; Intuit wants an answer
within seconds and delivers again when it gets none.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from actions.endpoints import services
from actions.errors import ApiError
from services.quickbooks import notifications
from services.work import statuses

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "intuit-signature"

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/quickbooks")
def quickbooks() -> Any:
    """Record a delivery of QuickBooks change notifications and queue their companies' jobs."""
    svc = services()
    token = svc.config.quickbooks_webhook_verifier_token
    if not token:
        raise ApiError("QuickBooks notifications are not configured here (QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN).", 401)
    body = request.get_data(cache=False)
    if not notifications.signature_valid(body, request.headers.get(SIGNATURE_HEADER), token):
        raise ApiError("Invalid or missing intuit-signature.", 401)
    try:
        notices, skipped = notifications.parse(body)
    except notifications.PayloadError as error:
        raise ApiError(f"Not a QuickBooks notification: {error}.", 400) from error
    if skipped:
        log.warning("QuickBooks notification: %s events without a type, id, company or entity skipped", skipped)
    try:
        received = statuses.receive_notices(svc, notices)
    except SQLAlchemyError as error:
        log.exception("QuickBooks notification not recorded")
        # Intuit delivers again after a failure; nothing is lost.
        raise ApiError("The notification could not be recorded; deliver it again.", 503) from error
    return jsonify(
        {
            "status": "ok",
            "new": received.new,
            "repeated": received.repeated,
            "ignored": received.ignored,
            "skipped": skipped,
        }
    )


def register(app: Flask) -> None:
    """Register the notification endpoint."""
    app.register_blueprint(bp)
