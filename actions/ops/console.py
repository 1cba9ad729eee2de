"""The operations console at /ops: server-rendered pages to find failed executions, fix them and retry them.

An operator signs in with the same JWT the API takes (kept in an HttpOnly session and checked again on every
request), or arrives through an identity-aware proxy whose JWT header is checked the same way. Every form
carries a CSRF token.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from actions.endpoints import services
from actions.ops import auth, documents, schemas
from actions.ops.inputs import corrected_inputs, editable_inputs
from actions.registry import by_name
from actions.schemas import problems
from services.books.failures import REASONS
from services.ops.operations import PUBLIC_STATES, OperationError, Operations, public_state
from services.ops.tokens import Operator
from services.store.records import ExecutionFilter

bp = Blueprint("ops", __name__, url_prefix="/ops", template_folder="../templates")

# The time ranges the list offers, as ages the filter understands.
SINCE_CHOICES = (
    ("1h", "last hour"),
    ("2h", "last 2 hours"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
)
PAGE_SIZE = 50
_filter_query = schemas.ListQuerySchema()


def operations() -> Operations:
    """Return the operations over the app's services."""
    return Operations(services())


def signed_in(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let only a signed-in operator whose role covers ``role`` in; pass the operator to the view."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                operator = auth.console_operator()
            except auth.NotSignedIn as refused:
                if refused.reason:
                    flash(f"Please sign in again: {refused.reason}.", "error")
                return redirect(url_for("ops.sign_in", next=request.full_path.rstrip("?")))
            if not operator.can(role):
                message = f"You are signed in as {operator.subject}, a {operator.role}; this needs the {role} role."
                return render_template("ops/message.html", operator=operator, title="Not allowed", message=message), 403
            return view(operator, *args, **kwargs)

        return guarded

    return decorate


@bp.errorhandler(OperationError)
def _operation_error(failure: OperationError) -> Any:
    """Answer a page about an execution or bulk retry that cannot be shown (no such thing, not allowed)."""
    try:
        operator: Operator | None = auth.console_operator()
    except auth.NotSignedIn:
        operator = None
    title = {404: "Not found", 403: "Not allowed"}.get(failure.status, "That cannot be done")
    return render_template("ops/message.html", operator=operator, title=title, message=failure.message), failure.status


@bp.app_template_filter("as_json")
def _as_json(value: Any) -> str:
    """Show a before/after document as compact JSON (escaped by the template like any text)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@bp.app_context_processor
def _ops_helpers() -> dict[str, Any]:
    return {"public_state": public_state, "reason_sentence": lambda reason: REASONS.get(reason or "", "")}


# Signing in --------------------------------------------------------------------------------------


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """Ask for an operator's token and keep it in the session."""
    target = _safe_next(request.values.get("next"))
    error = None
    if request.method == "POST":
        try:
            operator = auth.sign_in(request.form.get("token", ""))
        except auth.NotSignedIn as refused:
            error = f"That token does not sign you in: {refused.reason}."
        else:
            flash(f"Signed in as {operator.subject} ({operator.role}).", "notice")
            return redirect(target)
    return render_template("ops/sign_in.html", operator=None, next=target, error=error), 401 if error else 200


@bp.post("/sign-out")
def sign_out() -> Response:
    """Forget the operator's session."""
    auth.sign_out()
    return redirect(url_for("ops.sign_in"))


# The list ----------------------------------------------------------------------------------------


@bp.get("")
@bp.get("/")
@signed_in("viewer")
def executions(operator: Operator) -> Any:
    """List executions matching the filter, newest first, with counts per state and per reason."""
    args = {name: value for name, value in request.args.items() if value.strip()}
    try:
        query = _filter_query.load(args)
    except ValidationError as invalid:
        flash(f"The filter was not understood: {problems(invalid)}", "error")
        return redirect(url_for("ops.executions"))
    where = schemas.to_filter(query)
    try:
        page = operations().page(where, limit=PAGE_SIZE, cursor=query.get("cursor"))
    except OperationError as failure:
        flash(failure.message, "error")
        return redirect(url_for("ops.executions"))
    filters = {name: value for name, value in args.items() if name in schemas.FILTER_NAMES}
    return render_template(
        "ops/executions.html",
        operator=operator,
        page=page,
        filters=filters,
        where=where,
        states=PUBLIC_STATES,
        state_counts={public_state(state): count for state, count in page.state_counts.items()},
        reasons=sorted(REASONS),
        actions=sorted(by_name()),
        since_choices=SINCE_CHOICES,
        link=lambda **changes: _list_url(filters, **changes),
        can_bulk=operator.can("admin") and where.state in (None, "failed", "held") and bool(page.executions),
    )


# One execution -----------------------------------------------------------------------------------


@bp.get("/executions/<execution_id>")
@signed_in("viewer")
def execution(operator: Operator, execution_id: str) -> Any:
    """Show one execution: inputs, outputs, attempts, steps, audit trail, links and what can be done."""
    view = operations().view(execution_id)
    return render_template("ops/execution.html", operator=operator, view=view, e=view.execution)


@bp.post("/executions/<execution_id>/retry")
@signed_in("operator")
def retry(operator: Operator, execution_id: str) -> Response:
    """Retry an execution as it is."""
    return _change(execution_id, lambda ops: ops.retry(execution_id, operator), "Queued again.")


@bp.post("/executions/<execution_id>/cancel")
@signed_in("operator")
def cancel(operator: Operator, execution_id: str) -> Response:
    """Cancel an execution; HubSpot hears FAIL_CONTINUE with reason CANCELLED."""
    note = request.form.get("note", "")[:500]
    return _change(execution_id, lambda ops: ops.cancel(execution_id, operator, note=note), "Cancelled.")


@bp.post("/executions/<execution_id>/mark-booked")
@signed_in("operator")
def mark_booked(operator: Operator, execution_id: str) -> Response:
    """Link an existing QuickBooks document and report SUCCESS."""
    document_id = request.form.get("quickbooks_id", "").strip()
    return _change(
        execution_id,
        lambda ops: ops.mark_booked(execution_id, operator, document_id),
        f"Marked as booked by QuickBooks document {document_id}.",
    )


@bp.route("/documents/link", methods=["GET", "POST"])
@signed_in("operator")
def link_document(operator: Operator) -> Any:
    """Show an invoice made in QuickBooks by hand on a HubSpot record."""
    values = {name: request.values.get(name, "").strip() for name in documents.FIELDS}
    error, status = None, 200
    if request.method == "POST":
        try:
            linked = documents.link_invoice(operator, values)
        except OperationError as failure:
            error, status = failure.message, failure.status
        else:
            flash(
                f"Invoice {values['invoice_number']} (QuickBooks id {linked.document_id}) now shows on "
                f"{linked.object_type} {linked.object_id}; its status goes to HubSpot in a moment.",
                "notice",
            )
            return redirect(url_for("ops.link_document"))
    connections = services().connections.quickbooks_of()
    return render_template(
        "ops/link.html", operator=operator, values=values, error=error, connections=connections
    ), status


@bp.route("/executions/<execution_id>/edit", methods=["GET", "POST"])
@signed_in("operator")
def edit(operator: Operator, execution_id: str) -> Any:
    """Correct input fields and retry."""
    ops = operations()
    view = ops.view(execution_id)
    names = editable_inputs(view.execution.action)
    values = {name: view.execution.inputs.get(name, "") for name in names}
    error = None
    if request.method == "POST":
        values = {name: request.form.get(name, "").strip() for name in names}
        overrides = {name: value for name, value in values.items() if value != str(view.execution.inputs.get(name, ""))}
        try:
            inputs = corrected_inputs(view.execution, overrides)
            ops.retry(execution_id, operator, inputs=inputs)
        except OperationError as failure:
            error = failure.message
        else:
            flash("Inputs corrected and queued again.", "notice")
            return redirect(url_for("ops.execution", execution_id=view.execution.id))
    return render_template(
        "ops/edit.html", operator=operator, view=view, e=view.execution, names=names, values=values, error=error
    ), 400 if error else 200


@bp.route("/executions/<execution_id>/map", methods=["GET", "POST"])
@signed_in("operator")
def map_items(operator: Operator, execution_id: str) -> Any:
    """Pick the QuickBooks item of each unmatched product, save the mappings and retry."""
    ops = operations()
    view = ops.view(execution_id)
    products = [p for p in view.unmatched_products if p.get("product_id")]
    error = None
    if request.method == "POST":
        mappings = {p["product_id"]: request.form.get(f"item-{p['product_id']}", "").strip() for p in products}
        missing = [p["name"] for p in products if not mappings[p["product_id"]]]
        if missing or not mappings:
            error = (
                "Choose a QuickBooks item for every product: " + ", ".join(missing) if missing else "Nothing to map."
            )
        else:
            try:
                ops.retry(execution_id, operator, item_mappings=mappings)
            except OperationError as failure:
                error = failure.message
            else:
                flash("Products mapped and the execution queued again.", "notice")
                return redirect(url_for("ops.execution", execution_id=view.execution.id))
    try:
        items = ops.quickbooks_items(view.execution)
        items_problem = None
    except OperationError as failure:
        items, items_problem = [], failure.message
    except Exception as problem:  # QuickBooks unreachable: the operator can still type item ids
        items, items_problem = (
            [],
            f"QuickBooks' items could not be read ({problem.__class__.__name__}); enter item ids.",
        )
    return render_template(
        "ops/map.html",
        operator=operator,
        view=view,
        e=view.execution,
        products=products,
        unmappable=[p for p in view.unmatched_products if not p.get("product_id")],
        items=items,
        items_problem=items_problem,
        chosen=request.form,
        error=error,
    ), 400 if error else 200


# Bulk retries ------------------------------------------------------------------------------------


@bp.post("/bulk-retry")
@signed_in("admin")
def bulk_retry(operator: Operator) -> Response:
    """Retry every failed or held execution matching the list's filter, in the background."""
    args = {name: value for name, value in request.form.items() if name in schemas.FILTER_NAMES and value.strip()}
    try:
        where: ExecutionFilter = schemas.to_filter(schemas.FilterSchema().load(args))
        bulk = operations().start_bulk_retry(where, operator)
    except ValidationError as invalid:
        flash(f"The filter was not understood: {problems(invalid)}", "error")
        return redirect(_list_url(args))
    except OperationError as failure:
        flash(failure.message, "error")
        return redirect(_list_url(args))
    return redirect(url_for("ops.bulk", bulk_id=bulk.id))


@bp.get("/bulk/<bulk_id>")
@signed_in("viewer")
def bulk(operator: Operator, bulk_id: str) -> Any:
    """Show a bulk retry's progress (the page refreshes itself until it is done)."""
    return render_template("ops/bulk.html", operator=operator, bulk=operations().bulk(bulk_id))


# Helpers -----------------------------------------------------------------------------------------


def _change(execution_id: str, change: Callable[[Operations], Any], done: str) -> Response:
    """Make a change to one execution and go back to its page with what happened."""
    try:
        change(operations())
    except OperationError as failure:
        flash(failure.message, "error")
    else:
        flash(done, "notice")
    return redirect(url_for("ops.execution", execution_id=execution_id))


def _list_url(filters: dict[str, str], **changes: str | None) -> str:
    """Return the list's address with some filters changed (None removes one); a new filter starts at page one."""
    merged = {**filters, **changes}
    query = {
        name: value for name, value in merged.items() if value and (name in schemas.FILTER_NAMES or name == "cursor")
    }
    return url_for("ops.executions") + (f"?{urlencode(query)}" if query else "")


def _safe_next(target: str | None) -> str:
    """Return where to go after signing in: only one of the console's own pages."""
    if target and target.startswith("/ops") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("ops.executions")
