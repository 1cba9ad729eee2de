"""Tests of the simulators' OAuth consent pages and HubSpot's action definitions API, over real HTTP.

The pages are driven the way a browser would: the form is parsed from the HTML and submitted with the
clicked button's name and value. intuit-oauth and hubspot-api-client serve as oracles where they can.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hubspot
import pytest
import requests
from hubspot.automation.actions import (
    FieldTypeDefinition,
    InputFieldDefinition,
    PublicActionDefinitionEgg,
    PublicActionDefinitionPatch,
    PublicActionLabels,
)
from hubspot.automation.actions.exceptions import ApiException
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError

from simulators import hubspot as hubspot_sim
from simulators import quickbooks as quickbooks_sim
from simulators.scenario import Simulators
from simulators.serve import RunningServer, start_in_thread

ROOT = Path(__file__).resolve().parents[3]
PORTAL, OTHER_PORTAL = 101, 202
REALM, OTHER_REALM = "9130355", "4620816"
HS_CLIENT_ID, HS_CLIENT_SECRET = "sim-hs-client", "sim-hs-secret"
QBO_CLIENT_ID, QBO_CLIENT_SECRET = "sim-client", "sim-secret"
CALLBACK = "https://app.example/oauth/callback"
DEVELOPER_KEY = "sim-developer-key"
APP_ID = 424242


# --- A browser's view of a form -------------------------------------------------------------------


@dataclass
class Form:
    """The one form of a page: where it posts, its fields, its select options and its buttons."""

    action: str = ""
    method: str = ""
    hidden: dict[str, str] = field(default_factory=dict)
    selects: dict[str, dict[str, Any]] = field(default_factory=dict)  # element id -> {name, options}
    buttons: dict[str, dict[str, str]] = field(default_factory=dict)  # element id -> {name, value, text}
    title: str = ""
    scopes: list[str] = field(default_factory=list)

    def submit_data(self, button_id: str, choices: dict[str, str] | None = None) -> dict[str, str]:
        """Return what a browser posts when ``button_id`` is clicked after picking ``choices`` (by select id)."""
        data = dict(self.hidden)
        for select_id, select in self.selects.items():
            options = [value for value, _ in select["options"]]
            chosen = (choices or {}).get(select_id) or (options[0] if options else "")
            assert chosen in options, f"{chosen!r} is not an option of #{select_id}"
            data[select["name"]] = chosen
        button = self.buttons[button_id]
        data[button["name"]] = button["value"]
        return data


class _FormParser(HTMLParser):
    """Collect a page's title, its scope list and its form."""

    def __init__(self) -> None:
        super().__init__()
        self.form = Form()
        self._open: tuple[str, dict[str, str]] | None = None  # the element whose text is being read
        self._select: str | None = None
        self._in_scopes = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.form.action, self.form.method = found["action"], found["method"]
        elif tag == "input" and found.get("type") == "hidden":
            self.form.hidden[found["name"]] = found["value"]
        elif tag == "select":
            self._select = found["id"]
            self.form.selects[found["id"]] = {"name": found["name"], "options": []}
        elif tag in ("option", "button", "title", "li"):
            self._open = (tag, found)
        elif tag == "ul" and found.get("id") == "scopes":
            self._in_scopes = True

    def handle_data(self, data: str) -> None:
        if self._open is None:
            return
        tag, found = self._open
        if tag == "option" and self._select:
            self.form.selects[self._select]["options"].append((found["value"], data))
        elif tag == "button":
            self.form.buttons[found["id"]] = {"name": found["name"], "value": found["value"], "text": data}
        elif tag == "title":
            self.form.title = data
        elif tag == "li" and self._in_scopes:
            self.form.scopes.append(data)
        self._open = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "ul":
            self._in_scopes = False


def parse_form(page: requests.Response) -> Form:
    """Return the form of an HTML page."""
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    parser = _FormParser()
    parser.feed(page.text)
    return parser.form


def redirect_query(response: requests.Response, redirect_uri: str = CALLBACK) -> dict[str, str]:
    """Return the query of a 302 back to ``redirect_uri``, one value per name."""
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.split("?")[0] == redirect_uri.split("?")[0]
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


# --- Servers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RunningServer, RunningServer]]:
    """One QuickBooks and one HubSpot simulator for the module."""
    qbo = start_in_thread(quickbooks_sim.create_app())
    hs = start_in_thread(hubspot_sim.create_app())
    yield qbo, hs
    qbo.stop()
    hs.stop()


