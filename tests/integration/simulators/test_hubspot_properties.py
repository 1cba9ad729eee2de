"""Tests of the HubSpot simulator's write-back APIs over real HTTP: properties, batch updates, timeline, notes."""

from __future__ import annotations

import hubspot
import pytest
import requests
from hubspot.crm.objects import BatchInputSimplePublicObjectBatchInput, SimplePublicObjectBatchInput
from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyGroupCreate, PropertyUpdate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.crm.timeline import TimelineEvent, TimelineEventTemplateCreateRequest, TimelineEventTemplateToken
from hubspot.crm.timeline.exceptions import ApiException as TimelineApiException

from simulators.hubspot import DEFAULT_DEVELOPER_API_KEY, HubSpotSimulator, create_app
from simulators.scenario import Simulators
from simulators.serve import start_in_thread

PORTAL = 101
TOKEN = "tok-101"
APP_ID = 424242
STATUS_OPTIONS = [
    {"label": "Partially paid", "value": "partially_paid", "displayOrder": 0},
    {"label": "Paid", "value": "paid", "displayOrder": 1},
]
GROUP = {"name": "quickbooks", "label": "QuickBooks", "displayOrder": -1}
PROPERTIES = [
    {
        "name": "qbo_invoice_status",
        "label": "QuickBooks invoice status",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "quickbooks",
        "options": STATUS_OPTIONS,
    },
    {"name": "qbo_invoice_total", "label": "Total", "type": "number", "fieldType": "number", "groupName": "quickbooks"},
    {"name": "qbo_invoice_due_date", "label": "Due", "type": "date", "fieldType": "date", "groupName": "quickbooks"},
    {"name": "qbo_invoice_number", "label": "Number", "type": "string", "fieldType": "text", "groupName": "quickbooks"},
]
TEMPLATE = {
    "name": "QuickBooks payment",
    "objectType": "deals",
    "headerTemplate": "Payment of {{amount}} received",
    "detailTemplate": "Invoice {{invoice}}",
    "tokens": [
        {"name": "amount", "label": "Amount", "type": "number"},
        {"name": "invoice", "label": "Invoice", "type": "string"},
        {"name": "paid_on", "label": "Paid on", "type": "date"},
    ],
}


@pytest.fixture(scope="module")
def shared_sim() -> HubSpotSimulator:
    """Return the simulator the module's server serves."""
    return HubSpotSimulator()


@pytest.fixture(scope="module")
def server(shared_sim):
    """Serve the simulator over HTTP for the module."""
    running = start_in_thread(create_app(shared_sim))
    yield running
    running.stop()


@pytest.fixture
def sim(server, shared_sim) -> HubSpotSimulator:
    """Return the served simulator, reset, with a portal holding deals 614 and 615."""
    shared_sim.reset()
    shared_sim.add_portal(PORTAL, TOKEN)
    shared_sim.add_object(PORTAL, "deals", {"dealname": "Acme renewal", "amount": "1200"}, object_id="614")
    shared_sim.add_object(PORTAL, "deals", {"dealname": "Beta"}, object_id="615")
    return shared_sim


@pytest.fixture
def call(server, sim):
    """Return a function making an API request with the portal's token."""

    def _call(method: str, path: str, token: str | None = TOKEN, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, server.base_url + path, headers=headers, timeout=10, **kwargs)

    return _call


@pytest.fixture
def sims(server, sim) -> Simulators:
    """Return the scenario helpers pointed at the simulator (QuickBooks unused)."""
    return Simulators(quickbooks_url="http://127.0.0.1:9", hubspot_url=server.base_url)


@pytest.fixture
def quickbooks_properties(call) -> None:
    """Create the QuickBooks group and properties on deals."""
    assert call("POST", "/crm/v3/properties/deals/groups", json=GROUP).status_code == 201
    created = call("POST", "/crm/v3/properties/deals/batch/create", json={"inputs": PROPERTIES})
    assert created.status_code == 201, created.text


def _update(call, *inputs: tuple[str, dict], object_type: str = "deals") -> requests.Response:
    """Batch-update records given as (id, properties) pairs."""
    body = {"inputs": [{"id": object_id, "properties": props} for object_id, props in inputs]}
    return call("POST", f"/crm/v3/objects/{object_type}/batch/update", json=body)


