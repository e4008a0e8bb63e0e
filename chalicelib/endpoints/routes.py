"""One dispatch table for every `/v2/<name>/...` endpoint of distribution-spec v1.1.

Chalice cannot match a multi-segment repository name in one path parameter, so API Gateway
routes `/v2/{proxy+}` here and the table below mirrors the spec's endpoint list (end-1,
`/v2/` itself, is a registry-level route, and so are `_catalog` and `/v2/auth`). The greedy
`name` group takes the last `/blobs/`, `/manifests/`, ... so names like `a/blobs/b` still work.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from chalice import Response

from chalicelib import config, observability
from chalicelib.auth import access
from chalicelib.auth.scopes import CATALOG, DELETE, PULL, PUSH, Scope, repository
from chalicelib.endpoints import (
    accounts,
    base,
    blobs,
    catalog,
    extensions,
    logs,
    management,
    manifests,
    notifications,
    policies,
    proxycache,
    quotas,
    referrers,
    tags,
    token,
    uploads,
    v1,
)
from chalicelib.endpoints.http import API_VERSION_HEADER, RegistryRequest, json_response
from chalicelib.errors import (
    NotFound,
    PayloadTooLarge,
    RegistryError,
    TooManyRequests,
    Unsupported,
    for_storage,
)
from chalicelib.events import actor, audit
from chalicelib.registry.names import validate_name
from chalicelib.storage.errors import StorageError

logger = logging.getLogger(__name__)

Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    endpoints: str  # the spec's ids, for readers and logs
    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    # The token action DELETE needs: `delete` for content, `push` for an upload session.
    delete_action: str = PUSH
    # False where the handler decides itself (the management API, by account and role).
    token: bool = True

    def scope(self, name: str, method: str) -> Scope:
        """What the caller's token must grant on `name` (docker-registry/scope.md)."""
        if method in ("GET", "HEAD"):
            return repository(name, PULL)
        if method == "DELETE":
            return repository(name, self.delete_action)
        return repository(name, PULL, PUSH)  # what clients ask for to push


ROUTES: tuple[Route, ...] = (
    Route(
        "end-4a end-4b end-11", re.compile(r"(?P<name>.+)/blobs/uploads/?"), {"POST": uploads.start}
    ),
    Route(
        "end-5 end-6 end-13",
        re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"),
        {
            "GET": uploads.status,
            "PATCH": uploads.patch,
            "PUT": uploads.finish,
            "DELETE": uploads.cancel,
        },
    ),
    Route(
        "end-2 end-10",
        re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
        {"GET": blobs.get, "HEAD": blobs.head, "DELETE": blobs.delete},
        delete_action=DELETE,
    ),
    Route(
        "end-3 end-7 end-9",
        re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
        {
            "GET": manifests.get,
            "HEAD": manifests.head,
            "PUT": manifests.put,
            "DELETE": manifests.delete,
        },
        delete_action=DELETE,
    ),
    Route("end-8a end-8b", re.compile(r"(?P<name>.+)/tags/list"), {"GET": tags.list_tags}),
    Route(
        "_oci discover",
        re.compile(r"(?P<name>.+)/_oci/ext/discover"),
        {"GET": extensions.discover},
    ),
    Route(
        "_stratus direct uploads",
        re.compile(r"(?P<name>.+)/_stratus/direct/uploads/?"),
        {"POST": extensions.start},
    ),
    Route(
        "_stratus direct upload",
        re.compile(r"(?P<name>.+)/_stratus/direct/uploads/(?P<upload_id>[^/]+)"),
        {"GET": extensions.parts, "PUT": extensions.complete, "DELETE": extensions.cancel},
    ),
    Route(
        "end-12a end-12b",
        re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"),
        {"GET": referrers.list_referrers},
    ),
)

# Registry-level endpoints: no repository name in the path; the scopes their token needs
# (None: no token at all, for the token endpoint itself).
CATALOG_SCOPE = Scope("registry", CATALOG, frozenset({"*"}))
REGISTRY_ROUTES: dict[
    str, tuple[dict[str, Callable[[RegistryRequest], Response]], list[Scope] | None]
] = {
    "": ({"GET": base.version}, []),  # end-1: `/v2/`
    "auth": ({"GET": token.get_token, "POST": token.post_token}, None),
    "_catalog": ({"GET": catalog.list_repositories}, [CATALOG_SCOPE]),
    "_catalog/": ({"GET": catalog.list_repositories}, [CATALOG_SCOPE]),
    "_oci/ext/discover": ({"GET": extensions.discover_registry}, []),
}


