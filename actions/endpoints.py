"""The execution endpoints: verify, validate, record, enqueue, answer."""

from __future__ import annotations

import functools
import logging
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from marshmallow import Schema, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from actions.errors import ApiError
from actions.registry import ActionSpec, all_actions
from actions.schemas import ExecutionRequestSchema, problems
from actions.signature import SignatureError, verify
from services import metrics
from services.bootstrap import Services
from services.clock import utcnow
from services.hubspot import outputs
from services.store.records import NewExecution

log = logging.getLogger(__name__)
_envelope = ExecutionRequestSchema()


@functools.cache
def _input_schema(spec: ActionSpec) -> Schema:
    """Return the action's input schema, built once (schemas are reusable and thread-safe for load)."""
    return spec.input_schema()


def services() -> Services:
    """Return the app's services."""
    return current_app.extensions["qbo_actions"]  # type: ignore[no-any-return]


def public_uri() -> str:
    """Return the URL HubSpot called: PUBLIC_BASE_URL + path + query when set (we may sit behind a proxy)."""
    base = services().config.public_base_url
    if not base:
        return request.url
    query = request.query_string.decode()
    return f"{base}{request.path}" + (f"?{query}" if query else "")


def verify_signature() -> None:
    """Refuse requests that are not signed by HubSpot with our client secret (a blueprint's before_request)."""
    config = services().config
    try:
        verify(
            request.headers,
            secret=config.hubspot_client_secret,
            method=request.method,
            uri=public_uri(),
            body=request.get_data(as_text=True),
            max_age=config.signature_max_age,
        )
    except SignatureError as exc:
        raise ApiError(f"Invalid HubSpot signature: {exc}", 401) from exc


def json_body() -> dict[str, Any]:
    """Return the request body as a JSON object, or refuse it."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise ApiError("The body must be a JSON object.", 400)
    return payload


def validation_error(error: ValidationError, where: str) -> ApiError:
    """Turn a schema error into a 400 that names each bad field."""
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    return ApiError(f"Invalid {where}: {problems(error)}", 400, errors=messages)


def execute(spec: ActionSpec) -> Any:
    """Accept one execution of ``spec``: record it, enqueue its job and tell HubSpot to wait."""
    try:
        envelope = _envelope.load(json_body())
    except ValidationError as error:
        raise validation_error(error, "execution request") from error
    try:
        inputs = _input_schema(spec).load(envelope["inputs"])
    except ValidationError as error:
        raise validation_error(error, "input fields") from error
    record = envelope["object"]
    if not spec.accepts(record["objectType"]):
        raise ApiError(
            f"{spec.label} works on {', '.join(t for t in spec.object_types if not t[0].isdigit())} records, "
            f"not {record['objectType']}.",
            400,
        )
    new = NewExecution(
        callback_id=envelope["callbackId"],
        action=spec.name,
        portal_id=envelope["origin"]["portalId"],
        realm_id=inputs.get("quickbooks_account"),
        object_type=record["objectType"],
        object_id=str(record["objectId"]).strip(),
        inputs=inputs,
        expires_at=utcnow() + services().config.callback_expiry,
    )
    svc = services()
    try:
        # Returns once the execution is committed; its job is queued by now (direct) or moments later (relay).
        _, created = svc.intake.accept(new)
    except SQLAlchemyError as exc:
        log.exception("could not record execution %s", new.callback_id)
        # A 5xx makes HubSpot deliver again later, so the action is not lost.
        raise ApiError("The execution could not be recorded; HubSpot will retry.", 503) from exc
    if created:
        metrics.accepted(spec.name)
    return jsonify(outputs.blocked(svc.config.callback_expiration))


def _view(spec: ActionSpec) -> Any:
    def view() -> Any:
        with metrics.time_accept():
            return execute(spec)

    view.__name__ = f"execute_{spec.name}"
    return view


bp = Blueprint("actions", __name__)
bp.before_request(verify_signature)
for _spec in all_actions():
    bp.add_url_rule(_spec.path, view_func=_view(_spec), methods=["POST"])


def register(app: Flask) -> None:
    """Register the execution endpoints."""
    app.register_blueprint(bp)
