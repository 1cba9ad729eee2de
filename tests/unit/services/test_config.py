"""Configuration from the environment: required variables, environments, overrides, numbers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.config import REQUIRED, Config, ConfigError, parse_duration


def environment(**overrides: Any) -> dict[str, str]:
    """Return a minimal valid environment; a value of None leaves the variable out."""
    env = {
        "HUBSPOT_CLIENT_ID": "hs-client",
        "HUBSPOT_CLIENT_SECRET": "hs-secret",
        "QUICKBOOKS_CLIENT_ID": "qbo-client",
        "QUICKBOOKS_CLIENT_SECRET": "qbo-secret",
        "SECRET_KEY": "secret-key",
        "TOKEN_ENCRYPTION_KEY": "token-key",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        **overrides,
    }
    return {name: value for name, value in env.items() if value is not None}


def config_error(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        Config.from_env(environment(**overrides))
    return str(raised.value)


def test_a_minimal_environment_gives_the_production_defaults() -> None:
    config = Config.from_env(environment())
    assert (config.hubspot_client_id, config.quickbooks_client_secret) == ("hs-client", "qbo-secret")
    assert config.quickbooks_environment == "production"
    assert config.quickbooks_api_base_url == "https://quickbooks.api.intuit.com/v3"
    assert config.quickbooks_app_url == "https://app.qbo.intuit.com"
    assert config.quickbooks_token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert config.hubspot_api_base_url == "https://api.hubapi.com"
    assert config.hubspot_token_url == "https://api.hubapi.com/oauth/v1/token"
    assert config.database_url == "sqlite:///instance/qbo-actions.sqlite3"
    assert config.public_base_url is None
    assert config.retry_intervals == (10, 30, 60, 300, 900, 1800)
    assert (config.job_timeout, config.lease_seconds, config.http_timeout) == (300, 360, 30.0)


def test_every_missing_required_variable_is_named() -> None:
    message = config_error(**{name: None for name in REQUIRED})
    for name in REQUIRED:
        assert name in message


def test_only_the_missing_variables_are_named() -> None:
    message = config_error(SECRET_KEY=None, REDIS_URL="")
    assert "SECRET_KEY" in message and "REDIS_URL" in message
    assert "HUBSPOT_CLIENT_ID" not in message


def test_an_empty_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="Missing required environment variables"):
        Config.from_env({})


def test_the_sandbox_uses_intuits_sandbox_urls() -> None:
    config = Config.from_env(environment(QUICKBOOKS_ENVIRONMENT="sandbox"))
    assert config.quickbooks_environment == "sandbox"
    assert config.quickbooks_api_base_url == "https://sandbox-quickbooks.api.intuit.com/v3"
    assert config.quickbooks_app_url == "https://app.sandbox.qbo.intuit.com"
    # Intuit has one token endpoint for both environments.
    assert config.quickbooks_token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"


@pytest.mark.parametrize("value", ["staging", "Sandbox", "prod"])
def test_an_unknown_quickbooks_environment_is_refused(value: str) -> None:
    assert "QUICKBOOKS_ENVIRONMENT" in config_error(QUICKBOOKS_ENVIRONMENT=value)


def test_urls_can_be_overridden_without_trailing_slashes() -> None:
    config = Config.from_env(
        environment(
            QUICKBOOKS_ENVIRONMENT="sandbox",
            QUICKBOOKS_API_BASE_URL="http://127.0.0.1:9000/v3/",
            QUICKBOOKS_TOKEN_URL="http://127.0.0.1:9000/oauth2/v1/tokens/bearer",
            QUICKBOOKS_APP_URL="http://127.0.0.1:9000/app/",
            HUBSPOT_API_BASE_URL="http://127.0.0.1:9001/",
            PUBLIC_BASE_URL="https://actions.example.com/",
            DATABASE_URL="postgresql+psycopg://qbo@db/qbo",
            QUEUE_NAME="qbo-test",
        )
    )
    assert config.quickbooks_api_base_url == "http://127.0.0.1:9000/v3"
    assert config.quickbooks_token_url == "http://127.0.0.1:9000/oauth2/v1/tokens/bearer"
    assert config.quickbooks_app_url == "http://127.0.0.1:9000/app"
    assert config.hubspot_api_base_url == "http://127.0.0.1:9001"
    assert config.hubspot_token_url == "http://127.0.0.1:9001/oauth/v1/token"
    assert config.public_base_url == "https://actions.example.com"
    assert config.database_url == "postgresql+psycopg://qbo@db/qbo"
    assert config.queue_name == "qbo-test"


def test_numeric_settings_are_read() -> None:
    config = Config.from_env(
        environment(
            RETRY_INTERVALS="1, 2,3",
            JOB_TIMEOUT="60",
            LEASE_SECONDS="90",
            SWEEP_INTERVAL="5",
            SIGNATURE_MAX_AGE="120",
            HTTP_TIMEOUT="2.5",
        )
    )
    assert config.retry_intervals == (1, 2, 3)
    assert (config.job_timeout, config.lease_seconds, config.sweep_interval) == (60, 90, 5)
    assert (config.signature_max_age, config.http_timeout) == (120, 2.5)


def test_the_shared_rate_limits_are_read_and_default_to_the_services_own() -> None:
    defaults = Config.from_env(environment())
    config = Config.from_env(
        environment(
            QUICKBOOKS_CALLS_PER_MINUTE="400",
            QUICKBOOKS_CALLS_PER_SECOND="8",
            QUICKBOOKS_CONCURRENCY="4",
            QUICKBOOKS_BATCHES_PER_MINUTE="30",
            HUBSPOT_CALLS_PER_10S="100",
        )
    )

    assert (defaults.quickbooks_calls_per_minute, defaults.quickbooks_calls_per_second) == (500, 10)
    assert (defaults.quickbooks_concurrency, defaults.quickbooks_batches_per_minute) == (10, 40)
    assert defaults.hubspot_calls_per_10s == 110
    assert (config.quickbooks_calls_per_minute, config.quickbooks_calls_per_second) == (400, 8)
    assert (config.quickbooks_concurrency, config.quickbooks_batches_per_minute) == (4, 30)
    assert config.hubspot_calls_per_10s == 100


@pytest.mark.parametrize("name", ["QUICKBOOKS_CONCURRENCY", "QUICKBOOKS_CALLS_PER_SECOND", "HUBSPOT_CALLS_PER_10S"])
def test_a_rate_limit_must_let_a_call_through(name: str) -> None:
    assert f"{name} must be at least 1" in config_error(**{name: "0"})


def test_empty_numeric_settings_keep_their_defaults() -> None:
    config = Config.from_env(environment(JOB_TIMEOUT="", LEASE_SECONDS=""))
    assert (config.job_timeout, config.lease_seconds) == (300, 360)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOB_TIMEOUT", "five minutes"),
        ("LEASE_SECONDS", "1.5"),
        ("SWEEP_INTERVAL", "30s"),
        ("SIGNATURE_MAX_AGE", "x"),
        ("HTTP_TIMEOUT", "thirty"),
        ("RETRY_INTERVALS", "10,thirty,60"),
        ("RETRY_INTERVALS", "10;30"),
    ],
)
def test_a_setting_that_is_not_a_number_is_refused(name: str, value: str) -> None:
    assert "not a number" in config_error(**{name: value})


def test_with_overrides_changes_only_the_given_settings() -> None:
    config = Config.from_env(environment())
    changed = config.with_overrides(http_timeout=5.0, queue_name="other")
    assert (changed.http_timeout, changed.queue_name) == (5.0, "other")
    assert changed.hubspot_client_id == config.hubspot_client_id
    assert (config.http_timeout, config.queue_name) == (30.0, "qbo-actions")


def test_the_process_environment_is_read_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in environment(QUICKBOOKS_ENVIRONMENT="sandbox").items():
        monkeypatch.setenv(name, value)
    assert Config.from_env().quickbooks_environment == "sandbox"


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("P7D", timedelta(days=7)),
        ("PT12H", timedelta(hours=12)),
        ("P1WT1H", timedelta(weeks=1, hours=1)),
        ("pt90s", timedelta(seconds=90)),
    ],
)
def test_expirations_are_read_as_iso_8601_durations(text: str, length: timedelta) -> None:
    assert parse_duration(text) == length


@pytest.mark.parametrize("text", ["", "P", "PT", "7D", "P1Y", "P1.5D", "soon"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_callback_expiration_defaults_to_hubspots_week_and_can_be_set() -> None:
    assert Config.from_env(environment()).callback_expiration == "P7D"
    assert Config.from_env({**environment(), "CALLBACK_EXPIRATION": "p2d"}).callback_expiry == timedelta(days=2)
    with pytest.raises(ConfigError, match="CALLBACK_EXPIRATION"):
        Config.from_env({**environment(), "CALLBACK_EXPIRATION": "a week"})
    with pytest.raises(ConfigError, match="CALLBACK_EXPIRATION"):
        Config.from_env({**environment(), "CALLBACK_EXPIRATION": "PT0S"})


def test_a_lease_shorter_than_a_job_may_run_is_refused_at_start_up() -> None:
    message = config_error(LEASE_SECONDS="300", JOB_TIMEOUT="300", HTTP_TIMEOUT="30")
    assert "LEASE_SECONDS (300) must exceed JOB_TIMEOUT + HTTP_TIMEOUT (300 + 30)" in message
    assert Config.from_env(environment(LEASE_SECONDS="331", JOB_TIMEOUT="300", HTTP_TIMEOUT="30")).lease_seconds == 331


def test_accepted_executions_are_queued_through_the_relay_unless_told_to_queue_them_directly() -> None:
    assert Config.from_env(environment()).accept_enqueue == "relay"
    assert Config.from_env(environment(ACCEPT_ENQUEUE=" Direct ")).accept_enqueue == "direct"
    assert "ACCEPT_ENQUEUE must be one of relay, direct" in config_error(ACCEPT_ENQUEUE="later")
