"""What a remote error that no retry will fix becomes: the reason and sentence HubSpot shows."""

from __future__ import annotations

import pytest

from services.books.failures import REASONS, DocumentBusyError, describe, failure_for, internal_error, not_connected
from services.transport.errors import (
    ConnectionRevokedError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceError,
    TransientError,
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRevokedError("gone", service="quickbooks"), "QUICKBOOKS_NOT_CONNECTED"),
        (ConnectionRevokedError("gone", service="hubspot"), "HUBSPOT_NOT_CONNECTED"),
        (DocumentBusyError("busy", service="internal"), "DOCUMENT_IN_PROGRESS"),
        (RateLimitedError("slow down", service="quickbooks"), "QUICKBOOKS_UNAVAILABLE"),
        (TransientError("down", service="hubspot"), "HUBSPOT_UNAVAILABLE"),
        (PermanentError("QuickBooks: Invalid Reference Id", service="quickbooks", code="2500"), "QUICKBOOKS_REJECTED"),
        (NotFoundError("HubSpot: not found", service="hubspot", http_status=404), "RECORD_NOT_FOUND"),
        (PermanentError("HubSpot: bad", service="hubspot", http_status=400), "HUBSPOT_REJECTED"),
    ],
)
def test_each_remote_error_becomes_a_stable_reason(error: ServiceError, reason: str) -> None:
    failure = failure_for(error)
    assert failure.reason == reason and failure.reason in REASONS and failure.message


def test_a_quickbooks_refusal_names_its_code_and_detail_once() -> None:
    error = PermanentError(
        "QuickBooks: Invalid Reference Id", service="quickbooks", code="2500", detail="Invalid Reference Id : Item 99"
    )
    failure = failure_for(error)
    assert (
        failure.message
        == "QuickBooks rejected the request (code 2500): Invalid Reference Id Invalid Reference Id : Item 99"
    )
    assert failure.details == {"quickbooks_code": "2500"}


def test_a_company_not_connected_says_whether_it_ever_was() -> None:
    assert "needs to be reconnected" in not_connected("9130355", was_connected=True).message
    assert "is not connected to this HubSpot account" in not_connected("9130355", was_connected=False).message


def test_an_unexpected_error_is_internal_and_names_only_its_class() -> None:
    failure = internal_error(KeyError("secret value"))
    assert failure.reason == "INTERNAL_ERROR" and "KeyError" in failure.message and "secret" not in failure.message


def test_an_unknown_reason_is_described_as_internal() -> None:
    assert describe("NO_SUCH_REASON") == REASONS["INTERNAL_ERROR"]
