"""HubSpot request signatures, checked against HubSpot's own client as the oracle."""

from __future__ import annotations

import json

import pytest
from hubspot.utils.signature import Signature

from actions.signature import SignatureError, normalise_uri, sign_v1, sign_v2, sign_v3, verify

SECRET = "test-hubspot-secret"
NOW_MS = 1_750_000_000_000
URL = "https://actions.example.com/actions/create_invoice"


def body(**overrides: object) -> str:
    """Return the raw text of an execution request."""
    return json.dumps({"callbackId": "ap-102670506-1-0", "object": {"objectId": 614}, **overrides})


def v3_headers(uri: str, raw: str, *, secret: str = SECRET, timestamp: int = NOW_MS) -> dict[str, str]:
    """Sign like HubSpot (the oracle signs the URI as HubSpot sends it, already decoded)."""
    return {
        "X-HubSpot-Signature-v3": Signature.get_signature(secret, raw, "v3", uri, "POST", str(timestamp)),
        "X-HubSpot-Request-Timestamp": str(timestamp),
    }


def legacy_headers(version: str, uri: str, raw: str, *, secret: str = SECRET) -> dict[str, str]:
    """Sign with the older v2 or v1 scheme."""
    return {
        "X-HubSpot-Signature": Signature.get_signature(secret, raw, version, uri, "POST"),
        "X-HubSpot-Signature-Version": version,
    }


def check(headers: dict[str, str], raw: str, *, uri: str = URL, max_age: int = 300) -> str:
    """Verify a POST at a fixed clock."""
    return verify(headers, secret=SECRET, method="POST", uri=uri, body=raw, max_age=max_age, now_ms=NOW_MS)


CASES = [
    pytest.param(URL, body(), id="plain"),
    pytest.param(URL + "?portalId=102670506&debug=1", body(), id="query-string"),
    pytest.param(URL, body(note="Zürich – 東京 ✓"), id="unicode-body"),
    pytest.param(URL, json.dumps({"note": "Zürich"}, ensure_ascii=False), id="raw-utf8-body"),
    pytest.param("http://localhost:8000/options/payment_terms", "", id="empty-body"),
]


# Our signatures equal the oracle's ---------------------------------------------------------------


@pytest.mark.parametrize(("uri", "raw"), CASES)
def test_sign_v3_equals_hubspots_signature(uri: str, raw: str) -> None:
    expected = Signature.get_signature(SECRET, raw, "v3", uri, "POST", str(NOW_MS))
    assert sign_v3(SECRET, "POST", uri, raw, str(NOW_MS)) == expected


@pytest.mark.parametrize(("uri", "raw"), CASES)
def test_sign_v2_equals_hubspots_signature(uri: str, raw: str) -> None:
    assert sign_v2(SECRET, "POST", uri, raw) == Signature.get_signature(SECRET, raw, "v2", uri, "POST")


@pytest.mark.parametrize(("uri", "raw"), CASES)
def test_sign_v1_equals_hubspots_signature(uri: str, raw: str) -> None:
    assert sign_v1(SECRET, raw) == Signature.get_signature(SECRET, raw, "v1", uri, "POST")


def test_sign_v3_upper_cases_the_method() -> None:
    assert sign_v3(SECRET, "post", URL, "", "1") == Signature.get_signature(SECRET, "", "v3", URL, "POST", "1")


# verify() accepts what HubSpot signed ------------------------------------------------------------


@pytest.mark.parametrize(("uri", "raw"), CASES)
def test_verify_accepts_a_v3_signature(uri: str, raw: str) -> None:
    assert check(v3_headers(uri, raw), raw, uri=uri) == "v3"


@pytest.mark.parametrize(("uri", "raw"), CASES)
def test_verify_accepts_a_v2_signature(uri: str, raw: str) -> None:
    assert check(legacy_headers("v2", uri, raw), raw, uri=uri) == "v2"


def test_verify_accepts_a_v2_signature_without_a_version_header() -> None:
    raw = body()
    headers = {"X-HubSpot-Signature": Signature.get_signature(SECRET, raw, "v2", URL, "POST")}
    assert check(headers, raw) == "v2"


def test_verify_refuses_a_v1_signature_even_when_it_matches() -> None:
    raw = body()
    with pytest.raises(SignatureError, match="v1 signatures cover only the body"):
        check(legacy_headers("v1", URL, raw), raw)


def test_verify_refuses_a_signature_version_it_does_not_know() -> None:
    raw = body()
    headers = {"X-HubSpot-Signature": sign_v2(SECRET, "POST", URL, raw), "X-HubSpot-Signature-Version": "v9"}
    with pytest.raises(SignatureError, match="unknown signature version"):
        check(headers, raw)


def test_verify_accepts_a_v3_signature_that_is_just_inside_max_age() -> None:
    raw = body()
    assert check(v3_headers(URL, raw, timestamp=NOW_MS - 299_000), raw) == "v3"