@pytest.fixture
def sims(servers: tuple[RunningServer, RunningServer]) -> Simulators:
    """Both simulators, reset, with two portals and two companies, driven through /_sim/."""
    world = Simulators(servers[0].base_url, servers[1].base_url)
    world.reset()
    world.add_portal(PORTAL)
    world.add_portal(OTHER_PORTAL)
    world.add_company(REALM, name="Acme Books")
    world.add_company(OTHER_REALM, name="Bolt & Co <Ltd>")
    return world


# --- HubSpot: the install page --------------------------------------------------------------------


def install_params(**overrides: str | None) -> dict[str, str]:
    """Return the query of an install link, as the app builds it."""
    params: dict[str, str | None] = {
        "client_id": HS_CLIENT_ID,
        "redirect_uri": CALLBACK,
        "scope": "oauth automation crm.objects.deals.read",
        "optional_scope": "e-commerce",
        "state": "st-123",
        **overrides,
    }
    return {name: value for name, value in params.items() if value is not None}


def open_install_page(sims: Simulators, **overrides: str | None) -> requests.Response:
    """GET HubSpot's /oauth/authorize without following redirects."""
    return requests.get(
        f"{sims.hubspot_url}/oauth/authorize", params=install_params(**overrides), allow_redirects=False, timeout=10
    )


def post_install_form(sims: Simulators, form: Form, data: dict[str, str]) -> requests.Response:
    """Submit the install form as a browser would."""
    assert form.method == "post" and form.action == "/oauth/authorize"
    return requests.post(sims.hubspot_url + form.action, data=data, allow_redirects=False, timeout=10)


def hubspot_code_grant(sims: Simulators, code: str, redirect_uri: str = CALLBACK) -> requests.Response:
    """Redeem an authorization code at HubSpot's token endpoint."""
    form = {
        "grant_type": "authorization_code",
        "client_id": HS_CLIENT_ID,
        "client_secret": HS_CLIENT_SECRET,
        "redirect_uri": redirect_uri,
        "code": code,
    }
    return requests.post(f"{sims.hubspot_url}/oauth/v1/token", data=form, timeout=10)


def test_install_page_shows_scopes_portals_and_buttons(sims: Simulators) -> None:
    form = parse_form(open_install_page(sims))
    assert form.title == "Choose an account"
    assert form.scopes == ["oauth", "automation", "crm.objects.deals.read", "e-commerce (optional)"]
    assert form.hidden == install_params()
    assert form.selects == {
        "portal": {"name": "portal_id", "options": [(str(PORTAL), f"Portal {PORTAL}"), ("202", "Portal 202")]}
    }
    assert form.buttons == {
        "allow": {"name": "decision", "value": "allow", "text": "Connect app"},
        "deny": {"name": "decision", "value": "deny", "text": "Cancel"},
    }


def test_allow_redirects_with_a_code_the_token_endpoint_redeems_once(sims: Simulators) -> None:
    form = parse_form(open_install_page(sims))
    answer = redirect_query(post_install_form(sims, form, form.submit_data("allow", {"portal": "202"})))
    assert set(answer) == {"code", "state"} and answer["state"] == "st-123"

    tokens = hubspot_code_grant(sims, answer["code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["token_type"] == "bearer" and tokens.json()["expires_in"] == 1800
    info = requests.get(f"{sims.hubspot_url}/oauth/v1/access-tokens/{tokens.json()['access_token']}", timeout=10)
    assert info.json()["hub_id"] == OTHER_PORTAL
    again = hubspot_code_grant(sims, answer["code"])
    assert again.status_code == 400 and again.json()["status"] == "BAD_AUTH_CODE"


def test_a_code_is_bound_to_its_redirect_uri(sims: Simulators) -> None:
    form = parse_form(open_install_page(sims))
    code = redirect_query(post_install_form(sims, form, form.submit_data("allow")))["code"]
    wrong = hubspot_code_grant(sims, code, "https://evil.example/cb")
    assert wrong.status_code == 400 and wrong.json()["status"] == "BAD_REDIRECT_URI"
    assert hubspot_code_grant(sims, code).status_code == 200


def test_redirect_keeps_the_query_of_the_redirect_uri_and_omits_a_missing_state(sims: Simulators) -> None:
    redirect_uri = "http://127.0.0.1:9999/cb?next=%2Fsettings"
    form = parse_form(open_install_page(sims, redirect_uri=redirect_uri, state=None))
    assert "state" not in form.hidden
    response = post_install_form(sims, form, form.submit_data("allow"))
    answer = redirect_query(response, redirect_uri)
    assert set(answer) == {"next", "code"} and answer["next"] == "/settings"


def test_deny_redirects_with_access_denied(sims: Simulators) -> None:
    form = parse_form(open_install_page(sims))
    answer = redirect_query(post_install_form(sims, form, form.submit_data("deny")))
    assert answer["error"] == "access_denied" and answer["state"] == "st-123"
    assert answer["error_description"] and "code" not in answer


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "someone-else"},
        {"client_id": None},
        {"redirect_uri": None},
        {"redirect_uri": "not-a-url"},
        {"scope": None},
        {"scope": " "},
    ],
)
def test_bad_install_requests_answer_400_with_an_html_page(sims: Simulators, overrides: dict[str, str | None]) -> None:
    response = open_install_page(sims, **overrides)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'id="error"' in response.text


