"""Management API for accounts and permissions (`/api/v1/...`, shaped after Quay's).

Superusers manage users and organizations; a namespace's admins manage its robots and
namespace-wide grants; a repository's admins manage its grants and visibility. The admin
CLI (`python -m chalicelib.admin`) is a client of these endpoints.
"""

from __future__ import annotations

import re
from typing import Any

from chalice import Response

from chalicelib import config
from chalicelib.auth import logins, passwords
from chalicelib.auth.permissions import (
    ADMIN,
    ANONYMOUS_PRINCIPAL,
    EVERYONE,
    ORGANIZATION,
    READ,
    ROBOT,
    ROLES,
    USER,
    Principal,
    lookup_keys,
    namespace_resource,
    namespace_role,
    role_on,
)
from chalicelib.endpoints.http import RegistryRequest, empty, json_response
from chalicelib.errors import AccountUnknown, AlreadyExists, Denied, InvalidRequest, Unauthorized
from chalicelib.storage import accounts

# Account names are repository path components, so every account is a usable namespace.
_ACCOUNT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
MIN_PASSWORD_LENGTH = 8


def _account_name(name: object) -> str:
    if not isinstance(name, str) or not 2 <= len(name) <= 64 or not _ACCOUNT.fullmatch(name):
        raise InvalidRequest({"name": name}, message="names are 2-64 of [a-z0-9._-]")
    return name


def _password(document: dict[str, Any]) -> str:
    password = document.get("password")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(message=f"password must be {MIN_PASSWORD_LENGTH}+ characters")
    return password


def _role(document: dict[str, Any]) -> str:
    role = document.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequest({"role": role}, message=f"role must be one of {', '.join(ROLES)}")
    return role


def _require_superuser(principal: Principal) -> None:
    if not principal.superuser:
        raise Denied(message="only a registry administrator may do this")


def _require_namespace_admin(principal: Principal, namespace: str) -> None:
    roles = accounts.read_for_login(
        None, None, [(namespace_resource(namespace), principal.name)]
    ).roles
    if namespace_role(principal, namespace, roles) != ADMIN:
        raise Denied({"namespace": namespace}, message="namespace admin required")


def repository_role(principal: Principal, repository: str) -> str | None:
    roles = accounts.read_for_login(None, None, lookup_keys(principal, [repository])).roles
    return role_on(principal, repository, roles)


def require_role(principal: Principal, repository: str, needed: str) -> None:
    """Anonymous callers without the role are asked to log in (401); accounts get 403."""
    role = repository_role(principal, repository)
    if role is None or ROLES.index(role) < ROLES.index(needed):
        detail = {"repository": repository, "role": needed}
        if principal.anonymous:
            raise Unauthorized(
                detail, message="authentication required", headers={"WWW-Authenticate": _BASIC}
            )
        raise Denied(detail, message=f"{needed} required")


_BASIC = 'Basic realm="stratus"'


def viewer(request: RegistryRequest) -> Principal:
    """The caller of a read that public repositories allow anyone: anonymous when auth is
    on and no credentials came, else `logins.caller`."""
    if config.settings.auth and request.header("authorization") is None:
        return ANONYMOUS_PRINCIPAL
    return logins.caller(request)


def body_of(request: RegistryRequest) -> dict[str, Any]:
    """The request's JSON object (InvalidRequest otherwise)."""
    return request.json_object()


def _existing_principal(name: str) -> None:
    account = accounts.get_account(name)
    if account is None or account.account_type == ORGANIZATION:
        raise AccountUnknown({"name": name}, message="no such user or robot")


def _account_view(account: Any) -> dict[str, Any]:
    view = {"name": account.name, "kind": account.account_type}
    if account.account_type == USER:
        view["superuser"] = bool(account.superuser)
    return view


# -- users and organizations (superusers) ---------------------------------------------------


def list_users(request: RegistryRequest) -> Response:
    _require_superuser(logins.caller(request))
    users = accounts.list_accounts(accounts.USER_DIRECTORY)
    return json_response({"users": [_account_view(a) for a in users]})


