"""Who is asking: Basic credentials, refresh tokens or nobody, checked against the accounts
table in one BatchGetItem that also reads the permissions the token will need.

Failed logins are counted per user and per source address; past the limit the login is
refused before the secret is even checked, until the window ends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import dataclass

from chalicelib import clock, config
from chalicelib.auth import passwords
from chalicelib.auth.permissions import (
    ANONYMOUS_PRINCIPAL,
    ROBOT,
    USER,
    Principal,
    lookup_keys,
)
from chalicelib.endpoints.http import RegistryRequest
from chalicelib.errors import TooManyRequests, Unauthorized
from chalicelib.events import actor
from chalicelib.storage import accounts
from chalicelib.storage.models import AccountModel


@dataclass(frozen=True)
class Login:
    principal: Principal
    roles: dict[tuple[str, str], str]
    # The account's credential generation, which refresh tokens carry (None: anonymous).
    generation: str | None = None


def _principal(account: AccountModel) -> Principal:
    return Principal(account.name, account.account_type, bool(account.superuser))


def credential_generation(account: AccountModel) -> str:
    """Names this account's current credentials: a digest of when the account was made and
    of its stored secret (salted hash). Deleting the account, recreating the name, changing
    the password or regenerating a robot's token each change it, so a refresh token that
    carries the old one stops working at once, with no revocation list to keep."""
    material = f"{account.name}\0{account.created_at.isoformat()}\0{account.secret or ''}"
    digest = hashlib.sha256(material.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _login(account: AccountModel, roles: dict[tuple[str, str], str]) -> Login:
    return Login(_principal(account), roles, credential_generation(account))


def _check_throttle(records: accounts.LoginRecords, username: str, source: str | None) -> None:
    settings = config.settings
    limits = [(accounts.failure_key("user", username), settings.login_failures_per_user)]
    if source:
        limits.append((accounts.failure_key("source", source), settings.login_failures_per_source))
    for key, limit in limits:
        count, until = records.failures.get(key, (0, None))
        if until is not None and count >= limit:
            wait = max(1, math.ceil((until - clock.now()).total_seconds()))
            raise TooManyRequests(
                {"retry_after_seconds": wait},
                message="too many failed logins; try again later",
                headers={"Retry-After": str(wait)},
            )


def _bootstrap_password() -> str:
    settings = config.settings
    if settings.admin_password_parameter:
        from chalicelib.storage import aws

        answer = aws.ssm().get_parameter(
            Name=settings.admin_password_parameter, WithDecryption=True
        )
        password: str = answer["Parameter"]["Value"]
        return password
    return settings.admin_password


def _bootstrap_admin(username: str, secret: str) -> AccountModel | None:
    """The stage's first administrator, created as a superuser on its first good login."""
    expected = _bootstrap_password()
    passwords.verify(secret, None)  # same cost as any other login
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        return None
    try:
        return accounts.create_account(
            username,
            USER,
            accounts.USER_DIRECTORY,
            passwords.hash_password(secret),
            superuser=True,
        )
    except accounts.AccountExists:
        return accounts.get_account(username)


def _failed(username: str, source: str | None) -> Unauthorized:
    window = config.settings.login_failure_window_seconds
    accounts.record_failure("user", username, window)
    if source:
        accounts.record_failure("source", source, window)
    return Unauthorized(message="invalid username or password")


def with_password(username: str, secret: str, source: str | None, repositories: list[str]) -> Login:
    """A user's password or a robot's token (robots are `namespace+name`, as in Quay)."""
    candidate = Principal(username, ROBOT if "+" in username else USER)
    records = accounts.read_for_login(username, source, lookup_keys(candidate, repositories))
    _check_throttle(records, username, source)
    account = records.account
    settings = config.settings
    if account is None and settings.admin_user and username == settings.admin_user:
        account = _bootstrap_admin(username, secret)
        if account is None:
            raise _failed(username, source)
    else:
        usable = account is not None and account.account_type in (USER, ROBOT)
        stored = account.secret if usable and account is not None else None
        if not passwords.verify(secret, stored, robot=candidate.kind == ROBOT):
            raise _failed(username, source)
    assert account is not None
    return _login(account, records.roles)


def with_refresh_token(subject: str, generation: object, repositories: list[str]) -> Login:
    """A refresh token's subject, if the account still holds the credentials the token was
    issued against (its generation): deleted, recreated or re-keyed accounts revoke them."""
    candidate = Principal(subject, ROBOT if "+" in subject else USER)
    records = accounts.read_for_login(subject, None, lookup_keys(candidate, repositories))
    account = records.account
    if account is None:
        raise Unauthorized(message="the refresh token's account no longer exists")
    current = credential_generation(account)
    if not isinstance(generation, str) or not hmac.compare_digest(
        generation.encode(), current.encode()
    ):
        raise Unauthorized(message="the refresh token was revoked: the credentials changed")
    return _login(account, records.roles)


def anonymous(repositories: list[str]) -> Login:
    keys = lookup_keys(ANONYMOUS_PRINCIPAL, repositories)
    return Login(ANONYMOUS_PRINCIPAL, accounts.read_for_login(None, None, keys).roles)


LOCAL_ADMIN = Principal("local", USER, superuser=True)


def caller(request: RegistryRequest) -> Principal:
    """Who calls the management API: Basic credentials or a bearer token's subject.

    With auth off (local mode's default) everyone is the local administrator.
    """
    from chalicelib.auth import access, tokens

    if not config.settings.auth:
        actor.identify(LOCAL_ADMIN.name, LOCAL_ADMIN.kind)
        return LOCAL_ADMIN
    credentials = access.basic(request)
    if credentials is not None:
        actor.identify(credentials[0])  # the audit log names who tried, even on failure
        return with_password(*credentials, request.source_ip, []).principal
    token = access.bearer(request)
    if token is None:
        raise Unauthorized(headers={"WWW-Authenticate": 'Basic realm="stratus"'})
    try:
        subject = tokens.verify(token)["sub"]
    except tokens.TokenInvalid as error:
        raise Unauthorized(message=f"invalid token: {error}") from error
    account = accounts.get_account(subject) if subject else None
    if account is None:
        raise Unauthorized(message="the token's account no longer exists")
    actor.identify(account.name, account.account_type)
    return _principal(account)
