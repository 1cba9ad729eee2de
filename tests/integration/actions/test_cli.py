"""The qbo-actions command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from actions.cli import cli
from services.bootstrap import Services
from simulators.scenario import PORTAL_ID, REALM_ID


@pytest.fixture
def run(env: dict[str, str], services: Services):  # type: ignore[no-untyped-def]
    runner = CliRunner(env=env)

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=stdin)

    return invoke


def test_missing_configuration_stops_with_a_message_naming_it() -> None:
    result = CliRunner(env={"HUBSPOT_CLIENT_SECRET": "", "TOKEN_ENCRYPTION_KEY": ""}).invoke(
        cli, ["connections", "list"]
    )

    assert result.exit_code != 0
    assert "HUBSPOT_CLIENT_SECRET" in result.output and "TOKEN_ENCRYPTION_KEY" in result.output


def test_db_upgrade_creates_the_schema(env: dict[str, str], tmp_path: Path) -> None:
    database = tmp_path / "fresh.sqlite3"
    result = CliRunner(env={**env, "DATABASE_URL": f"sqlite:///{database}"}).invoke(cli, ["db", "upgrade"])

    assert result.exit_code == 0, result.output
    import sqlite3

    tables = {row[0] for row in sqlite3.connect(database).execute("select name from sqlite_master where type='table'")}
    assert {"executions", "quickbooks_connections", "payment_documents", "alembic_version"} <= tables


def test_connections_are_added_and_listed(run, services: Services) -> None:  # type: ignore[no-untyped-def]
    added = run(
        "connections",
        "add-quickbooks",
        "--portal-id",
        "42",
        "--realm-id",
        "777",
        "--refresh-token",
        "rt-1",
        "--access-token",
        "at-1",
        "--expires-in",
        "3600",
        "--name",
        "Books Ltd",
    )
    hubspot = run("connections", "add-hubspot", "--portal-id", "42", "--refresh-token", "hs-rt")
    listed = run("connections", "list")

    assert added.exit_code == 0 and hubspot.exit_code == 0
    assert "HubSpot portal 42" in listed.output
    assert "QuickBooks 777 (Books Ltd) -> portal 42: active" in listed.output
    connection = services.connections.quickbooks(42, "777")
    assert connection is not None
    tokens = services.connections.quickbooks_tokens(connection.id)
    assert (tokens.access_token, tokens.refresh_token) == ("at-1", "rt-1")
    assert tokens.access_token_valid()


def test_settings_are_validated_saved_and_shown(run, services: Services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "settings.json"
    good.write_text(
        json.dumps(
            {
                "contact_sync": {
                    "mode": "filters",
                    "filter_groups": [
                        {"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]}
                    ],
                },
                "default_income_account": 79,
            }
        )
    )
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "contact_sync": {
                    "mode": "filters",
                    "filter_groups": [{"filters": [{"propertyName": "x", "operator": "LIKE", "value": "y"}]}],
                }
            }
        )
    )

    saved = run("settings", "set", "--realm-id", REALM_ID, "--file", str(good))
    refused = run("settings", "set", "--realm-id", REALM_ID, "--file", str(bad))
    shown = run("settings", "show", "--realm-id", REALM_ID)

    assert saved.exit_code == 0, saved.output
    assert refused.exit_code != 0 and "LIKE" in refused.output
    assert services.companies.settings(REALM_ID)["default_income_account"] == "79"
    assert '"mode": "filters"' in shown.output


def test_an_unknown_setting_is_refused(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("settings", "set", "--realm-id", REALM_ID, "--file", "-", stdin='{"colour": "blue"}')

    assert result.exit_code != 0 and "colour" in result.output


def test_executions_are_listed_and_shown(run, services: Services) -> None:  # type: ignore[no-untyped-def]
    from services.store.records import NewExecution

    execution_id, _ = services.executions.accept(
        NewExecution("ap-cli-1", "create_invoice", PORTAL_ID, REALM_ID, "DEAL", "614", {"quickbooks_account": REALM_ID})
    )

    listed = run("executions", "list", "--state", "queued")
    shown = run("executions", "show", "ap-cli-1")
    missing = run("executions", "show", "nope")

    assert execution_id in listed.output and "create_invoice" in listed.output
    assert json.loads(shown.output)["id"] == execution_id
    assert missing.exit_code != 0


def test_a_queued_execution_cannot_be_retried(run, services: Services) -> None:  # type: ignore[no-untyped-def]
    from services.store.records import NewExecution

    execution_id, _ = services.executions.accept(
        NewExecution("ap-cli-2", "create_invoice", PORTAL_ID, REALM_ID, "DEAL", "614", {})
    )

    result = run("executions", "retry", execution_id)

    assert result.exit_code != 0 and "not failed" in result.output


def test_keys_generate_prints_a_usable_key() -> None:
    from services.store.crypto import TokenCipher

    key = CliRunner().invoke(cli, ["keys", "generate"]).output.strip()

    assert TokenCipher(key).decrypt(TokenCipher(key).encrypt("secret")) == "secret"


def test_executions_purge_deletes_old_finished_executions(services: Services, env: dict[str, str]) -> None:
    from datetime import timedelta

    from services.clock import utcnow
    from services.store.records import NewExecution
    from tests.conftest import set_execution

    execution_id, _ = services.executions.accept(
        NewExecution("ap-1-2-3-0", "create_invoice", 102670506, "9130355", "DEAL", "614", {})
    )
    set_execution(
        services, execution_id, state="succeeded", callback_state="sent", finished_at=utcnow() - timedelta(days=91)
    )

    runner = CliRunner(env=env)
    refused = runner.invoke(cli, ["executions", "purge", "--older-than", "ninety days"])
    purged = runner.invoke(cli, ["executions", "purge", "--older-than", "90d"])

    assert refused.exit_code != 0 and "90d, 12w or 36h" in refused.output
    assert purged.exit_code == 0, purged.output
    assert purged.output.startswith("Deleted 1 executions finished before ")
    assert services.executions.get(execution_id) is None
