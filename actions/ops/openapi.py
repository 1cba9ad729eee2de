"""The OpenAPI 3 document of the operations API, built from the marshmallow schemas that load and dump it."""

from __future__ import annotations

import functools
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from actions.ops import schemas

ERRORS = {
    "400": "A bad filter or body; the message names each bad field.",
    "401": "No token, or a token that is expired, for another audience, unsigned or otherwise refused.",
    "403": "The token's role does not allow this.",
    "404": "No such execution or bulk operation (or, linking, no such invoice or company).",
    "409": "The execution's state does not allow this (running, already retried, succeeded, a document sent).",
    "415": "Changes must be sent as JSON.",
    "502": "QuickBooks could not be read.",
}


def _answer(description: str, schema: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema:
        answer["content"] = {"application/json": {"schema": schema}}
    return answer


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _answer(ERRORS[code], "Error") for code in codes}


def _id_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def _body(schema: str, *, required: bool = False) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


@functools.cache
def document() -> dict[str, Any]:
    """Return the OpenAPI document (built once)."""
    spec = APISpec(
        title="QuickBooks Actions for HubSpot: operations API",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "Find executions, look into one, retry it (optionally with corrected inputs or product mappings), "
                "cancel it, mark it as booked, or retry everything a filter matches. Viewers read; operators "
                "change one execution; admins also retry in bulk. Every change is written to the audit log."
            )
        },
        servers=[{"url": "/ops/api"}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    for name, schema in (
        ("Execution", schemas.ExecutionSchema),
        ("ExecutionDetail", schemas.ExecutionDetailSchema),
        ("ExecutionPage", schemas.ExecutionPageSchema),
        ("RetryBody", schemas.RetryBodySchema),
        ("CancelBody", schemas.CancelBodySchema),
        ("MarkBookedBody", schemas.MarkBookedBodySchema),
        ("Filter", schemas.FilterSchema),
        ("Bulk", schemas.BulkSchema),
        ("LinkInvoiceBody", schemas.LinkInvoiceBodySchema),
        ("LinkedDocument", schemas.LinkedDocumentSchema),
        ("Error", schemas.ErrorSchema),
    ):
        spec.components.schema(name, schema=schema)
    execution_id = _id_parameter("execution_id", "The execution's id or its HubSpot callbackId.")
    spec.path(
        path="/executions",
        operations={
            "get": {
                "summary": "List executions, newest first",
                "parameters": [{"in": "query", "schema": schemas.ListQuerySchema}],
                "responses": {"200": _answer("A page of executions.", "ExecutionPage"), **_errors("400", "401")},
            }
        },
    )
    spec.path(
        path="/executions/{execution_id}",
        operations={
            "get": {
                "summary": "One execution with its inputs (redacted), attempts, steps, audit trail and links",
                "parameters": [execution_id],
                "responses": {"200": _answer("The execution.", "ExecutionDetail"), **_errors("401", "404")},
            }
        },
    )
    changes = (
        ("retry", "Retry a failed or held execution", "RetryBody", "202", "Queued again."),
        ("cancel", "Report FAIL_CONTINUE with reason CANCELLED and who cancelled", "CancelBody", "200", "Cancelled."),
        ("mark-booked", "Link an existing QuickBooks document; report SUCCESS", "MarkBookedBody", "200", "Booked."),
    )
    for name, summary, body, status, done in changes:
        spec.path(
            path=f"/executions/{{execution_id}}/{name}",
            operations={
                "post": {
                    "summary": summary,
                    "parameters": [execution_id],
                    "requestBody": _body(body, required=name == "mark-booked"),
                    "responses": {
                        status: _answer(done, "ExecutionDetail"),
                        **_errors("400", "401", "403", "404", "409", "415"),
                    },
                }
            },
        )
    spec.path(
        path="/executions/retry",
        operations={
            "post": {
                "summary": "Retry every failed or held execution the filter matches, in the background (admins)",
                "requestBody": _body("Filter"),
                "responses": {
                    "202": _answer("The bulk retry, started.", "Bulk"),
                    **_errors("400", "401", "403", "415"),
                },
            }
        },
    )
    spec.path(
        path="/bulk/{bulk_id}",
        operations={
            "get": {
                "summary": "A bulk retry's progress",
                "parameters": [_id_parameter("bulk_id", "The id POST /executions/retry answered with.")],
                "responses": {"200": _answer("The bulk retry.", "Bulk"), **_errors("401", "404")},
            }
        },
    )
    spec.path(
        path="/documents/link",
        operations={
            "post": {
                "summary": "Show an invoice made in QuickBooks by hand on a HubSpot record (its status follows)",
                "requestBody": _body("LinkInvoiceBody", required=True),
                "responses": {
                    "201": _answer("The invoice, followed on the record.", "LinkedDocument"),
                    **_errors("400", "401", "403", "404", "415", "502"),
                },
            }
        },
    )
    result = spec.to_dict()
    result["security"] = [{"bearer": []}]
    return result
