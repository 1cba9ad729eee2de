"""Operators' tokens from an identity provider: RS256 and ES256 keys read from a key set served over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.config import Config
from services.ops.tokens import Operator, OperatorTokens, TokenRefused

ISSUER = "https://idp.example.com"
AUDIENCE = "qbo-actions-ops"
SECRET = "ops-secret-" + "x" * 40


class KeySetServer:
    """A JWKS endpoint on 127.0.0.1 whose keys a test changes while it runs; it counts the reads."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.reads = 0
        self.body: bytes | None = None  # served instead of the keys when set
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                served.reads += 1
                body = served.body if served.body is not None else json.dumps({"keys": served.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                """Keep the test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def publish(self, kid: str, public_key: Any) -> None:
        algorithm = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
        self.keys.append({**algorithm.to_jwk(public_key, as_dict=True), "kid": kid, "use": "sig"})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def key_set(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Iterator[KeySetServer]:
    server = KeySetServer()
    server.publish("rsa-1", rsa_key.public_key())
    server.publish("ec-1", ec_key.public_key())
    yield server
    server.stop()


def config(jwks_url: str, **overrides: Any) -> Config:
    base = Config("hs-id", "hs-secret", "qbo-id", "qbo-secret", "secret-key", "token-key", "redis://127.0.0.1:1/0")
    return base.with_overrides(**{"ops_jwks_url": jwks_url, "ops_jwt_issuer": ISSUER, "http_timeout": 2.0, **overrides})


@pytest.fixture
def tokens(key_set: KeySetServer) -> OperatorTokens:
    return OperatorTokens(config(key_set.url), key_set_refetch_cooldown=0)


def signed(key: Any, algorithm: str, kid: str | None, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ops@example.com", "iat": now, "exp": now + 600, "role": "admin"}
    claims.update(changes)
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def refusal(tokens: OperatorTokens, token: str) -> str:
    with pytest.raises(TokenRefused) as refused:
        tokens.verify(token)
    return refused.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_rs256_and_es256_tokens_verify_against_the_key_set(
    tokens: OperatorTokens, key_set: KeySetServer, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    assert tokens.verify(signed(rsa_key, "RS256", "rsa-1")) == Operator("ops@example.com", "admin")
    assert tokens.verify(signed(ec_key, "ES256", "ec-1", sub="idp|42", role=["staff", "operator"])) == Operator(
        "idp|42", "operator"
    )
    # The key set was read once, and each key is kept by its kid.
    tokens.verify(signed(rsa_key, "RS256", "rsa-1"))
    assert key_set.reads == 1


def test_the_claims_of_a_key_set_token_are_checked_like_any_other(
    tokens: OperatorTokens, rsa_key: rsa.RSAPrivateKey
) -> None:
    now = int(time.time())
    assert refusal(tokens, signed(rsa_key, "RS256", "rsa-1", aud="another-app")) == "wrong audience"
    assert refusal(tokens, signed(rsa_key, "RS256", "rsa-1", iss="qbo-actions")) == "wrong issuer"
    assert refusal(tokens, signed(rsa_key, "RS256", "rsa-1", iat=now - 900, exp=now - 300)) == "token expired"
    assert refusal(tokens, signed(rsa_key, "RS256", "rsa-1", role="root")) == "unknown role 'root'"


def test_a_token_signed_by_a_key_outside_the_set_is_refused(tokens: OperatorTokens, key_set: KeySetServer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert refusal(tokens, signed(stranger, "RS256", "rsa-2")) == "no key 'rsa-2' in the key set"
    # A stranger's key that borrows a known kid fails on the signature.
    assert refusal(tokens, signed(stranger, "RS256", "rsa-1")) == "bad signature"
    assert refusal(tokens, signed(stranger, "RS256", None)) == "token names no key (kid)"


def test_a_token_whose_algorithm_is_not_its_keys_is_refused(
    tokens: OperatorTokens, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    # Signed by the EC key but naming the RSA key, and the other way round: the key decides its family.
    assert refusal(tokens, signed(ec_key, "ES256", "rsa-1")) == "key 'rsa-1' is not for ES256"
    assert refusal(tokens, signed(rsa_key, "RS256", "ec-1")) == "key 'ec-1' is not for RS256"


def test_a_key_added_to_the_set_is_picked_up(
    tokens: OperatorTokens, key_set: KeySetServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    tokens.verify(signed(rsa_key, "RS256", "rsa-1"))
    rotated = ec.generate_private_key(ec.SECP256R1())

    key_set.publish("ec-2", rotated.public_key())

    assert tokens.verify(signed(rotated, "ES256", "ec-2", role="viewer")).role == "viewer"
    assert key_set.reads == 2


def test_an_unknown_kid_reads_the_set_again_at_most_once_per_cooldown(key_set: KeySetServer) -> None:
    tokens = OperatorTokens(config(key_set.url), key_set_refetch_cooldown=60)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    for kid in ("forged-1", "forged-2", "forged-3"):
        assert refusal(tokens, signed(stranger, "RS256", kid)) == f"no key {kid!r} in the key set"
    assert key_set.reads == 1


def test_hs256_signed_with_the_public_key_as_secret_is_refused(
    key_set: KeySetServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(
        json.dumps(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 600, "role": "admin"}
        ).encode()
    )
    forged = f"{header}.{payload}." + b64(hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())

    only_key_set = OperatorTokens(config(key_set.url))
    assert "HS256 tokens are not accepted" in refusal(only_key_set, forged)
    both = OperatorTokens(config(key_set.url, ops_jwt_secret=SECRET))
    assert refusal(both, forged) == "bad signature"
    assert key_set.reads == 0


def test_a_key_set_that_does_not_answer_refuses_the_token(rsa_key: rsa.RSAPrivateKey) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    tokens = OperatorTokens(config(f"http://127.0.0.1:{closed_port}/jwks.json"))

    assert "the key set could not be read" in refusal(tokens, signed(rsa_key, "RS256", "rsa-1"))


def test_a_key_set_that_hangs_refuses_the_token_within_the_timeout(rsa_key: rsa.RSAPrivateKey) -> None:
    # A socket that listens but never answers: the connection is taken, the answer never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        tokens = OperatorTokens(config(f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json", http_timeout=0.5))
        started = time.monotonic()

        assert "the key set could not be read" in refusal(tokens, signed(rsa_key, "RS256", "rsa-1"))
        assert time.monotonic() - started < 5


def test_a_key_set_that_stops_answering_refuses_tokens_it_had_not_seen(
    tokens: OperatorTokens, key_set: KeySetServer, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    tokens.verify(signed(rsa_key, "RS256", "rsa-1"))
    key_set.stop()

    # The key already read is kept; a new kid needs the set, which is gone.
    assert tokens.verify(signed(rsa_key, "RS256", "rsa-1")).role == "admin"
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert "the key set could not be read" in refusal(tokens, signed(stranger, "ES256", "ec-9"))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>login</html>", "not JSON"),
        (b"[1, 2]", "no usable signing keys"),
        (b'{"keys": []}', "no usable signing keys"),
        (b'{"keys": [{"kty": "RSA", "kid": "rsa-1"}]}', "no usable signing keys"),
    ],
)
def test_a_key_set_that_is_not_one_refuses_the_token(
    tokens: OperatorTokens, key_set: KeySetServer, rsa_key: rsa.RSAPrivateKey, body: bytes, reason: str
) -> None:
    key_set.body = body

    refused = refusal(tokens, signed(rsa_key, "RS256", "rsa-1"))
    assert "the key set could not be read" in refused and reason in refused
