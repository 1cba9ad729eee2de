"""The metrics' functions move their counters and histograms; the backlog collector and the exposition."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import responses
from prometheus_client import REGISTRY

from services import metrics
from services.transport.errors import TransientError
from services.transport.http import new_session, send


def sample(name: str, **labels: str) -> float:
    """Return a sample of the default registry, 0 when it does not exist yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_accepted_counts_per_action() -> None:
    before = sample("qbo_actions_executions_accepted_total", action="create_invoice")

    metrics.accepted("create_invoice")
    metrics.accepted("create_invoice")

    assert sample("qbo_actions_executions_accepted_total", action="create_invoice") == before + 2


@pytest.mark.parametrize(
    ("outcome", "reason", "label"),
    [
        (metrics.SUCCEEDED, None, ""),
        (metrics.FAILED, "NO_CONTACT", "NO_CONTACT"),
        (metrics.HELD, "LINE_ITEM_NOT_MATCHED", "LINE_ITEM_NOT_MATCHED"),
        (metrics.CANCELLED, "CANCELLED", "CANCELLED"),
        (metrics.BOOKED, "", ""),
    ],
)
def test_finished_counts_by_action_outcome_and_reason(outcome: str, reason: str | None, label: str) -> None:
    labels = {"action": "create_estimate", "outcome": outcome, "reason": label}
    before = sample("qbo_actions_executions_finished_total", **labels)

    metrics.finished("create_estimate", outcome, reason)

    assert sample("qbo_actions_executions_finished_total", **labels) == before + 1


def test_an_unknown_outcome_is_refused_rather_than_a_new_series() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        metrics.finished("create_invoice", "exploded", "")


def test_remote_calls_count_statuses_as_strings_and_no_answer_as_error() -> None:
    ok, error = {"service": "hubspot", "status": "200"}, {"service": "hubspot", "status": "error"}
    before = sample("qbo_actions_remote_calls_total", **ok), sample("qbo_actions_remote_calls_total", **error)

    metrics.remote_call("hubspot", 200)
    metrics.remote_call("hubspot", metrics.NO_ANSWER)

    after = sample("qbo_actions_remote_calls_total", **ok), sample("qbo_actions_remote_calls_total", **error)
    assert after == (before[0] + 1, before[1] + 1)


def test_every_call_through_the_transport_is_counted(http: responses.RequestsMock) -> None:
    busy, down = "https://quickbooks.example/v3/busy", "https://quickbooks.example/v3/down"
    http.get(busy, status=503)
    http.get(down, body=requests.ConnectionError("refused"))
    statuses = ("503", "error")
    before = [sample("qbo_actions_remote_calls_total", service="quickbooks", status=s) for s in statuses]

    session = new_session()
    assert send(session, "quickbooks", "GET", busy, timeout=1).status_code == 503
    with pytest.raises(TransientError):
        send(session, "quickbooks", "GET", down, timeout=1)

    after = [sample("qbo_actions_remote_calls_total", service="quickbooks", status=s) for s in statuses]
    assert after == [before[0] + 1, before[1] + 1]


def test_retried_counts_per_service() -> None:
    before = sample("qbo_actions_retries_total", service="server")

    metrics.retried("server")

    assert sample("qbo_actions_retries_total", service="server") == before + 1


def test_time_accept_observes_an_accepted_request_but_not_a_refused_one() -> None:
    before = sample("qbo_actions_accept_seconds_count")

    with metrics.time_accept():
        pass
    with pytest.raises(RuntimeError), metrics.time_accept():
        raise RuntimeError("refused")

    assert sample("qbo_actions_accept_seconds_count") == before + 1
    assert sample("qbo_actions_accept_seconds_bucket", le="1.0") >= 1


def test_observe_execution_fills_the_action_s_histogram() -> None:
    before = sample("qbo_actions_execution_seconds_count", action="create_refund_receipt")
    within_a_minute = sample("qbo_actions_execution_seconds_bucket", action="create_refund_receipt", le="60.0")

    metrics.observe_execution("create_refund_receipt", 42.0)
    metrics.observe_execution("create_refund_receipt", 7200.0)

    assert sample("qbo_actions_execution_seconds_count", action="create_refund_receipt") == before + 2
    assert sample("qbo_actions_execution_seconds_bucket", action="create_refund_receipt", le="60.0") == (
        within_a_minute + 1
    )


def test_the_backlog_collector_shows_what_it_reads_and_leaves_out_what_it_could_not() -> None:
    full = metrics.Backlog(
        queued_jobs=3,
        scheduled_jobs=2,
        executions_by_state={"queued": 3, "succeeded": 10},
        oldest_waiting_execution=12.5,
        oldest_unsent_callback=0.0,
    )
    families = {family.name: family for family in metrics.BacklogCollector(lambda: full).collect()}

    assert {(s.labels["state"], s.value) for s in families["qbo_actions_queue_depth"].samples} == {
        ("queued", 3),
        ("scheduled", 2),
    }
    assert {(s.labels["state"], s.value) for s in families["qbo_actions_executions"].samples} == {
        ("queued", 3),
        ("succeeded", 10),
    }
    assert families["qbo_actions_oldest_waiting_execution_seconds"].samples[0].value == 12.5
    assert families["qbo_actions_oldest_unsent_callback_seconds"].samples[0].value == 0.0
    # Redis and the database did not answer: no gauge rather than a false zero.
    assert list(metrics.BacklogCollector(lambda: metrics.Backlog()).collect()) == []


def test_the_exposition_has_the_counters_and_the_collectors_in_text_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_DIR_VARIABLE, raising=False)
    metrics.accepted("create_invoice")
    backlog = metrics.Backlog(queued_jobs=1, scheduled_jobs=0)

    text = metrics.exposition(metrics.BacklogCollector(lambda: backlog)).decode()

    assert "# TYPE qbo_actions_executions_accepted_total counter" in text
    assert 'qbo_actions_executions_accepted_total{action="create_invoice"}' in text
    assert 'qbo_actions_queue_depth{state="queued"} 1.0' in text
    assert metrics.CONTENT_TYPE.startswith("text/plain")


def test_in_multiprocess_mode_the_exposition_reads_the_directory_not_this_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_DIR_VARIABLE, str(tmp_path))
    metrics.accepted("create_invoice")

    text = metrics.exposition().decode()

    # This process was not started in multiprocess mode, so it wrote no file there: nothing to add up.
    assert "qbo_actions_executions_accepted_total" not in text
