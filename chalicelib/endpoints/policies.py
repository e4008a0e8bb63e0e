"""Policy management API in Quay's shapes: immutability and auto-prune policies per namespace
(`/api/v1/organization/<namespace>/immutabilitypolicy/`, `.../autoprunepolicy/`, for
organizations and user namespaces alike) and per repository
(`/api/v1/repository/<name>/immutabilitypolicy/`, `.../autoprunepolicy/`).

Namespace admins manage their namespace's policies, repository admins their repository's,
superusers all (docs/policies.md).
"""

from __future__ import annotations

import re
from typing import Any

from chalice import Response

from chalicelib import clock, config
from chalicelib.auth import logins
from chalicelib.auth.permissions import (
    ADMIN,
    ROBOT,
    Principal,
    namespace_resource,
    namespace_role,
)
from chalicelib.endpoints.accounts import require_role
from chalicelib.endpoints.http import RegistryRequest, empty, json_response
from chalicelib.errors import AccountUnknown, Denied, InvalidRequest, NameUnknown, NotFound
from chalicelib.policies import patterns
from chalicelib.storage import accounts, repositories
from chalicelib.storage import policies as store

MAX_POLICIES = 20  # per resource and kind: every push may evaluate them all
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhdwy])")


# -- who may -----------------------------------------------------------------------------


def require_namespace_admin(principal: Principal, namespace: str) -> None:
    """The namespace exists (a user or organization) and the caller administers it."""
    if config.settings.auth:  # with auth off a namespace is just a name's first component
        account = accounts.get_account(namespace)
        if account is None or account.account_type == ROBOT:
            raise AccountUnknown({"namespace": namespace}, message="no such namespace")
    roles = accounts.read_for_login(
        None, None, [(namespace_resource(namespace), principal.name)]
    ).roles
    if namespace_role(principal, namespace, roles) != ADMIN:
        raise Denied({"namespace": namespace}, message="namespace admin required")


def _namespace_resource(request: RegistryRequest, namespace: str) -> str:
    require_namespace_admin(logins.caller(request), namespace)
    return namespace_resource(namespace)


def _repository_resource(request: RegistryRequest, name: str) -> str:
    require_role(logins.caller(request), name, ADMIN)
    if not repositories.exists(name):
        raise NameUnknown({"name": name})
    return name


# -- the policy documents ------------------------------------------------------------------


def view(policy: store.Policy) -> dict[str, Any]:
    document: dict[str, Any] = {
        "uuid": policy.uuid,
        "tagPattern": policy.tag_pattern,
        "tagPatternMatches": policy.tag_pattern_matches,
    }
    if policy.kind == store.AUTOPRUNE:
        document["method"] = policy.method
        value = policy.value or ""
        document["value"] = int(value) if policy.method == "number_of_tags" else value
    return document


def _pattern(document: dict[str, Any], required: bool) -> tuple[str | None, bool]:
    raw = document.get("tagPattern")
    matches = document.get("tagPatternMatches", True)
    if not isinstance(matches, bool):
        raise InvalidRequest({"tagPatternMatches": matches}, message="tagPatternMatches: bool")
    if raw is None and not required:
        return None, matches
    return patterns.validate(raw), matches


def _prune_rule(document: dict[str, Any]) -> tuple[str, str]:
    method, value = document.get("method"), document.get("value")
    if method == "number_of_tags":
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 9:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 10**7:
            raise InvalidRequest({"value": value}, message="number_of_tags takes a count >= 1")
        return method, str(value)
    if method == "creation_date":
        if not isinstance(value, str) or not _DURATION.fullmatch(value.strip()):
            raise InvalidRequest(
                {"value": value}, message='creation_date takes a duration like "30d" (s m h d w y)'
            )
        return method, value.strip()
    raise InvalidRequest({"method": method}, message="method: number_of_tags or creation_date")


def _refuse_duplicate(resource: str, kind: str, candidate: dict[str, Any], skip: str) -> None:
    existing = store.of_kind(resource, kind, fresh=True)
    others = [p for p in existing if p.uuid != skip]
    if not skip and len(others) >= MAX_POLICIES:
        raise InvalidRequest(message=f"at most {MAX_POLICIES} policies of a kind per resource")
    for policy in others:
        same = view(policy)
        if all(same.get(k) == v for k, v in candidate.items()):
            raise InvalidRequest(
                {"uuid": policy.uuid}, message="a policy with the same settings already exists"
            )


