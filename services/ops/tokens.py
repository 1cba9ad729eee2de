"""Operators' tokens: verifying the JWTs the console and its API are called with, and minting our own.

Two kinds are accepted, each only when configured: HS256 signed with OPS_JWT_SECRET (minted by
`qbo-actions ops token`), and RS256/ES256 from an identity provider whose public keys are read from
OPS_JWKS_URL. The algorithm named in a token's header only chooses between these two; it never decides
which key material is used, so a public key can never serve as an HMAC secret.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from services.clock import utcnow
from services.config import Config, ConfigError

# Ordered by power: each role may do what the roles before it may.
ROLES = ("viewer", "operator", "admin")
SECRET_ALGORITHM = "HS256"
KEY_SET_ALGORITHMS = ("RS256", "ES256")
REQUIRED_CLAIMS = ("exp", "iat", "aud", "iss", "sub")
# Clocks of the identity provider and ours disagree a little.
LEEWAY = timedelta(seconds=30)
LONGEST_TTL = timedelta(days=30)
# How long the identity provider's key set is kept before it is read again.
KEY_SET_LIFESPAN = 300.0
# An unknown kid reads the key set again at most this often, so forged kids cannot hammer the provider.
KEY_SET_REFETCH_COOLDOWN = 30.0

_TTL = re.compile(r"(?P<count>[0-9]+)(?P<unit>[smhd])")
_TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def allows(role: str, needed: str) -> bool:
    """Return whether ``role`` may do what ``needed`` may (an unknown role may do nothing)."""
    if needed not in ROLES:
        raise ValueError(f"unknown role {needed!r}; roles are {', '.join(ROLES)}")
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class Operator:
    """Someone a valid token was issued to, and the role it grants."""

    subject: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; roles are {', '.join(ROLES)}")

    def can(self, needed: str) -> bool:
        """Return whether this operator's role covers ``needed``."""
        return allows(self.role, needed)


class TokenRefused(Exception):
    """A token that does not let anyone in; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_ttl(text: str) -> timedelta:
    """Return the lifetime written as 90s, 30m, 8h or 2d (positive, 30 days at most)."""
    match = _TTL.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a lifetime such as 90s, 30m, 8h or 2d")
    count, unit = int(match["count"]), _TTL_UNITS[match["unit"]]
    if count == 0:
        raise ValueError(f"{text!r} is no time at all")
    # Compared before building the timedelta, which overflows past 999999999 days.
    if count > LONGEST_TTL / timedelta(**{unit: 1}):
        raise ValueError(f"{text!r} is longer than the longest lifetime, {LONGEST_TTL.days} days")
    return timedelta(**{unit: count})


class OperatorTokens:
    """Verifies operators' tokens against the configured secret and key set, and mints HS256 tokens."""

    def __init__(
        self,
        config: Config,
        *,
        key_set_lifespan: float = KEY_SET_LIFESPAN,
        key_set_refetch_cooldown: float = KEY_SET_REFETCH_COOLDOWN,
    ) -> None:
        self.secret = config.ops_jwt_secret
        self.issuer = config.ops_jwt_issuer
        self.audience = config.ops_jwt_audience
        self.role_claim = config.ops_jwt_role_claim
        # One client per instance: it keeps the key set between requests.
        self.key_set: jwt.PyJWKClient | None = None
        if config.ops_jwks_url:
            self.key_set = jwt.PyJWKClient(
                config.ops_jwks_url,
                # The key set is cached for `lifespan`; keys are not cached on their own, so a key the identity
                # provider withdraws stops working once the set is read again, not at the next restart.
                cache_keys=False,
                lifespan=key_set_lifespan,
                timeout=config.http_timeout,
                cooldown_duration=key_set_refetch_cooldown,
            )

    def verify(self, token: str) -> Operator:
        """Return the operator a token was issued to; raise TokenRefused saying what is wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("not a JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise TokenRefused("unsigned tokens (alg none) are refused")
        key: Any
        if algorithm == SECRET_ALGORITHM:
            if not self.secret:
                raise TokenRefused("HS256 tokens are not accepted here (OPS_JWT_SECRET is not set)")
            key = self.secret
        elif algorithm in KEY_SET_ALGORITHMS:
            key = self._public_key(header, algorithm)
        else:
            raise TokenRefused(f"algorithm {algorithm!r} is refused")
        claims = self._checked_claims(token, key, algorithm)
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise TokenRefused("no subject in token")
        return Operator(subject, self._role_of(claims))

    def mint(self, subject: str, role: str, ttl: timedelta) -> str:
        """Return an HS256 token for ``subject`` with ``role``, valid for ``ttl``."""
        if not self.secret:
            raise ConfigError("OPS_JWT_SECRET is not set: operators' tokens are signed with it.")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        if not subject.strip():
            raise ValueError("a token needs a subject")
        if ttl <= timedelta(0):
            raise ValueError("a token must be valid for some time")
        issued = utcnow()
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": int(issued.timestamp()),
            "exp": int((issued + ttl).timestamp()),
            "jti": uuid.uuid4().hex,
            self.role_claim: role,
        }
        return jwt.encode(claims, self.secret, algorithm=SECRET_ALGORITHM)

    def _public_key(self, header: dict[str, Any], algorithm: str) -> Any:
        """Return the identity provider's key a token names, when it is a key of the token's algorithm."""
        if self.key_set is None:
            raise TokenRefused(f"{algorithm} tokens are not accepted here (OPS_JWKS_URL is not set)")
        kid = header.get("kid")
        if not kid:
            raise TokenRefused("token names no key (kid)")
        try:
            signing_key = self.key_set.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise TokenRefused("the key set could not be read (OPS_JWKS_URL did not answer)") from None
        except jwt.PyJWKClientError as exc:
            # PyJWKClient says "Unable to find a signing key" only after reading the set again.
            if "unable to find" in str(exc).lower():
                raise TokenRefused(f"no key {kid!r} in the key set") from None
            raise TokenRefused("the key set could not be read (no usable signing keys in it)") from None
        except jwt.PyJWTError:
            raise TokenRefused("the key set could not be read (no usable signing keys in it)") from None
        except ValueError:
            raise TokenRefused("the key set could not be read (not JSON)") from None
        # The key's own algorithm (its alg, or its kty and curve) must be the token's: no RS256 key for ES256.
        if signing_key.algorithm_name != algorithm:
            raise TokenRefused(f"key {kid!r} is not for {algorithm}")
        return signing_key.key

    def _checked_claims(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        """Return the claims of a token whose signature, times, audience and issuer hold."""
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("token expired") from None
        except jwt.ImmatureSignatureError as exc:
            raise TokenRefused("token issued in the future" if "iat" in str(exc) else "token not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("wrong issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"no {exc.claim} in token") from None
        except jwt.InvalidSignatureError:
            raise TokenRefused("bad signature") from None
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"invalid token ({exc})") from None

    def _role_of(self, claims: dict[str, Any]) -> str:
        """Return the role a token grants: its role claim, or the highest known role of a list."""
        value = claims.get(self.role_claim)
        if value is None or value == [] or value == "":
            raise TokenRefused("no role in token")
        if isinstance(value, str):
            if value not in ROLES:
                raise TokenRefused(f"unknown role {value!r}")
            return value
        if isinstance(value, list):
            # An identity provider's groups may hold other names besides ours; those are ignored.
            known = [role for role in value if isinstance(role, str) and role in ROLES]
            if not known:
                raise TokenRefused(f"no known role in {value!r}")
            return max(known, key=ROLES.index)
        raise TokenRefused("role claim is neither a string nor a list")
