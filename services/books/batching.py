"""QuickBooks batches of documents: the request for a batch's members, and what each member's answer means."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.books.documents import document_summary
from services.store.records import BatchItem
from services.transport.errors import ServiceError

# Intuit's recommended ceiling of operations per batch request.
BATCH_SIZE = 30


def batch_request(items: Sequence[BatchItem]) -> list[dict[str, Any]]:
    """Return the BatchItemRequests that create each member's document, under its bId."""
    return [{"bId": item.bid, "operation": "create", item.entity: item.body} for item in items]


def read_answers(
    items: Sequence[BatchItem], answers: Sequence[dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Split a batch's answers (in request order) into the documents created and the faults, by bId."""
    documents: dict[str, dict[str, Any]] = {}
    faults: dict[str, dict[str, Any]] = {}
    for item, answer in zip(items, answers, strict=True):
        bid = item.bid or ""
        created = answer.get(item.entity)
        if isinstance(created, dict) and created.get("Id"):
            documents[bid] = document_summary(created)
        elif isinstance(answer.get("Fault"), dict):
            faults[bid] = {"Fault": answer["Fault"]}
        else:
            # Neither a document nor a fault: treat it as nothing created, never as success.
            faults[bid] = fault_of("SystemFault", f"QuickBooks answered the {item.entity} with neither it nor a fault")
    return documents, faults


def whole_batch_fault(error: ServiceError) -> dict[str, Any]:
    """Return the Fault each member carries when QuickBooks refused the whole batch (nothing was created)."""
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("Fault") or body.get("fault"), dict):
        return {"Fault": body.get("Fault") or body.get("fault")}
    return fault_of("ValidationFault", str(error), code=error.code)


def fault_of(kind: str, message: str, *, code: str | None = None) -> dict[str, Any]:
    """Return a Fault in Intuit's shape."""
    return {"Fault": {"type": kind, "Error": [{"Message": message, "code": code or ""}]}}