def _developer(server, method: str, path: str, key: str | None = DEFAULT_DEVELOPER_API_KEY, **kwargs):
    """Call a developer API (timeline templates) with the developer API key."""
    params = {"hapikey": key} if key else {}
    return requests.request(method, server.base_url + path, params=params, timeout=10, **kwargs)


@pytest.fixture
def template_id(server, sim) -> str:
    """Create the payment event template on deals and return its id."""
    created = _developer(server, "POST", f"/crm/v3/timeline/{APP_ID}/event-templates", json=TEMPLATE)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


# --- Property groups ------------------------------------------------------------------------------


def test_group_is_created_once_and_listed_with_the_builtin_group(call, sims):
    created = call("POST", "/crm/v3/properties/deals/groups", json=GROUP)
    assert created.status_code == 201
    assert created.json() == {"name": "quickbooks", "label": "QuickBooks", "displayOrder": -1, "archived": False}
    again = call("POST", "/crm/v3/properties/0-3/groups", json=GROUP)
    assert again.status_code == 409
    assert again.json()["category"] == "CONFLICT" and "already exists" in again.json()["message"]
    names = [group["name"] for group in call("GET", "/crm/v3/properties/deals/groups").json()["results"]]
    assert names == ["dealinformation", "quickbooks"]
    assert call("GET", "/crm/v3/properties/0-3/groups/quickbooks").json()["label"] == "QuickBooks"
    assert call("GET", "/crm/v3/properties/deals/groups/nope").status_code == 404
    assert sims.hubspot_properties("deals", portal_id=PORTAL)["groups"] == [created.json()]


def test_groups_belong_to_their_object_type(call):
    call("POST", "/crm/v3/properties/commerce_payments/groups", json=GROUP)
    assert call("GET", "/crm/v3/properties/0-101/groups/quickbooks").status_code == 200
    assert call("GET", "/crm/v3/properties/quotes/groups/quickbooks").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"label": "No name"},
        {"name": "QuickBooks", "label": "Upper case"},
        {"name": "qb", "label": "x", "displayOrder": "1"},
    ],
    ids=["missing-name", "bad-name", "bad-order"],
)
def test_bad_group_answers_400(call, body):
    response = call("POST", "/crm/v3/properties/deals/groups", json=body)
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"


# --- Properties -----------------------------------------------------------------------------------


def test_property_is_created_read_listed_and_conflicts(call, sims):
    call("POST", "/crm/v3/properties/deals/groups", json=GROUP)
    created = call("POST", "/crm/v3/properties/deals", json=PROPERTIES[0])
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["type"], body["fieldType"], body["groupName"]) == (
        "qbo_invoice_status",
        "enumeration",
        "select",
        "quickbooks",
    )
    assert [(o["value"], o["hidden"]) for o in body["options"]] == [("partially_paid", False), ("paid", False)]
    assert call("GET", "/crm/v3/properties/0-3/qbo_invoice_status").json() == body
    names = {item["name"] for item in call("GET", "/crm/v3/properties/deals").json()["results"]}
    assert {"dealname", "amount", "qbo_invoice_status"} <= names
    conflict = call("POST", "/crm/v3/properties/deals", json=PROPERTIES[0])
    assert conflict.status_code == 409 and conflict.json()["category"] == "CONFLICT"
    assert sims.hubspot_properties("deals", portal_id=PORTAL)["properties"] == [body]
    assert call("GET", "/crm/v3/properties/deals/qbo_nope").status_code == 404


def test_builtin_property_name_conflicts(call):
    body = {
        "name": "amount",
        "label": "Amount",
        "type": "number",
        "fieldType": "number",
        "groupName": "dealinformation",
    }
    response = call("POST", "/crm/v3/properties/deals", json=body)
    assert response.status_code == 409 and "already exists" in response.json()["message"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "Qbo-Status"}, "name"),
        ({"name": "9lives"}, "name"),
        ({"type": "text"}, "type"),
        ({"fieldType": "text"}, "fieldType"),
        ({"options": []}, "option"),
        ({"options": [{"label": "A", "value": "a"}, {"label": "B", "value": "a"}]}, "unique"),
        ({"groupName": "nope"}, "nope"),
        ({"label": None}, "label"),
    ],
    ids=["upper-case", "leading-digit", "bad-type", "field-type", "no-options", "repeated-option", "group", "label"],
)
def test_bad_property_answers_400(call, change, words):
    call("POST", "/crm/v3/properties/deals/groups", json=GROUP)
    response = call("POST", "/crm/v3/properties/deals", json={**PROPERTIES[0], **change})
    assert response.status_code == 400, response.text
    assert response.json()["category"] == "VALIDATION_ERROR" and words in response.json()["message"]


