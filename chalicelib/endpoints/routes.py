"""One dispatch table for every `/v2/<name>/...` endpoint of distribution-spec v1.1.

Chalice cannot match a multi-segment repository name in one path parameter, so API Gateway
routes `/v2/{proxy+}` here and the table below mirrors the spec's endpoint list (end-1 is
its own route in app.py). The greedy `name` group takes the last `/blobs/`, `/manifests/`,
... so names like `a/blobs/b` still work.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from chalice import Response

from chalicelib import config
from chalicelib.endpoints import (
    blobs,
    catalog,
    extensions,
    management,
    manifests,
    referrers,
    tags,
    uploads,
)
from chalicelib.endpoints.http import API_VERSION_HEADER, RegistryRequest, json_response
from chalicelib.errors import (
    NotFound,
    PayloadTooLarge,
    RegistryError,
    TooManyRequests,
    Unsupported,
)
from chalicelib.registry.names import validate_name

logger = logging.getLogger(__name__)

Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    endpoints: str  # the spec's ids, for readers and logs
    pattern: re.Pattern[str]
    methods: dict[str, Handler]


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

# Registry-level endpoints: no repository name in the path.
REGISTRY_ROUTES: dict[str, dict[str, Callable[[RegistryRequest], Response]]] = {
    "_catalog": {"GET": catalog.list_repositories},
    "_catalog/": {"GET": catalog.list_repositories},
    "_oci/ext/discover": {"GET": extensions.discover_registry},
}

# `/api/v1/repository/{proxy+}`: Quay's management API, as far as it exists here.
MANAGEMENT_ROUTES: tuple[Route, ...] = (
    Route("tags", re.compile(r"(?P<name>.+)/tag/?"), {"GET": management.list_repository_tags}),
)


def _unsupported(request: RegistryRequest, methods: dict) -> Unsupported:
    return Unsupported({"method": request.method}, headers={"Allow": ", ".join(methods)})


def resolve(routes: tuple[Route, ...], request: RegistryRequest) -> Callable[[], Response]:
    """The handler call for this request, or the error for a path or method we lack."""
    registry_level = REGISTRY_ROUTES.get(request.path) if routes is ROUTES else None
    if registry_level is not None:
        handler = registry_level.get(request.method)
        if handler is None:
            raise _unsupported(request, registry_level)
        return lambda: handler(request)
    for route in routes:
        match = route.pattern.fullmatch(request.path)
        if match is None:
            continue
        handler = route.methods.get(request.method)
        if handler is None:
            raise _unsupported(request, route.methods)
        params = match.groupdict()
        name = validate_name(params.pop("name"))
        return lambda: handler(request, name, **params)
    raise NotFound({"path": request.path})


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
    """Run the endpoint; every failure leaves here as the spec's error JSON."""
    try:
        _check_size(request)
        response = resolve(routes, request)()
    except RegistryError as error:
        return render_error(error)
    except Exception as exc:
        if _throttled(exc):
            return render_error(TooManyRequests())
        logger.exception("unhandled error on %s /v2/%s", request.method, request.path)
        return json_response(
            {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]},
            500,
            API_VERSION_HEADER,
        )
    response.headers.update(API_VERSION_HEADER)
    return response
