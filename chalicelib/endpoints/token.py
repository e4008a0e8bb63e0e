"""`/v2/auth`: the token endpoint of the Docker token protocol.

GET (docker-registry/token.md) takes Basic credentials or none and any number of `scope`
parameters; POST (oauth.md) takes a form with the password or refresh_token grant. Either
way the token grants the intersection of what was asked and what the caller may do.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from chalice import Response

from chalicelib import config
from chalicelib.auth import access, logins, permissions, scopes, tokens
from chalicelib.endpoints.http import RegistryRequest, json_response
from chalicelib.errors import BadQuery, Unauthorized
from chalicelib.events import actor


def _check_service(service: str | None) -> None:
    if service and service != config.settings.auth_service:
        raise BadQuery(
            {"service": service, "expected": config.settings.auth_service},
            message="unknown service",
        )


def _answer(login: logins.Login, requested: list[scopes.Scope], refresh: str | None) -> Response:
    granted = permissions.grant(login.principal, requested, login.roles)
    issued = tokens.issue_access(login.principal.name, granted)
    body = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scope": " ".join(str(scope) for scope in granted),
    }
    if refresh:
        body["refresh_token"] = refresh
    # Tokens must not sit in shared caches (RFC 6749 section 5.1).
    return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _repositories(requested: list[scopes.Scope]) -> list[str]:
    return [scope.name for scope in requested if scope.type == "repository"]


def get_token(request: RegistryRequest) -> Response:
    _check_service(request.param("service"))
    requested = scopes.parse_all(request.query.get("scope", []))
    credentials = access.basic(request)
    if credentials is None:
        return _answer(logins.anonymous(_repositories(requested)), requested, None)
    username, secret = credentials
    actor.identify(username)  # for the audit log, whether the login succeeds or not
    login = logins.with_password(username, secret, request.source_ip, _repositories(requested))
    offline = (request.param("offline_token") or "").lower() == "true"
    return _answer(login, requested, _refresh_token(login) if offline else None)


def _refresh_token(login: logins.Login) -> str:
    assert login.generation is not None  # only logins with credentials get here
    return tokens.issue_refresh(login.principal.name, login.generation)


def post_token(request: RegistryRequest) -> Response:
    try:
        form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as error:
        raise BadQuery(message="the form is not UTF-8") from error

    def field(name: str) -> str:
        return (form.get(name) or [""])[0]

    _check_service(field("service"))
    requested = scopes.parse_all(form.get("scope", []))
    repositories = _repositories(requested)
    grant_type = field("grant_type")
    if grant_type == "password":
        if not field("username"):
            raise Unauthorized(message="username and password are required")
        actor.identify(field("username"))
        login = logins.with_password(
            field("username"), field("password"), request.source_ip, repositories
        )
        offline = field("access_type") == "offline"
        refresh = _refresh_token(login) if offline else None
    elif grant_type == "refresh_token":
        try:
            claims = tokens.verify(field("refresh_token"), tokens.REFRESH)
        except tokens.TokenInvalid as error:
            raise Unauthorized(message=f"invalid refresh token: {error}") from error
        actor.identify(str(claims["sub"]))
        login = logins.with_refresh_token(claims["sub"], claims.get("gen"), repositories)
        refresh = field("refresh_token")  # oauth.md: the same one, not a new one
    else:
        raise BadQuery({"grant_type": grant_type}, message="unsupported grant_type")
    return _answer(login, requested, refresh)