def test_the_form_is_checked_again_when_posted(sims: Simulators) -> None:
    form = parse_form(open_install_page(sims))
    tampered = {**form.submit_data("allow"), "client_id": "someone-else"}
    assert post_install_form(sims, form, tampered).status_code == 400
    unknown_portal = {**form.submit_data("allow"), "portal_id": "999"}
    assert post_install_form(sims, form, unknown_portal).status_code == 400
    no_decision = {name: value for name, value in form.submit_data("allow").items() if name != "decision"}
    assert post_install_form(sims, form, no_decision).status_code == 400


def test_auto_approve_portal_redirects_at_once_and_reset_clears_it(sims: Simulators) -> None:
    settings = sims.hubspot_settings(auto_approve_portal=OTHER_PORTAL)
    assert settings["auto_approve_portal"] == OTHER_PORTAL
    answer = redirect_query(open_install_page(sims))
    access_token = hubspot_code_grant(sims, answer["code"]).json()["access_token"]
    info = requests.get(f"{sims.hubspot_url}/oauth/v1/access-tokens/{access_token}", timeout=10).json()
    assert info["hub_id"] == OTHER_PORTAL and answer["state"] == "st-123"
    assert open_install_page(sims, client_id="someone-else").status_code == 400

    sims.hubspot_settings(auto_approve_portal="deny")
    assert redirect_query(open_install_page(sims))["error"] == "access_denied"
    sims.hubspot_settings(auto_approve_portal=999)
    assert open_install_page(sims).status_code == 400

    sims.reset()
    sims.add_portal(PORTAL)
    assert sims.hubspot_settings()["auto_approve_portal"] is None
    assert open_install_page(sims).status_code == 200


def test_client_id_is_a_setting_of_both_the_page_and_the_token_endpoint(sims: Simulators) -> None:
    assert sims.hubspot_settings()["client_id"] == HS_CLIENT_ID
    sims.hubspot_settings(client_id="my-app")
    assert open_install_page(sims).status_code == 400
    form = parse_form(open_install_page(sims, client_id="my-app"))
    code = redirect_query(post_install_form(sims, form, form.submit_data("allow")))["code"]
    assert hubspot_code_grant(sims, code).json()["status"] == "BAD_CLIENT_ID"
    exchange = {"grant_type": "authorization_code", "client_id": "my-app", "client_secret": HS_CLIENT_SECRET}
    exchange |= {"redirect_uri": CALLBACK, "code": code}
    assert requests.post(f"{sims.hubspot_url}/oauth/v1/token", data=exchange, timeout=10).status_code == 200
    sims.reset()
    assert sims.hubspot_settings()["client_id"] == HS_CLIENT_ID


def test_install_pages_skip_auth_rate_limits_and_api_faults_but_are_logged(sims: Simulators) -> None:
    sims.hubspot_settings(limit_per_10s=1)
    sims.hs_fault(status=500, path=".*", count=1)
    assert [open_install_page(sims).status_code for _ in range(3)] == [200, 200, 200]
    form = parse_form(open_install_page(sims))
    post_install_form(sims, form, form.submit_data("allow", {"portal": "202"}))
    logged = [entry for entry in sims.hs_requests() if entry["path"] == "/oauth/authorize"]
    assert [entry["method"] for entry in logged] == ["GET"] * 4 + ["POST"]
    assert logged[-1]["status"] == 302 and logged[-1]["portal_id"] == OTHER_PORTAL
    assert logged[-1]["body"]["decision"] == "allow"
    # The fault was left for the next API call.
    assert requests.get(f"{sims.hubspot_url}/crm/v3/properties/deals", timeout=10).status_code == 500


