"""`qbo-actions manifests publish`: the action definitions at HubSpot (the simulator, over HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from actions.cli import cli
from actions.manifests import checked_base_url
from actions.registry import all_actions
from simulators.scenario import Simulators

APP_ID = 777001
DEVELOPER_KEY = "sim-developer-key"
BASE_URL = "https://qbo.example.com"
ACTIONS = sorted(spec.name for spec in all_actions())

Publish = Callable[..., Result]


@pytest.fixture
def publish(env: dict[str, str]) -> Publish:
    """Run the command with the developer key and PUBLIC_BASE_URL set, or with ``env_changes`` applied."""

    def run(*args: str, **env_changes: str | None) -> Result:
        environment = {"HUBSPOT_DEVELOPER_API_KEY": DEVELOPER_KEY, "PUBLIC_BASE_URL": BASE_URL, **env, **env_changes}
        return CliRunner(env=environment).invoke(cli, ["manifests", "publish", "--app-id", str(APP_ID), *args])

    return run


def definition_writes(sims: Simulators) -> list[dict[str, Any]]:
    """Return the POST and PATCH requests the simulator received for action definitions."""
    return [
        r
        for r in sims.hs_requests()
        if r["method"] in ("POST", "PATCH") and r["path"].startswith("/automation/v4/actions/")
    ]


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def patch_stored(sims: Simulators, definition_id: str, **fields: Any) -> None:
    """Change a stored definition as somebody else would, through HubSpot's API."""
    response = requests.patch(
        f"{sims.hubspot_url}/automation/v4/actions/{APP_ID}/{definition_id}",
        params={"hapikey": DEVELOPER_KEY},
        json=fields,
        timeout=10,
    )
    response.raise_for_status()


def test_publish_creates_every_definition_pointing_at_our_base_url(publish: Publish, sims: Simulators) -> None:
    result = publish()

    assert result.exit_code == 0, result.output
    stored = sims.action_definitions(APP_ID)
    assert len(stored) == len(ACTIONS) == 7
    ids = {d["actionUrl"].rsplit("/", 1)[1]: d["id"] for d in stored}
    assert sorted(ids) == ACTIONS
    for definition in stored:
        text = str(definition)
        assert "{{PUBLIC_BASE_URL}}" not in text
        assert definition["actionUrl"].startswith(f"{BASE_URL}/actions/")
        urls = [f["typeDefinition"].get("optionsUrl") for f in definition["inputFields"]]
        assert all(url.startswith(f"{BASE_URL}/options/") for url in urls if url)
    assert sorted(lines(result)[:-1]) == sorted(f"created {name} ({ids[name]})" for name in ACTIONS)
    assert lines(result)[-1] == f"App {APP_ID}: 7 created, 0 updated, 0 unchanged."
    assert [r["method"] for r in definition_writes(sims)] == ["POST"] * 7


def test_a_second_publish_changes_nothing(publish: Publish, sims: Simulators) -> None:
    assert publish().exit_code == 0
    revisions = {d["id"]: d["revisionId"] for d in sims.action_definitions(APP_ID)}
    sims.hs("DELETE", "requests")

    again = publish()

    assert again.exit_code == 0, again.output
    assert all(line.startswith("unchanged ") for line in lines(again)[:-1])
    assert lines(again)[-1] == f"App {APP_ID}: 0 created, 0 updated, 7 unchanged."
    assert definition_writes(sims) == []
    assert [r["method"] for r in sims.hs_requests()] == ["GET"]
    assert {d["id"]: d["revisionId"] for d in sims.action_definitions(APP_ID)} == revisions


def test_publish_updates_only_the_definition_changed_at_hubspot(publish: Publish, sims: Simulators) -> None:
    assert publish().exit_code == 0
    invoice = next(d for d in sims.action_definitions(APP_ID) if d["actionUrl"].endswith("/create_invoice"))
    patch_stored(sims, invoice["id"], published=False, labels={"en": {"actionName": "Renamed"}})
    sims.hs("DELETE", "requests")

    result = publish()

    assert result.exit_code == 0, result.output
    assert f"updated create_invoice ({invoice['id']}): published, labels" in lines(result)
    assert sum(line.startswith("unchanged ") for line in lines(result)) == 6
    assert lines(result)[-1] == f"App {APP_ID}: 0 created, 1 updated, 6 unchanged."
    writes = definition_writes(sims)
    assert [(w["method"], w["path"]) for w in writes] == [("PATCH", f"/automation/v4/actions/{APP_ID}/{invoice['id']}")]
    restored = next(d for d in sims.action_definitions(APP_ID) if d["id"] == invoice["id"])
    assert restored["published"] is True
    assert restored["labels"]["en"]["actionName"] != "Renamed"
    assert publish().exit_code == 0 and definition_writes(sims) == writes