def create_user(request: RegistryRequest) -> Response:
    _require_superuser(logins.caller(request))
    document = request.json_object()
    name = _account_name(document.get("username"))
    try:
        account = accounts.create_account(
            name,
            USER,
            accounts.USER_DIRECTORY,
            passwords.hash_password(_password(document)),
            superuser=document.get("superuser") is True,
        )
    except accounts.AccountExists as error:
        raise AlreadyExists({"name": name}) from error
    return json_response(_account_view(account), 201)


def change_user(request: RegistryRequest, username: str) -> Response:
    """A new password: users change their own, superusers anyone's."""
    principal = logins.caller(request)
    if principal.name != username or principal.kind != USER:
        _require_superuser(principal)
    try:
        accounts.set_secret(username, passwords.hash_password(_password(request.json_object())))
    except accounts.AccountMissing as error:
        raise AccountUnknown({"name": username}) from error
    return empty(204)


def delete_user(request: RegistryRequest, username: str) -> Response:
    """Deleting an account revokes its refresh tokens; access tokens run out within minutes."""
    _require_superuser(logins.caller(request))
    account = accounts.get_account(username)
    if account is None or account.account_type != USER:
        raise AccountUnknown({"name": username})
    accounts.delete_account(username)
    return empty(204)


def list_organizations(request: RegistryRequest) -> Response:
    _require_superuser(logins.caller(request))
    orgs = accounts.list_accounts(accounts.ORG_DIRECTORY)
    return json_response({"organizations": [_account_view(a) for a in orgs]})


def create_organization(request: RegistryRequest) -> Response:
    """An organization owns the namespace of its name; its owners are that namespace's admins."""
    _require_superuser(logins.caller(request))
    document = request.json_object()
    name = _account_name(document.get("name"))
    owners = document.get("owners") or []
    if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
        raise InvalidRequest(message="owners must be a list of user names")
    for owner in owners:
        _existing_principal(owner)
    try:
        account = accounts.create_account(name, ORGANIZATION, accounts.ORG_DIRECTORY)
    except accounts.AccountExists as error:
        raise AlreadyExists({"name": name}) from error
    for owner in owners:
        accounts.put_permission(namespace_resource(name), owner, ADMIN)
    return json_response({**_account_view(account), "owners": owners}, 201)


def current_user(request: RegistryRequest) -> Response:
    """Quay's `GET /api/v1/user/`: who is signed in and which namespaces they administer
    (the console shows admin actions from it; the server still checks every one)."""
    principal = viewer(request)
    if principal.anonymous:
        return json_response({"anonymous": True})
    if principal.superuser:
        orgs = [a.name for a in accounts.list_accounts(accounts.ORG_DIRECTORY)]
        administered = {name: ADMIN for name in orgs}
    else:
        administered = {
            resource[:-1]: role
            for resource, role in accounts.permissions_of(principal.name).items()
            if resource.endswith("/")
        }
    if principal.kind == USER and config.settings.auth:  # auth off: no account, no namespace
        administered[principal.name] = ADMIN
    return json_response(
        {
            "anonymous": False,
            "username": principal.name,
            "kind": principal.kind,
            "super_user": principal.superuser,
            "organizations": [
                {"name": name, "role": role, "is_org_admin": role == ADMIN}
                for name, role in sorted(administered.items())
            ],
        }
    )


# -- robots and namespace grants (namespace admins) -----------------------------------------


def _namespace(namespace: str) -> str:
    _account_name(namespace)
    account = accounts.get_account(namespace)
    if account is None or account.account_type == ROBOT:
        raise AccountUnknown({"namespace": namespace}, message="no such namespace")
    return namespace


def list_robots(request: RegistryRequest, namespace: str) -> Response:
    _require_namespace_admin(logins.caller(request), _namespace(namespace))
    robots = accounts.list_accounts(accounts.robot_directory(namespace))
    return json_response({"robots": [{"name": robot.name} for robot in robots]})


def create_robot(request: RegistryRequest, namespace: str, shortname: str) -> Response:
    """`namespace+shortname` with a generated token, shown once (Quay's robot accounts)."""
    _require_namespace_admin(logins.caller(request), _namespace(namespace))
    name = f"{namespace}+{_account_name(shortname)}"
    token = passwords.new_robot_token()
    try:
        accounts.create_account(
            name, ROBOT, accounts.robot_directory(namespace), passwords.hash_token(token)
        )
    except accounts.AccountExists as error:
        raise AlreadyExists({"name": name}) from error
    return json_response({"name": name, "token": token}, 201)


