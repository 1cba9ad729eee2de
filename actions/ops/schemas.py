"""What the operations API takes and answers: filters, bodies and execution documents (marshmallow).

The same schemas describe the API in its OpenAPI document (actions/ops/openapi.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validates_schema
from marshmallow.validate import Length, OneOf, Range, Regexp

from actions.registry import by_name
from actions.schemas import PORTAL_ID_MAX
from services.books.failures import REASONS
from services.clock import utcnow
from services.ops.operations import PUBLIC_STATES, stored_state
from services.ops.tokens import parse_ttl
from services.store.records import ExecutionFilter

DIGITS = Regexp(r"^[0-9]{1,32}$", error="must be digits")
MAX_PAGE = 200
FILTER_NAMES = ("state", "reason", "action", "portal_id", "realm_id", "since", "until", "callback_id")


class Moment(fields.Field):
    """A point in time: ISO 8601 (UTC when no zone is given) or an age such as 2h, 30m or 7d (that long ago)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("give a time in ISO 8601 or an age such as 2h or 7d")
        text = value.strip()
        if re.fullmatch(r"[0-9]+[smhd]", text.lower()):
            try:
                return utcnow() - parse_ttl(text)
            except ValueError as error:
                raise ValidationError(str(error)) from error
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as error:
            raise ValidationError("give a time in ISO 8601 or an age such as 2h or 7d") from error
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return value.isoformat() if isinstance(value, datetime) else None


class FilterSchema(Schema):
    """Which executions: every field narrows the set."""

    class Meta:
        unknown = RAISE

    state = fields.String(validate=OneOf((*PUBLIC_STATES, "queued")))
    reason = fields.String(validate=OneOf(tuple(REASONS)))
    action = fields.String(validate=OneOf(tuple(sorted(by_name()))))
    portal_id = fields.Integer(strict=False, validate=Range(min=1, max=PORTAL_ID_MAX))
    realm_id = fields.String(validate=DIGITS)
    since = Moment(metadata={"description": "ISO 8601, or an age such as 2h (created at or after)"})
    until = Moment(metadata={"description": "ISO 8601, or an age such as 30m (created before)"})
    callback_id = fields.String(validate=Length(min=1, max=255))

    @validates_schema
    def _time_range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError("since must be before until", "since")


def to_filter(loaded: dict[str, Any]) -> ExecutionFilter:
    """Return the filter of what FilterSchema (or ListQuerySchema) loaded."""
    values = {name: value for name, value in loaded.items() if name in FILTER_NAMES}
    if "state" in values:
        values["state"] = stored_state(values["state"])
    return ExecutionFilter(**values)


class ListQuerySchema(FilterSchema):
    """The query of GET /ops/api/executions: a filter, a page size and the cursor of the next page."""

    cursor = fields.String(validate=Length(min=1, max=200))
    limit = fields.Integer(strict=False, load_default=50, validate=Range(min=1, max=MAX_PAGE))


class RetryBodySchema(Schema):
    """The body of POST /ops/api/executions/{id}/retry (both fields optional)."""

    class Meta:
        unknown = RAISE

    inputs = fields.Dict(
        keys=fields.String(validate=Length(min=1, max=64)),
        load_default=None,
        metadata={"description": "Input fields to override, as the action's input names; recorded in the audit log."},
    )
    item_mappings = fields.Dict(
        keys=fields.String(validate=DIGITS),
        values=fields.String(validate=DIGITS),
        load_default=None,
        metadata={"description": "HubSpot product id → QuickBooks item id, saved as product mappings."},
    )


class CancelBodySchema(Schema):
    """The body of POST /ops/api/executions/{id}/cancel."""

    class Meta:
        unknown = RAISE

    note = fields.String(load_default="", validate=Length(max=500), metadata={"description": "Why (shown in HubSpot)."})


class LinkInvoiceBodySchema(Schema):
    """The body of POST /ops/api/documents/link."""

    class Meta:
        unknown = RAISE

    portal_id = fields.Integer(required=True, strict=False, metadata={"description": "The HubSpot portal."})
    object_type = fields.String(
        required=True,
        validate=Length(min=1, max=32),
        metadata={"description": "DEAL, QUOTE or COMMERCE_PAYMENT (or deals, 0-3, ...)."},
    )
    object_id = fields.String(required=True, validate=DIGITS, metadata={"description": "The record."})
    realm_id = fields.String(required=True, validate=DIGITS, metadata={"description": "The QuickBooks company."})
    invoice_number = fields.String(
        required=True, validate=Length(min=1, max=21), metadata={"description": "The invoice's DocNumber."}
    )


class LinkedDocumentSchema(Schema):
    """A QuickBooks document followed on a HubSpot record."""

    portal_id = fields.Integer()
    object_type = fields.String()
    object_id = fields.String()
    realm_id = fields.String()
    quickbooks_id = fields.String(attribute="document_id")


class MarkBookedBodySchema(Schema):
    """The body of POST /ops/api/executions/{id}/mark-booked."""

    class Meta:
        unknown = RAISE

    quickbooks_id = fields.String(required=True, validate=DIGITS, metadata={"description": "The document's Id."})


class ExecutionSchema(Schema):
    """An execution as listed."""

    id = fields.String()
    callback_id = fields.String()
    action = fields.String()
    portal_id = fields.Integer()
    realm_id = fields.String(allow_none=True)
    object_type = fields.String()
    object_id = fields.String()
    state = fields.Function(
        lambda e: "waiting" if e.state == "queued" else e.state,
        metadata={"type": "string", "enum": list(PUBLIC_STATES)},
    )
    callback_state = fields.String()
    failure_reason = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    attempt_count = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    held_until = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)


class AttemptSchema(Schema):
    """One run of an execution."""

    number = fields.Integer()
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    outcome = fields.String()
    error_service = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)
    http_status = fields.Integer(allow_none=True)
    intuit_tid = fields.String(attribute="request_id", allow_none=True)
    message = fields.String(allow_none=True)


class AuditEntrySchema(Schema):
    """One change an operator made."""

    at = fields.DateTime()
    actor = fields.String()
    role = fields.String()
    action = fields.String()
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    note = fields.String(allow_none=True)


class ExecutionDetailSchema(ExecutionSchema):
    """An execution with its inputs (redacted), outputs, attempts, steps, audit trail and links."""

    inputs = fields.Dict()
    failure_details = fields.Dict(allow_none=True)
    output_fields = fields.Dict(allow_none=True)
    attempts = fields.List(fields.Nested(AttemptSchema))
    steps = fields.Dict(keys=fields.String(), values=fields.Dict())
    audit = fields.List(fields.Nested(AuditEntrySchema))
    links = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))


class ExecutionPageSchema(Schema):
    """A page of executions."""

    executions = fields.List(fields.Nested(ExecutionSchema))
    next_cursor = fields.String(allow_none=True)
    reason_counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    state_counts = fields.Dict(keys=fields.String(), values=fields.Integer())


class BulkSchema(Schema):
    """A bulk retry and its progress."""

    id = fields.String()
    kind = fields.String()
    actor = fields.String()
    filters = fields.Dict()
    state = fields.String(metadata={"enum": ["queued", "running", "finished"]})
    total = fields.Integer()
    done = fields.Integer()
    skipped = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class ErrorSchema(Schema):
    """Every error answer of the operations API."""

    status = fields.String(metadata={"enum": ["error"]})
    code = fields.String()
    message = fields.String()
    errors = fields.Dict()