def _self_checked(label: str, pattern: str, methods: dict[str, Handler]) -> Route:
    """A route whose handlers check the caller themselves (by account and role)."""
    return Route(label, re.compile(pattern), methods, token=False)


_ACCOUNT = r"[a-z0-9._-]+"
_POLICIES = "immutabilitypolicy|autoprunepolicy"
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# `/api/v1/{proxy+}`: the management API (Quay's paths where Quay has them), docs/auth.md.
MANAGEMENT_ROUTES: tuple[Route, ...] = (
    _self_checked("users", r"users/?", {"GET": accounts.list_users, "POST": accounts.create_user}),
    _self_checked(
        "user",
        rf"users/(?P<username>{_ACCOUNT})",
        {"PUT": accounts.change_user, "DELETE": accounts.delete_user},
    ),
    _self_checked(
        "organizations",
        r"organizations/?",
        {"GET": accounts.list_organizations, "POST": accounts.create_organization},
    ),
    _self_checked(
        "robots", rf"organization/(?P<namespace>{_ACCOUNT})/robots/?", {"GET": accounts.list_robots}
    ),
    _self_checked(
        "robot",
        rf"organization/(?P<namespace>{_ACCOUNT})/robots/(?P<shortname>{_ACCOUNT})",
        {"PUT": accounts.create_robot, "DELETE": accounts.delete_robot},
    ),
    _self_checked(
        "robot regenerate",
        rf"organization/(?P<namespace>{_ACCOUNT})/robots/(?P<shortname>{_ACCOUNT})/regenerate",
        {"POST": accounts.regenerate_robot},
    ),
    _self_checked(
        "namespace permissions",
        rf"organization/(?P<namespace>{_ACCOUNT})/permissions/?",
        {"GET": accounts.list_namespace_permissions},
    ),
    _self_checked(
        "namespace permission",
        rf"organization/(?P<namespace>{_ACCOUNT})/permissions/(?P<principal>[a-z0-9._+-]+|\*)",
        {"PUT": accounts.set_namespace_permission, "DELETE": accounts.delete_namespace_permission},
    ),
    _self_checked(
        "proxy cache",
        rf"organization/(?P<namespace>{_ACCOUNT})/proxycache/?",
        {
            "GET": proxycache.get_config,
            "POST": proxycache.create_config,
            "DELETE": proxycache.delete_config,
        },
    ),
    _self_checked(
        "proxy cache validation",
        rf"organization/(?P<namespace>{_ACCOUNT})/validateproxycache/?",
        {"POST": proxycache.validate_config},
    ),
    _self_checked(
        "tags", r"repository/(?P<name>.+)/tag/?", {"GET": management.list_repository_tags}
    ),
    _self_checked(
        "tag",
        r"repository/(?P<name>.+)/tag/(?P<tag>[^/]+)",
        {"PUT": management.change_tag, "DELETE": management.delete_tag},
    ),
    _self_checked(
        "manifest",
        r"repository/(?P<name>.+)/manifest/(?P<digest>[^/]+)",
        {"GET": management.get_manifest},
    ),
    _self_checked(
        "repository permissions",
        r"repository/(?P<name>.+)/permissions/?",
        {"GET": accounts.list_repository_permissions},
    ),
    _self_checked(
        "repository permission",
        r"repository/(?P<name>.+)/permissions/user/(?P<principal>[a-z0-9._+-]+)",
        {
            "PUT": accounts.set_repository_permission,
            "DELETE": accounts.delete_repository_permission,
        },
    ),
    _self_checked(
        "visibility",
        r"repository/(?P<name>.+)/changevisibility",
        {"POST": accounts.change_visibility},
    ),
    _self_checked(
        "namespace policies",
        rf"organization/(?P<namespace>{_ACCOUNT})/(?P<segment>{_POLICIES})/?",
        {"GET": policies.namespace_policies, "POST": policies.namespace_policies},
    ),
    _self_checked(
        "namespace policy",
        rf"organization/(?P<namespace>{_ACCOUNT})/(?P<segment>{_POLICIES})/(?P<policy_id>{_UUID})",
        {m: policies.namespace_policy for m in ("GET", "PUT", "DELETE")},
    ),
    _self_checked(
        "repository policies",
        rf"repository/(?P<name>.+)/(?P<segment>{_POLICIES})/?",
        {"GET": policies.repository_policies, "POST": policies.repository_policies},
    ),
    _self_checked(
        "repository policy",
        rf"repository/(?P<name>.+)/(?P<segment>{_POLICIES})/(?P<policy_id>{_UUID})",
        {m: policies.repository_policy for m in ("GET", "PUT", "DELETE")},
    ),
    _self_checked("user logs", r"user/logs/?", {"GET": logs.user_logs}),
    _self_checked(
        "namespace logs",
        rf"organization/(?P<namespace>{_ACCOUNT})/logs/?",
        {"GET": logs.organization_logs},
    ),
    _self_checked(
        "repository logs", r"repository/(?P<name>.+)/logs/?", {"GET": logs.repository_logs}
    ),
    _self_checked(
        "repository notifications",
        r"repository/(?P<name>.+)/notification/?",
        {
            "GET": notifications.repository_notifications,
            "POST": notifications.repository_notifications,
        },
    ),
    _self_checked(
        "repository notification",
        rf"repository/(?P<name>.+)/notification/(?P<uuid>{_UUID})",
        {m: notifications.repository_notification for m in ("GET", "POST", "DELETE")},
    ),
    _self_checked(
        "repository notification test",
        rf"repository/(?P<name>.+)/notification/(?P<uuid>{_UUID})/test",
        {"POST": notifications.repository_notification_test},
    ),
    _self_checked(
        "repository notification deliveries",
        rf"repository/(?P<name>.+)/notification/(?P<uuid>{_UUID})/deliveries",
        {"GET": notifications.repository_notification_deliveries},
    ),
    _self_checked(
        "namespace notifications",
        rf"organization/(?P<namespace>{_ACCOUNT})/notification/?",
        {
            "GET": notifications.namespace_notifications,
            "POST": notifications.namespace_notifications,
        },
    ),
    _self_checked(
        "namespace notification",
        rf"organization/(?P<namespace>{_ACCOUNT})/notification/(?P<uuid>{_UUID})",
        {m: notifications.namespace_notification for m in ("GET", "POST", "DELETE")},
    ),
    _self_checked(
        "namespace notification test",
        rf"organization/(?P<namespace>{_ACCOUNT})/notification/(?P<uuid>{_UUID})/test",
        {"POST": notifications.namespace_notification_test},
    ),
    _self_checked(
        "namespace notification deliveries",
        rf"organization/(?P<namespace>{_ACCOUNT})/notification/(?P<uuid>{_UUID})/deliveries",
        {"GET": notifications.namespace_notification_deliveries},
    ),
    _self_checked(
        "namespace prune preview",
        rf"organization/(?P<namespace>{_ACCOUNT})/autoprunepolicy/preview",
        {"GET": policies.namespace_prune_preview},
    ),
    _self_checked(
        "repository prune preview",
        r"repository/(?P<name>.+)/autoprunepolicy/preview",
        {"GET": policies.repository_prune_preview},
    ),
    _self_checked(
        "quotas",
        rf"organization/(?P<namespace>{_ACCOUNT})/quota/?",
        {"GET": quotas.quotas, "POST": quotas.quotas},
    ),
    _self_checked(
        "quota usage",
        rf"organization/(?P<namespace>{_ACCOUNT})/quota/usage",
        {"GET": quotas.namespace_usage},
    ),
    _self_checked(
        "quota repair",
        rf"organization/(?P<namespace>{_ACCOUNT})/quota/repair",
        {"POST": quotas.repair},
    ),
    _self_checked(
        "quota",
        rf"organization/(?P<namespace>{_ACCOUNT})/quota/(?P<quota_id>{_UUID})",
        {m: quotas.quota for m in ("GET", "PUT", "DELETE")},
    ),
    _self_checked(
        "quota limits",
        rf"organization/(?P<namespace>{_ACCOUNT})/quota/(?P<quota_id>{_UUID})/limit/?",
        {"GET": quotas.limits, "POST": quotas.limits},
    ),
    _self_checked(
        "quota limit",
        rf"organization/(?P<namespace>{_ACCOUNT})/quota/(?P<quota_id>{_UUID})/limit/(?P<limit_id>{_UUID})",
        {m: quotas.limit for m in ("GET", "PUT", "DELETE")},
    ),
    _self_checked(
        "repository usage", r"repository/(?P<name>.+)/usage", {"GET": quotas.repository_usage}
    ),
    _self_checked(
        "own policies",
        rf"user/(?P<segment>{_POLICIES})/?",
        {"GET": policies.user_policies, "POST": policies.user_policies},
    ),
    _self_checked(
        "own policy",
        rf"user/(?P<segment>{_POLICIES})/(?P<policy_id>{_UUID})",
        {m: policies.user_policy for m in ("GET", "PUT", "DELETE")},
    ),
    _self_checked("own quotas", r"user/quota/?", {"GET": quotas.user_quotas}),
    _self_checked("own quota", rf"user/quota/(?P<quota_id>{_UUID})", {"GET": quotas.user_quota}),
    _self_checked(
        "own quota limits",
        rf"user/quota/(?P<quota_id>{_UUID})/limit/?",
        {"GET": quotas.user_limits},
    ),
    _self_checked(
        "own quota limit",
        rf"user/quota/(?P<quota_id>{_UUID})/limit/(?P<limit_id>{_UUID})",
        {"GET": quotas.user_limit},
    ),
    _self_checked("user", r"user/?", {"GET": accounts.current_user}),
    # Last: any path below `repository/` the routes above did not take.
    _self_checked("repository", r"repository/(?P<name>.+?)/?", {"GET": management.get_repository}),
)


