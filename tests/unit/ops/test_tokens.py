"""Operators' tokens: what a valid token grants, and every way a token is refused (no key set over HTTP here)."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from services.config import Config, ConfigError
from services.ops.tokens import ROLES, Operator, OperatorTokens, TokenRefused, allows, parse_ttl

# Long enough for HS512 too, so that signing the refused algorithms warns of nothing.
SECRET = "ops-secret-" + "x" * 60
ISSUER = "qbo-actions"
AUDIENCE = "qbo-actions-ops"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def config(**overrides: Any) -> Config:
    base = Config("hs-id", "hs-secret", "qbo-id", "qbo-secret", "secret-key", "token-key", "redis://127.0.0.1:1/0")
    return base.with_overrides(**{"ops_jwt_secret": SECRET, **overrides})


@pytest.fixture
def tokens() -> OperatorTokens:
    return OperatorTokens(config())


def claims(**changes: Any) -> dict[str, Any]:
    """Return valid claims for an operator; a change to None leaves the claim out."""
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ops@example.com", "iat": now, "exp": now + 600, "role": "viewer"}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def signed(key: Any = SECRET, algorithm: str = "HS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refusal(tokens: OperatorTokens, token: str) -> str:
    with pytest.raises(TokenRefused) as refused:
        tokens.verify(token)
    return refused.value.reason


@pytest.mark.parametrize("role", ROLES)
def test_a_minted_token_verifies_with_its_subject_and_role(tokens: OperatorTokens, role: str) -> None:
    token = tokens.mint("ops@example.com", role, timedelta(hours=8))

    assert tokens.verify(token) == Operator("ops@example.com", role)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert (payload["iss"], payload["exp"] - payload["iat"]) == (ISSUER, 8 * 3600)
    again = jwt.decode(
        tokens.mint("ops@example.com", role, timedelta(hours=8)), SECRET, audience=AUDIENCE, algorithms=["HS256"]
    )
    assert payload["jti"] and payload["jti"] != again["jti"]


def test_minting_puts_the_role_in_the_configured_claim() -> None:
    tokens = OperatorTokens(config(ops_jwt_role_claim="groups"))
    token = tokens.mint("ops@example.com", "admin", timedelta(minutes=5))

    assert jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)["groups"] == "admin"
    assert tokens.verify(token).role == "admin"
    assert refusal(tokens, signed()) == "no role in token"


def test_minting_needs_the_secret_a_known_role_a_subject_and_a_lifetime(tokens: OperatorTokens) -> None:
    with pytest.raises(ConfigError, match="OPS_JWT_SECRET"):
        OperatorTokens(config(ops_jwt_secret=None)).mint("ops@example.com", "viewer", timedelta(hours=1))
    with pytest.raises(ValueError, match="unknown role 'root'"):
        tokens.mint("ops@example.com", "root", timedelta(hours=1))
    with pytest.raises(ValueError, match="subject"):
        tokens.mint(" ", "viewer", timedelta(hours=1))
    with pytest.raises(ValueError, match="some time"):
        tokens.mint("ops@example.com", "viewer", timedelta(0))


def test_an_expired_token_is_refused_after_the_leeway(tokens: OperatorTokens) -> None:
    now = int(time.time())
    assert refusal(tokens, signed(iat=now - 600, exp=now - 60)) == "token expired"
    assert tokens.verify(signed(iat=now - 600, exp=now - 10)).subject == "ops@example.com"


def test_a_token_issued_in_the_future_is_refused_after_the_leeway(tokens: OperatorTokens) -> None:
    now = int(time.time())
    assert refusal(tokens, signed(iat=now + 120, exp=now + 600)) == "token issued in the future"
    assert tokens.verify(signed(iat=now + 10)).role == "viewer"


def test_a_token_not_valid_yet_is_refused(tokens: OperatorTokens) -> None:
    assert refusal(tokens, signed(nbf=int(time.time()) + 120)) == "token not valid yet"


def test_a_token_for_another_audience_or_from_another_issuer_is_refused(tokens: OperatorTokens) -> None:
    assert refusal(tokens, signed(aud="somebody-else")) == "wrong audience"
    assert refusal(tokens, signed(iss="https://evil.example.com")) == "wrong issuer"
    custom = OperatorTokens(config(ops_jwt_issuer="https://idp.example.com", ops_jwt_audience="console"))
    assert refusal(custom, signed(iss="https://idp.example.com")) == "wrong audience"
    assert refusal(custom, signed(aud="console")) == "wrong issuer"
    assert custom.verify(signed(iss="https://idp.example.com", aud="console")).role == "viewer"


@pytest.mark.parametrize("claim", ["sub", "iat", "exp", "aud", "iss"])
def test_a_token_without_a_required_claim_is_refused(tokens: OperatorTokens, claim: str) -> None:
    left_out: dict[str, Any] = {claim: None}
    assert refusal(tokens, signed(**left_out)) == f"no {claim} in token"


def test_a_token_with_an_empty_subject_is_refused(tokens: OperatorTokens) -> None:
    assert refusal(tokens, signed(sub="  ")) == "no subject in token"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_an_unsigned_token_is_refused(tokens: OperatorTokens, alg: str) -> None:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims(role="admin")).encode())

    assert refusal(tokens, f"{header}.{payload}.") == "unsigned tokens (alg none) are refused"


def test_a_token_signed_with_another_secret_is_refused(tokens: OperatorTokens) -> None:
    assert refusal(tokens, signed("another-secret-" + "y" * 40)) == "bad signature"
    token = signed()
    assert refusal(tokens, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")) == "bad signature"


def test_an_hs256_token_is_refused_when_only_a_key_set_is_configured() -> None:
    tokens = OperatorTokens(config(ops_jwt_secret=None, ops_jwks_url="https://idp.example.com/jwks.json"))

    assert "HS256 tokens are not accepted" in refusal(tokens, signed())


def test_an_rs256_token_is_refused_when_no_key_set_is_configured(tokens: OperatorTokens) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert "RS256 tokens are not accepted" in refusal(tokens, signed(private, "RS256"))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_are_refused_even_with_the_right_secret(tokens: OperatorTokens, algorithm: str) -> None:
    assert refusal(tokens, signed(SECRET, algorithm)) == f"algorithm {algorithm!r} is refused"


def test_nothing_configured_refuses_every_token() -> None:
    assert "not accepted" in refusal(OperatorTokens(config(ops_jwt_secret=None)), signed())


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c", "...."])
def test_garbage_is_refused(tokens: OperatorTokens, token: str) -> None:
    assert refusal(tokens, token) == "not a JWT"


@pytest.mark.parametrize(
    ("role", "reason"),
    [
        (None, "no role in token"),
        ("", "no role in token"),
        ([], "no role in token"),
        ("root", "unknown role 'root'"),
        (["root", "staff"], "no known role in ['root', 'staff']"),
        (7, "role claim is neither a string nor a list"),
    ],
)
def test_a_token_without_a_known_role_is_refused(tokens: OperatorTokens, role: Any, reason: str) -> None:
    assert refusal(tokens, signed(role=role)) == reason


@pytest.mark.parametrize(
    ("roles", "granted"),
    [
        (["viewer"], "viewer"),
        (["viewer", "admin", "operator"], "admin"),
        (["staff", "operator", "viewer"], "operator"),
        (["everyone", "viewer", 3], "viewer"),
    ],
)
def test_the_highest_known_role_of_a_list_is_granted(tokens: OperatorTokens, roles: list[Any], granted: str) -> None:
    assert tokens.verify(signed(role=roles)).role == granted


def test_roles_allow_what_the_roles_below_them_allow() -> None:
    assert [role for role in ROLES if allows(role, "operator")] == ["operator", "admin"]
    assert all(allows("admin", needed) for needed in ROLES)
    assert [needed for needed in ROLES if allows("viewer", needed)] == ["viewer"]
    assert not allows("root", "viewer")
    with pytest.raises(ValueError, match="unknown role"):
        allows("admin", "root")


def test_an_operator_can_what_its_role_allows() -> None:
    operator = Operator("ops@example.com", "operator")
    assert operator.can("viewer") and operator.can("operator") and not operator.can("admin")
    with pytest.raises(ValueError, match="unknown role"):
        Operator("ops@example.com", "root")


@pytest.mark.parametrize(
    ("text", "ttl"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("8h", timedelta(hours=8)),
        ("2d", timedelta(days=2)),
        (" 8H ", timedelta(hours=8)),
        ("30d", timedelta(days=30)),
    ],
)
def test_a_lifetime_is_read_from_a_number_and_a_unit(text: str, ttl: timedelta) -> None:
    assert parse_ttl(text) == ttl


@pytest.mark.parametrize(
    "text",
    ["", "8", "h", "0h", "0s", "-1h", "1.5h", "8 hours", "1w", "31d", "721h", "1h30m", "99999999999d", "9" * 40 + "s"],
)
def test_a_lifetime_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)


@given(unit=st.sampled_from(sorted(UNITS)), data=st.data())
def test_every_lifetime_up_to_thirty_days_reads_back(unit: str, data: st.DataObject) -> None:
    count = data.draw(st.integers(min_value=1, max_value=30 * 86400 // UNITS[unit]))
    assert parse_ttl(f"{count}{unit}") == timedelta(seconds=count * UNITS[unit])


@given(unit=st.sampled_from(sorted(UNITS)), data=st.data())
def test_every_lifetime_beyond_thirty_days_is_refused(unit: str, data: st.DataObject) -> None:
    count = data.draw(st.integers(min_value=30 * 86400 // UNITS[unit] + 1, max_value=10**40))
    with pytest.raises(ValueError, match="longer than"):
        parse_ttl(f"{count}{unit}")