# --- HubSpot: action definitions ------------------------------------------------------------------


def definitions_url(sims: Simulators, *parts: str | int) -> str:
    """Return the URL of the definitions API for the test app."""
    return "/".join([f"{sims.hubspot_url}/automation/v4/actions/{APP_ID}", *map(str, parts)])


def developer_call(method: str, url: str, key: str | None = DEVELOPER_KEY, **kwargs: Any) -> requests.Response:
    """Call the developer API with ``hapikey``."""
    params = {**kwargs.pop("params", {}), **({"hapikey": key} if key else {})}
    return requests.request(method, url, params=params, timeout=10, **kwargs)


def definition(number: int = 1, **fields: Any) -> dict[str, Any]:
    """Return a small action definition."""
    return {
        "actionUrl": f"https://app.example/actions/{number}",
        "objectTypes": ["DEAL"],
        "inputFields": [
            {
                "typeDefinition": {"name": "memo", "type": "string", "fieldType": "text", "options": []},
                "supportedValueTypes": ["STATIC_VALUE"],
                "isRequired": False,
            }
        ],
        "labels": {"en": {"actionName": f"Action {number}"}},
        **fields,
    }


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_definitions_api_needs_the_developer_key(sims: Simulators, key: str | None) -> None:
    for method, url, body in (
        ("GET", definitions_url(sims), None),
        ("POST", definitions_url(sims), definition()),
        ("GET", definitions_url(sims, 1), None),
        ("PATCH", definitions_url(sims, 1), {"published": True}),
    ):
        response = developer_call(method, url, key, json=body)
        assert response.status_code == 401, (method, url)
        error = response.json()
        assert error["status"] == "error" and error["category"] == "INVALID_AUTHENTICATION"
        assert error["message"] and error["correlationId"]
    # A portal's OAuth token is not a developer key.
    token = {"Authorization": f"Bearer hs-access-demo-{PORTAL}"}
    assert requests.get(definitions_url(sims), headers=token, timeout=10).status_code == 401


def test_create_get_and_patch_a_definition(sims: Simulators) -> None:
    created = developer_call("POST", definitions_url(sims), json=definition(id="5", revisionId="9"))
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["id"].isdigit() and stored["id"] != "5" and stored["revisionId"] == "1"
    assert stored["actionUrl"] == "https://app.example/actions/1" and stored["objectTypes"] == ["DEAL"]
    assert stored["published"] is False and stored["functions"] == [] and stored["outputFields"] == []

    assert developer_call("GET", definitions_url(sims, stored["id"])).json() == stored
    patched = developer_call("PATCH", definitions_url(sims, stored["id"]), json={"published": True, "objectTypes": []})
    assert patched.status_code == 200
    assert patched.json() == {**stored, "published": True, "objectTypes": [], "revisionId": "2"}
    again = developer_call("PATCH", definitions_url(sims, stored["id"]), json={"actionUrl": "https://b.example/a"})
    assert again.json()["revisionId"] == "3" and again.json()["published"] is True
    assert sims.action_definitions(APP_ID) == [again.json()]

    other = developer_call("POST", definitions_url(sims), json=definition(2)).json()
    assert other["id"] != stored["id"]
    missing = developer_call("GET", definitions_url(sims, 1))
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert developer_call("PATCH", definitions_url(sims, 1), json={"published": True}).status_code == 404


def test_definitions_are_listed_a_page_at_a_time(sims: Simulators) -> None:
    ids = [developer_call("POST", definitions_url(sims), json=definition(n)).json()["id"] for n in range(12)]
    first = developer_call("GET", definitions_url(sims)).json()
    assert [d["id"] for d in first["results"]] == ids[:10]
    rest = developer_call("GET", definitions_url(sims), params={"after": first["paging"]["next"]["after"]}).json()
    assert [d["id"] for d in rest["results"]] == ids[10:] and "paging" not in rest

    seen, after = [], None
    while True:
        params = {"limit": 5, **({"after": after} if after else {})}
        page = developer_call("GET", definitions_url(sims), params=params).json()
        seen += [d["id"] for d in page["results"]]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert seen == ids
    assert developer_call("GET", definitions_url(sims), params={"limit": 101}).status_code == 400
    assert developer_call("GET", definitions_url(sims), params={"limit": 100}).status_code == 200
    assert developer_call("GET", f"{sims.hubspot_url}/automation/v4/actions/7").json() == {"results": []}
    sims.reset()
    assert sims.action_definitions(APP_ID) == []


