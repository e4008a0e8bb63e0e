"""Who may do what: roles, principals and the grant a token request receives.

Roles follow Quay: read pulls; write also pushes and deletes; admin also manages the
repository's permissions and visibility. A role comes from, best first: being a superuser;
owning the namespace (a user's own name); a grant on the repository; a grant on its
namespace ("org/"); the repository or namespace being public (principal "*", read only).
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.auth.scopes import ALL, CATALOG, DELETE, PULL, PUSH, Scope
from chalicelib.registry.names import is_name

READ, WRITE, ADMIN = "read", "write", "admin"
ROLES = (READ, WRITE, ADMIN)
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    READ: frozenset({PULL}),
    WRITE: frozenset({PULL, PUSH, DELETE}),
    ADMIN: frozenset({PULL, PUSH, DELETE, ALL}),
}
EVERYONE = "*"
ANONYMOUS = ""
USER, ROBOT, ORGANIZATION = "user", "robot", "organization"


@dataclass(frozen=True)
class Principal:
    name: str  # "" for anonymous
    kind: str  # "user", "robot" or "anonymous"
    superuser: bool = False

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS_PRINCIPAL = Principal(ANONYMOUS, "anonymous")


def namespace_of(resource: str) -> str:
    """ "org/app" -> "org"; a one-component name has no namespace ("")."""
    head, slash, _ = resource.partition("/")
    return head if slash else ""


def namespace_resource(namespace: str) -> str:
    return namespace + "/"


def _better(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if ROLES.index(a) >= ROLES.index(b) else b


def lookup_keys(principal: Principal, repositories: list[str]) -> list[tuple[str, str]]:
    """The (resource, principal) permission items that decide `principal`'s roles."""
    principals = [EVERYONE] if principal.anonymous else [principal.name, EVERYONE]
    keys = []
    for name in filter(is_name, repositories):
        resources = [name]
        if namespace_of(name):
            resources.append(namespace_resource(namespace_of(name)))
        keys += [(resource, who) for resource in resources for who in principals]
    return keys


def role_on(principal: Principal, repository: str, roles: dict[tuple[str, str], str]) -> str | None:
    """The best role `principal` has on `repository`, given the items `lookup_keys` named."""
    if principal.superuser:
        return ADMIN
    namespace = namespace_of(repository)
    if principal.kind == USER and namespace and namespace == principal.name:
        return ADMIN
    best = None
    for resource in (repository, namespace_resource(namespace) if namespace else None):
        if resource is None:
            continue
        if not principal.anonymous:
            best = _better(best, roles.get((resource, principal.name)))
        if roles.get((resource, EVERYONE)):
            best = _better(best, READ)  # public means pull, whatever the item says
    return best


def namespace_role(
    principal: Principal, namespace: str, roles: dict[tuple[str, str], str]
) -> str | None:
    """A role over the whole namespace: what managing its robots and grants needs."""
    if principal.superuser or (principal.kind == USER and principal.name == namespace):
        return ADMIN
    return roles.get((namespace_resource(namespace), principal.name))


def grant(
    principal: Principal, requested: list[Scope], roles: dict[tuple[str, str], str]
) -> list[Scope]:
    """The intersection of what was asked and what is allowed; never an error (jwt.md)."""
    granted = []
    for scope in requested:
        if scope.type == "registry" and scope.name == CATALOG:
            # Anyone may list; `_catalog` shows each caller only what it may pull.
            granted.append(Scope("registry", CATALOG, frozenset({ALL})))
            continue
        if scope.type != "repository" or not is_name(scope.name):
            continue
        role = role_on(principal, scope.name, roles)
        if role is None:
            continue
        allowed = ROLE_ACTIONS[role]
        # `*` asks for everything the role has (which includes `*` only for admins).
        actions = allowed if ALL in scope.actions else scope.actions & allowed
        if actions:
            granted.append(Scope(scope.type, scope.name, frozenset(actions)))
    return granted
