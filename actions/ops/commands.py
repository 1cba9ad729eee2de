"""`qbo-actions executions ...`: the operations console's reads and changes on the server's shell.

The commands call the same operations as the console and the API; changes are recorded in the audit log as
made by ``cli:<user>`` with the admin role (whoever has the server's shell can do anything anyway).
"""

from __future__ import annotations

import getpass
import json
import re
from datetime import timedelta
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from marshmallow import ValidationError

from actions.ops import schemas
from actions.ops.inputs import corrected_inputs
from services.bootstrap import Services
from services.clock import utcnow
from services.ops.operations import PUBLIC_STATES, OperationError, Operations, operator_of_command_line, public_state
from services.ops.tokens import Operator
from services.store.records import ExecutionFilter


def _services() -> Services:
    return current_app.extensions["qbo_actions"]  # type: ignore[no-any-return]


def _operations() -> Operations:
    return Operations(_services())


def _operator() -> Operator:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return operator_of_command_line(user)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    """Turn NAME=VALUE options into a mapping."""
    pairs = {}
    for value in values:
        name, sign, setting = value.partition("=")
        if not sign or not name.strip():
            raise click.BadParameter(f"{value!r}: write {what}", param_hint="--input/--map")
        pairs[name.strip()] = setting.strip()
    return pairs


def _filter(options: dict[str, Any]) -> ExecutionFilter:
    """Read filter options through the API's own schema (same names, same checks)."""
    given = {name: str(value) for name, value in options.items() if value not in (None, "")}
    try:
        return schemas.to_filter(schemas.FilterSchema().load(given))
    except ValidationError as invalid:
        raise click.UsageError(f"Invalid filter: {invalid.messages}") from invalid


def filter_options(command: Any) -> Any:
    """Add the filter options every listing command takes."""
    for option in reversed(
        (
            click.option("--state", type=click.Choice([*PUBLIC_STATES, "queued"])),
            click.option("--reason", help="A failure reason, e.g. QUICKBOOKS_UNAVAILABLE."),
            click.option("--action", help="An action name, e.g. create_invoice."),
            click.option("--portal-id", type=int),
            click.option("--realm-id"),
            click.option("--since", help="ISO 8601 time, or an age such as 2h or 7d."),
            click.option("--until", help="ISO 8601 time, or an age such as 30m."),
            click.option("--callback-id"),
        )
    ):
        command = option(command)
    return command


@click.group()
def executions() -> None:
    """Look after executions: list, show, retry, cancel, mark as booked, purge."""


@executions.command("list")
@filter_options
@click.option("--limit", type=int, default=50, show_default=True)
@with_appcontext
def executions_list(limit: int, **options: Any) -> None:
    """List the newest executions matching the filter, then the counts per failure reason."""
    page = _operations().page(_filter(options), limit=limit)
    for e in page.executions:
        reason = f" {e.failure_reason}" if e.failure_reason else ""
        click.echo(
            f"{e.id}  {e.created_at:%Y-%m-%d %H:%M:%S}  {e.action:<22} {e.state:<9}{reason}  "
            f"portal {e.portal_id} {e.object_type} {e.object_id}  callback {e.callback_state}"
        )
    if page.reason_counts:
        click.echo("reasons: " + ", ".join(f"{reason} {count}" for reason, count in page.reason_counts.items()))