@pytest.mark.parametrize(
    "body",
    [
        {"objectTypes": ["DEAL"]},
        definition(actionUrl=7),
        definition(inputFields={"name": "memo"}),
        definition(inputFields=["memo"]),
        definition(labels=["en"]),
        definition(labels={"en": "Create invoice"}),
        definition(objectTypes="DEAL"),
        definition(objectTypes=[3]),
        definition(published="yes"),
    ],
)
def test_invalid_definitions_answer_400(sims: Simulators, body: dict[str, Any]) -> None:
    response = developer_call("POST", definitions_url(sims), json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["status"] == "error" and error["category"] == "VALIDATION_ERROR" and error["correlationId"]
    assert sims.action_definitions(APP_ID) == []


def test_invalid_patches_answer_400_and_change_nothing(sims: Simulators) -> None:
    stored = developer_call("POST", definitions_url(sims), json=definition()).json()
    for body in ({"labels": "x"}, {"inputFields": [1]}, {"objectTypes": "DEAL"}, ["published"]):
        assert developer_call("PATCH", definitions_url(sims, stored["id"]), json=body).status_code == 400
    assert sims.action_definitions(APP_ID) == [stored]


def test_developer_key_is_a_setting(sims: Simulators) -> None:
    sims.hubspot_settings(developer_api_key="other-key")
    assert developer_call("GET", definitions_url(sims)).status_code == 401
    assert developer_call("GET", definitions_url(sims), key="other-key").status_code == 200


def test_the_official_client_creates_lists_patches_and_reads_definitions(sims: Simulators) -> None:
    client = hubspot.HubSpot(api_key=DEVELOPER_KEY, host=sims.hubspot_url)
    definitions = client.automation.actions.definitions_api
    # A shipped manifest, as the install step would send it, deserialised by the client's models.
    manifest = json.loads((ROOT / "manifests" / "create_invoice.json").read_text())
    manifest = json.loads(json.dumps(manifest).replace("{{PUBLIC_BASE_URL}}", "https://qbo.example"))
    created = definitions.create(APP_ID, manifest)
    assert created.action_url == "https://qbo.example/actions/create_invoice" and created.revision_id == "1"
    assert created.object_types == manifest["objectTypes"]
    assert [f.type_definition.name for f in created.input_fields] == [
        f["typeDefinition"]["name"] for f in manifest["inputFields"]
    ]
    egg = PublicActionDefinitionEgg(
        action_url="https://qbo.example/actions/other",
        published=False,
        object_types=["DEAL"],
        functions=[],
        input_fields=[
            InputFieldDefinition(
                is_required=True,
                type_definition=FieldTypeDefinition(
                    name="memo", type="string", field_type="text", options=[], external_options=False
                ),
                supported_value_types=["STATIC_VALUE"],
            )
        ],
        labels={"en": PublicActionLabels(action_name="Other")},
    )
    second = definitions.create(APP_ID, egg)

    first_page = definitions.get_page(APP_ID, limit=1)
    assert [d.id for d in first_page.results] == [created.id]
    second_page = definitions.get_page(APP_ID, limit=1, after=first_page.paging.next.after)
    assert [d.id for d in second_page.results] == [second.id] and second_page.paging is None

    patched = definitions.update(second.id, APP_ID, PublicActionDefinitionPatch(published=True))
    assert patched.published is True and patched.revision_id == "2"
    assert definitions.get_by_id(second.id, APP_ID).to_dict() == patched.to_dict()

    wrong = hubspot.HubSpot(api_key="wrong", host=sims.hubspot_url).automation.actions.definitions_api
    with pytest.raises(ApiException) as failed:
        wrong.get_page(APP_ID)
    assert failed.value.status == 401


# --- QuickBooks: the consent page -----------------------------------------------------------------


def auth_client(sims: Simulators, redirect_uri: str = CALLBACK) -> AuthClient:
    """Return intuit-oauth's client, its endpoints discovered from the simulator."""
    return AuthClient(
        QBO_CLIENT_ID,
        QBO_CLIENT_SECRET,
        redirect_uri,
        environment=f"{sims.quickbooks_url}/.well-known/openid_configuration/",
    )


def open_consent_page(sims: Simulators, **overrides: str | None) -> requests.Response:
    """GET the authorization URL intuit-oauth builds (with ``overrides`` applied to its query)."""
    url = auth_client(sims).get_authorization_url([Scopes.ACCOUNTING], state_token="st-456")
    base, _, _ = url.partition("?")
    assert base == f"{sims.quickbooks_url}/connect/oauth2"
    params = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    params = {name: value for name, value in {**params, **overrides}.items() if value is not None}
    return requests.get(base, params=params, allow_redirects=False, timeout=10)


def post_consent_form(sims: Simulators, form: Form, data: dict[str, str]) -> requests.Response:
    """Submit the consent form as a browser would."""
    assert form.method == "post" and form.action == "/connect/oauth2"
    return requests.post(sims.quickbooks_url + form.action, data=data, allow_redirects=False, timeout=10)


def qbo_query(sims: Simulators, realm_id: str, access_token: str) -> requests.Response:
    """Run a query against a company with an access token."""
    return requests.get(
        f"{sims.quickbooks_url}/v3/company/{realm_id}/query",
        params={"query": "SELECT * FROM Term", "minorversion": "75"},
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        timeout=10,
    )


def connect(sims: Simulators, company: str = REALM) -> dict[str, str]:
    """Click Connect for ``company`` and return the callback's query."""
    form = parse_form(open_consent_page(sims))
    return redirect_query(post_consent_form(sims, form, form.submit_data("connect", {"company": company})))


def test_consent_page_shows_companies_and_buttons(sims: Simulators) -> None:
    form = parse_form(open_consent_page(sims))
    assert form.title == "Connect to QuickBooks"
    assert form.scopes == ["com.intuit.quickbooks.accounting"]
    assert form.hidden == {
        "client_id": QBO_CLIENT_ID,
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": CALLBACK,
        "state": "st-456",
    }
    assert form.selects == {
        "company": {
            "name": "realm_id",
            "options": [(REALM, f"Acme Books ({REALM})"), (OTHER_REALM, f"Bolt & Co <Ltd> ({OTHER_REALM})")],
        }
    }
    assert form.buttons == {
        "connect": {"name": "decision", "value": "allow", "text": "Connect"},
        "cancel": {"name": "decision", "value": "deny", "text": "Cancel"},
    }


def test_connect_redirects_with_code_state_and_realm_that_intuit_oauth_exchanges_once(sims: Simulators) -> None:
    answer = connect(sims, OTHER_REALM)
    assert set(answer) == {"code", "state", "realmId"}
    assert answer["state"] == "st-456" and answer["realmId"] == OTHER_REALM

    client = auth_client(sims)
    client.get_bearer_token(answer["code"], realm_id=answer["realmId"])
    assert client.realm_id == OTHER_REALM and client.expires_in == 3600 and client.x_refresh_token_expires_in == 8726400
    assert qbo_query(sims, OTHER_REALM, client.access_token).status_code == 200
    assert qbo_query(sims, REALM, client.access_token).status_code == 401
    with pytest.raises(AuthClientError) as failed:
        auth_client(sims).get_bearer_token(answer["code"], realm_id=answer["realmId"])
    assert failed.value.status_code == 400 and json.loads(failed.value.content) == {"error": "invalid_grant"}


def test_the_code_grant_answers_like_intuit_and_is_bound_to_the_redirect_uri(sims: Simulators) -> None:
    code = connect(sims)["code"]
    url = f"{sims.quickbooks_url}/oauth2/v1/tokens/bearer"
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://evil.example/cb"}
    auth = (QBO_CLIENT_ID, QBO_CLIENT_SECRET)
    wrong = requests.post(url, data=form, auth=auth, headers={"Accept": "application/json"}, timeout=10)
    assert wrong.status_code == 400 and wrong.json() == {"error": "invalid_grant"}
    tokens = requests.post(url, data={**form, "redirect_uri": CALLBACK}, auth=auth, timeout=10)
    assert tokens.status_code == 200
    body = tokens.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "x_refresh_token_expires_in"}
    assert (body["token_type"], body["expires_in"], body["x_refresh_token_expires_in"]) == ("bearer", 3600, 8726400)