def test_a_new_base_url_comes_from_the_option_and_overrides_the_configured_one(
    publish: Publish, sims: Simulators
) -> None:
    result = publish("--base-url", "https://books.example.org/")

    assert result.exit_code == 0, result.output
    assert {d["actionUrl"].rsplit("/actions/", 1)[0] for d in sims.action_definitions(APP_ID)} == {
        "https://books.example.org"
    }


def test_a_dry_run_says_what_would_change_and_sends_nothing(publish: Publish, sims: Simulators) -> None:
    empty = publish("--dry-run")

    assert empty.exit_code == 0, empty.output
    assert sorted(lines(empty)[:-1]) == [f"would create {name}" for name in ACTIONS]
    assert lines(empty)[-1] == f"Dry run, nothing sent: app {APP_ID} would have 7 created, 0 updated, 0 unchanged."
    assert sims.action_definitions(APP_ID) == [] and definition_writes(sims) == []

    assert publish().exit_code == 0
    estimate = next(d for d in sims.action_definitions(APP_ID) if d["actionUrl"].endswith("/create_estimate"))
    patch_stored(sims, estimate["id"], published=False)
    before = sims.action_definitions(APP_ID)
    sims.hs("DELETE", "requests")

    dry = publish("--dry-run")

    assert dry.exit_code == 0, dry.output
    assert f"would update create_estimate ({estimate['id']}): published" in lines(dry)
    assert lines(dry)[-1] == f"Dry run, nothing sent: app {APP_ID} would have 0 created, 1 updated, 6 unchanged."
    assert definition_writes(sims) == []
    assert sims.action_definitions(APP_ID) == before


def test_publish_follows_the_pages_of_existing_definitions(publish: Publish, sims: Simulators) -> None:
    # More definitions than the simulator's default page (10), so the listing takes several pages.
    for number in range(12):
        response = requests.post(
            f"{sims.hubspot_url}/automation/v4/actions/{APP_ID}",
            params={"hapikey": DEVELOPER_KEY},
            json={"actionUrl": f"https://other.example.com/actions/{number}"},
            timeout=10,
        )
        response.raise_for_status()
    assert publish().exit_code == 0
    sims.hs("DELETE", "requests")

    again = publish()

    assert again.exit_code == 0, again.output
    assert lines(again)[-1] == f"App {APP_ID}: 0 created, 0 updated, 7 unchanged."
    assert len(sims.action_definitions(APP_ID)) == 19 and definition_writes(sims) == []


def test_a_missing_developer_key_is_refused_before_anything_is_sent(publish: Publish, sims: Simulators) -> None:
    result = publish(HUBSPOT_DEVELOPER_API_KEY=None)

    assert result.exit_code != 0
    assert "HUBSPOT_DEVELOPER_API_KEY is not set" in result.output
    assert sims.hs_requests() == []


def test_a_missing_base_url_is_refused(publish: Publish, sims: Simulators) -> None:
    result = publish(PUBLIC_BASE_URL=None)

    assert result.exit_code != 0
    assert "No base URL: pass --base-url or set PUBLIC_BASE_URL" in result.output
    assert sims.hs_requests() == []


@pytest.mark.parametrize(
    ("args", "env_changes", "reason"),
    [
        (("--base-url", "http://qbo.example.com"), {}, "--base-url: http://qbo.example.com must use https://"),
        ((), {"PUBLIC_BASE_URL": "http://qbo.example.com"}, "PUBLIC_BASE_URL: http://qbo.example.com must use https"),
        (("--base-url", "qbo.example.com"), {}, "is not a URL"),
    ],
)
def test_a_base_url_that_is_not_https_is_refused(
    publish: Publish, sims: Simulators, args: tuple[str, ...], env_changes: dict[str, str], reason: str
) -> None:
    result = publish(*args, **env_changes)

    assert result.exit_code != 0
    assert reason in result.output
    assert sims.hs_requests() == []


