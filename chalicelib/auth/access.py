"""The check every registry request passes: a valid access token whose scopes cover it.

No storage call: the token carries its grants (docker-registry/jwt.md, "Verifying the
token"). Without a usable token the answer is 401 with the challenge naming what to ask for;
so is an anonymous token that lacks a scope (logging in may help). An authenticated caller's
token that lacks a scope gets 403 with `error="insufficient_scope"` (RFC 6750 section 3.1),
which is also what makes clients that reuse a pull token for a push, such as the oras SDK,
fetch a new one.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from chalicelib import config
from chalicelib.auth import tokens
from chalicelib.auth.scopes import ALL, PULL, Scope
from chalicelib.endpoints.http import RegistryRequest
from chalicelib.errors import Denied, Unauthorized
from chalicelib.events import actor


@dataclass(frozen=True)
class Access:
    subject: str  # "" for anonymous
    granted: dict[tuple[str, str], frozenset[str]]

    def allows(self, scope: Scope) -> bool:
        actions = self.granted.get((scope.type, scope.name), frozenset())
        return ALL in actions or scope.actions <= actions

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Access:
        granted: dict[tuple[str, str], frozenset[str]] = {}
        for entry in claims.get("access") or []:
            if not isinstance(entry, dict):
                continue
            key = (str(entry.get("type")), str(entry.get("name")))
            actions = frozenset(str(a) for a in entry.get("actions") or [])
            granted[key] = granted.get(key, frozenset()) | actions
        return cls(str(claims.get("sub") or ""), granted)


def may(request: RegistryRequest, scope: Scope) -> bool:
    """For handlers deciding optional work (a mount's source): open when auth is off."""
    return request.access is None or request.access.allows(scope)


def may_pull(request: RegistryRequest, repository: str) -> bool:
    return may(request, Scope("repository", repository, frozenset({PULL})))


def realm(request: RegistryRequest) -> str:
    return config.settings.auth_realm or f"{request.base_url}/v2/auth"


def challenge(request: RegistryRequest, needed: list[Scope], error: str | None = None) -> str:
    parts = [f'realm="{realm(request)}"', f'service="{config.settings.auth_service}"']
    if needed:
        parts.append(f'scope="{" ".join(str(scope) for scope in needed)}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def _detail(needed: list[Scope]) -> list[dict[str, str]]:
    return [
        {"Type": scope.type, "Name": scope.name, "Action": action}
        for scope in needed
        for action in sorted(scope.actions)
    ]


def bearer(request: RegistryRequest) -> str | None:
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def basic(request: RegistryRequest) -> tuple[str, str] | None:
    """Basic credentials, if sent; malformed ones are a 401, never a 500."""
    scheme, _, encoded = (request.header("authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise Unauthorized(message="malformed Basic credentials") from error
    username, colon, secret = decoded.partition(":")
    if not colon or not username:
        raise Unauthorized(message="malformed Basic credentials")
    return username, secret


def authorize(request: RegistryRequest, needed: list[Scope]) -> Access | None:
    """The caller's access if its token covers `needed`; None when auth is off."""
    if not config.settings.auth:
        return None
    token = bearer(request)
    if token is None:
        raise Unauthorized(
            _detail(needed), headers={"WWW-Authenticate": challenge(request, needed)}
        )
    try:
        access = Access.from_claims(tokens.verify(token))
    except tokens.TokenInvalid as error:
        raise Unauthorized(
            _detail(needed),
            message=f"invalid token: {error}",
            headers={"WWW-Authenticate": challenge(request, needed, "invalid_token")},
        ) from error
    actor.identify(access.subject)  # the audit log's who, allowed or not
    missing = [scope for scope in needed if not access.allows(scope)]
    if missing and not access.subject:
        # Anonymous: logging in may help, so say "authentication required" (401 and the
        # challenge), as Distribution and Quay do; clients then offer to log in.
        raise Unauthorized(
            _detail(missing),
            message="authentication required",
            headers={"WWW-Authenticate": challenge(request, needed, "insufficient_scope")},
        )
    if missing:
        raise Denied(
            _detail(missing),
            message="the token does not grant this access",
            headers={"WWW-Authenticate": challenge(request, needed, "insufficient_scope")},
        )
    return access
