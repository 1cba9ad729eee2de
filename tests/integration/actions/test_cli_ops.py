"""`qbo-actions ops token`: minting operators' tokens, without a database or Redis."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result

from actions.cli import cli
from services.config import Config
from services.ops.tokens import ROLES, OperatorTokens

SECRET = "ops-secret-" + "x" * 40
# What Config needs to load; nothing here is ever connected to.
ENVIRONMENT = {
    "HUBSPOT_CLIENT_ID": "hs-client",
    "HUBSPOT_CLIENT_SECRET": "hs-secret",
    "QUICKBOOKS_CLIENT_ID": "qbo-client",
    "QUICKBOOKS_CLIENT_SECRET": "qbo-secret",
    "SECRET_KEY": "secret-key",
    "TOKEN_ENCRYPTION_KEY": "token-key",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    "OPS_JWT_SECRET": SECRET,
    "OPS_JWKS_URL": "",
}


def token(*args: str, **env_changes: str) -> Result:
    return CliRunner(env={**ENVIRONMENT, **env_changes}).invoke(cli, ["ops", "token", *args])


def verifier(**env_changes: Any) -> OperatorTokens:
    return OperatorTokens(Config.from_env({**ENVIRONMENT, **env_changes}))


@pytest.mark.parametrize("role", ROLES)
def test_the_printed_token_verifies_with_its_subject_and_role(role: str) -> None:
    result = token("--subject", "ops@example.com", "--role", role, "--ttl", "8h")

    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    operator = verifier().verify(result.stdout.strip())
    assert (operator.subject, operator.role) == ("ops@example.com", role)


def test_the_token_follows_the_configured_issuer_audience_and_role_claim() -> None:
    custom = {"OPS_JWT_ISSUER": "ops-issuer", "OPS_JWT_AUDIENCE": "ops-console", "OPS_JWT_ROLE_CLAIM": "groups"}
    result = token("--subject", "ops@example.com", "--role", "admin", **custom)

    assert result.exit_code == 0, result.output
    assert verifier(**custom).verify(result.stdout.strip()).role == "admin"


def test_without_the_secret_the_command_stops_with_a_message() -> None:
    result = token("--subject", "ops@example.com", "--role", "viewer", OPS_JWT_SECRET="")

    assert result.exit_code == 1
    assert "OPS_JWT_SECRET is not set" in result.output and "Traceback" not in result.output


def test_without_the_rest_of_the_configuration_the_command_names_what_is_missing() -> None:
    result = token("--subject", "ops@example.com", "--role", "viewer", SECRET_KEY="")

    assert result.exit_code == 1
    assert "SECRET_KEY" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--role", "root"), "'root' is not one of"),
        (("--role", "viewer", "--ttl", "forever"), "not a lifetime"),
        (("--role", "viewer", "--ttl", "0h"), "no time at all"),
        (("--role", "viewer", "--ttl", "31d"), "longer than"),
    ],
)
def test_a_bad_role_or_lifetime_is_rejected(args: tuple[str, ...], complaint: str) -> None:
    result = token("--subject", "ops@example.com", *args)

    assert result.exit_code == 2
    assert complaint in result.output and not result.stdout.startswith("ey")


def test_a_blank_subject_is_rejected() -> None:
    result = token("--subject", " ", "--role", "viewer")

    assert result.exit_code == 2 and "--subject" in result.output
