"""Turn an HTTP request into the API Gateway REST proxy event Lambda receives, and back.

The local server and the in-process test client both go through here, so local mode runs
exactly the code path Lambda runs, including `multiValueHeaders` and base64 bodies.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class LambdaContext:
    function_name: str = "stratus-local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:stratus-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


# The app's greedy routes (app.py): API Gateway hands everything below them to the app.
PROXY_PREFIXES = ("/v2/", "/api/v1/", "/v1/", "/console/")


def build_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any] | None:
    """The proxy event for `method target`, or None where API Gateway has no route."""
    parts = urlsplit(target)
    path = unquote(parts.path)
    if path in ("/v2", "/v2/"):
        resource, path_parameters = "/v2", None
    elif path == "/":
        resource, path_parameters = "/", None  # the web console's page
    else:
        for prefix in PROXY_PREFIXES:
            if path.startswith(prefix) and len(path) > len(prefix):
                resource = prefix + "{proxy+}"
                path_parameters = {"proxy": path[len(prefix) :]}
                break
        else:
            return None
    multi_query = parse_qs(parts.query, keep_blank_values=True) or None
    multi_headers: dict[str, list[str]] = {}
    if not any(name.lower() == "x-forwarded-proto" for name, _ in headers):
        headers = [*headers, ("X-Forwarded-Proto", "http")]  # API Gateway's says https
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": (
            {k: v[-1] for k, v in multi_query.items()} if multi_query else None
        ),
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": path,
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": source_ip},
        },
        "body": base64.b64encode(body).decode("ascii") if body else None,
        "isBase64Encoded": bool(body),
    }


def missing_route() -> HttpResponse:
    """What API Gateway answers for a path it has no resource for."""
    body = b'{"message":"Missing Authentication Token"}'
    return HttpResponse(403, [("Content-Type", "application/json")], body)


def bad_gateway() -> HttpResponse:
    """API Gateway's answer when the function fails or returns something it cannot send."""
    body = b'{"message": "Internal server error"}'
    return HttpResponse(502, [("Content-Type", "application/json")], body)


def gateway_timeout() -> HttpResponse:
    """API Gateway's answer when the integration runs past its 29 s."""
    body = b'{"message": "Endpoint request timed out"}'
    return HttpResponse(504, [("Content-Type", "application/json")], body)


def invoke(
    app: Any,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
) -> HttpResponse:
    """Run `app` as Lambda behind API Gateway would; a result API Gateway could not send
    raises (the local server answers 502 for it, as API Gateway does)."""
    event = build_event(method, target, headers, body, source_ip)
    if event is None or not _has_method(app, event["resource"], method):
        return missing_route()
    result = app(event, LambdaContext())
    out: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        out.append((name, str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        out.extend((name, str(v)) for v in values)
    raw = result.get("body") or ""
    data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
    return HttpResponse(int(result["statusCode"]), out, data)


def _has_method(app: Any, resource: str, method: str) -> bool:
    """API Gateway has a method only where the app declared it; anything else (OPTIONS,
    PROPFIND, HEAD on `/v2`) never reaches the function."""
    routes = getattr(app, "routes", None)
    if not isinstance(routes, dict):
        return True  # not a Chalice app (tests' stand-ins): it takes every method
    return method in routes.get(resource, {})