@pytest.mark.parametrize(
    ("value_type", "field_type", "ok"),
    [
        ("number", "number", True),
        ("number", "text", False),
        ("date", "date", True),
        ("datetime", "date", True),
        ("string", "textarea", True),
        ("string", "select", False),
        ("bool", "booleancheckbox", True),
        ("enumeration", "radio", False),  # no options
    ],
)
def test_field_type_must_suit_the_type(call, value_type, field_type, ok):
    body = {"name": "qbo_x", "label": "X", "type": value_type, "fieldType": field_type, "groupName": "dealinformation"}
    assert call("POST", "/crm/v3/properties/deals", json=body).status_code == (201 if ok else 400)


def test_patch_changes_label_and_options_of_a_created_property(call, quickbooks_properties):
    options = [*STATUS_OPTIONS, {"label": "Voided", "value": "voided"}]
    patched = call("PATCH", "/crm/v3/properties/deals/qbo_invoice_status", json={"label": "Status", "options": options})
    assert patched.status_code == 200
    assert patched.json()["label"] == "Status"
    assert [o["value"] for o in patched.json()["options"]] == ["partially_paid", "paid", "voided"]
    assert call("GET", "/crm/v3/properties/deals/qbo_invoice_status").json()["label"] == "Status"
    assert call("PATCH", "/crm/v3/properties/deals/qbo_nope", json={"label": "x"}).status_code == 404
    bad = call("PATCH", "/crm/v3/properties/deals/qbo_invoice_total", json={"fieldType": "select"})
    assert bad.status_code == 400


