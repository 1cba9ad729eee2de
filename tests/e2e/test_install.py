"""A HubSpot admin installs the app, connects QuickBooks and manages it, over HTTP, against the simulators.

The simulators' consent pages approve at once here (auto_approve); tests/e2e/test_browser.py clicks through them.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import jwt
import requests

from services.bootstrap import Services
from services.clock import utcnow
from simulators.scenario import PORTAL_ID, REALM_ID, Simulators
from tests.conftest import drain
from tests.e2e.conftest import OTHER_PORTAL, OTHER_REALM, Admin, run_invoice


def test_install_connect_and_book_an_invoice(site: str, bare: Services, sims: Simulators) -> None:
    admin = Admin(site, sims)
    sims.hubspot_settings(auto_approve_portal=PORTAL_ID)

    landed = admin.get("/settings")  # no session: through HubSpot's login and consent, and back

    assert landed.status_code == 200 and urlsplit(landed.url).path == "/settings"
    assert [r.status_code for r in landed.history] == [302, 302, 302, 302]
    assert "No QuickBooks company is connected yet" in landed.text
    assert bare.connections.portal_tokens(PORTAL_ID) is not None
    cookie = next(c for c in admin.http.cookies if c.name == "session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.expires is not None

    company_page = admin.connect()

    assert company_page.status_code == 200 and urlsplit(company_page.url).path == f"/settings/companies/{REALM_ID}"
    [connection] = bare.connections.quickbooks_of(PORTAL_ID)
    assert connection.realm_id == REALM_ID and connection.active and connection.name
    assert connection.name in company_page.text and '<dd id="country">US</dd>' in company_page.text
    assert bare.companies.cached_profile(REALM_ID) is not None
    bare.companies.save_settings(
        REALM_ID, {"contact_sync": {"mode": "legacy"}, "default_income_account": sims.account_id("Services")}
    )

    execution = run_invoice(site, bare, sims)

    assert execution.state == "succeeded", execution.failure_message
    assert len(sims.entities("Invoice")) == 1


def test_the_install_asks_hubspot_for_the_scopes_the_actions_need(site: str, sims: Simulators) -> None:
    response = requests.get(site + "/oauth/hubspot/install", allow_redirects=False, timeout=10)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert response.status_code == 302 and response.headers["Location"].startswith(
        sims.hubspot_url + "/oauth/authorize?"
    )
    assert query["client_id"] == ["sim-hs-client"] and query["redirect_uri"] == [site + "/oauth/hubspot/callback"]
    assert set(query["scope"][0].split()) >= {
        "automation",
        "crm.objects.deals.read",
        "crm.objects.commercepayments.read",
    }
    assert query["state"][0]


def test_the_install_creates_the_quickbooks_properties_on_the_records(
    site: str, bare: Services, sims: Simulators
) -> None:
    Admin(site, sims).install()
    drain(bare)
    for object_type in ("deals", "quotes", "commerce_payments"):
        created = sims.hubspot_properties(object_type)
        assert [g["label"] for g in created["groups"]] == ["QuickBooks"], object_type
        statuses = {p["name"]: p for p in created["properties"]}["qbo_invoice_status"]
        assert [o["label"] for o in statuses["options"]] == [
            "Awaiting payment",
            "Partially paid",
            "Paid",
            "Overdue",
            "Voided",
            "Deleted",
        ]


def test_a_second_install_of_the_same_portal_replaces_its_tokens(site: str, bare: Services, sims: Simulators) -> None:
    Admin(site, sims).install()
    first = bare.connections.portal_tokens(PORTAL_ID)
    Admin(site, sims).install()
    second = bare.connections.portal_tokens(PORTAL_ID)
    assert first is not None and second is not None and first.access_token != second.access_token
    assert bare.connections.portals() == [PORTAL_ID]


def test_a_cancelled_install_says_so_and_changes_nothing(site: str, bare: Services, sims: Simulators) -> None:
    sims.hubspot_settings(auto_approve_portal="deny")
    page = requests.get(site + "/oauth/hubspot/install", timeout=10)
    assert page.status_code == 200 and "Install cancelled" in page.text
    assert bare.connections.portals() == []


def test_a_forged_an_expired_and_a_replayed_state_are_refused(site: str, bare: Services, sims: Simulators) -> None:
    sims.hubspot_settings(auto_approve_portal=PORTAL_ID)
    to_hubspot = requests.get(site + "/oauth/hubspot/install", allow_redirects=False, timeout=10)
    back = requests.get(to_hubspot.headers["Location"], allow_redirects=False, timeout=10).headers["Location"]
    code, state = (parse_qs(urlsplit(back).query)[key][0] for key in ("code", "state"))

    forged = requests.get(
        f"{site}/oauth/hubspot/callback", params={"code": code, "state": state[:-3] + "abc"}, timeout=10
    )
    expired_state = jwt.encode({"purpose": "hubspot-install", "jti": "j", "exp": 1}, "x" * 32, "HS256")
    expired = requests.get(f"{site}/oauth/hubspot/callback", params={"code": code, "state": expired_state}, timeout=10)
    used = requests.get(back, allow_redirects=False, timeout=10)
    replayed = requests.get(back, allow_redirects=False, timeout=10)

    assert forged.status_code == 400 and "not issued by this server" in forged.text
    assert expired.status_code == 400
    assert used.status_code == 302
    assert replayed.status_code == 400 and "already used" in replayed.text


def test_settings_without_a_session_go_through_hubspot(site: str) -> None:
    response = requests.get(site + "/settings", allow_redirects=False, timeout=10)
    assert response.status_code == 302 and response.headers["Location"].endswith("/oauth/hubspot/install")


def test_a_portal_cannot_see_or_touch_another_portals_company(site: str, bare: Services, sims: Simulators) -> None:
    ours, theirs = Admin(site, sims), Admin(site, sims)
    ours.install()
    ours.connect()
    theirs.install(OTHER_PORTAL)
    theirs.connect(OTHER_REALM)

    assert ours.get(f"/settings/companies/{OTHER_REALM}").status_code == 404
    assert ours.post(f"/settings/companies/{OTHER_REALM}/disconnect").status_code == 404
    assert REALM_ID not in theirs.get("/settings").text
    assert bare.connections.quickbooks(OTHER_PORTAL, OTHER_REALM) is not None


def test_one_company_serves_two_portals_each_booking_its_own(site: str, bare: Services, sims: Simulators) -> None:
    for portal in (PORTAL_ID, OTHER_PORTAL):
        admin = Admin(site, sims)
        admin.install(portal)
        admin.connect(REALM_ID)
    bare.companies.save_settings(
        REALM_ID, {"contact_sync": {"mode": "legacy"}, "default_income_account": sims.account_id("Services")}
    )

    ours, theirs = run_invoice(site, bare, sims), run_invoice(site, bare, sims, portal_id=OTHER_PORTAL)

    assert ours.state == theirs.state == "succeeded", (ours.failure_message, theirs.failure_message)
    assert {c.portal_id for c in bare.connections.quickbooks_of()} == {PORTAL_ID, OTHER_PORTAL}
    assert len(sims.entities("Invoice")) == 2


def test_a_form_without_its_csrf_token_is_refused(site: str, bare: Services, sims: Simulators) -> None:
    admin = Admin(site, sims)
    admin.install()
    admin.connect()

    refused = admin.post(f"/settings/companies/{REALM_ID}/disconnect", csrf=False)

    assert refused.status_code == 400 and "CSRF" in refused.text
    assert bare.connections.quickbooks(PORTAL_ID, REALM_ID) is not None


def test_a_disconnected_company_fails_its_actions_as_not_connected(site: str, bare: Services, sims: Simulators) -> None:
    admin = Admin(site, sims)
    admin.install()
    admin.connect()
    refresh_token = bare.connections.quickbooks_tokens(bare.connections.quickbooks_of(PORTAL_ID)[0].id).refresh_token

    page = admin.post(f"/settings/companies/{REALM_ID}/disconnect")

    assert page.status_code == 200 and "No QuickBooks company is connected yet" in page.text
    assert any(r["path"].endswith("/tokens/revoke") for r in sims.qbo_requests()), "the grant was revoked at Intuit"
    refused = requests.post(
        sims.quickbooks_url + "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=("sim-client", "sim-secret"),
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    execution = run_invoice(site, bare, sims)
    assert execution.failure_reason == "QUICKBOOKS_NOT_CONNECTED"
    assert "is not connected to this HubSpot account" in execution.failure_message


def test_a_revoked_grant_needs_a_reconnect_and_then_books_again(site: str, bare: Services, sims: Simulators) -> None:
    admin = Admin(site, sims)
    admin.install()
    admin.connect()
    bare.companies.save_settings(
        REALM_ID, {"contact_sync": {"mode": "legacy"}, "default_income_account": sims.account_id("Services")}
    )
    connection = bare.connections.quickbooks_of(PORTAL_ID)[0]
    tokens = bare.connections.quickbooks_tokens(connection.id)
    # The user revoked the app in QuickBooks; our stored access token has expired, so the next call refreshes.
    sims.qbo("POST", "revoke", json={"realm_id": REALM_ID})
    bare.connections.save_quickbooks_tokens(connection.id, "expired", utcnow(), tokens.refresh_token)

    failed = run_invoice(site, bare, sims)

    assert failed.failure_reason == "QUICKBOOKS_NOT_CONNECTED" and "reconnect" in failed.failure_message.lower()
    assert "Needs reconnecting" in admin.get("/settings").text
    admin.connect()
    assert bare.connections.quickbooks_of(PORTAL_ID)[0].active
    assert bare.companies.settings(REALM_ID)["default_income_account"], "a reconnect keeps the company's settings"
    assert run_invoice(site, bare, sims).state == "succeeded"


def test_removing_the_portal_deletes_its_data_and_keeps_its_history(
    site: str, bare: Services, sims: Simulators
) -> None:
    admin = Admin(site, sims)
    admin.install()
    admin.connect()
    bare.companies.save_settings(
        REALM_ID, {"contact_sync": {"mode": "legacy"}, "default_income_account": sims.account_id("Services")}
    )
    execution = run_invoice(site, bare, sims)

    page = admin.post("/settings/remove")

    assert page.status_code == 200 and "were removed from this server" in page.text
    assert bare.connections.portals() == [] and bare.connections.quickbooks_of() == []
    assert bare.companies.settings(REALM_ID) == {}
    assert bare.executions.get(execution.id) is not None, "the history stays"
    assert admin.get("/settings", allow_redirects=False).status_code == 302, "the session ended"


def test_signing_out_ends_the_session_and_the_home_page_leads_to_the_settings(
    site: str, bare: Services, sims: Simulators
) -> None:
    admin = Admin(site, sims)
    admin.install()
    assert admin.get("/", allow_redirects=False).headers["Location"].endswith("/settings")

    signed_out = admin.post("/sign-out")

    assert signed_out.status_code == 200 and "signed out" in signed_out.text
    assert admin.get("/settings", allow_redirects=False).status_code == 302