# verify() rejects --------------------------------------------------------------------------------


def test_verify_rejects_a_v3_signature_made_with_another_secret() -> None:
    raw = body()
    with pytest.raises(SignatureError, match="does not match"):
        check(v3_headers(URL, raw, secret="someone-else"), raw)


def test_verify_rejects_a_v2_signature_made_with_another_secret() -> None:
    raw = body()
    with pytest.raises(SignatureError, match="does not match"):
        check(legacy_headers("v2", URL, raw, secret="someone-else"), raw)


@pytest.mark.parametrize("version", ["v3", "v2"])
def test_verify_rejects_a_body_changed_after_signing(version: str) -> None:
    signed = body()
    headers = v3_headers(URL, signed) if version == "v3" else legacy_headers(version, URL, signed)
    with pytest.raises(SignatureError, match="does not match"):
        check(headers, body(callbackId="ap-102670506-2-0"))


def test_verify_rejects_a_v3_signature_for_another_url() -> None:
    raw = body()
    with pytest.raises(SignatureError, match="does not match"):
        check(v3_headers(URL, raw), raw, uri=URL.replace("create_invoice", "create_estimate"))


def test_verify_rejects_a_stale_timestamp() -> None:
    raw = body()
    with pytest.raises(SignatureError, match="old"):
        check(v3_headers(URL, raw, timestamp=NOW_MS - 301_000), raw)


def test_verify_uses_the_max_age_it_is_given() -> None:
    raw = body()
    with pytest.raises(SignatureError, match="old"):
        check(v3_headers(URL, raw, timestamp=NOW_MS - 61_000), raw, max_age=60)


def test_verify_rejects_a_timestamp_in_the_future() -> None:
    raw = body()
    with pytest.raises(SignatureError, match="future"):
        check(v3_headers(URL, raw, timestamp=NOW_MS + 301_000), raw)


@pytest.mark.parametrize("timestamp", ["", "soon", "1.75e12", "-1750000000000"])
def test_verify_rejects_a_timestamp_that_is_not_a_number(timestamp: str) -> None:
    raw = body()
    headers = {**v3_headers(URL, raw), "X-HubSpot-Request-Timestamp": timestamp}
    with pytest.raises(SignatureError, match="not a number"):
        check(headers, raw)


def test_verify_rejects_a_v3_signature_without_a_timestamp() -> None:
    raw = body()
    headers = v3_headers(URL, raw)
    del headers["X-HubSpot-Request-Timestamp"]
    with pytest.raises(SignatureError, match="missing"):
        check(headers, raw)


@pytest.mark.parametrize("headers", [{}, {"X-HubSpot-Signature-v3": ""}, {"X-HubSpot-Signature": ""}])
def test_verify_rejects_a_request_without_a_signature(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError, match="no HubSpot signature"):
        check(headers, body())


@pytest.mark.parametrize(
    "headers",
    [
        {"X-HubSpot-Signature-v3": "sïgnature", "X-HubSpot-Request-Timestamp": str(NOW_MS)},
        {"X-HubSpot-Signature": "sïgnature", "X-HubSpot-Signature-Version": "v2"},
    ],
    ids=["v3", "v2"],
)
def test_verify_rejects_a_signature_with_non_ascii_characters(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        check(headers, body())


# URI normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
        ("%3a", ":"),
        ("%2f", "/"),
    ],
)
def test_normalise_uri_decodes_the_characters_hubspot_decodes(encoded: str, decoded: str) -> None:
    assert normalise_uri(f"{URL}?q=a{encoded}b") == f"{URL}?q=a{decoded}b"


@pytest.mark.parametrize("encoded", ["%20", "%26", "%3D", "%2B", "%25"])
def test_normalise_uri_keeps_other_escapes(encoded: str) -> None:
    assert normalise_uri(f"{URL}?q=a{encoded}b") == f"{URL}?q=a{encoded}b"


def test_verify_accepts_a_v3_signature_over_the_decoded_uri_when_the_request_uri_is_encoded() -> None:
    raw = body()
    received = URL + "?email=ann%40acme.com&since=2025-01-01T00%3A00%3A00Z"
    signed_by_hubspot = URL + "?email=ann@acme.com&since=2025-01-01T00:00:00Z"
    assert sign_v3(SECRET, "POST", received, raw, str(NOW_MS)) == Signature.get_signature(
        SECRET, raw, "v3", signed_by_hubspot, "POST", str(NOW_MS)
    )
    assert check(v3_headers(signed_by_hubspot, raw), raw, uri=received) == "v3"


def test_verify_accepts_a_v3_signature_over_the_exact_uri_when_it_kept_other_escapes() -> None:
    raw = body()
    uri = URL + "?name=Ann%20Lee"
    assert check(v3_headers(uri, raw), raw, uri=uri) == "v3"