def _save(resource: str, kind: str, document: dict[str, Any], policy_id: str = "") -> store.Policy:
    method = value = None
    if kind == store.IMMUTABILITY:
        pattern, matches = _pattern(document, required=False)
        candidate: dict[str, Any] = {"tagPattern": pattern, "tagPatternMatches": matches}
    else:
        method, value = _prune_rule(document)
        pattern, matches = _pattern(document, required=False)
        shown: int | str = int(value) if method == "number_of_tags" else value
        candidate = {
            "method": method,
            "value": shown,
            "tagPattern": pattern,
            "tagPatternMatches": matches,
        }
    _refuse_duplicate(resource, kind, candidate, policy_id)
    if policy_id:
        try:
            return store.update(resource, kind, policy_id, pattern, matches, method, value)
        except store.PolicyMissing:
            raise NotFound({"uuid": policy_id}, message="no such policy") from None
    return store.create(resource, kind, pattern, matches, method, value)


def _after_save(policy: store.Policy) -> None:
    if policy.kind == store.IMMUTABILITY:
        from chalicelib.policies import immutability

        immutability.release_expiry(policy)


# -- handlers, shared by namespaces and repositories ----------------------------------------


def _list(resource: str, kind: str) -> Response:
    found = store.of_kind(resource, kind, fresh=True)
    return json_response({"policies": [view(p) for p in found]})


def _create(request: RegistryRequest, resource: str, kind: str) -> Response:
    policy = _save(resource, kind, request.json_object())
    _after_save(policy)
    return json_response({"uuid": policy.uuid}, 201)


def _get(resource: str, kind: str, policy_id: str) -> Response:
    try:
        return json_response(view(store.get(resource, kind, policy_id)))
    except store.PolicyMissing:
        raise NotFound({"uuid": policy_id}, message="no such policy") from None


def _update(request: RegistryRequest, resource: str, kind: str, policy_id: str) -> Response:
    policy = _save(resource, kind, request.json_object(), policy_id)
    _after_save(policy)
    return empty(204)


def _delete(resource: str, kind: str, policy_id: str) -> Response:
    try:
        store.delete(resource, kind, policy_id)
    except store.PolicyMissing:
        raise NotFound({"uuid": policy_id}, message="no such policy") from None
    return json_response({"uuid": policy_id})


def _kind(segment: str) -> str:
    return store.IMMUTABILITY if segment == "immutabilitypolicy" else store.AUTOPRUNE


def namespace_policies(request: RegistryRequest, namespace: str, segment: str) -> Response:
    resource = _namespace_resource(request, namespace)
    if request.method == "POST":
        return _create(request, resource, _kind(segment))
    return _list(resource, _kind(segment))


def namespace_policy(
    request: RegistryRequest, namespace: str, segment: str, policy_id: str
) -> Response:
    resource = _namespace_resource(request, namespace)
    return _one(request, resource, _kind(segment), policy_id)


def repository_policies(request: RegistryRequest, name: str, segment: str) -> Response:
    resource = _repository_resource(request, name)
    if request.method == "POST":
        return _create(request, resource, _kind(segment))
    return _list(resource, _kind(segment))


def repository_policy(
    request: RegistryRequest, name: str, segment: str, policy_id: str
) -> Response:
    resource = _repository_resource(request, name)
    return _one(request, resource, _kind(segment), policy_id)


def _one(request: RegistryRequest, resource: str, kind: str, policy_id: str) -> Response:
    if request.method == "PUT":
        return _update(request, resource, kind, policy_id)
    if request.method == "DELETE":
        return _delete(resource, kind, policy_id)
    return _get(resource, kind, policy_id)


# -- auto-prune preview (a dry run) --------------------------------------------------------


def _preview(repositories: list[str]) -> Response:
    from chalicelib.policies import prune

    return json_response({"dry_run": True, "tags": prune.preview(repositories, clock.now())})


def namespace_prune_preview(request: RegistryRequest, namespace: str) -> Response:
    """What the namespace's and its repositories' auto-prune policies would delete now."""
    from chalicelib.policies import prune

    return _preview(prune.repositories_under(_namespace_resource(request, namespace)))


def repository_prune_preview(request: RegistryRequest, name: str) -> Response:
    return _preview([_repository_resource(request, name)])


# -- Quay's /user/ forms: the caller's own namespace ------------------------------------------


def own_namespace(request: RegistryRequest) -> str:
    """The calling user's namespace (Quay's `/api/v1/user/...` paths)."""
    principal = logins.caller(request)
    if principal.anonymous or principal.kind == ROBOT or not principal.name:
        raise Denied(message="a user's own namespace: log in as that user")
    return principal.name


def user_policies(request: RegistryRequest, segment: str) -> Response:
    return namespace_policies(request, own_namespace(request), segment)


def user_policy(request: RegistryRequest, segment: str, policy_id: str) -> Response:
    return namespace_policy(request, own_namespace(request), segment, policy_id)
