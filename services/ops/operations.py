"""What operators do with executions: find them, look into one, retry (with corrections), cancel, mark as booked.

The console, its JSON API and the command line all call these functions, so each change is checked, carried out
and written to the audit trail the same way whichever door it came through. None of them ever books a document
twice: a retry resumes from the steps the execution completed, with the same requestids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services import metrics
from services.books import statuses
from services.books.failures import ActionFailure
from services.books.linking import linked_outputs
from services.bootstrap import Services
from services.hubspot import outputs
from services.hubspot.objects import object_type_name, record_url
from services.ops.tokens import Operator
from services.quickbooks.client import QuickBooksClient
from services.quickbooks.query import like_pattern, one_of, select
from services.store.records import (
    FAILED,
    HELD,
    QUEUED,
    Attempt,
    AuditEntry,
    BulkOperation,
    Execution,
    ExecutionFilter,
    Step,
    Tenant,
)
from services.transport.errors import ServiceError

log = logging.getLogger(__name__)

# The states an operator sees; "waiting" is stored as "queued".
PUBLIC_STATES = ("waiting", "running", "retrying", "held", "failed", "succeeded")
# A bulk retry takes at most this many executions (a filter that matches more is narrowed by time first).
BULK_LIMIT = 5000
# How often a bulk retry records its progress.
PROGRESS_EVERY = 20
# Input names whose values are secrets or personal data, shown redacted.
SENSITIVE_PARTS = ("token", "secret", "password", "email", "phone", "address")
REDACTED = "•••"
CANCELLED = "CANCELLED"


def public_state(state: str) -> str:
    """Return the state name operators see."""
    return "waiting" if state == QUEUED else state


def stored_state(state: str) -> str:
    """Return the stored state of a name operators use (``waiting`` or ``queued`` both mean queued)."""
    return QUEUED if state in ("waiting", QUEUED) else state


class OperationError(Exception):
    """An operation that cannot be done, with the HTTP status and a code the edge answers with."""

    status = 400
    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(OperationError):
    """The request itself is wrong (a bad filter, an unknown item)."""


class Forbidden(OperationError):
    """The operator's role does not allow this."""

    status, code = 403, "forbidden"


class NotFound(OperationError):
    """No such execution or bulk operation."""

    status, code = 404, "not_found"


class Conflict(OperationError):
    """The execution is not in a state that allows this (running, already retried, succeeded)."""

    status, code = 409, "conflict"


@dataclass(frozen=True)
class ExecutionPage:
    """A page of executions with the counts an operator filters by."""

    executions: list[Execution]
    next_cursor: str | None
    reason_counts: dict[str, int]
    state_counts: dict[str, int]


@dataclass(frozen=True)
class ExecutionView:
    """Everything about one execution an operator looks at."""

    execution: Execution
    inputs: dict[str, Any]
    attempts: list[Attempt]
    steps: dict[str, Step]
    audit: list[AuditEntry]
    quickbooks_url: str | None
    hubspot_url: str | None

    @property
    def unmatched_products(self) -> list[dict[str, Any]]:
        """Return the products a LINE_ITEM_NOT_MATCHED failure named (empty for other failures)."""
        details = self.execution.failure_details or {}
        return list(details.get("unmatched") or [])


