"""Linking an invoice made in QuickBooks by hand to a HubSpot record, from the console and the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError

from actions.endpoints import services
from actions.ops.schemas import LinkInvoiceBodySchema
from actions.schemas import problems
from services.hubspot.objects import OBJECT_TYPE_NAMES, object_type_name
from services.ops.operations import NotFound, OperationError
from services.ops.tokens import Operator
from services.store.records import FollowedDocument
from services.transport.errors import ServiceError
from services.work import statuses

FIELDS = ("portal_id", "object_type", "object_id", "realm_id", "invoice_number")
_link_body = LinkInvoiceBodySchema()


class Unavailable(OperationError):
    """QuickBooks could not be read."""

    status, code = 502, "quickbooks_unavailable"


def link_invoice(operator: Operator, values: Mapping[str, Any]) -> FollowedDocument:
    """Check the request (the API's body or the console's form), follow the invoice on the record and record who
    did it; raise OperationError."""
    try:
        given = _link_body.load(dict(values))
    except ValidationError as invalid:
        raise OperationError(f"Invalid link: {problems(invalid)}") from invalid
    if given["object_type"].upper() not in OBJECT_TYPE_NAMES and given["object_type"] not in OBJECT_TYPE_NAMES.values():
        raise OperationError("Invalid link: object_type must be DEAL, QUOTE or COMMERCE_PAYMENT.")
    svc = services()
    try:
        linked = statuses.link_invoice(
            svc,
            given["portal_id"],
            given["object_type"],
            given["object_id"],
            given["realm_id"],
            given["invoice_number"],
        )
    except LookupError as missing_invoice:
        raise NotFound(str(missing_invoice.args[0])) from missing_invoice
    except ServiceError as error:
        raise Unavailable(f"QuickBooks could not be read: {error}") from error
    svc.audit.record(
        actor=operator.subject,
        role=operator.role,
        action="link_invoice",
        after={**given, "object_type": object_type_name(given["object_type"]), "quickbooks_id": linked.document_id},
    )
    return linked