@executions.command("show")
@click.argument("execution_id")
@with_appcontext
def executions_show(execution_id: str) -> None:
    """Show an execution (by id or callbackId) with its attempts, steps and audit trail (JSON)."""
    try:
        view = _operations().view(execution_id)
    except OperationError as failure:
        raise click.ClickException(failure.message) from failure
    e = view.execution
    data = {
        "id": e.id,
        "callback_id": e.callback_id,
        "action": e.action,
        "state": public_state(e.state),
        "portal_id": e.portal_id,
        "realm_id": e.realm_id,
        "object": f"{e.object_type} {e.object_id}",
        "inputs": view.inputs,
        "failure_reason": e.failure_reason,
        "failure_message": e.failure_message,
        "failure_details": e.failure_details,
        "output_fields": e.output_fields,
        "callback_state": e.callback_state,
        "created_at": e.created_at.isoformat(),
        "attempts": [
            {
                "number": a.number,
                "started_at": a.started_at.isoformat(),
                "outcome": a.outcome,
                "error_code": a.error_code,
                "http_status": a.http_status,
                "intuit_tid": a.request_id,
                "message": a.message,
            }
            for a in view.attempts
        ],
        "steps": {name: {"status": s.status, **s.data} for name, s in view.steps.items()},
        "audit": [
            {"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "before": a.before, "after": a.after}
            for a in view.audit
        ],
        "links": {"quickbooks": view.quickbooks_url, "hubspot": view.hubspot_url},
    }
    click.echo(json.dumps(data, indent=2, default=str))


@executions.command("retry")
@click.argument("execution_id")
@click.option("--input", "inputs", multiple=True, metavar="NAME=VALUE", help="Correct an input field (repeatable).")
@click.option(
    "--map", "maps", multiple=True, metavar="PRODUCT=ITEM", help="Map a HubSpot product to a QuickBooks item."
)
@with_appcontext
def executions_retry(execution_id: str, inputs: tuple[str, ...], maps: tuple[str, ...]) -> None:
    """Run a failed or held execution again, optionally with corrected inputs or product mappings.

    It resumes from the steps already done with the same requestids, so nothing is booked twice.
    """
    ops = _operations()
    try:
        corrected = None
        if inputs:
            corrected = corrected_inputs(ops.find(execution_id), _pairs(inputs, "NAME=VALUE"))
        e = ops.retry(execution_id, _operator(), inputs=corrected, item_mappings=_pairs(maps, "PRODUCT=ITEM") or None)
    except OperationError as failure:
        raise click.ClickException(failure.message) from failure
    click.echo(f"Execution {e.id} queued again.")


@executions.command("cancel")
@click.argument("execution_id")
@click.option("--note", default="", help="Why; HubSpot shows it with the failure.")
@with_appcontext
def executions_cancel(execution_id: str, note: str) -> None:
    """Report a waiting, retrying or held execution as failed with reason CANCELLED."""
    try:
        e = _operations().cancel(execution_id, _operator(), note=note)
    except OperationError as failure:
        raise click.ClickException(failure.message) from failure
    click.echo(f"Execution {e.id} cancelled: {e.failure_message}")


@executions.command("mark-booked")
@click.argument("execution_id")
@click.option("--quickbooks-id", required=True, help="The Id of the document that already exists in QuickBooks.")
@with_appcontext
def executions_mark_booked(execution_id: str, quickbooks_id: str) -> None:
    """Link an execution to a QuickBooks document that exists and report SUCCESS; nothing is written."""
    try:
        e = _operations().mark_booked(execution_id, _operator(), quickbooks_id)
    except OperationError as failure:
        raise click.ClickException(failure.message) from failure
    click.echo(f"Execution {e.id} marked as booked by {quickbooks_id}.")


@executions.command("retry-all")
@filter_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def executions_retry_all(yes: bool, **options: Any) -> None:
    """Retry every failed or held execution matching the filter, with a progress bar."""
    ops = _operations()
    where = _filter(options)
    try:
        bulk = ops.start_bulk_retry(where, _operator(), enqueue=False)
    except OperationError as failure:
        raise click.ClickException(failure.message) from failure
    if bulk.total == 0:
        click.echo("No failed or held execution matches the filter.")
        return
    if not yes and not click.confirm(f"Retry {bulk.total} executions?"):
        # Nothing retried: the bulk operation is closed as it stands, and the audit log shows it was asked for.
        _services().bulk.progress(bulk.id, done=0, skipped=bulk.total, finished=True)
        raise click.Abort()
    with click.progressbar(length=bulk.total, label="Retrying", show_pos=True) as bar:
        handled = 0

        def advance(progress: Any) -> None:
            nonlocal handled
            bar.update(progress.done + progress.skipped - handled)
            handled = progress.done + progress.skipped

        finished = ops.run_bulk(bulk.id, on_progress=advance)
    click.echo(f"Queued {finished.done} executions again; skipped {finished.skipped}. Bulk operation {finished.id}.")


@executions.command("purge")
@click.option("--older-than", "age", required=True, help="How long ago they finished: 90d, 12w, 36h.")
@with_appcontext
def executions_purge(age: str) -> None:
    """Delete finished executions (with their attempts and steps) that finished longer ago than AGE.

    Executions still waiting, running or retrying, those whose callback is not sent yet, and those that hold a
    payment's document are kept.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", age)
    if not match:
        raise click.BadParameter("give a number and a unit: 90d, 12w or 36h", param_hint="--older-than")
    unit = {"h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    cutoff = utcnow() - timedelta(**{unit: int(match.group(1))})
    purged = _services().retention.purge_finished(cutoff)
    click.echo(f"Deleted {purged} executions finished before {cutoff.isoformat(timespec='seconds')}.")