def redacted(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Return inputs with the values of secret or personal fields hidden."""
    return {
        name: REDACTED if any(part in name.lower() for part in SENSITIVE_PARTS) and value else value
        for name, value in inputs.items()
    }


class Operations:
    """Operators' reads and changes, over the composition root's repositories, queue and clients."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.executions = services.executions
        self.audit = services.audit

    # Reads ---------------------------------------------------------------------------------------

    def page(self, where: ExecutionFilter, *, limit: int = 50, cursor: str | None = None) -> ExecutionPage:
        """Return a page of matching executions, newest first, with the counts per reason and per state."""
        listing = self.services.listing
        try:
            found, next_cursor = listing.page(where, limit=limit, cursor=cursor)
        except ValueError as error:
            raise InvalidRequest(str(error)) from error
        return ExecutionPage(found, next_cursor, listing.reason_counts(where), listing.state_counts(where))

    def view(self, id_or_callback: str) -> ExecutionView:
        """Return an execution (by id or callbackId) with its attempts, steps and audit trail."""
        execution = self._find(id_or_callback)
        svc = self.services
        fields = execution.output_fields or {}
        return ExecutionView(
            execution=execution,
            inputs=redacted(execution.inputs),
            attempts=svc.attempts.of(execution.id),
            steps=svc.bookkeeping.steps(execution.id),
            audit=self.audit.of_execution(execution.id),
            quickbooks_url=str(fields.get("quickbooks_url") or "") or None,
            hubspot_url=record_url(execution.portal_id, execution.object_type, execution.object_id),
        )

    def find(self, id_or_callback: str) -> Execution:
        """Return an execution by id or callbackId (NotFound otherwise)."""
        return self._find(id_or_callback)

    def bulk(self, bulk_id: str) -> BulkOperation:
        """Return a bulk operation and its progress."""
        found = self.services.bulk.get(bulk_id)
        if found is None:
            raise NotFound(f"No bulk operation {bulk_id}.")
        return found

    def quickbooks_items(self, execution: Execution, search: str = "") -> list[dict[str, str]]:
        """Return the company's active items an operator can map a product to (name order, at most 1,000)."""
        qbo = self._quickbooks_of(execution)
        # QuickBooks answers with active items only unless the query asks about Active.
        where = f"Name LIKE {like_pattern(search)}" if search else ""
        items = qbo.query(select("Item", where, order_by="Name", size=1000))
        return [
            {"id": str(item["Id"]), "name": str(item.get("FullyQualifiedName") or item.get("Name"))} for item in items
        ]

    # Changes -------------------------------------------------------------------------------------

    def retry(
        self,
        id_or_callback: str,
        operator: Operator,
        *,
        inputs: dict[str, Any] | None = None,
        item_mappings: Mapping[str, str] | None = None,
        bulk_id: str | None = None,
    ) -> Execution:
        """Queue a failed or held execution again, optionally with corrected inputs and new product mappings.

        ``inputs`` is the complete, validated set of inputs (the edge merges the overrides and checks them against
        the action's schema). Mappings are checked against QuickBooks before anything changes.
        """
        self._require(operator, "operator")
        execution = self._find(id_or_callback)
        self._require_retryable(execution)
        before = self._snapshot(execution)
        tenant = Tenant(execution.portal_id, execution.realm_id or "")
        mappings = dict(item_mappings or {})
        if mappings:
            self._check_items(execution, mappings)
        changed_inputs = inputs is not None and inputs != execution.inputs
        if changed_inputs:
            assert inputs is not None
            if not self.executions.replace_inputs(execution.id, inputs):
                raise Conflict(
                    f"Execution {execution.id} already sent a document to QuickBooks, so its inputs can no longer "
                    "change: a retry returns that document. Retry it as it is, or mark it as booked."
                )
        previous = self.services.bookkeeping.product_mappings(tenant, list(mappings))
        for product_id, item_id in mappings.items():
            self.services.bookkeeping.save_product_mapping(tenant, product_id, item_id)
        if not self.executions.requeue_failed(execution.id):
            raise Conflict(f"Execution {execution.id} was retried or changed by someone else a moment ago.")
        self.services.queue.ensure_enqueued(execution.id, execution.portal_id, force=True)
        action = "map_and_retry" if mappings else "edit_and_retry" if changed_inputs else "retry"
        after: dict[str, Any] = {"state": "waiting"}
        if changed_inputs:
            after["inputs"] = inputs
            before["inputs"] = execution.inputs
        if mappings:
            before["item_mappings"] = previous
            after["item_mappings"] = mappings
        self.audit.record(
            actor=operator.subject,
            role=operator.role,
            action=action,
            execution_id=execution.id,
            before=before,
            after=after,
            note=f"bulk retry {bulk_id}" if bulk_id else None,
        )
        log.info("execution %s: %s by %s", execution.id, action, operator.subject)
        return self._find(execution.id)

    def cancel(self, id_or_callback: str, operator: Operator, *, note: str = "") -> Execution:
        """Report a waiting, retrying or held execution as failed with reason CANCELLED, naming who cancelled it."""
        self._require(operator, "operator")
        execution = self._find(id_or_callback)
        message = f"Cancelled by {operator.subject}" + (f": {note.strip()}" if note.strip() else ".")
        fields = outputs.failed(CANCELLED, message)
        if not self.executions.cancel(execution.id, output_fields=fields, reason=CANCELLED, message=message):
            current = self._find(execution.id)
            raise Conflict(
                f"Execution {execution.id} is {public_state(current.state)}; only a waiting, retrying or held "
                "execution that has not sent a document to QuickBooks can be cancelled. Mark it as booked instead "
                "if its document exists."
            )
        self.audit.record(
            actor=operator.subject,
            role=operator.role,
            action="cancel",
            execution_id=execution.id,
            before=self._snapshot(execution),
            after={"state": FAILED, "failure_reason": CANCELLED},
            note=note.strip() or None,
        )
        metrics.finished(execution.action, "cancelled", CANCELLED)
        self._flush(execution.portal_id)
        return self._find(execution.id)

    def mark_booked(self, id_or_callback: str, operator: Operator, quickbooks_id: str) -> Execution:
        """Link an execution to a QuickBooks document that already exists and report SUCCESS; write nothing."""
        self._require(operator, "operator")
        execution = self._find(id_or_callback)
        if execution.state not in (QUEUED, "retrying", HELD, FAILED):
            raise Conflict(
                f"Execution {execution.id} is {public_state(execution.state)}; it cannot be marked as booked."
            )
        qbo = self._quickbooks_of(execution)
        try:
            fields = linked_outputs(
                qbo,
                execution.action,
                quickbooks_id.strip(),
                realm_id=execution.realm_id or "",
                app_url=self.services.config.quickbooks_app_url,
            )
        except ActionFailure as failure:
            raise InvalidRequest(failure.message) from failure
        except ServiceError as error:
            raise InvalidRequest(f"QuickBooks could not be asked about document {quickbooks_id}: {error}") from error
        if not self.executions.mark_booked(execution.id, output_fields=outputs.succeeded(fields)):
            current = self._find(execution.id)
            raise Conflict(f"Execution {execution.id} is {public_state(current.state)}; it cannot be marked as booked.")
        self.audit.record(
            actor=operator.subject,
            role=operator.role,
            action="mark_booked",
            execution_id=execution.id,
            before=self._snapshot(execution),
            after={"state": "succeeded", "quickbooks_id": fields["quickbooks_id"]},
        )
        metrics.finished(execution.action, "booked", "")
        self._flush(execution.portal_id)
        try:
            self._follow(execution, fields, qbo)
        except Exception:
            # Booked and reported: only its status on the record is missing, which is not worth failing the answer.
            log.exception("execution %s: booked, but its document is not followed on the record", execution.id)
        return self._find(execution.id)

    def _follow(self, execution: Execution, fields: dict[str, Any], qbo: QuickBooksClient) -> None:
        """Show the document an operator linked on the execution's record, as if the action had created it."""
        entity = fields.get("quickbooks_document_type")
        if entity not in statuses.FOLLOWED or not execution.realm_id:
            return
        state: statuses.DocumentState | None
        try:
            state = statuses.state_of(entity, qbo.read(entity, str(fields["quickbooks_id"])))
        except ServiceError as error:
            # Shown from what the execution's outputs say; QuickBooks' own state comes with the next change capture.
            log.warning("document %s not read (%s); shown from the execution's outputs", fields["quickbooks_id"], error)
            state = statuses.created_state(fields, statuses.EPOCH)
        if state is None:
            return
        version = statuses.version_of(execution.realm_id, state)
        record_type = object_type_name(execution.object_type)
        self.services.followed.follow(execution.portal_id, record_type, execution.object_id, version, execution.id)
        self.services.queue.request_status_push(execution.portal_id)

    # Bulk retries --------------------------------------------------------------------------------

    def start_bulk_retry(self, where: ExecutionFilter, operator: Operator, *, enqueue: bool = True) -> BulkOperation:
        """Choose every failed or held execution matching the filter and retry them in a background job."""
        self._require(operator, "admin")
        if where.state is not None and where.state not in (FAILED, HELD):
            raise InvalidRequest("A bulk retry takes failed or held executions; filter by one of those states or none.")
        states = (where.state,) if where.state else (FAILED, HELD)
        ids = self.services.listing.matching_ids(where, states=states, limit=BULK_LIMIT + 1)
        if len(ids) > BULK_LIMIT:
            raise InvalidRequest(
                f"The filter matches more than {BULK_LIMIT} executions; narrow it (by time, reason or company)."
            )
        bulk = self.services.bulk.create(
            kind="retry", actor=operator.subject, filters=where.as_dict(), execution_ids=ids
        )
        self.audit.record(
            actor=operator.subject,
            role=operator.role,
            action="bulk_retry",
            after={"bulk_id": bulk.id, "filters": where.as_dict(), "total": bulk.total},
        )
        if enqueue and ids:
            self.services.queue.enqueue_bulk(bulk.id)
        return bulk

    def run_bulk(self, bulk_id: str, *, on_progress: Callable[[BulkOperation], None] | None = None) -> BulkOperation:
        """Retry each execution of a bulk operation still failed or held, from where an earlier run stopped."""
        bulk = self.bulk(bulk_id)
        operator = Operator(subject=bulk.actor, role="admin")
        done, skipped = bulk.done, bulk.skipped
        for position in range(done + skipped, bulk.total):
            try:
                self.retry(bulk.execution_ids[position], operator, bulk_id=bulk.id)
                done += 1
            except (Conflict, NotFound, InvalidRequest):
                # Retried, cancelled or purged since the bulk retry was asked for: nothing to do.
                skipped += 1
            if (done + skipped) % PROGRESS_EVERY == 0:
                self.services.bulk.progress(bulk.id, done=done, skipped=skipped)
                if on_progress is not None:
                    on_progress(self.bulk(bulk.id))
        self.services.bulk.progress(bulk.id, done=done, skipped=skipped, finished=True)
        finished = self.bulk(bulk.id)
        if on_progress is not None:
            on_progress(finished)
        return finished

    # Helpers -------------------------------------------------------------------------------------

    def _find(self, id_or_callback: str) -> Execution:
        execution = self.executions.find(id_or_callback) if id_or_callback else None
        if execution is None:
            raise NotFound(f"No execution {id_or_callback}.")
        return execution

    @staticmethod
    def _require(operator: Operator, role: str) -> None:
        if not operator.can(role):
            raise Forbidden(f"{operator.subject} is a {operator.role}; this needs the {role} role.")

    @staticmethod
    def _require_retryable(execution: Execution) -> None:
        if execution.state not in (FAILED, HELD):
            raise Conflict(
                f"Execution {execution.id} is {public_state(execution.state)}, not failed or held; nothing to retry."
            )

    @staticmethod
    def _snapshot(execution: Execution) -> dict[str, Any]:
        """Return what the audit trail keeps of an execution before a change."""
        return {
            "state": public_state(execution.state),
            "failure_reason": execution.failure_reason,
            "failure_message": execution.failure_message,
        }

    def _quickbooks_of(self, execution: Execution) -> Any:
        connection = self.services.connections.quickbooks(execution.portal_id, execution.realm_id or "")
        if connection is None or not connection.active:
            raise InvalidRequest(
                f"QuickBooks company {execution.realm_id} is not connected to portal {execution.portal_id}; "
                "connect it on the app's settings page first."
            )
        return self.services.quickbooks(connection)

    def _check_items(self, execution: Execution, mappings: Mapping[str, str]) -> None:
        """Refuse mappings to items the company does not have (or has made inactive)."""
        for product_id, item_id in mappings.items():
            if not product_id.isdigit() or not str(item_id).isdigit():
                raise InvalidRequest(
                    f"Map HubSpot product ids to QuickBooks item ids (digits): {product_id!r} → {item_id!r}."
                )
        try:
            found = self._quickbooks_of(execution).query(select("Item", one_of("Id", list(set(mappings.values())))))
        except ServiceError as error:
            raise InvalidRequest(f"QuickBooks could not be asked about the items: {error}") from error
        active = {str(item["Id"]) for item in found if item.get("Active", True)}
        missing = sorted(set(mappings.values()) - active)
        if missing:
            raise InvalidRequest(
                f"QuickBooks company {execution.realm_id} has no active item {', '.join(missing)}; choose another."
            )

    def _flush(self, portal_id: int) -> None:
        self.services.queue.request_callback_flush(portal_id)


def operator_of_command_line(user: str) -> Operator:
    """Return who a change made on the server's shell is recorded as (the shell can do anything)."""
    return Operator(subject=f"cli:{user}", role="admin")
