"""Verification of HubSpot request signatures: v3 when the request carries it, else v2.

v1 (SHA-256 of the secret and the body alone) is refused: it does not cover the method or the URL, so a
signed body captured from one request could be replayed to any other action or options path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import unquote

# HubSpot signs the URI with these characters decoded (its documentation lists them).
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


class SignatureError(Exception):
    """The request is not provably from HubSpot."""


def normalise_uri(uri: str) -> str:
    """Decode the characters HubSpot decodes before signing (case-insensitively)."""
    out = uri
    for encoded, char in _DECODED.items():
        out = out.replace(encoded, char).replace(encoded.lower(), char)
    return out


def sign_v3(secret: str, method: str, uri: str, body: str, timestamp: str) -> str:
    """Return the v3 signature: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    message = f"{method.upper()}{normalise_uri(uri)}{body}{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def sign_v2(secret: str, method: str, uri: str, body: str) -> str:
    """Return the v2 signature: hex(SHA-256(secret + method + uri + body))."""
    return hashlib.sha256(f"{secret}{method.upper()}{uri}{body}".encode()).hexdigest()


def sign_v1(secret: str, body: str) -> str:
    """Return the v1 signature: hex(SHA-256(secret + body))."""
    return hashlib.sha256(f"{secret}{body}".encode()).hexdigest()


def _same(given: str, expected: str) -> bool:
    """Compare in constant time; bytes, since compare_digest refuses non-ASCII text."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Headers(Protocol):
    """Anything with a dict-like get (Flask's request.headers, a dict)."""

    def get(self, key: str) -> str | None: ...


def verify(
    headers: Headers | Mapping[str, str],
    *,
    secret: str,
    method: str,
    uri: str,
    body: str,
    max_age: int = 300,
    now_ms: int | None = None,
) -> str:
    """Check a request's signature and return the version that matched; raise SignatureError if none."""
    get = headers.get
    signature_v3 = get("X-HubSpot-Signature-v3")
    if signature_v3:
        timestamp = get("X-HubSpot-Request-Timestamp")
        if not timestamp or not str(timestamp).isdigit():
            raise SignatureError("X-HubSpot-Request-Timestamp is missing or not a number")
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        age = now - int(timestamp)
        if age > max_age * 1000:
            raise SignatureError(f"the request is {age // 1000} s old; signatures are valid for {max_age} s")
        if age < -max_age * 1000:
            raise SignatureError("the request timestamp is in the future")
        candidates = {sign_v3(secret, method, uri, body, str(timestamp))}
        # Some proxies re-encode the URI; accept the fully decoded form too.
        candidates.add(sign_v3(secret, method, unquote(uri), body, str(timestamp)))
        if any(_same(signature_v3, candidate) for candidate in candidates):
            return "v3"
        raise SignatureError("X-HubSpot-Signature-v3 does not match the request")
    signature = get("X-HubSpot-Signature")
    if signature:
        version = (get("X-HubSpot-Signature-Version") or "v2").lower()
        if version == "v1":
            raise SignatureError(
                "v1 signatures cover only the body and could be replayed to any path; HubSpot sends v2 or v3 "
                "with workflow action requests"
            )
        if version != "v2":
            raise SignatureError(f"unknown signature version {version!r} (v2 and v3 are accepted)")
        if _same(signature.lower(), sign_v2(secret, method, uri, body)):
            return version
        raise SignatureError("X-HubSpot-Signature (v2) does not match the request")
    raise SignatureError("the request carries no HubSpot signature")
