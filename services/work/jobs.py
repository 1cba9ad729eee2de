"""RQ jobs. They take ids, build their clients through the bootstrap (never at import time), and return
what happened, or a Retry for a transient failure."""

from __future__ import annotations

from rq import Retry

from services import bootstrap
from services.ops.operations import Operations
from services.work import batches, statuses
from services.work.callbacks import CallbackFlusher
from services.work.runner import ExecutionRunner


def run_execution(execution_id: str) -> str | Retry:
    """Run one execution to its outcome, or hand it back for a later retry."""
    return ExecutionRunner(bootstrap.current()).run(execution_id)


def run_bulk_retry(bulk_id: str) -> str:
    """Retry every execution of a bulk operation, recording progress as it goes."""
    bulk = Operations(bootstrap.current()).run_bulk(bulk_id)
    return f"{bulk.done} retried, {bulk.skipped} skipped"


def flush_callbacks(portal_id: int) -> str | Retry:
    """Report every finished execution of a portal to HubSpot, in batches."""
    return CallbackFlusher(bootstrap.current()).flush(portal_id)


def send_batches(portal_id: int, realm_id: str) -> str | Retry:
    """Send the document writes waiting for a portal's company, up to 30 per QuickBooks batch."""
    return batches.send_batches(bootstrap.current(), portal_id, realm_id)


def apply_quickbooks_notices(realm_id: str) -> str | Retry:
    """Apply a company's change notifications to the documents shown on HubSpot records."""
    return statuses.apply_notices(bootstrap.current(), realm_id)


def read_quickbooks_changes(realm_id: str) -> str | Retry:
    """Read what changed in a company since the last read (catches the notifications Intuit did not send)."""
    return statuses.read_changes(bootstrap.current(), realm_id)


def push_document_statuses(portal_id: int) -> str | Retry:
    """Send a portal's changed document statuses to its records, and its new payments to their timelines."""
    return statuses.push_statuses(bootstrap.current(), portal_id)


def set_up_hubspot_properties(portal_id: int) -> str:
    """Create the QuickBooks property group and properties on a portal's deals, quotes and payments."""
    report = statuses.set_up_properties(bootstrap.current(), portal_id)
    return "; ".join(f"{object_type}: {what}" for object_type, what in report.items())