_PUSH = {"PUT": v1.refuse_push, "POST": v1.refuse_push, "DELETE": v1.refuse_push}
# `/v1/{proxy+}`: Docker V1 pulls (chalicelib/endpoints/v1.py); the handlers check access.
V1_ROUTES: tuple[Route, ...] = (
    _self_checked("ping", r"_ping", {"GET": v1.ping}),
    _self_checked(
        "images", r"repositories/(?P<name>.+)/images", {"GET": v1.repository_images, **_PUSH}
    ),
    _self_checked(
        "tag", r"repositories/(?P<name>.+)/tags/(?P<tag>[^/]+)", {"GET": v1.repository_tag, **_PUSH}
    ),
    _self_checked("tags", r"repositories/(?P<name>.+)/tags", {"GET": v1.repository_tags}),
    _self_checked(
        "image json", r"images/(?P<image_id>[^/]+)/json", {"GET": v1.image_json, **_PUSH}
    ),
    _self_checked("ancestry", r"images/(?P<image_id>[^/]+)/ancestry", {"GET": v1.image_ancestry}),
    _self_checked("layer", r"images/(?P<image_id>[^/]+)/layer", {"GET": v1.image_layer, **_PUSH}),
    _self_checked("push", r".*", _PUSH),
)


def _unsupported(request: RegistryRequest, methods: dict[str, Handler]) -> Unsupported:
    allowed = list(methods) + (["HEAD"] if "GET" in methods and "HEAD" not in methods else [])
    return Unsupported({"method": request.method}, headers={"Allow": ", ".join(allowed)})