def test_batch_create_reports_the_refused_properties_with_207(call):
    call("POST", "/crm/v3/properties/deals/groups", json=GROUP)
    inputs = [PROPERTIES[1], {**PROPERTIES[2], "groupName": "nope"}, PROPERTIES[1]]
    response = call("POST", "/crm/v3/properties/deals/batch/create", json={"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert [p["name"] for p in body["results"]] == ["qbo_invoice_total"]
    assert [(e["category"], e["context"]["name"]) for e in body["errors"]] == [
        ("VALIDATION_ERROR", ["qbo_invoice_due_date"]),
        ("CONFLICT", ["qbo_invoice_total"]),
    ]
    assert body["numErrors"] == 2
    too_many = call("POST", "/crm/v3/properties/deals/batch/create", json={"inputs": [PROPERTIES[3]] * 101})
    assert too_many.status_code == 400


# --- Batch update ---------------------------------------------------------------------------------


def test_batch_update_sets_checked_values_visible_to_reads(call, sim, quickbooks_properties):
    before = sim.get_object(PORTAL, "deals", "614")["properties"]["hs_lastmodifieddate"]
    response = _update(
        call,
        ("614", {"qbo_invoice_status": "partially_paid", "qbo_invoice_total": 1200.5, "dealname": "Acme 2"}),
        ("615", {"qbo_invoice_due_date": "2026-12-01", "qbo_invoice_number": "1045"}),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETE" and body["startedAt"] and body["completedAt"]
    first = body["results"][0]
    assert first["id"] == "614" and first["updatedAt"]
    assert first["properties"]["qbo_invoice_total"] == "1200.5"
    assert first["properties"]["amount"] == "1200"  # all stored properties come back
    read = call("GET", "/crm/v3/objects/deals/614?properties=qbo_invoice_status,dealname").json()
    assert read["properties"]["qbo_invoice_status"] == "partially_paid" and read["properties"]["dealname"] == "Acme 2"
    assert read["properties"]["hs_lastmodifieddate"] >= before
    assert sim.get_object(PORTAL, "deals", "615")["properties"]["qbo_invoice_due_date"] == "2026-12-01"


def test_unknown_property_fails_the_whole_batch_with_400(call, sim, quickbooks_properties):
    response = _update(call, ("614", {"qbo_invoice_number": "1"}), ("615", {"qbo_nope": "x", "widgets": 1}))
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    assert [(e["code"], e["context"]["propertyName"]) for e in body["errors"]] == [
        ("PROPERTY_DOESNT_EXIST", ["qbo_nope"]),
        ("PROPERTY_DOESNT_EXIST", ["widgets"]),
    ]
    assert "qbo_invoice_number" not in sim.get_object(PORTAL, "deals", "614")["properties"]


@pytest.mark.parametrize(
    ("props", "code"),
    [
        ({"qbo_invoice_status": "Paid"}, "INVALID_OPTION"),
        ({"qbo_invoice_total": "12,00"}, "INVALID_NUMBER"),
        ({"qbo_invoice_due_date": "12/01/2026"}, "INVALID_DATE"),
        ({"qbo_invoice_due_date": "2026-02-30"}, "INVALID_DATE"),
        ({"qbo_invoice_due_date": "1764590400000"}, "INVALID_DATE"),  # 2025-12-01 12:00 UTC
        ({"hs_object_id": "1"}, "READ_ONLY_VALUE"),
    ],
    ids=["enum-label-not-value", "number", "us-date", "impossible-date", "not-midnight", "read-only"],
)
def test_invalid_values_answer_400_with_their_code(call, quickbooks_properties, props, code):
    response = _update(call, ("614", props))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == code


def test_dates_take_iso_days_or_midnight_utc_milliseconds(call, sim, quickbooks_properties):
    assert _update(call, ("614", {"qbo_invoice_due_date": 1764547200000})).status_code == 200
    assert sim.get_object(PORTAL, "deals", "614")["properties"]["qbo_invoice_due_date"] == "2025-12-01"
    assert _update(call, ("614", {"closedate": "1764590400000"})).status_code == 200  # datetime: any moment
    assert sim.get_object(PORTAL, "deals", "614")["properties"]["closedate"] == "2025-12-01T12:00:00.000Z"


def test_empty_string_clears_a_value(call, sim, quickbooks_properties):
    _update(call, ("614", {"qbo_invoice_status": "paid"}))
    assert _update(call, ("614", {"qbo_invoice_status": ""})).status_code == 200
    assert sim.get_object(PORTAL, "deals", "614")["properties"]["qbo_invoice_status"] == ""


def test_unknown_ids_answer_207_and_the_others_are_updated(call, sim, quickbooks_properties):
    response = _update(call, ("999", {"qbo_invoice_number": "7"}), ("614", {"qbo_invoice_number": "8"}))
    assert response.status_code == 207
    body = response.json()
    assert [r["id"] for r in body["results"]] == ["614"]
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND" and body["errors"][0]["context"] == {"ids": ["999"]}
    assert sim.get_object(PORTAL, "deals", "614")["properties"]["qbo_invoice_number"] == "8"


def test_oversized_and_repeated_batches_answer_400(call, quickbooks_properties):
    too_many = _update(call, *[(str(n), {"qbo_invoice_number": "1"}) for n in range(101)])
    assert too_many.status_code == 400 and too_many.json()["category"] == "VALIDATION_ERROR"
    repeated = _update(call, ("614", {"qbo_invoice_number": "1"}), ("614", {"qbo_invoice_number": "2"}))
    assert repeated.status_code == 400 and "Duplicate" in repeated.json()["message"]


def test_history_lists_changes_newest_first(call, sims, quickbooks_properties):
    for status in ("partially_paid", "partially_paid", "paid"):
        assert _update(call, ("614", {"qbo_invoice_status": status})).status_code == 200
    read = call("GET", "/crm/v3/objects/deals/614?propertiesWithHistory=qbo_invoice_status,dealname,qbo_nope").json()
    history = read["propertiesWithHistory"]
    assert [entry["value"] for entry in history["qbo_invoice_status"]] == ["paid", "partially_paid"]
    assert {entry["sourceType"] for entry in history["qbo_invoice_status"]} == {"INTEGRATION"}
    assert history["qbo_invoice_status"][0]["timestamp"] >= history["qbo_invoice_status"][1]["timestamp"]
    assert [entry["value"] for entry in history["dealname"]] == ["Acme renewal"]
    assert "qbo_nope" not in history
    assert sims.property_history("deals", "614", "qbo_invoice_status", portal_id=PORTAL) == ["partially_paid", "paid"]
    assert sims.hubspot_record("deals", "614", portal_id=PORTAL)["qbo_invoice_status"] == "paid"


def test_single_patch_keeps_history_too(call, sims):
    call("PATCH", "/crm/v3/objects/deals/614", json={"properties": {"dealname": "Acme 3"}})
    assert sims.property_history("deals", "614", "dealname", portal_id=PORTAL) == ["Acme renewal", "Acme 3"]


# --- Timeline -------------------------------------------------------------------------------------


def test_templates_need_the_developer_api_key(server, sim, call):
    path = f"/crm/v3/timeline/{APP_ID}/event-templates"
    assert _developer(server, "POST", path, key=None, json=TEMPLATE).status_code == 401
    assert _developer(server, "POST", path, key="wrong", json=TEMPLATE).status_code == 401
    assert call("POST", path, json=TEMPLATE).status_code == 401  # a portal's OAuth token is not enough


def test_template_crud(server, template_id):
    base = f"/crm/v3/timeline/{APP_ID}/event-templates"
    assert template_id.isdigit()
    listed = _developer(server, "GET", base).json()["results"]
    assert [t["id"] for t in listed] == [template_id] and listed[0]["objectType"] == "deals"
    assert _developer(server, "GET", f"{base}/{template_id}").json()["tokens"][0]["name"] == "amount"
    replaced = _developer(server, "PUT", f"{base}/{template_id}", json={"name": "Paid", "tokens": []})
    assert (
        replaced.status_code == 200 and replaced.json()["name"] == "Paid" and replaced.json()["objectType"] == "deals"
    )
    assert _developer(server, "PUT", f"{base}/{template_id}", json={"tokens": []}).status_code == 400
    assert _developer(server, "DELETE", f"{base}/{template_id}").status_code == 204
    assert _developer(server, "GET", f"{base}/{template_id}").status_code == 404


@pytest.mark.parametrize(
    "change",
    [{"objectType": "widgets"}, {"tokens": [{"name": "a", "label": "A", "type": "bool"}]}, {"name": None}],
    ids=["object-type", "token-type", "name"],
)
def test_bad_template_answers_400(server, sim, change):
    path = f"/crm/v3/timeline/{APP_ID}/event-templates"
    assert _developer(server, "POST", path, json={**TEMPLATE, **change}).status_code == 400


def _event(template_id: str, **extra) -> dict:
    """Return a payment event on deal 614."""
    return {"eventTemplateId": template_id, "objectId": "614", "tokens": {"amount": "50", "invoice": "1045"}, **extra}


def test_event_is_created_and_stored(call, sims, template_id):
    created = call("POST", "/crm/v3/timeline/events", json=_event(template_id, timestamp="2026-01-02T03:04:05Z"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert len(body["id"]) == 36 and body["eventTemplateId"] == template_id and body["objectId"] == "614"
    assert body["tokens"] == {"amount": "50", "invoice": "1045"}
    assert body["timestamp"] == "2026-01-02T03:04:05.000Z"
    assert sims.timeline_events("deals", "614", portal_id=PORTAL) == [body]
    assert sims.timeline_events("deals", "615", portal_id=PORTAL) == []


def test_a_repeated_event_id_answers_409(call, sims, template_id):
    first = call("POST", "/crm/v3/timeline/events", json=_event(template_id, id="payment-145"))
    assert first.status_code == 201 and first.json()["id"] == "payment-145"
    again = call("POST", "/crm/v3/timeline/events", json=_event(template_id, id="payment-145"))
    assert again.status_code == 409 and again.json()["category"] == "CONFLICT"
    assert len(sims.timeline_events("deals", "614", portal_id=PORTAL)) == 1


def test_timeline_answers_under_both_path_prefixes(server, call, template_id):
    # Older guides use /crm/v3/timeline; HubSpot's current spec (and hubspot-api-client 12) /integrators/timeline/v3.
    listed = _developer(server, "GET", f"/integrators/timeline/v3/{APP_ID}/event-templates").json()["results"]
    assert [t["id"] for t in listed] == [template_id]
    assert _developer(server, "GET", f"/integrators/timeline/v3/{APP_ID}/event-templates", key=None).status_code == 401
    created = call("POST", "/integrators/timeline/v3/events", json=_event(template_id, id="p-1"))
    assert created.status_code == 201
    assert call("GET", f"/crm/v3/timeline/events/{template_id}/p-1").json() == created.json()
    assert call("GET", f"/integrators/timeline/v3/events/{template_id}/p-2").status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"tokens": {"amount": "50", "colour": "red"}},
        {"tokens": {"amount": "fifty"}},
        {"objectId": "999"},
        {"eventTemplateId": "123"},
        {"timestamp": "yesterday"},
    ],
    ids=["undeclared-token", "number-token", "unknown-object", "unknown-template", "timestamp"],
)
def test_bad_event_answers_400(call, template_id, change):
    response = call("POST", "/crm/v3/timeline/events", json={**_event(template_id), **change})
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"


def test_batch_events_report_refused_ones_with_207(call, sims, template_id):
    inputs = [
        _event(template_id, id="a"),
        _event(template_id, id="a"),
        _event(template_id, id="b", tokens={"colour": "red"}),
        _event(template_id, id="c"),
    ]
    response = call("POST", "/crm/v3/timeline/events/batch/create", json={"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert [e["id"] for e in body["results"]] == ["a", "c"]
    assert [(e["category"], e["context"]["id"]) for e in body["errors"]] == [
        ("CONFLICT", ["a"]),
        ("VALIDATION_ERROR", ["b"]),
    ]
    fine = call("POST", "/crm/v3/timeline/events/batch/create", json={"inputs": [_event(template_id, id="d")]})
    assert fine.status_code == 201 and fine.json()["status"] == "COMPLETE"
    assert [e["id"] for e in sims.timeline_events("deals", "614", portal_id=PORTAL)] == ["a", "c", "d"]
    over = call("POST", "/crm/v3/timeline/events/batch/create", json={"inputs": [_event(template_id)] * 101})
    assert over.status_code == 400


# --- Notes ----------------------------------------------------------------------------------------


def _note(body: str, deal_id: str | None = None) -> dict:
    """Return a note input, associated with a deal when given."""
    note: dict = {"properties": {"hs_note_body": body, "hs_timestamp": "2026-01-02T03:04:05Z"}}
    if deal_id:
        note["associations"] = [
            {"to": {"id": deal_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}
        ]
    return note


def test_notes_are_created_associated_and_listed(call, sims):
    created = call("POST", "/crm/v3/objects/notes/batch/create", json={"inputs": [_note("Paid 50", "614"), _note("B")]})
    assert created.status_code == 201, created.text
    first, second = (r["id"] for r in created.json()["results"])
    assert created.json()["results"][0]["properties"]["hs_timestamp"] == "2026-01-02T03:04:05.000Z"
    linked = call(
        "POST",
        "/crm/v4/associations/notes/deals/batch/associate/default",
        json={"inputs": [{"from": {"id": second}, "to": {"id": "614"}}]},
    )
    assert linked.status_code == 200 and linked.json()["status"] == "COMPLETE"
    assert linked.json()["results"][0]["associationSpec"] == {
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": 214,
    }
    page = call("GET", "/crm/v4/objects/deals/614/associations/notes").json()["results"]
    assert [(r["toObjectId"], r["associationTypes"][0]["typeId"]) for r in page] == [
        (int(first), 213),
        (int(second), 213),
    ]
    assert [note["hs_note_body"] for note in sims.notes_of("deals", "614", portal_id=PORTAL)] == ["Paid 50", "B"]
    assert call("GET", "/crm/v3/properties/0-46").status_code == 200


def test_default_association_batch_reports_unknown_ids_with_207(call):
    created = call("POST", "/crm/v3/objects/notes/batch/create", json={"inputs": [_note("A")]}).json()
    note_id = created["results"][0]["id"]
    inputs = [{"from": {"id": note_id}, "to": {"id": "614"}}, {"from": {"id": note_id}, "to": {"id": "999"}}]
    response = call("POST", "/crm/v4/associations/notes/deals/batch/associate/default", json={"inputs": inputs})
    assert response.status_code == 207
    assert response.json()["errors"][0]["context"] == {"fromObjectId": [note_id], "toObjectId": ["999"]}
    assert len(response.json()["results"]) == 2  # both directions of the one link made


def test_note_batch_create_checks_properties_and_associations(call, sim):
    bad_property = call("POST", "/crm/v3/objects/notes/batch/create", json={"inputs": [{"properties": {"x": "1"}}]})
    assert bad_property.status_code == 400 and bad_property.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    bad_target = call("POST", "/crm/v3/objects/notes/batch/create", json={"inputs": [_note("A", "999")]})
    assert bad_target.status_code == 400
    assert sim.property_definitions("notes", PORTAL)["results"][0]["name"] == "hs_note_body"
    assert call("POST", "/crm/v3/objects/notes/search", json={}).json()["total"] == 0  # nothing half-made


# --- Rate limits, faults and the request log ------------------------------------------------------


def test_write_back_routes_are_rate_limited_faulted_and_logged(call, sim, template_id):
    sim.configure(limit_per_10s=3)
    statuses = [
        _update(call, ("614", {"dealname": "x"})).status_code,
        call("POST", "/crm/v3/timeline/events", json=_event(template_id)).status_code,
        call("GET", "/crm/v3/properties/deals/groups").status_code,
        call("POST", "/crm/v3/properties/deals/groups", json=GROUP).status_code,
    ]
    assert statuses == [200, 201, 200, 429]
    sim.configure(limit_per_10s=100)
    sim.add_fault("POST", r"/batch/update$", 503)
    assert _update(call, ("614", {"dealname": "y"})).status_code == 503
    logged = [(r["method"], r["path"], r["status"]) for r in sim.requests()]
    assert ("POST", "/crm/v3/objects/deals/batch/update", 503) in logged
    assert ("POST", "/crm/v3/timeline/events", 201) in logged
    assert ("POST", f"/crm/v3/timeline/{APP_ID}/event-templates", 201) in logged


# --- The official hubspot-api-client --------------------------------------------------------------


@pytest.fixture
def client(server, sim) -> hubspot.HubSpot:
    """Return the official client with the portal's token, pointed at the simulator."""
    return hubspot.HubSpot(access_token=TOKEN, host=server.base_url)


def test_client_creates_groups_and_properties(client):
    groups = client.crm.properties.groups_api
    group = groups.create("deals", PropertyGroupCreate(name="quickbooks", label="QuickBooks", display_order=-1))
    assert group.name == "quickbooks" and group.archived is False
    with pytest.raises(PropertiesApiException) as conflict:
        groups.create("deals", PropertyGroupCreate(name="quickbooks", label="QuickBooks"))
    assert conflict.value.status == 409
    options = [OptionInput(label="Paid", value="paid", display_order=0, hidden=False)]
    created = client.crm.properties.core_api.create(
        "deals",
        PropertyCreate(
            name="qbo_invoice_status",
            label="Status",
            type="enumeration",
            field_type="select",
            group_name="quickbooks",
            options=options,
        ),
    )
    assert created.name == "qbo_invoice_status" and created.options[0].value == "paid"
    assert "qbo_invoice_status" in {p.name for p in client.crm.properties.core_api.get_all("deals").results}
    updated = client.crm.properties.core_api.update("deals", "qbo_invoice_status", PropertyUpdate(label="QBO status"))
    assert updated.label == "QBO status"


def test_client_batch_updates_and_reads_history(client, quickbooks_properties):
    batch = client.crm.deals.batch_api
    for status in ("partially_paid", "paid"):
        answer = batch.update(
            BatchInputSimplePublicObjectBatchInput(
                inputs=[SimplePublicObjectBatchInput(id="614", properties={"qbo_invoice_status": status})]
            )
        )
        assert answer.status == "COMPLETE" and answer.results[0].properties["qbo_invoice_status"] == status
    deal = client.crm.deals.basic_api.get_by_id("614", properties_with_history=["qbo_invoice_status"])
    assert [v.value for v in deal.properties_with_history["qbo_invoice_status"]] == ["paid", "partially_paid"]


def test_client_creates_templates_and_events(server, client, sim):
    developer = hubspot.HubSpot(api_key=DEFAULT_DEVELOPER_API_KEY, host=server.base_url)
    template = developer.crm.timeline.templates_api.create(
        APP_ID,
        TimelineEventTemplateCreateRequest(
            name="QuickBooks payment",
            object_type="deals",
            header_template="Payment {{amount}}",
            detail_template="Paid",
            tokens=[TimelineEventTemplateToken(name="amount", label="Amount", type="number")],
        ),
    )
    assert template.id and template.tokens[0].name == "amount"
    event = TimelineEvent(event_template_id=template.id, object_id="614", tokens={"amount": "50"}, id="pay-1")
    created = client.crm.timeline.events_api.create(event)
    assert created.id == "pay-1" and created.object_type == "deals"
    with pytest.raises(TimelineApiException) as conflict:
        client.crm.timeline.events_api.create(event)
    assert conflict.value.status == 409
