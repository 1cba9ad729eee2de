"""The `state` of the OAuth redirects: signed, short-lived and good for one use.

It binds a redirect to what started it (the install, or connecting a company to a portal), so a forged,
expired or replayed callback changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt
import redis

LIFETIME = 600  # seconds: long enough to log in and consent, short enough to be useless when captured
NONCE_PREFIX = "qbo-actions:oauth-state:"


class StateError(Exception):
    """A `state` that was not issued by us for this purpose, or is too old, or was used before."""


@dataclass(frozen=True)
class OAuthState:
    """What a redirect was for."""

    purpose: str
    portal_id: int | None


class StateTokens:
    """Issues and redeems `state` values: HS256 tokens signed with SECRET_KEY, with a nonce used once."""

    def __init__(self, secret: str, connection: redis.Redis, lifetime: int = LIFETIME) -> None:
        # A key of its own, derived from SECRET_KEY: full length for HS256, and useless for signing anything else.
        self.secret = hmac.new(secret.encode(), b"qbo-actions oauth state", hashlib.sha256).digest()
        self.connection = connection
        self.lifetime = lifetime

    def issue(self, purpose: str, portal_id: int | None = None) -> str:
        """Return a new state for a redirect started for ``purpose`` (and a portal, when there is one)."""
        now = int(time.time())
        claims = {"purpose": purpose, "portal": portal_id, "jti": uuid.uuid4().hex, "iat": now}
        claims["exp"] = now + self.lifetime
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def redeem(self, token: str, purpose: str) -> OAuthState:
        """Check a state that came back and use it up; raise StateError saying what is wrong with it."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp", "jti"]})
        except jwt.ExpiredSignatureError:
            raise StateError("The link has expired (it is valid for 10 minutes). Start again.") from None
        except jwt.InvalidTokenError:
            raise StateError("The link was not issued by this server, or was altered. Start again.") from None
        if claims.get("purpose") != purpose:
            raise StateError("The link was issued for another step. Start again.")
        # Remembered until the token could no longer be used anyway.
        if not self.connection.set(NONCE_PREFIX + str(claims["jti"]), "1", nx=True, ex=self.lifetime):
            raise StateError("The link was already used. Start again.")
        portal = claims.get("portal")
        return OAuthState(purpose, int(portal) if portal is not None else None)