def _handler(request: RegistryRequest, methods: dict[str, Handler]) -> Handler:
    """The method's handler; HEAD is GET without the body wherever it has none of its own
    (RFC 9110 9.3.2), and `dispatch` drops the body."""
    handler = methods.get(request.method)
    if handler is None and request.method == "HEAD":
        handler = methods.get("GET")
    if handler is None:
        raise _unsupported(request, methods)
    return handler


def _authorized(request: RegistryRequest, needed: list[Scope] | None) -> RegistryRequest:
    if needed is None:
        return request
    return dataclasses.replace(request, access=access.authorize(request, needed))


def _operation(handler: Handler) -> str:
    """ "manifests.get": the handler's module and name, what request logs call it."""
    return f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}"


def resolve(
    routes: tuple[Route, ...],
    request: RegistryRequest,
    record: observability.RequestRecord | None = None,
) -> Callable[[], Response]:
    """The handler call for this request, or the error for a path, method or token we lack.

    Authorization comes after routing, so an unknown path is a 404 for everyone, and a
    malformed name is NAME_INVALID before any challenge.
    """
    record = record or observability.RequestRecord("unrouted", request.method)
    registry_level = REGISTRY_ROUTES.get(request.path) if routes is ROUTES else None
    if registry_level is not None:
        methods, needed = registry_level
        handler = _handler(request, methods)
        record.operation = _operation(handler)
        allowed = _authorized(request, needed)
        return lambda: handler(allowed)
    for route in routes:
        match = route.pattern.fullmatch(request.path)
        if match is None:
            continue
        handler = _handler(request, route.methods)
        params = match.groupdict()
        record.operation = _operation(handler)
        if "name" in params:
            params["name"] = validate_name(params["name"])
            record.repository = params["name"]
        record.params = params
        needed = [route.scope(params["name"], request.method)] if route.token else None
        allowed = _authorized(request, needed)
        return lambda: handler(allowed, **params)
    raise NotFound({"path": request.path})


