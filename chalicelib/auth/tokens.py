"""JWTs: short-lived access tokens (docker-registry/jwt.md) and long-lived refresh tokens.

Tokens carry `use` so an access token cannot stand in for a refresh token or the reverse.
Expiry is checked against the registry's clock (chalicelib/clock.py), not pyjwt's, so tests
move time instead of sleeping.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import clock, config
from chalicelib.auth import keys
from chalicelib.auth.scopes import Scope

ACCESS, REFRESH = "access", "refresh"
# Lambdas' clocks agree closely, but not exactly: a token is accepted this early.
NBF_LEEWAY_SECONDS = 10


class TokenInvalid(Exception):
    """Signature, algorithm, key, audience, issuer, lifetime or kind did not check out."""


@dataclass(frozen=True)
class Issued:
    token: str
    issued_at: datetime
    expires_in: int


def _sign(claims: dict[str, Any]) -> str:
    import jwt  # with its cryptography backend, loaded on the first token, not at import

    key = keys.ring().signing
    return jwt.encode(claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


def _claims(subject: str, use: str, lifetime: int) -> tuple[dict[str, Any], datetime]:
    now = clock.now()
    issued = int(now.timestamp())
    settings = config.settings
    return {
        "iss": settings.auth_issuer,
        "sub": subject,
        "aud": settings.auth_service,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": secrets.token_urlsafe(16),
        "use": use,
    }, now


def issue_access(subject: str, granted: list[Scope]) -> Issued:
    lifetime = config.settings.token_seconds
    claims, now = _claims(subject, ACCESS, lifetime)
    claims["access"] = [scope.claim() for scope in granted]
    return Issued(_sign(claims), now, lifetime)


def issue_refresh(subject: str, generation: str) -> str:
    """A refresh token bound to the account's credential generation (auth/logins.py)."""
    claims, _ = _claims(subject, REFRESH, config.settings.refresh_token_seconds)
    claims["gen"] = generation
    return _sign(claims)


def _key_for(token: str) -> keys.SigningKey:
    import jwt

    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as error:
        raise TokenInvalid("malformed token") from error
    if not isinstance(kid, str):
        raise TokenInvalid("token names no key")
    key = keys.ring().by_kid.get(kid) or keys.ring(unknown_kid=True).by_kid.get(kid)
    if key is None:
        raise TokenInvalid("token signed by an unknown key")
    return key


def verify(token: str, use: str = ACCESS) -> dict[str, Any]:
    """The claims of a token we signed, for our audience, now valid, of the given kind."""
    import jwt

    key = _key_for(token)
    settings = config.settings
    try:
        claims = jwt.decode(
            token,
            key.public,
            algorithms=[key.algorithm],  # pinned per key: no `none`, no algorithm confusion
            audience=settings.auth_service,
            issuer=settings.auth_issuer,
            options={
                "require": ["exp", "nbf", "iat", "iss", "aud", "sub"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as error:
        raise TokenInvalid(str(error)) from error
    now = clock.now().timestamp()
    if not isinstance(claims["exp"], int | float) or now >= claims["exp"]:
        raise TokenInvalid("token expired")
    if not isinstance(claims["nbf"], int | float) or now + NBF_LEEWAY_SECONDS < claims["nbf"]:
        raise TokenInvalid("token not yet valid")
    if claims.get("use") != use:
        raise TokenInvalid(f"not an {use} token")
    return claims
