"""Intuit's change notifications: the signature and both payload formats."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from services.quickbooks import notifications

TOKEN = "verifier-token"


def sign(body: bytes, token: str = TOKEN) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def test_the_signature_is_an_hmac_of_the_raw_body() -> None:
    body = b'[{"id": "1"}]'
    assert notifications.signature_valid(body, sign(body), TOKEN)
    assert not notifications.signature_valid(body + b" ", sign(body), TOKEN)
    assert not notifications.signature_valid(body, sign(body, "other"), TOKEN)
    assert not notifications.signature_valid(body, None, TOKEN)
    assert not notifications.signature_valid(body, "", TOKEN)


def test_cloud_events_of_several_companies() -> None:
    body = json.dumps(
        [
            {
                "specversion": "1.0",
                "id": "88cd52aa-33b6-4351-9aa4-47572edbd068",
                "type": "qbo.invoice.updated.v1",
                "time": "2025-09-10T21:31:25.179851517Z",
                "intuitentityid": "145",
                "intuitaccountid": "310687",
                "data": {},
            },
            {"id": "2", "type": "qbo.refundreceipt.created.v1", "intuitentityid": "9", "intuitaccountid": "42"},
            {"id": "3", "type": "nonsense"},
            "not an event",
        ]
    ).encode()
    notices, skipped = notifications.parse(body)
    assert skipped == 2
    first, second = notices
    assert (first.realm_id, first.entity, first.entity_id, first.operation) == ("310687", "Invoice", "145", "updated")
    assert first.occurred_at is not None and first.occurred_at.microsecond == 179851
    assert (second.realm_id, second.entity, second.operation) == ("42", "RefundReceipt", "created")


def test_the_older_format_gets_a_stable_id_per_change() -> None:
    body = json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": "310687",
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "id": "1234",
                                "operation": "Create",
                                "name": "Invoice",
                                "lastUpdated": "2025-09-08T20:52:31.657Z",
                            },
                            {"id": "77", "operation": "Void", "name": "Payment", "lastUpdated": "2025-09-08T20:52:32Z"},
                        ]
                    },
                }
            ]
        }
    ).encode()
    notices, skipped = notifications.parse(body)
    again, _ = notifications.parse(body)
    assert skipped == 0 and [n.id for n in notices] == [n.id for n in again]
    assert [(n.entity, n.operation) for n in notices] == [("Invoice", "created"), ("Payment", "voided")]


@pytest.mark.parametrize("body", [b"not json", b'{"some": "object"}', b"42", b'{"eventNotifications": 3}'])
def test_anything_else_is_refused(body: bytes) -> None:
    with pytest.raises(notifications.PayloadError):
        notifications.parse(body)


def test_a_very_long_event_id_is_kept_short_and_stable() -> None:
    event = {"id": "x" * 300, "type": "qbo.invoice.created.v1", "intuitentityid": "1", "intuitaccountid": "2"}
    (notice,), _ = notifications.parse(json.dumps([event]).encode())
    assert len(notice.id) <= notifications.MAX_ID
    assert notifications.parse(json.dumps([event]).encode())[0][0].id == notice.id


@pytest.mark.parametrize(
    "body",
    [
        {"eventNotifications": [{"realmId": "1", "dataChangeEvent": []}]},
        {"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": 5}}]},
        {
            "eventNotifications": [
                {"realmId": {"a": 1}, "dataChangeEvent": {"entities": [{"id": "1", "name": "Invoice"}]}}
            ]
        },
        {"eventNotifications": ["x", 3, None]},
        [{"id": "1", "type": "qbo.invoice.updated.v1", "intuitentityid": {"a": 1}, "intuitaccountid": "2"}],
        [{"id": "1", "type": "qbo.invoice.updated.v1", "intuitentityid": "1", "intuitaccountid": "9" * 40}],
        [{"id": ["x"], "type": "qbo.invoice.updated.v1", "intuitentityid": "1", "intuitaccountid": "2"}],
        [{"id": "1", "type": 7, "intuitentityid": "1", "intuitaccountid": "2"}],
    ],
)
def test_malformed_events_are_skipped_never_an_error(body: object) -> None:
    notices, skipped = notifications.parse(json.dumps(body).encode())
    assert notices == [] and skipped >= 1


def test_a_signature_outside_ascii_is_a_mismatch() -> None:
    assert not notifications.signature_valid(b"[]", "sïgnature", TOKEN)
