"""Quota management API in Quay's shapes: `/api/v1/organization/<namespace>/quota`,
`.../quota/<id>` and `.../quota/<id>/limit[/<id>]` (organizations and user namespaces alike),
plus usage reads and the on-demand repair.

Only superusers set quotas and limits (as in Quay); anyone with a role on the namespace, or
a superuser, reads them and the usage. A repository's usage needs read access to it.
"""

from __future__ import annotations

from typing import Any

from chalice import Response

from chalicelib import config
from chalicelib.auth import logins
from chalicelib.auth.permissions import READ, ROBOT, Principal, namespace_resource
from chalicelib.endpoints.accounts import require_role
from chalicelib.endpoints.http import RegistryRequest, empty, json_response
from chalicelib.endpoints.policies import own_namespace
from chalicelib.errors import AccountUnknown, Denied, InvalidRequest, NotFound
from chalicelib.storage import accounts
from chalicelib.storage import quotas as store

MAX_LIMIT_BYTES = 2**63 - 1


def _namespace(namespace: str) -> None:
    if config.settings.auth:
        account = accounts.get_account(namespace)
        if account is None or account.account_type == ROBOT:
            raise AccountUnknown({"namespace": namespace}, message="no such namespace")


def _require_superuser(principal: Principal) -> None:
    if not principal.superuser:
        raise Denied(message="only a registry administrator may set quotas")


def _require_reader(principal: Principal, namespace: str) -> None:
    """A superuser, the namespace's own user, or anyone granted a role on the namespace."""
    if principal.superuser or principal.name == namespace:
        return
    roles = accounts.read_for_login(
        None, None, [(namespace_resource(namespace), principal.name)]
    ).roles
    if roles.get((namespace_resource(namespace), principal.name)) is None:
        raise Denied({"namespace": namespace}, message="a role on the namespace is required")


def _reading(request: RegistryRequest, namespace: str) -> None:
    _namespace(namespace)
    _require_reader(logins.caller(request), namespace)


def _setting(request: RegistryRequest, namespace: str) -> None:
    _namespace(namespace)
    _require_superuser(logins.caller(request))


def _quota(namespace: str, quota_id: str) -> store.Quota:
    quota = store.get_quota(namespace, fresh=True)
    if quota is None or quota.quota_id != quota_id:
        raise NotFound({"quota": quota_id}, message="no such quota")
    return quota


def limit_view(limit: store.Limit) -> dict[str, Any]:
    return {"id": limit.limit_id, "type": limit.limit_type, "limit_percent": limit.percent}


def quota_view(quota: store.Quota) -> dict[str, Any]:
    return {
        "id": quota.quota_id,
        "limit_bytes": quota.limit_bytes,
        "limits": [limit_view(x) for x in quota.limits],
    }


def _limit_bytes(document: dict[str, Any]) -> int:
    value = document.get("limit_bytes")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_LIMIT_BYTES:
        raise InvalidRequest({"limit_bytes": value}, message="limit_bytes: a positive integer")
    return value


def _limit_fields(document: dict[str, Any], partial: bool) -> dict[str, Any]:
    found: dict[str, Any] = {}
    kind = document.get("type")
    if kind is not None or not partial:
        if kind not in (store.WARNING, store.REJECT):
            raise InvalidRequest({"type": kind}, message='type: "Warning" or "Reject"')
        found["limit_type"] = kind
    percent = document.get("threshold_percent")
    if percent is not None or not partial:
        if not isinstance(percent, int) or isinstance(percent, bool) or not 0 < percent <= 100:
            raise InvalidRequest(
                {"threshold_percent": percent}, message="threshold_percent: 1 to 100"
            )
        found["percent"] = percent
    return found


def _refuse_clash(quota: store.Quota, candidate: store.Limit) -> None:
    for other in quota.limits:
        if other.limit_id == candidate.limit_id:
            continue
        if (other.limit_type, other.percent) == (candidate.limit_type, candidate.percent):
            raise InvalidRequest(message="Quota limit already exists")
        if other.limit_type == candidate.limit_type == store.REJECT:
            raise InvalidRequest(message="Only one quota limit of type 'Reject' allowed.")


# -- handlers ------------------------------------------------------------------------------


def quotas(request: RegistryRequest, namespace: str) -> Response:
    """GET: the namespace's quotas (a list of at most one); POST: create it."""
    if request.method == "POST":
        _setting(request, namespace)
        try:
            store.create_quota(namespace, _limit_bytes(request.json_object()))
        except store.QuotaExists:
            raise InvalidRequest(
                message=f"Organization quota for '{namespace}' already exists"
            ) from None
        return json_response("Created", 201)
    _reading(request, namespace)
    quota = store.get_quota(namespace, fresh=True)
    return json_response([quota_view(quota)] if quota else [])