def test_revoking_the_refresh_token_ends_the_connection(sims: Simulators) -> None:
    client = auth_client(sims)
    client.get_bearer_token(connect(sims)["code"])
    access_token, refresh_token = client.access_token, client.refresh_token
    assert client.revoke(token=refresh_token) is True
    with pytest.raises(AuthClientError) as failed:
        client.refresh(refresh_token=refresh_token)
    assert failed.value.status_code == 400 and json.loads(failed.value.content) == {"error": "invalid_grant"}
    assert qbo_query(sims, REALM, access_token).status_code == 401


def test_revoking_the_access_token_also_ends_its_refresh_token(sims: Simulators) -> None:
    client = auth_client(sims)
    client.get_bearer_token(connect(sims)["code"])
    assert client.revoke(token=client.access_token) is True
    with pytest.raises(AuthClientError) as failed:
        client.refresh()
    assert failed.value.status_code == 400


def test_cancel_redirects_with_access_denied(sims: Simulators) -> None:
    form = parse_form(open_consent_page(sims))
    answer = redirect_query(post_consent_form(sims, form, form.submit_data("cancel")))
    assert answer == {"error": "access_denied", "state": "st-456"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "someone-else"},
        {"response_type": "token"},
        {"response_type": None},
        {"scope": "openid email"},
        {"scope": None},
        {"redirect_uri": None},
    ],
)
def test_bad_consent_requests_answer_400_with_an_html_page(sims: Simulators, overrides: dict[str, str | None]) -> None:
    response = open_consent_page(sims, **overrides)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html") and 'id="error"' in response.text