def test_a_wrong_developer_key_stops_with_the_401(publish: Publish, sims: Simulators) -> None:
    result = publish(HUBSPOT_DEVELOPER_API_KEY="not-the-key")

    assert result.exit_code != 0
    assert "HubSpot refused the developer API key" in result.output
    assert "HTTP 401" in result.output and "HUBSPOT_DEVELOPER_API_KEY" in result.output
    assert "not-the-key" not in result.output
    assert sims.action_definitions(APP_ID) == []


def test_a_key_changed_at_hubspot_is_the_one_the_command_needs(publish: Publish, sims: Simulators) -> None:
    sims.hubspot_settings(developer_api_key="rotated-key")

    refused = publish()
    accepted = publish(HUBSPOT_DEVELOPER_API_KEY="rotated-key")

    assert refused.exit_code != 0 and "HTTP 401" in refused.output
    assert accepted.exit_code == 0, accepted.output
    assert len(sims.action_definitions(APP_ID)) == 7


def test_a_refused_definition_stops_with_hubspots_reason(publish: Publish, sims: Simulators) -> None:
    sims.hs_fault(method="POST", path=f"^/automation/v4/actions/{APP_ID}$", status=400, count=1)

    result = publish()

    assert result.exit_code != 0
    assert "HubSpot did not take the definitions" in result.output and "HTTP 400" in result.output
    assert publish().exit_code == 0
    assert len(sims.action_definitions(APP_ID)) == 7


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://qbo.example.com/", "https://qbo.example.com"),
        ("https://qbo.example.com/prefix", "https://qbo.example.com/prefix"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:5000/", "http://localhost:5000"),
    ],
)
def test_checked_base_url_takes_https_and_local_http(url: str, expected: str) -> None:
    assert checked_base_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://qbo.example.com", "ftp://qbo.example.com", "https://", "qbo.example.com", "https://a.b/?x=1"]
)
def test_checked_base_url_refuses_anything_else(url: str) -> None:
    with pytest.raises(ValueError):
        checked_base_url(url)


@pytest.fixture
def timeline(env: dict[str, str]) -> Publish:
    """Run `manifests timeline` with the developer key set, or with ``env_changes`` applied."""

    def run(**env_changes: str | None) -> Result:
        environment = {"HUBSPOT_DEVELOPER_API_KEY": DEVELOPER_KEY, **env, **env_changes}
        return CliRunner(env=environment).invoke(cli, ["manifests", "timeline", "--app-id", str(APP_ID)])

    return run


def test_the_timeline_templates_are_created_once_and_their_setting_printed(timeline: Publish, sims: Simulators) -> None:
    first = timeline()
    assert first.exit_code == 0, first.output
    assert [line.rsplit(" (", 1)[0] for line in lines(first)[:3]] == [
        "created QuickBooks payment received (deals)",
        "created QuickBooks payment received (quotes)",
        "created QuickBooks payment received (commerce_payments)",
    ]
    setting = lines(first)[-1]
    assert setting.startswith("HUBSPOT_TIMELINE_TEMPLATES=deals=")
    templates = dict(pair.split("=") for pair in setting.removeprefix("HUBSPOT_TIMELINE_TEMPLATES=").split(","))
    assert set(templates) == {"deals", "quotes", "commerce_payments"}

    again = timeline()
    assert again.exit_code == 0, again.output
    assert all(line.startswith("updated") for line in lines(again)[:3]) and lines(again)[-1] == setting
    stored = sims.http.get(
        f"{sims.hubspot_url}/crm/v3/timeline/{APP_ID}/event-templates", params={"hapikey": DEVELOPER_KEY}, timeout=10
    ).json()["results"]
    assert len(stored) == 3 and {t["objectType"] for t in stored} == set(templates)
    assert {t["name"] for t in stored} == {f"QuickBooks payment received ({name})" for name in templates}


def test_the_timeline_templates_need_the_developer_key(timeline: Publish) -> None:
    result = timeline(HUBSPOT_DEVELOPER_API_KEY="")
    assert result.exit_code != 0 and "HUBSPOT_DEVELOPER_API_KEY is not set" in result.output
