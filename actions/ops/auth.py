"""Who is asking: an operator's JWT from the Authorization header, an identity-aware proxy's header, or the
console's session (which holds the token an operator signed in with, checked again on every request)."""

from __future__ import annotations

from flask import current_app, request, session

from actions.endpoints import services
from services.ops.tokens import Operator, OperatorTokens, TokenRefused

SESSION_KEY = "ops_token"


class NotSignedIn(Exception):
    """No usable token came with the request; ``reason`` says what was wrong, if anything came."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def tokens() -> OperatorTokens:
    """Return the app's token checker (one per app: it caches the identity provider's keys)."""
    found = current_app.extensions.get("qbo_ops_tokens")
    if found is None:
        found = current_app.extensions["qbo_ops_tokens"] = OperatorTokens(services().config)
    return found  # type: ignore[no-any-return]


def _configured() -> None:
    config = services().config
    if not (config.ops_jwt_secret or config.ops_jwks_url):
        raise NotSignedIn("operators' sign-in is not configured (set OPS_JWT_SECRET or OPS_JWKS_URL)")


def bearer_operator() -> Operator:
    """Return the operator of an API request (Authorization: Bearer, or the proxy's JWT header)."""
    _configured()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if header and scheme.lower() == "bearer" and token.strip():
        return _verified(token.strip())
    if header:
        raise NotSignedIn("the Authorization header must be 'Bearer <token>'")
    proxied = _proxy_token()
    if proxied:
        return _verified(proxied)
    raise NotSignedIn("no token: send 'Authorization: Bearer <token>'")


def console_operator() -> Operator:
    """Return the operator of a console page: the proxy's JWT header, else the session's token."""
    _configured()
    proxied = _proxy_token()
    if proxied:
        return _verified(proxied)
    token = session.get(SESSION_KEY)
    if not token:
        raise NotSignedIn("")
    try:
        return _verified(token)
    except NotSignedIn:
        session.pop(SESSION_KEY, None)
        raise


def sign_in(token: str) -> Operator:
    """Check a token typed into the sign-in page and keep it in the session."""
    _configured()
    operator = _verified(token.strip())
    session.clear()
    session[SESSION_KEY] = token.strip()
    session.permanent = True
    return operator


def sign_out() -> None:
    """Forget the session's token."""
    session.pop(SESSION_KEY, None)


def _proxy_token() -> str | None:
    name = services().config.ops_proxy_jwt_header
    return (request.headers.get(name) or "").strip() or None if name else None


def _verified(token: str) -> Operator:
    try:
        return tokens().verify(token)
    except TokenRefused as refused:
        raise NotSignedIn(refused.reason) from refused
