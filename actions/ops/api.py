"""The operations JSON API under /ops/api: the console's reads and changes for scripts and other tools.

Every request carries an operator's JWT (Authorization: Bearer, or an identity-aware proxy's header). Changes
must be sent as JSON (Content-Type: application/json), which a cross-site form cannot do without the browser
asking first, so the proxy's header never lets another site change anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import Schema, ValidationError

from actions.endpoints import services
from actions.ops import schemas
from actions.ops.auth import NotSignedIn, bearer_operator
from actions.ops.documents import link_invoice
from actions.ops.inputs import corrected_inputs
from actions.schemas import problems
from services.ops.operations import ExecutionView, OperationError, Operations
from services.ops.tokens import Operator

bp = Blueprint("ops_api", __name__, url_prefix="/ops/api")

_list_query = schemas.ListQuerySchema()
_filter_body = schemas.FilterSchema()
_retry_body = schemas.RetryBodySchema()
_cancel_body = schemas.CancelBodySchema()
_mark_body = schemas.MarkBookedBodySchema()
_execution = schemas.ExecutionSchema()
_detail = schemas.ExecutionDetailSchema()
_bulk = schemas.BulkSchema()
_linked = schemas.LinkedDocumentSchema()


def error(status: int, code: str, message: str, **extra: Any) -> Any:
    """Return an error answer of the API."""
    return jsonify({"status": "error", "code": code, "message": message, **extra}), status


def operations() -> Operations:
    """Return the operations over the app's services."""
    return Operations(services())


def authenticated(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let the request through only with a valid token whose role covers ``role``; pass the operator on."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                operator = bearer_operator()
            except NotSignedIn as refused:
                answer, status = error(401, "unauthenticated", f"Not signed in: {refused.reason}.")
                answer.headers["WWW-Authenticate"] = 'Bearer realm="qbo-actions-ops"'
                return answer, status
            if not operator.can(role):
                return error(403, "forbidden", f"{operator.subject} is a {operator.role}; this needs the {role} role.")
            if request.method == "POST" and not request.is_json:
                return error(415, "unsupported_media_type", "Send changes as JSON (Content-Type: application/json).")
            try:
                return view(operator, *args, **kwargs)
            except OperationError as failure:
                return error(failure.status, failure.code, failure.message)

        return guarded

    return decorate


def load(schema: Schema, data: Any, where: str) -> Any:
    """Load ``data`` with a schema, or answer 400 naming each bad field."""
    try:
        return schema.load(data)
    except ValidationError as invalid:
        raise OperationError(f"Invalid {where}: {problems(invalid)}") from invalid


def body() -> dict[str, Any]:
    """Return the JSON object the request carries (an empty body is an empty object)."""
    if not request.get_data():
        return {}
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise OperationError("The body must be a JSON object.")
    return payload


def detail(view: ExecutionView) -> dict[str, Any]:
    """Return the API document of one execution."""
    execution = view.execution
    document = _detail.dump(execution)
    document.update(
        inputs=view.inputs,
        attempts=schemas.AttemptSchema(many=True).dump(view.attempts),
        steps={name: {"status": step.status, **step.data} for name, step in view.steps.items()},
        audit=schemas.AuditEntrySchema(many=True).dump(view.audit),
        links={"quickbooks": view.quickbooks_url, "hubspot": view.hubspot_url},
    )
    return document  # type: ignore[no-any-return]


@bp.get("/executions")
@authenticated("viewer")
def list_executions(operator: Operator) -> Any:
    """List executions matching the query's filter, newest first, with counts per reason and state."""
    query = load(_list_query, request.args.to_dict(), "filter")
    page = operations().page(schemas.to_filter(query), limit=query["limit"], cursor=query.get("cursor"))
    return jsonify(
        {
            "executions": _execution.dump(page.executions, many=True),
            "next_cursor": page.next_cursor,
            "reason_counts": page.reason_counts,
            "state_counts": {("waiting" if s == "queued" else s): n for s, n in page.state_counts.items()},
        }
    )


@bp.get("/executions/<execution_id>")
@authenticated("viewer")
def get_execution(operator: Operator, execution_id: str) -> Any:
    """Return one execution (by id or callbackId) with its attempts, steps, audit trail and links."""
    return jsonify(detail(operations().view(execution_id)))


@bp.post("/executions/<execution_id>/retry")
@authenticated("operator")
def retry_execution(operator: Operator, execution_id: str) -> Any:
    """Retry a failed or held execution, optionally with corrected inputs and product mappings."""
    loaded = load(_retry_body, body(), "retry")
    ops = operations()
    inputs = None
    if loaded["inputs"]:
        inputs = corrected_inputs(ops.find(execution_id), loaded["inputs"])
    ops.retry(execution_id, operator, inputs=inputs, item_mappings=loaded["item_mappings"])
    return jsonify(detail(ops.view(execution_id))), 202


@bp.post("/executions/<execution_id>/cancel")
@authenticated("operator")
def cancel_execution(operator: Operator, execution_id: str) -> Any:
    """Report an execution as failed with reason CANCELLED, naming who cancelled it."""
    loaded = load(_cancel_body, body(), "cancel")
    ops = operations()
    ops.cancel(execution_id, operator, note=loaded["note"])
    return jsonify(detail(ops.view(execution_id)))


@bp.post("/executions/<execution_id>/mark-booked")
@authenticated("operator")
def mark_booked(operator: Operator, execution_id: str) -> Any:
    """Link an execution to a QuickBooks document that exists and report SUCCESS; nothing is written."""
    loaded = load(_mark_body, body(), "mark-booked")
    ops = operations()
    ops.mark_booked(execution_id, operator, loaded["quickbooks_id"])
    return jsonify(detail(ops.view(execution_id)))


@bp.post("/executions/retry")
@authenticated("admin")
def bulk_retry(operator: Operator) -> Any:
    """Retry every failed or held execution matching the body's filter, in the background."""
    where = schemas.to_filter(load(_filter_body, body(), "filter"))
    bulk = operations().start_bulk_retry(where, operator)
    answer = jsonify(_bulk.dump(bulk))
    answer.headers["Location"] = f"{request.script_root}/ops/api/bulk/{bulk.id}"
    return answer, 202


@bp.get("/bulk/<bulk_id>")
@authenticated("viewer")
def bulk_progress(operator: Operator, bulk_id: str) -> Any:
    """Return a bulk retry's progress."""
    return jsonify(_bulk.dump(operations().bulk(bulk_id)))


@bp.post("/documents/link")
@authenticated("operator")
def link_document(operator: Operator) -> Any:
    """Show an invoice made in QuickBooks by hand on a HubSpot record; its status and payments follow from then on."""
    linked = link_invoice(operator, body())
    return jsonify(_linked.dump(linked)), 201


@bp.get("/openapi.json")
def openapi() -> Any:
    """Return the OpenAPI document of this API (public: it describes, it reveals nothing)."""
    from actions.ops.openapi import document

    return jsonify(document())


@bp.errorhandler(OperationError)
def _operation_error(failure: OperationError) -> Any:
    return error(failure.status, failure.code, failure.message)