def regenerate_robot(request: RegistryRequest, namespace: str, shortname: str) -> Response:
    """A new token for the robot (Quay's `.../robots/<shortname>/regenerate`); the old token
    and every refresh token issued against it stop working at once."""
    _require_namespace_admin(logins.caller(request), _namespace(namespace))
    name = f"{namespace}+{shortname}"
    token = passwords.new_robot_token()
    try:
        accounts.set_secret(name, passwords.hash_token(token))
    except accounts.AccountMissing as error:
        raise AccountUnknown({"name": name}) from error
    return json_response({"name": name, "token": token})


def delete_robot(request: RegistryRequest, namespace: str, shortname: str) -> Response:
    _require_namespace_admin(logins.caller(request), _namespace(namespace))
    try:
        accounts.delete_account(f"{namespace}+{shortname}")
    except accounts.AccountMissing as error:
        raise AccountUnknown({"name": f"{namespace}+{shortname}"}) from error
    return empty(204)


def _grantee(namespace: str, principal: str) -> str:
    """Robots act only inside their own namespace, as in Quay. "*" is everyone, anonymous
    included: a public namespace (a public pull-through cache), pull only whatever role."""
    if principal == EVERYONE:
        return principal
    _existing_principal(principal)
    if "+" in principal and principal.split("+", 1)[0] != namespace:
        raise InvalidRequest(
            {"robot": principal, "namespace": namespace},
            message="a robot may only be granted access in its own namespace",
        )
    return principal


def list_namespace_permissions(request: RegistryRequest, namespace: str) -> Response:
    _require_namespace_admin(logins.caller(request), _namespace(namespace))
    granted = accounts.permissions_on(namespace_resource(namespace))
    return json_response({"permissions": granted})


def set_namespace_permission(request: RegistryRequest, namespace: str, principal: str) -> Response:
    _require_namespace_admin(logins.caller(request), _namespace(namespace))
    role = _role(request.json_object())
    accounts.put_permission(namespace_resource(namespace), _grantee(namespace, principal), role)
    return json_response({"name": principal, "role": role})


def delete_namespace_permission(
    request: RegistryRequest, namespace: str, principal: str
) -> Response:
    _require_namespace_admin(logins.caller(request), _namespace(namespace))
    if not accounts.delete_permission(namespace_resource(namespace), principal):
        raise AccountUnknown({"name": principal}, message="no such permission")
    return empty(204)


# -- repository grants and visibility (repository admins) -----------------------------------


def list_repository_permissions(request: RegistryRequest, name: str) -> Response:
    require_role(logins.caller(request), name, ADMIN)
    granted = accounts.permissions_on(name)
    return json_response(
        {
            "permissions": {who: role for who, role in granted.items() if who != EVERYONE},
            "public": EVERYONE in granted,
        }
    )


def set_repository_permission(request: RegistryRequest, name: str, principal: str) -> Response:
    require_role(logins.caller(request), name, ADMIN)
    role = _role(request.json_object())
    namespace = name.split("/", 1)[0]
    accounts.put_permission(name, _grantee(namespace, principal), role)
    return json_response({"name": principal, "role": role})


def delete_repository_permission(request: RegistryRequest, name: str, principal: str) -> Response:
    require_role(logins.caller(request), name, ADMIN)
    if not accounts.delete_permission(name, principal):
        raise AccountUnknown({"name": principal}, message="no such permission")
    return empty(204)


def change_visibility(request: RegistryRequest, name: str) -> Response:
    """Quay's `POST .../changevisibility`: public repositories can be pulled anonymously."""
    require_role(logins.caller(request), name, ADMIN)
    visibility = request.json_object().get("visibility")
    if visibility == "public":
        accounts.put_permission(name, EVERYONE, READ)
    elif visibility == "private":
        accounts.delete_permission(name, EVERYONE)
    else:
        raise InvalidRequest({"visibility": visibility}, message="public or private")
    return json_response({"name": name, "visibility": visibility})