def without_body(request: RegistryRequest, response: Response) -> Response:
    """A HEAD answer: GET's status and headers, its body's length, no body."""
    if request.method != "HEAD" or not response.body:
        return response
    body = response.body
    size = len(body.encode("utf-8") if isinstance(body, str) else body)
    response.headers["Content-Length"] = str(size)
    response.body = ""
    return response


def _too_large(size: int | None, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        {
            "limit": limit,
            "size": size,
            "hint": (
                f"upload in chunks (PATCH) of at most {limit} bytes, or push large layers "
                "straight to S3 with `stratus push` (the _stratus/direct/uploads extension)"
            ),
        },
        message=f"request body exceeds this stage's limit of {limit} bytes; upload in "
        "chunks or with `stratus push`",
    )


def body_too_large(size: int | None, limit: int) -> Response:
    """The 413 for a body over the stage limit; the local server sends it before reading."""
    return render_error(_too_large(size, limit))


def _check_size(request: RegistryRequest) -> None:
    limit = config.settings.max_request_bytes
    if limit and len(request.body) > limit:
        raise _too_large(len(request.body), limit)


def render_error(error: RegistryError) -> Response:
    return json_response(error.body(), error.status, {**API_VERSION_HEADER, **error.headers})


def _throttled(exc: Exception) -> bool:
    code = getattr(exc, "cause_response_code", None)
    response = getattr(exc, "response", None)
    if code is None and isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
    return code in {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "SlowDown",
    }


def dispatch(request: RegistryRequest, routes: tuple[Route, ...] = ROUTES) -> Response:
    """Run the endpoint and log it; every failure leaves here as the spec's error JSON."""
    span = observability.Span()
    record = observability.RequestRecord("unrouted", request.method, request_id=request.request_id)
    actor.begin(request.source_ip)
    response = _run(request, routes, record)
    record.status = response.status_code
    audit.after_request(request, record, management=routes is MANAGEMENT_ROUTES)
    if record.status < 400 and record.operation.startswith("uploads."):
        record.uploaded_bytes = len(request.body)
    span.finish(record)
    return response


def _run(
    request: RegistryRequest, routes: tuple[Route, ...], record: observability.RequestRecord
) -> Response:
    try:
        _check_size(request)
        response = resolve(routes, request, record)()
    except RegistryError as error:
        record.error_code = error.code
        return render_error(error)
    except StorageError as condition:
        answer = for_storage(condition)
        record.error_code = answer.code
        return render_error(answer)
    except Exception as exc:
        if _throttled(exc):
            record.error_code = TooManyRequests.code
            return render_error(TooManyRequests())
        record.error_code = "UNKNOWN"
        # The exception's type and place, never the request's headers or body.
        logger.exception("unhandled error in %s", record.operation)
        return json_response(
            {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]},
            500,
            API_VERSION_HEADER,
        )
    response.headers.update(API_VERSION_HEADER)
    return without_body(request, response)
