"""The OAuth `state`: signed, short-lived, single-use, and bound to what started the redirect."""

from __future__ import annotations

import time

import fakeredis
import jwt
import pytest

from services.accounts.state import StateError, StateTokens

SECRET = "test-secret-key"


@pytest.fixture
def tokens() -> StateTokens:
    return StateTokens(SECRET, fakeredis.FakeRedis())


def test_a_state_comes_back_with_its_purpose_and_portal(tokens: StateTokens) -> None:
    state = tokens.redeem(tokens.issue("quickbooks-connect", 102670506), "quickbooks-connect")
    assert (state.purpose, state.portal_id) == ("quickbooks-connect", 102670506)
    assert tokens.redeem(tokens.issue("hubspot-install"), "hubspot-install").portal_id is None


def test_a_state_is_good_for_one_use(tokens: StateTokens) -> None:
    issued = tokens.issue("hubspot-install")
    tokens.redeem(issued, "hubspot-install")
    with pytest.raises(StateError, match="already used"):
        tokens.redeem(issued, "hubspot-install")


def test_a_state_signed_with_another_key_or_altered_is_refused(tokens: StateTokens) -> None:
    forged = jwt.encode(
        {"purpose": "hubspot-install", "jti": "x", "exp": int(time.time()) + 60},
        "a-guessed-key-of-full-length-for-hs256",
        "HS256",
    )
    for state in (forged, tokens.issue("hubspot-install")[:-2] + "xx", "", "not-a-token"):
        with pytest.raises(StateError, match="not issued by this server"):
            tokens.redeem(state, "hubspot-install")


def test_an_old_state_is_refused(tokens: StateTokens) -> None:
    expired = StateTokens(SECRET, fakeredis.FakeRedis(), lifetime=-1).issue("hubspot-install")
    with pytest.raises(StateError, match="expired"):
        tokens.redeem(expired, "hubspot-install")


def test_a_state_issued_for_another_step_is_refused(tokens: StateTokens) -> None:
    with pytest.raises(StateError, match="another step"):
        tokens.redeem(tokens.issue("hubspot-install"), "quickbooks-connect")