def test_the_consent_form_is_checked_again_when_posted(sims: Simulators) -> None:
    form = parse_form(open_consent_page(sims))
    assert post_consent_form(sims, form, {**form.submit_data("connect"), "client_id": "x"}).status_code == 400
    assert post_consent_form(sims, form, {**form.submit_data("connect"), "realm_id": "1"}).status_code == 400


def test_a_consent_page_with_more_scopes_still_connects(sims: Simulators) -> None:
    scope = "com.intuit.quickbooks.accounting openid email"
    form = parse_form(open_consent_page(sims, scope=scope))
    assert form.scopes == scope.split()
    assert redirect_query(post_consent_form(sims, form, form.submit_data("connect")))["realmId"] == REALM


def test_auto_approve_realm_redirects_at_once_and_reset_clears_it(sims: Simulators) -> None:
    sims.quickbooks_config(auto_approve_realm=int(OTHER_REALM))
    answer = redirect_query(open_consent_page(sims))
    assert answer["realmId"] == OTHER_REALM and answer["state"] == "st-456"
    client = auth_client(sims)
    client.get_bearer_token(answer["code"], realm_id=answer["realmId"])
    assert qbo_query(sims, OTHER_REALM, client.access_token).status_code == 200
    assert open_consent_page(sims, client_id="someone-else").status_code == 400

    sims.quickbooks_config(auto_approve_realm="deny")
    assert redirect_query(open_consent_page(sims)) == {"error": "access_denied", "state": "st-456"}
    sims.quickbooks_config(auto_approve_realm="123")
    assert open_consent_page(sims).status_code == 400

    sims.reset()
    sims.add_company(REALM)
    assert open_consent_page(sims).status_code == 200


def test_consent_pages_skip_throttles_and_faults_but_are_logged(sims: Simulators) -> None:
    sims.quickbooks_config(throttle_per_minute=0)
    sims.qbo_fault(status=500, count=1)
    assert open_consent_page(sims).status_code == 200
    answer = connect(sims)
    logged = [entry for entry in sims.qbo_requests() if entry["path"] == "/connect/oauth2"]
    assert [(entry["method"], entry["status"]) for entry in logged] == [("GET", 200), ("GET", 200), ("POST", 302)]
    assert logged[-1]["realm_id"] == REALM and logged[-1]["body"]["decision"] == "allow"
    assert logged[0]["query"]["state"] == "st-456"
    tokens = requests.post(
        f"{sims.quickbooks_url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": CALLBACK},
        auth=(QBO_CLIENT_ID, QBO_CLIENT_SECRET),
        timeout=10,
    )
    assert tokens.status_code == 500  # the fault was left for the next OAuth or API call