def quota(request: RegistryRequest, namespace: str, quota_id: str) -> Response:
    if request.method == "GET":
        _reading(request, namespace)
        return json_response(quota_view(_quota(namespace, quota_id)))
    _setting(request, namespace)
    found = _quota(namespace, quota_id)
    try:
        if request.method == "DELETE":
            store.delete_quota(namespace, quota_id)
            return empty(204)
        document = request.json_object()
        if "limit_bytes" in document:
            found = store.Quota(namespace, quota_id, _limit_bytes(document), found.limits)
            store.save_quota(found)
    except store.QuotaMissing:
        raise NotFound({"quota": quota_id}, message="no such quota") from None
    return json_response(quota_view(found))


def limits(request: RegistryRequest, namespace: str, quota_id: str) -> Response:
    if request.method == "GET":
        _reading(request, namespace)
        return json_response([limit_view(x) for x in _quota(namespace, quota_id).limits])
    _setting(request, namespace)
    found = _quota(namespace, quota_id)
    fields = _limit_fields(request.json_object(), partial=False)
    limit = store.Limit(store.new_limit_id(), fields["limit_type"], fields["percent"])
    _refuse_clash(found, limit)
    _save(store.Quota(namespace, quota_id, found.limit_bytes, (*found.limits, limit)))
    return json_response("Created", 201)


def limit(request: RegistryRequest, namespace: str, quota_id: str, limit_id: str) -> Response:
    if request.method == "GET":
        _reading(request, namespace)
    else:
        _setting(request, namespace)
    found = _quota(namespace, quota_id)
    current = next((x for x in found.limits if x.limit_id == limit_id), None)
    if current is None:
        raise NotFound({"limit": limit_id}, message="no such quota limit")
    if request.method == "GET":
        return json_response(limit_view(current))
    others = tuple(x for x in found.limits if x.limit_id != limit_id)
    if request.method == "DELETE":
        _save(store.Quota(namespace, quota_id, found.limit_bytes, others))
        return empty(204)
    fields = _limit_fields(request.json_object(), partial=True)
    changed = store.Limit(
        limit_id,
        fields.get("limit_type", current.limit_type),
        fields.get("percent", current.percent),
    )
    _refuse_clash(found, changed)
    updated = store.Quota(namespace, quota_id, found.limit_bytes, (*others, changed))
    return json_response(quota_view(_save(updated)))


def _save(quota: store.Quota) -> store.Quota:
    try:
        return store.save_quota(quota)
    except store.QuotaMissing:
        raise NotFound({"quota": quota.quota_id}, message="no such quota") from None


# -- usage (Stratus's additions) -----------------------------------------------------------


def namespace_usage(request: RegistryRequest, namespace: str) -> Response:
    """The namespace's deduplicated usage and, under a quota, its limit."""
    _reading(request, namespace)
    quota = store.get_quota(namespace, fresh=True)
    return json_response(
        {
            "namespace": namespace,
            "used_bytes": store.namespace_usage(namespace),
            "quota_bytes": quota.limit_bytes if quota else None,
        }
    )


def repository_usage(request: RegistryRequest, name: str) -> Response:
    require_role(logins.caller(request), name, READ)
    return json_response({"repository": name, "used_bytes": store.repository_usage(name)})


def repair(request: RegistryRequest, namespace: str) -> Response:
    """Recount the namespace's usage from its links (superusers; `?dry_run=true` only
    reports what the recount finds)."""
    _setting(request, namespace)
    from chalicelib.policies import quotas as rules

    dry_run = (request.param("dry_run") or "").lower() == "true"
    found = rules.repair(namespace, dry_run=dry_run)
    return json_response(
        {
            "namespace": namespace,
            "dry_run": dry_run,
            "before_bytes": found.before,
            "after_bytes": found.after,
        }
    )


# -- Quay's /user/quota forms (read-only): the caller's own namespace ---------------------------


def user_quotas(request: RegistryRequest) -> Response:
    return quotas(request, own_namespace(request))


def user_quota(request: RegistryRequest, quota_id: str) -> Response:
    return quota(request, own_namespace(request), quota_id)


def user_limits(request: RegistryRequest, quota_id: str) -> Response:
    return limits(request, own_namespace(request), quota_id)


def user_limit(request: RegistryRequest, quota_id: str, limit_id: str) -> Response:
    return limit(request, own_namespace(request), quota_id, limit_id)
