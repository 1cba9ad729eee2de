"""The operations console over HTTP: signing in, roles, CSRF on every form, an identity-aware proxy's header."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

from actions.app import create_app
from services.bootstrap import Services
from simulators.scenario import Simulators
from simulators.serve import start_in_thread


class Operator:
    """An operator's browser without JavaScript: it keeps the session cookie and reads CSRF tokens from forms."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.base_url + path, timeout=10, **kwargs)

    def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf_from: str | None = "/ops/sign-in"
    ) -> requests.Response:
        form = dict(data or {})
        if csrf_from:
            match = re.search(r'name="csrf_token" value="([^"]+)"', self.get(csrf_from).text)
            assert match, f"{csrf_from} carries a CSRF token"
            form["csrf_token"] = match.group(1)
        return self.http.post(self.base_url + path, data=form, timeout=30)

    def sign_in(self, token: str) -> requests.Response:
        return self.post("/ops/sign-in", {"token": token, "next": "/ops"})


@pytest.fixture
def operator_browser(server: str) -> Operator:
    return Operator(server)


def test_the_console_asks_for_a_token_and_then_lists_executions(
    operator_browser: Operator, mint: Callable[..., str], held_unmatched: Any
) -> None:
    held = held_unmatched()

    first = operator_browser.get("/ops", allow_redirects=False)
    assert first.status_code == 302 and "/ops/sign-in" in first.headers["Location"]
    refused = operator_browser.sign_in("not-a-token")
    assert refused.status_code == 401 and "does not sign you in" in refused.text

    signed = operator_browser.sign_in(mint("viewer", subject="vera@example.com"))
    assert signed.status_code == 200 and "vera@example.com" in signed.text
    assert "HttpOnly" in str(signed.history[0].headers.get("Set-Cookie"))
    listed = operator_browser.get("/ops?state=held")
    assert held.id in listed.text and "LINE_ITEM_NOT_MATCHED" in listed.text
    page = operator_browser.get(f"/ops/executions/{held.id}")
    assert "Gizmo" in page.text and "Audit log" in page.text
    assert 'id="retry"' not in page.text, "a viewer is offered no changes"


def test_a_viewer_cannot_change_an_execution_through_the_console(
    operator_browser: Operator, mint: Callable[..., str], held_unmatched: Any, services: Services
) -> None:
    held = held_unmatched()
    operator_browser.sign_in(mint("viewer"))

    refused = operator_browser.post(f"/ops/executions/{held.id}/retry", csrf_from=f"/ops/executions/{held.id}")

    assert refused.status_code == 403 and "needs the operator role" in refused.text
    assert services.executions.get(held.id).state == "held"  # type: ignore[union-attr]


def test_every_console_form_needs_its_csrf_token(
    operator_browser: Operator, mint: Callable[..., str], held_unmatched: Any, services: Services
) -> None:
    held = held_unmatched()
    operator_browser.sign_in(mint("admin"))

    for path in (
        f"/ops/executions/{held.id}/retry",
        f"/ops/executions/{held.id}/cancel",
        f"/ops/executions/{held.id}/mark-booked",
        f"/ops/executions/{held.id}/map",
        f"/ops/executions/{held.id}/edit",
        "/ops/bulk-retry",
        "/ops/sign-out",
    ):
        assert operator_browser.post(path, csrf_from=None).status_code == 400, path
    assert services.executions.get(held.id).state == "held"  # type: ignore[union-attr]
    assert services.audit.of_execution(held.id) == []


def test_an_operator_edits_an_input_and_retries_from_the_console(
    operator_browser: Operator, mint: Callable[..., str], held_unmatched: Any, services: Services, run_jobs: Any
) -> None:
    held = held_unmatched()
    operator_browser.sign_in(mint("operator", subject="olga@example.com"))
    form = f"/ops/executions/{held.id}/edit"

    bad = operator_browser.post(form, {"create_missing_products": "perhaps"}, csrf_from=form)
    assert bad.status_code == 400 and "create_missing_products" in bad.text
    done = operator_browser.post(form, {"create_missing_products": "yes"}, csrf_from=form)
    assert done.status_code == 200 and "Inputs corrected and queued again." in done.text
    run_jobs()

    assert services.executions.get(held.id).state == "succeeded"  # type: ignore[union-attr]
    page = operator_browser.get(f"/ops/executions/{held.id}")
    assert "olga@example.com" in page.text and "edit_and_retry" in page.text


def test_an_admin_retries_a_filter_in_bulk_and_watches_its_progress(
    operator_browser: Operator,
    mint: Callable[..., str],
    held_unmatched: Any,
    services: Services,
    sims: Simulators,
    run_jobs: Any,
) -> None:
    held = [held_unmatched(), held_unmatched()]
    sims.add_entity("Item", {"Name": "Gizmo", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    operator_browser.sign_in(mint("admin"))

    started = operator_browser.post(
        "/ops/bulk-retry", {"state": "held", "reason": "LINE_ITEM_NOT_MATCHED"}, csrf_from="/ops?state=held"
    )
    assert started.status_code == 200 and "Bulk retry" in started.text
    assert 'http-equiv="refresh"' in started.text, "the page refreshes itself until the work is done"
    run_jobs()

    progress = operator_browser.get(started.url.removeprefix(operator_browser.base_url))
    assert "2 of 2" in progress.text and "finished" in progress.text
    assert {services.executions.get(e.id).state for e in held} == {"succeeded"}  # type: ignore[union-attr]


def test_behind_an_identity_aware_proxy_its_jwt_header_signs_the_operator_in(
    services: Services, mint: Callable[..., str], monkeypatch: Any
) -> None:
    monkeypatch.setattr(services, "config", services.config.with_overrides(ops_proxy_jwt_header="X-Auth-Request-Jwt"))
    running = start_in_thread(create_app(services=services))
    try:
        page = requests.get(
            f"{running.base_url}/ops",
            headers={"X-Auth-Request-Jwt": mint("viewer", subject="sso@example.com")},
            timeout=10,
        )
        api = requests.get(
            f"{running.base_url}/ops/api/executions", headers={"X-Auth-Request-Jwt": mint("viewer")}, timeout=10
        )
        forged = requests.get(
            f"{running.base_url}/ops", headers={"X-Auth-Request-Jwt": "forged"}, timeout=10, allow_redirects=False
        )
    finally:
        running.stop()

    assert page.status_code == 200 and "sso@example.com" in page.text
    assert api.status_code == 200
    assert forged.status_code == 302
