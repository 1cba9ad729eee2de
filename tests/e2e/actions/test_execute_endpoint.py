"""The execution endpoints over HTTP: verify, validate, record, enqueue, answer."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from rq.job import Job

from services.bootstrap import Services
from services.work.queue import execution_job_id
from services.work.relay import relay_everything
from simulators.scenario import Simulators
from tests.builders import execution_body, sales_inputs, signed_headers, signed_post
from tests.conftest import age_executions, wait_for

BLOCK = {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P7D"}}


def queued_job_ids(services: Services) -> list[str]:
    return [job_id for queue in services.queue.all_queues for job_id in queue.get_job_ids()]


def test_accepts_a_signed_execution_records_it_and_enqueues_its_job(server: str, services: Services) -> None:
    body = execution_body("614", inputs=sales_inputs(payment_terms="3"))
    response = signed_post(server, "/actions/create_invoice", body)

    assert response.status_code == 200
    assert response.json() == BLOCK
    execution = services.executions.find(body["callbackId"])
    assert execution is not None
    assert (execution.action, execution.state, execution.portal_id) == ("create_invoice", "queued", 102670506)
    assert execution.inputs["payment_terms"] == "3"
    # The relay queues the job moments after the answer.
    assert wait_for(lambda: queued_job_ids(services), timeout=1) == [execution_job_id(execution.id)]


def test_accepts_input_values_under_the_older_fields_key(server: str, services: Services) -> None:
    body = execution_body("614")
    body["fields"] = body.pop("inputFields")
    body["someNewEnvelopeKey"] = {"ignored": True}

    response = signed_post(server, "/actions/create_estimate", body)

    assert response.status_code == 200
    execution = services.executions.find(body["callbackId"])
    assert execution is not None and execution.realm_id == "9130355"


def test_the_same_callback_delivered_three_times_makes_one_execution_and_one_job(
    server: str, services: Services
) -> None:
    body = execution_body("614")
    answers = [signed_post(server, "/actions/create_invoice", body) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.json() == BLOCK for a in answers)
    assert services.database.count("executions") == 1
    relay_everything(services.outbox, services.queue)
    assert len(queued_job_ids(services)) == 1


def test_v2_signature_is_accepted_when_no_v3_header_is_sent(server: str, services: Services) -> None:
    response = signed_post(server, "/actions/create_invoice", execution_body("614"), version="v2")

    assert response.status_code == 200
    assert services.database.count("executions") == 1


def test_public_base_url_is_the_uri_that_was_signed(services: Services) -> None:
    from actions.app import create_app
    from simulators.serve import start_in_thread

    svc = Services(
        config=services.config.with_overrides(public_base_url="https://qbo.example.com"),
        repositories=services.repositories,
        redis=services.redis,
        queue=services.queue,
    )
    running = start_in_thread(create_app(services=svc))
    try:
        body = json.dumps(execution_body("614"))
        signed_for_public = signed_headers("https://qbo.example.com/actions/create_invoice?portal=1", body)
        accepted = requests.post(
            running.base_url + "/actions/create_invoice?portal=1", data=body, headers=signed_for_public, timeout=5
        )
        signed_for_local = signed_headers(running.base_url + "/actions/create_invoice?portal=1", body)
        refused = requests.post(
            running.base_url + "/actions/create_invoice?portal=1", data=body, headers=signed_for_local, timeout=5
        )
    finally:
        running.stop()
    assert accepted.status_code == 200
    assert refused.status_code == 401


def serve_with(services: Services, **config: Any) -> Any:
    """Serve the app with some configuration changed; return the running server."""
    from actions.app import create_app
    from simulators.serve import start_in_thread

    svc = Services(
        config=services.config.with_overrides(**config),
        repositories=services.repositories,
        redis=services.redis,
        queue=services.queue,
    )
    return start_in_thread(create_app(services=svc))


@pytest.mark.parametrize(("trusted_proxies", "status"), [(1, 200), (0, 401)])
def test_forwarded_headers_name_the_signed_url_only_behind_trusted_proxies(
    services: Services, trusted_proxies: int, status: int
) -> None:
    running = serve_with(services, trusted_proxies=trusted_proxies)
    try:
        body = json.dumps(execution_body("614"))
        headers = {
            **signed_headers("https://qbo.example.com/actions/create_invoice", body),
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "qbo.example.com",
        }
        response = requests.post(running.base_url + "/actions/create_invoice", data=body, headers=headers, timeout=5)
    finally:
        running.stop()
    assert response.status_code == status, response.text


def test_the_start_up_log_says_which_url_signatures_cover(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    from actions.app import create_app

    with caplog.at_level("INFO", logger="actions.app"):
        create_app(services=services)
        public = Services(
            config=services.config.with_overrides(public_base_url="https://qbo.example.com"),
            repositories=services.repositories,
            redis=services.redis,
            queue=services.queue,
        )
        create_app(services=public)
    messages = [r.getMessage() for r in caplog.records if r.name == "actions.app"]
    assert "the URL as this server receives it" in messages[0]
    assert "https://qbo.example.com + the request path (PUBLIC_BASE_URL)" in messages[1]


def test_a_v1_signature_is_refused_with_a_reason(server: str, services: Services) -> None:
    response = signed_post(server, "/actions/create_invoice", execution_body("614"), version="v1")

    assert response.status_code == 401
    assert "v1 signatures cover only the body" in response.json()["message"]
    assert services.database.count("executions") == 0


def test_a_bad_signature_is_refused_with_a_reason_and_nothing_is_recorded(server: str, services: Services) -> None:
    response = signed_post(server, "/actions/create_invoice", execution_body("614"), secret="not-our-secret")

    assert response.status_code == 401
    assert "does not match" in response.json()["message"]
    assert services.database.count("executions") == 0
    assert queued_job_ids(services) == []


def test_a_missing_signature_is_refused(server: str, services: Services) -> None:
    response = requests.post(server + "/actions/create_invoice", json=execution_body("614"), timeout=5)

    assert response.status_code == 401
    assert "no HubSpot signature" in response.json()["message"]
    assert services.database.count("executions") == 0


def test_a_stale_signature_is_refused(server: str, services: Services) -> None:
    six_minutes_ago = int(time.time() * 1000) - 6 * 60 * 1000
    response = signed_post(server, "/actions/create_invoice", execution_body("614"), timestamp_ms=six_minutes_ago)

    assert response.status_code == 401
    assert "old" in response.json()["message"]
    assert services.database.count("executions") == 0


def test_a_replayed_request_creates_no_second_execution(server: str, services: Services) -> None:
    url = server + "/actions/create_invoice"
    body = json.dumps(execution_body("614"))
    headers = signed_headers(url, body)
    first = requests.post(url, data=body, headers=headers, timeout=5)
    replay = requests.post(url, data=body, headers=headers, timeout=5)

    assert (first.status_code, replay.status_code) == (200, 200)
    assert services.database.count("executions") == 1
    assert len(queued_job_ids(services)) == 1


def test_a_signature_replayed_on_another_body_is_refused(server: str, services: Services) -> None:
    url = server + "/actions/create_invoice"
    original = json.dumps(execution_body("614"))
    headers = signed_headers(url, original)
    tampered = json.dumps(execution_body("615"))

    response = requests.post(url, data=tampered, headers=headers, timeout=5)

    assert response.status_code == 401
    assert services.database.count("executions") == 0


def test_a_body_that_is_not_json_is_refused_with_a_reason(server: str, services: Services) -> None:
    response = signed_post(server, "/actions/create_invoice", "{not json")

    assert response.status_code == 400
    assert response.json() == {"status": "error", "message": "The body must be a JSON object."}
    assert services.database.count("executions") == 0


def test_a_body_without_callback_id_names_the_missing_field(server: str, services: Services) -> None:
    body = execution_body("614")
    del body["callbackId"]

    response = signed_post(server, "/actions/create_invoice", body)

    assert response.status_code == 400
    assert "callbackId" in response.json()["message"]
    assert "callbackId" in response.json()["errors"]
    assert services.database.count("executions") == 0


def test_a_non_numeric_object_id_is_refused(server: str, services: Services) -> None:
    body = execution_body("614")
    body["object"]["objectId"] = "abc"

    response = signed_post(server, "/actions/create_invoice", body)

    assert response.status_code == 400
    assert "objectId" in response.json()["message"]


def test_missing_quickbooks_account_is_refused(server: str, services: Services) -> None:
    body = execution_body("614", inputs={"create_missing_products": "no"})

    response = signed_post(server, "/actions/create_invoice", body)

    assert response.status_code == 400
    assert "quickbooks_account" in response.json()["message"]
    assert services.database.count("executions") == 0


def test_an_unknown_input_field_is_refused(server: str, services: Services) -> None:
    body = execution_body("614", inputs=sales_inputs(discount_everything="yes"))

    response = signed_post(server, "/actions/create_invoice", body)

    assert response.status_code == 400
    assert "discount_everything" in response.json()["message"]


def test_payment_terms_are_refused_on_the_estimate_action(server: str, services: Services) -> None:
    body = execution_body("614", inputs=sales_inputs(payment_terms="3"))

    response = signed_post(server, "/actions/create_estimate", body)

    assert response.status_code == 400
    assert "payment_terms" in response.json()["message"]


def test_an_object_type_the_action_does_not_support_is_refused(server: str, services: Services) -> None:
    body = execution_body("614", object_type="CONTACT")

    response = signed_post(server, "/actions/create_invoice", body)

    assert response.status_code == 400
    assert "CONTACT" in response.json()["message"]
    assert services.database.count("executions") == 0


def test_quote_records_are_accepted_by_their_type_id(server: str, services: Services) -> None:
    response = signed_post(server, "/actions/create_invoice", execution_body("77", object_type="0-14"))

    assert response.status_code == 200


def test_an_unknown_action_path_answers_json_404(server: str) -> None:
    response = signed_post(server, "/actions/create_spaceship", execution_body("614"))

    assert response.status_code == 404
    assert response.json()["status"] == "error"


def test_an_accepted_execution_survives_a_queue_outage_on_the_bare_path(services: Services, sims: Simulators) -> None:
    """The row is written before the enqueue: with Redis gone the answer is still BLOCK, and the sweeper enqueues.

    (Through the relay, the execution waits in the outbox instead: tests/e2e/test_relay.py.)
    """
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from services.work.queue import JobQueue
    from services.work.sweeper import sweep

    broken = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    services.queue = JobQueue(broken, services.config)
    running = serve_with(services, accept_enqueue="direct")
    body = execution_body("614")
    try:
        response = signed_post(running.base_url, "/actions/create_invoice", body)
    finally:
        running.stop()
        services.queue = JobQueue(services.redis, services.config)
    assert response.status_code == 200
    execution = services.executions.find(body["callbackId"])
    assert execution is not None and queued_job_ids(services) == []

    age_executions(services, seconds=60)
    report = sweep(services)

    assert report.requeued == 1
    assert Job.fetch(execution_job_id(execution.id), connection=services.redis).get_status() == "queued"


def test_healthz_reports_ok(server: str) -> None:
    response = requests.get(server + "/healthz", timeout=5)
    assert response.json() == {"status": "ok"}
