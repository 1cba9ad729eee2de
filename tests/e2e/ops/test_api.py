"""The operations API over HTTP: every call, each role, the audit trail, and fixes that let the workflow go on."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from openapi_spec_validator import validate

from services.bootstrap import Services
from services.clock import utcnow
from services.store.records import Tenant
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators, seed_deal
from tests.builders import invoice_by_hand, sales_inputs
from tests.conftest import OPS_JWT_SECRET, Perform, only_callback
from tests.e2e.ops.conftest import UNKNOWN_PRODUCT, OpsClient

Api = Callable[..., OpsClient]


def _token(**claims: Any) -> str:
    now = utcnow()
    payload = {
        "sub": "ops@example.com",
        "role": "admin",
        "iss": "qbo-actions",
        "aud": "qbo-actions-ops",
        "iat": now,
        "exp": now + timedelta(hours=1),
        **claims,
    }
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, OPS_JWT_SECRET, algorithm="HS256")


def _unsigned(**claims: Any) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    now = int(utcnow().timestamp())
    body = {"sub": "x@example.com", "role": "admin", "iss": "qbo-actions", "aud": "qbo-actions-ops"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({**body, 'iat': now, 'exp': now + 600, **claims})}."


# Authentication and roles ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (None, "no token"),
        (_token(exp=utcnow() - timedelta(minutes=5), iat=utcnow() - timedelta(hours=1)), "expired"),
        (_token(aud="someone-else"), "audience"),
        (_token(iss="another-issuer"), "issuer"),
        (_unsigned(), "alg none"),
        ("not-a-token", "not a JWT"),
    ],
    ids=["missing", "expired", "wrong-audience", "wrong-issuer", "alg-none", "garbage"],
)
def test_a_request_without_a_valid_token_is_refused(ops_api: Api, token: str | None, why: str) -> None:
    response = ops_api(None, token=token or "").get("/executions")

    assert response.status_code == 401, why
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_viewer_reads_but_may_not_change_anything(ops_api: Api, held_unmatched: Any, services: Services) -> None:
    held = held_unmatched()
    viewer = ops_api("viewer")

    assert viewer.get("/executions").status_code == 200
    assert viewer.get(f"/executions/{held.id}").status_code == 200
    for path, body in (
        (f"/executions/{held.id}/retry", {}),
        (f"/executions/{held.id}/cancel", {}),
        (f"/executions/{held.id}/mark-booked", {"quickbooks_id": "1"}),
        ("/executions/retry", {}),
    ):
        refused = viewer.post(path, body)
        assert refused.status_code == 403, path
        assert "needs the" in refused.json()["message"]
    assert services.executions.get(held.id).state == "held"  # type: ignore[union-attr]
    assert services.audit.of_execution(held.id) == []


def test_only_an_admin_retries_in_bulk(ops_api: Api) -> None:
    assert ops_api("operator").post("/executions/retry", {"reason": "QUICKBOOKS_UNAVAILABLE"}).status_code == 403
    assert ops_api("admin").post("/executions/retry", {"reason": "QUICKBOOKS_UNAVAILABLE"}).status_code == 202


def test_changes_must_be_sent_as_json(ops_api: Api, server: str, held_unmatched: Any, mint: Any) -> None:
    import requests

    held = held_unmatched()
    response = requests.post(
        f"{server}/ops/api/executions/{held.id}/cancel",
        data={"note": "form post"},
        headers={"Authorization": f"Bearer {mint('operator')}"},
        timeout=10,
    )
    assert response.status_code == 415


# Reads -------------------------------------------------------------------------------------------


def test_executions_are_listed_by_filter_with_counts_per_reason_and_paged_by_cursor(
    ops_api: Api, perform: Perform, sims: Simulators, settings: Any
) -> None:
    succeeded = perform(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))
    failed = [perform(seed_deal(sims, line_items=UNKNOWN_PRODUCT)["deal"], inputs=sales_inputs()) for _ in range(3)]
    viewer = ops_api("viewer")

    everything = viewer.get("/executions").json()
    assert {e["id"] for e in everything["executions"]} == {succeeded.id, *(f.id for f in failed)}
    assert everything["reason_counts"] == {"LINE_ITEM_NOT_MATCHED": 3}
    assert everything["state_counts"] == {"succeeded": 1, "failed": 3}
    first = everything["executions"][0]
    for key in ("id", "callback_id", "action", "portal_id", "realm_id", "state", "failure_reason", "failure_message"):
        assert key in first
    assert [e["created_at"] for e in everything["executions"]] == sorted(
        (e["created_at"] for e in everything["executions"]), reverse=True
    )

    only_failed = viewer.get("/executions", state="failed", reason="LINE_ITEM_NOT_MATCHED").json()
    assert {e["id"] for e in only_failed["executions"]} == {f.id for f in failed}
    assert viewer.get("/executions", callback_id=succeeded.callback_id).json()["executions"][0]["id"] == succeeded.id
    assert viewer.get("/executions", portal_id=PORTAL_ID, realm_id=REALM_ID, action="create_invoice").json()[
        "executions"
    ]
    assert viewer.get("/executions", since="1h").json()["executions"]
    assert viewer.get("/executions", until=(utcnow() - timedelta(hours=1)).isoformat()).json()["executions"] == []

    seen: list[str] = []
    cursor = None
    while True:
        page = viewer.get("/executions", limit=1, **({"cursor": cursor} if cursor else {})).json()
        seen += [e["id"] for e in page["executions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(e["id"] for e in everything["executions"]) and len(seen) == 4


@pytest.mark.parametrize(
    "query",
    [
        {"state": "exploded"},
        {"reason": "NOT_A_REASON"},
        {"action": "create_unicorn"},
        {"portal_id": "abc"},
        {"realm_id": "12;drop"},
        {"since": "yesterday-ish"},
        {"since": "1h", "until": "2h"},
        {"cursor": "bm90LW91cnM"},
        {"limit": "100000"},
        {"colour": "blue"},
    ],
)
def test_a_bad_filter_is_a_400_that_names_it(ops_api: Api, query: dict[str, str]) -> None:
    response = ops_api("viewer").get("/executions", **query)

    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error" and response.json()["message"]


def test_an_unknown_execution_or_bulk_is_a_404(ops_api: Api) -> None:
    operator = ops_api("admin")
    assert operator.get("/executions/nope").status_code == 404
    assert operator.post("/executions/nope/retry").status_code == 404
    assert operator.post("/executions/nope/cancel").status_code == 404
    assert operator.post("/executions/nope/mark-booked", {"quickbooks_id": "1"}).status_code == 404
    assert operator.get("/bulk/nope").json()["code"] == "not_found"


def test_an_execution_shows_its_attempts_steps_links_and_redacted_inputs(
    ops_api: Api, perform: Perform, sims: Simulators, settings: Any
) -> None:
    done = perform(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))

    detail = ops_api("viewer").get(f"/executions/{done.callback_id}").json()

    assert detail["id"] == done.id and detail["state"] == "succeeded"
    assert detail["attempts"][0]["outcome"] == "succeeded" and "intuit_tid" in detail["attempts"][0]
    assert "document:Invoice" in detail["steps"] and detail["steps"]["document:Invoice"]["status"] == "done"
    assert detail["links"]["quickbooks"].endswith(f"txnId={detail['output_fields']['quickbooks_id']}")
    assert detail["links"]["hubspot"] == f"https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-3/{done.object_id}"
    assert detail["inputs"]["quickbooks_account"] == REALM_ID


def test_the_openapi_document_is_valid_and_describes_every_route(server: str) -> None:
    import requests

    document = requests.get(f"{server}/ops/api/openapi.json", timeout=10).json()

    validate(document)
    assert set(document["paths"]) == {
        "/executions",
        "/executions/{execution_id}",
        "/executions/{execution_id}/retry",
        "/executions/{execution_id}/cancel",
        "/executions/{execution_id}/mark-booked",
        "/executions/retry",
        "/bulk/{bulk_id}",
        "/documents/link",
    }


# Changes -----------------------------------------------------------------------------------------


def test_map_and_retry_completes_the_waiting_callback_with_success_and_is_audited(
    ops_api: Api, held_unmatched: Any, services: Services, sims: Simulators, run_jobs: Any
) -> None:
    held = held_unmatched()
    detail = ops_api("viewer").get(f"/executions/{held.id}").json()
    assert detail["state"] == "held"
    assert [p["product_id"] for p in detail["failure_details"]["unmatched"]] == ["777"]
    item = sims.add_entity("Item", {"Name": "Gizmo (QBO)", "Type": "Service", "IncomeAccountRef": {"value": "1"}})

    answer = ops_api("operator").post(f"/executions/{held.id}/retry", {"item_mappings": {"777": item["Id"]}})
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "waiting"
    run_jobs()

    done = services.executions.get(held.id)
    assert done is not None and done.state == "succeeded"
    outputs = only_callback(sims, done)
    assert outputs["hs_execution_state"] == "SUCCESS"
    [invoice] = sims.entities("Invoice")
    assert outputs["quickbooks_id"] == invoice["Id"]
    assert invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == item["Id"]
    assert services.bookkeeping.product_mappings(Tenant(PORTAL_ID, REALM_ID), ["777"]) == {"777": item["Id"]}
    [entry] = services.audit.of_execution(held.id)
    assert (entry.actor, entry.role, entry.action) == ("operator@example.com", "operator", "map_and_retry")
    assert entry.before and entry.before["state"] == "held" and entry.before["item_mappings"] == {}
    assert entry.after == {"state": "waiting", "item_mappings": {"777": item["Id"]}}
    shown = ops_api("viewer").get(f"/executions/{held.id}").json()["audit"]
    assert shown[0]["action"] == "map_and_retry" and shown[0]["actor"] == "operator@example.com"


def test_a_mapping_to_an_item_quickbooks_does_not_have_changes_nothing(
    ops_api: Api, held_unmatched: Any, services: Services
) -> None:
    held = held_unmatched()

    refused = ops_api("operator").post(f"/executions/{held.id}/retry", {"item_mappings": {"777": "999999"}})

    assert refused.status_code == 400 and "999999" in refused.json()["message"]
    assert services.executions.get(held.id).state == "held"  # type: ignore[union-attr]
    assert services.bookkeeping.product_mappings(Tenant(PORTAL_ID, REALM_ID), ["777"]) == {}
    assert services.audit.of_execution(held.id) == []


def test_edit_and_retry_books_with_the_corrected_inputs(
    ops_api: Api, perform: Perform, services: Services, sims: Simulators, run_jobs: Any, settings: Any
) -> None:
    failed = perform(seed_deal(sims, line_items=UNKNOWN_PRODUCT)["deal"], inputs=sales_inputs())
    assert failed.state == "failed" and only_callback(sims, failed)["failure_reason"] == "LINE_ITEM_NOT_MATCHED"
    operator = ops_api("operator")

    assert (
        operator.post(f"/executions/{failed.id}/retry", {"inputs": {"create_missing_products": "maybe"}}).status_code
        == 400
    )
    moved = operator.post(f"/executions/{failed.id}/retry", {"inputs": {"quickbooks_account": "123"}})
    assert moved.status_code == 400 and "quickbooks_account" in moved.json()["message"]
    answer = operator.post(f"/executions/{failed.id}/retry", {"inputs": {"create_missing_products": "yes"}})
    assert answer.status_code == 202, answer.text
    run_jobs()

    done = services.executions.get(failed.id)
    assert done is not None and done.state == "succeeded"
    assert done.inputs["create_missing_products"] == "yes"
    assert len(sims.entities("Invoice")) == 1
    [entry] = services.audit.of_execution(failed.id)
    assert entry.action == "edit_and_retry"
    assert entry.before and entry.before["inputs"]["create_missing_products"] == "no"
    assert entry.after and entry.after["inputs"]["create_missing_products"] == "yes"


def test_a_retry_of_an_execution_that_is_not_failed_or_held_is_a_409(
    ops_api: Api, perform: Perform, sims: Simulators, settings: Any
) -> None:
    done = perform(seed_deal(sims)["deal"], inputs=sales_inputs(create_missing_products="yes"))

    response = ops_api("operator").post(f"/executions/{done.id}/retry")

    assert response.status_code == 409 and response.json()["code"] == "conflict"


def test_cancel_reports_cancelled_with_who_cancelled(
    ops_api: Api, held_unmatched: Any, services: Services, sims: Simulators, run_jobs: Any
) -> None:
    held = held_unmatched()

    answer = ops_api("operator").post(f"/executions/{held.id}/cancel", {"note": "duplicate deal"})
    assert answer.status_code == 200, answer.text
    run_jobs()

    cancelled = services.executions.get(held.id)
    assert cancelled is not None and (cancelled.state, cancelled.failure_reason) == ("failed", "CANCELLED")
    outputs = only_callback(sims, cancelled)
    assert outputs["hs_execution_state"] == "FAIL_CONTINUE" and outputs["failure_reason"] == "CANCELLED"
    assert "operator@example.com" in outputs["failure_message"] and "duplicate deal" in outputs["failure_message"]
    [entry] = services.audit.of_execution(held.id)
    assert (entry.action, entry.note, entry.after) == (
        "cancel",
        "duplicate deal",
        {"state": "failed", "failure_reason": "CANCELLED"},
    )
    assert ops_api("operator").post(f"/executions/{held.id}/cancel").status_code == 409


def test_mark_as_booked_links_an_existing_document_reports_success_and_writes_nothing(
    ops_api: Api, held_unmatched: Any, services: Services, sims: Simulators, run_jobs: Any
) -> None:
    held = held_unmatched()
    invoice = invoice_by_hand(sims, 50, customer="Booked By Hand")
    writes_before = len([r for r in sims.qbo_requests() if r["method"] == "POST"])
    operator = ops_api("operator")

    assert operator.post(f"/executions/{held.id}/mark-booked", {"quickbooks_id": "98765"}).status_code == 400
    assert operator.post(f"/executions/{held.id}/mark-booked", {}).status_code == 400
    answer = operator.post(f"/executions/{held.id}/mark-booked", {"quickbooks_id": invoice["Id"]})
    assert answer.status_code == 200, answer.text
    run_jobs()

    booked = services.executions.get(held.id)
    assert booked is not None and booked.state == "succeeded"
    outputs = only_callback(sims, booked)
    assert outputs["hs_execution_state"] == "SUCCESS" and outputs["quickbooks_id"] == invoice["Id"]
    assert outputs["quickbooks_customer_id"] == invoice["CustomerRef"]["value"]
    assert len([r for r in sims.qbo_requests() if r["method"] == "POST"]) == writes_before
    [entry] = services.audit.of_execution(held.id)
    assert entry.action == "mark_booked" and entry.after == {"state": "succeeded", "quickbooks_id": invoice["Id"]}
    # The document shows on the record, as one the action created would.
    shown = sims.hubspot_record("deals", held.object_id)
    assert shown["qbo_invoice_status"] == "awaiting_payment" and shown["qbo_invoice_recipient_name"] == "Booked By Hand"


# Bulk retry after an outage ----------------------------------------------------------------------


@pytest.mark.slow
# One document per call, so the outage can be staged on POST /invoice (200 documents would make auto mode batch).
@pytest.mark.parametrize("write_mode", ["single"])
def test_a_bulk_retry_after_a_quickbooks_outage_books_each_document_exactly_once(
    ops_api: Api, server: str, services: Services, sims: Simulators, settings: Any, run_jobs: Any, monkeypatch: Any
) -> None:
    from tests.builders import execution_body, signed_post

    count = 200
    # No retries: every run that meets the outage fails QUICKBOOKS_UNAVAILABLE at once.
    # (and no waiting for the shared rate limits, which their own tests cover).
    config = services.config.with_overrides(
        retry_intervals=(), hubspot_calls_per_10s=100000, quickbooks_calls_per_minute=100000
    )
    monkeypatch.setattr(services, "config", config)
    item = sims.add_entity("Item", {"Name": "Widget", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    services.bookkeeping.save_product_mapping(Tenant(PORTAL_ID, REALM_ID), "555", item["Id"])
    line = [{"name": "Widget", "quantity": "1", "price": "10", "hs_product_id": "555"}]
    # This test is about the outage, not about QuickBooks' throttle (tested on its own elsewhere).
    sims.quickbooks_config(throttle_per_minute=100000, per_second_limit=100000)
    sims.hubspot_settings(limit_per_10s=100000)
    # The outage: QuickBooks books 40 invoices but the answers are lost, then refuses every invoice.
    sims.qbo_fault(status=503, method="POST", path="/invoice$", count=40, after_commit=True)
    sims.qbo_fault(status=503, method="POST", path="/invoice$", count=100000)
    callbacks = []
    for _ in range(count):
        payload = execution_body(seed_deal(sims, line_items=line)["deal"], inputs=sales_inputs())
        assert signed_post(server, "/actions/create_invoice", payload).status_code == 200
        callbacks.append(payload["callbackId"])
    run_jobs(timeout=120)
    failed = [services.executions.find(c) for c in callbacks]
    odd = [e for e in failed if e and e.state != "failed"]
    assert not odd, [services.attempts.of(e.id) for e in odd[:2]]
    assert {(e.state, e.failure_reason) for e in failed if e} == {("failed", "QUICKBOOKS_UNAVAILABLE")}
    assert len(sims.entities("Invoice")) == 40
    sims.qbo("DELETE", "faults")

    started = ops_api("admin").post("/executions/retry", {"reason": "QUICKBOOKS_UNAVAILABLE", "since": "2h"})
    assert started.status_code == 202, started.text
    bulk = started.json()
    assert bulk["total"] == count and started.headers["Location"].endswith(f"/ops/api/bulk/{bulk['id']}")
    run_jobs(timeout=180)

    progress = ops_api("viewer").get(f"/bulk/{bulk['id']}").json()
    assert (progress["state"], progress["done"], progress["skipped"]) == ("finished", count, 0)
    finished = [services.executions.find(c) for c in callbacks]
    assert {e.state for e in finished if e} == {"succeeded"}
    invoices = sims.entities("Invoice")
    assert len(invoices) == count, "one invoice per execution: the 40 lost answers were found, not booked again"
    assert len({e.output_fields["quickbooks_id"] for e in finished if e and e.output_fields}) == count
    assert len(services.audit.of_execution(finished[0].id)) == 1  # type: ignore[union-attr]
